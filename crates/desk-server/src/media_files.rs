//! Where file bytes live: on disk under the data dir with SQLite (one machine), in the
//! database with PostgreSQL (so every instance can serve every file). Keys are random and
//! unguessable; only media marked public (what agents send, for LINE to fetch) is served
//! without login, at `/media/{key}`.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use desk_store::Store;
use desk_store::media::{MediaRow, NewMedia};

use crate::AppState;

#[derive(Clone)]
pub struct MediaFiles {
    dir: PathBuf,
    in_database: bool,
}

impl MediaFiles {
    pub fn new(data_dir: &Path, in_database: bool) -> std::io::Result<MediaFiles> {
        let dir = data_dir.join("media");
        if !in_database {
            std::fs::create_dir_all(&dir)?;
        }
        Ok(MediaFiles { dir, in_database })
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2.min(key.len())]).join(key)
    }

    /// Stores the bytes, then their row; returns `(media id, key)`.
    pub async fn save(
        &self,
        store: &Store,
        bytes: &[u8],
        content_type: &str,
        public: bool,
        now_ms: i64,
    ) -> anyhow::Result<(i64, String)> {
        let key = Store::new_media_key();
        let data = if self.in_database {
            Some(bytes)
        } else {
            // Written and synced before the row exists, so a row never points at nothing.
            let path = self.path(&key);
            let owned = bytes.to_vec();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                use std::io::Write;
                std::fs::create_dir_all(path.parent().expect("has parent"))?;
                let mut f = std::fs::File::create(&path)?;
                f.write_all(&owned)?;
                f.sync_all()
            })
            .await??;
            None
        };
        let media = NewMedia {
            content_type,
            size: bytes.len() as i64,
            public,
            data,
        };
        let id = store.insert_media(&key, media, now_ms).await?;
        Ok((id, key))
    }

    pub async fn bytes(&self, row: &MediaRow) -> std::io::Result<Vec<u8>> {
        match &row.data {
            Some(d) => Ok(d.clone()),
            None => tokio::fs::read(self.path(&row.key)).await,
        }
    }

    /// The HTTP response for a stored file.
    pub async fn respond(&self, row: &MediaRow) -> Response {
        match self.bytes(row).await {
            Ok(bytes) => (
                [
                    (header::CONTENT_TYPE, row.content_type.clone()),
                    (header::CACHE_CONTROL, "private, max-age=86400".into()),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
                ],
                Body::from(bytes),
            )
                .into_response(),
            Err(e) => {
                tracing::error!(key = %row.key, %e, "media file missing");
                StatusCode::NOT_FOUND.into_response()
            }
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/media/{key}", get(public_media))
}

/// What LINE fetches when an agent sends an image: no login, only public media.
async fn public_media(State(st): State<AppState>, UrlPath(key): UrlPath<String>) -> Response {
    match st.store.media_by_key(&key).await {
        Ok(Some(row)) if row.public => st.media.respond(&row).await,
        Ok(_) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => crate::ApiError::internal(e).into_response(),
    }
}
