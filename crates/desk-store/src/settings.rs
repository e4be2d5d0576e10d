//! Key/value settings (the LINE設定 screen) and durable counters (signature failures).

use crate::{Change, Result, Store};

impl Store {
    pub async fn setting(&self, key: &str) -> Result<Option<(String, i64)>> {
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, (String, i64)>(
            "SELECT value, updated_at FROM settings WHERE key = $1"
        )
        .bind(key)
        .fetch_optional(p)
        .await)?)
    }

    /// Announced as [`Change::Settings`], so every instance reloads what it caches.
    pub async fn set_setting(&self, key: &str, value: &str, now_ms: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
            .bind(key).bind(value).bind(now_ms)
        })?;
        tx.announce([Change::Settings]);
        tx.commit().await?;
        Ok(())
    }

    /// Adds `n` to a named counter and records when; returns the new value.
    pub async fn add_to_counter(&self, name: &str, n: i64, at_ms: i64) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "INSERT INTO counters (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + excluded.value,
                 updated_at = excluded.updated_at
             RETURNING value"
        )
        .bind(name)
        .bind(n)
        .bind(at_ms)
        .fetch_one(p)
        .await)?)
    }

    /// Sets a named counter to `value` (e.g. a streak that ended).
    pub async fn set_counter(&self, name: &str, value: i64, at_ms: i64) -> Result<()> {
        exec_db!(&self.db, |p| {
            sqlx::query(
            "INSERT INTO counters (name, value, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at")
            .bind(name).bind(value).bind(at_ms)
        })?;
        Ok(())
    }

    /// The counter's value and when it last changed.
    pub async fn counter(&self, name: &str) -> Result<Option<(i64, i64)>> {
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, (i64, i64)>(
            "SELECT value, updated_at FROM counters WHERE name = $1"
        )
        .bind(name)
        .fetch_optional(p)
        .await)?)
    }
}
