//! Where file bytes live: on disk under the data dir with SQLite (one machine), in the
//! database with PostgreSQL (so every instance can serve every file). Keys are random and
//! unguessable; only media marked public (what agents send, for LINE to fetch) is served
//! without login, at `/media/{key}`.
//!
//! Customers' files are the attacker's bytes on the desk's own origin (issue 9, item 1), so
//! no file can ever run there: a file is shown inline only when its bytes *are* one of
//! [`INLINE_TYPES`] (sniffed; the type LINE reports is whatever the sender's app declared)
//! and then with that sniffed type; everything else is `application/octet-stream` with
//! `Content-Disposition: attachment`. Every media response carries [`MEDIA_CSP`]
//! (`sandbox`: even a file opened in a tab gets an opaque origin, no script, no cookie).

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
    /// With files on disk, `<data dir>/media` is created (or tightened) to 0700; files are
    /// written 0600 in 0700 folders (issue 9, item 15: customers' files are private).
    pub fn new(data_dir: &Path, in_database: bool) -> std::io::Result<MediaFiles> {
        let dir = data_dir.join("media");
        if !in_database {
            private_dir(&dir)?;
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
                use std::os::unix::fs::OpenOptionsExt;
                private_dir(path.parent().expect("has parent"))?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)?;
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

    /// Removes a stored file (an upload whose message could not be queued).
    pub async fn delete(&self, store: &Store, media_id: i64, key: &str) -> anyhow::Result<()> {
        store.delete_media(media_id).await?;
        if !self.in_database {
            match tokio::fs::remove_file(self.path(key)).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        Ok(())
    }

    pub async fn bytes(&self, row: &MediaRow) -> std::io::Result<Vec<u8>> {
        match &row.data {
            Some(d) => Ok(d.clone()),
            None => tokio::fs::read(self.path(&row.key)).await,
        }
    }

    /// The HTTP response for a stored file (see the module docs for what is inline).
    pub async fn respond(&self, row: &MediaRow) -> Response {
        match self.bytes(row).await {
            Ok(bytes) => {
                let (content_type, disposition) = match inline_type(&bytes) {
                    Some(t) => (t, "inline"),
                    None => ("application/octet-stream", "attachment"),
                };
                (
                    [
                        (header::CONTENT_TYPE, content_type),
                        (header::CONTENT_DISPOSITION, disposition),
                        (header::CACHE_CONTROL, "private, max-age=86400"),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                        (header::CONTENT_SECURITY_POLICY, MEDIA_CSP),
                        (
                            header::HeaderName::from_static("cross-origin-resource-policy"),
                            "same-origin",
                        ),
                    ],
                    Body::from(bytes),
                )
                    .into_response()
            }
            Err(e) => {
                tracing::error!(key = %row.key, %e, "media file missing");
                StatusCode::NOT_FOUND.into_response()
            }
        }
    }
}

/// What media may be shown inline: pictures, video and sound (formats that cannot carry
/// script). SVG is not among them (it is a document that can hold script).
pub const INLINE_TYPES: &[&str] = &[
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "video/mp4",
    "video/webm",
    "video/quicktime",
    "audio/mpeg",
    "audio/mp4",
    "audio/m4a",
    "audio/x-m4a",
    "audio/aac",
    "audio/ogg",
    "audio/x-wav",
    "audio/webm",
];

/// The policy of every media response: a sandbox (opaque origin, no script, no forms) that
/// may only show itself.
pub const MEDIA_CSP: &str =
    "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'";

/// The type to serve `bytes` inline with: what they sniff as, if that is one of
/// [`INLINE_TYPES`]; `None` means download only.
pub fn inline_type(bytes: &[u8]) -> Option<&'static str> {
    let sniffed = infer::get(bytes)?.mime_type();
    INLINE_TYPES.iter().copied().find(|t| *t == sniffed)
}

/// Creates `dir` (and its parents) if need be, 0700.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if std::fs::metadata(dir)?.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
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
