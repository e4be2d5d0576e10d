//! Stored files: what customers send (downloaded from LINE at once, since LINE deletes
//! content after a while) and what agents send (served to LINE at an unguessable URL).

use crate::{Result, Store, random_token};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MediaRow {
    pub id: i64,
    pub key: String,
    pub content_type: String,
    pub size: i64,
    pub public: bool,
    /// The bytes, when kept in the database; `None` means on disk under the data dir.
    pub data: Option<Vec<u8>>,
}

pub struct NewMedia<'a> {
    pub content_type: &'a str,
    pub size: i64,
    pub public: bool,
    pub data: Option<&'a [u8]>,
}

impl Store {
    /// A fresh unguessable key for a file about to be stored.
    pub fn new_media_key() -> String {
        random_token(24)
    }

    pub async fn insert_media(&self, key: &str, m: NewMedia<'_>, now_ms: i64) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "INSERT INTO media (key, content_type, size, public, data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"
        )
        .bind(key)
        .bind(m.content_type)
        .bind(m.size)
        .bind(m.public)
        .bind(m.data)
        .bind(now_ms)
        .fetch_one(p)
        .await)?)
    }

    pub async fn media_by_key(&self, key: &str) -> Result<Option<MediaRow>> {
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, MediaRow>(
            "SELECT id, key, content_type, size, public, data FROM media WHERE key = $1"
        )
        .bind(key)
        .fetch_optional(p)
        .await)?)
    }

    /// Deletes a file's row (an upload no message refers to).
    pub async fn delete_media(&self, id: i64) -> Result<()> {
        exec_db!(&self.db, |p| sqlx::query("DELETE FROM media WHERE id = $1")
            .bind(id))?;
        Ok(())
    }

    /// How many files are stored (tests: nothing left behind).
    pub async fn count_media(&self) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM media"
        )
        .fetch_one(p)
        .await)?)
    }
}
