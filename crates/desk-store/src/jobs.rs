//! Background jobs: fetching a LINE user's profile and a message's content after the
//! webhook has answered. A job is claimed with a lease (its `next_at` moves forward), so a
//! crashed worker's job comes due again; on PostgreSQL several instances skip each other's
//! claimed rows.

use crate::{Change, Db, Result, Store};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub target_id: i64,
    pub attempts: i64,
}

/// A profile fetched (or known to be unavailable) for a profile job: see
/// [`Store::finish_profiles`].
#[derive(Clone, Debug)]
pub struct ProfileResult {
    pub job_id: i64,
    pub conversation_id: i64,
    pub display_name: Option<String>,
    pub picture_url: Option<String>,
    /// `ok`, or `unavailable` (blocked or not a friend).
    pub state: &'static str,
}

/// What a content job needs to know about its message.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ContentTarget {
    pub conversation_id: i64,
    pub line_message_id: Option<String>,
    pub kind: String,
}

impl Store {
    /// Claims up to `limit` due jobs for `lease_ms`.
    pub async fn claim_jobs(&self, now_ms: i64, limit: i64, lease_ms: i64) -> Result<Vec<Job>> {
        let jobs = match &self.db {
            Db::Sqlite(p) => {
                sqlx::query_as::<_, Job>(
                    "UPDATE jobs SET next_at = $1 + $3, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM jobs WHERE next_at <= $1 ORDER BY next_at LIMIT $2)
                     RETURNING id, kind, target_id, attempts",
                )
                .bind(now_ms)
                .bind(limit)
                .bind(lease_ms)
                .fetch_all(p)
                .await?
            }
            Db::Postgres(p) => {
                sqlx::query_as::<_, Job>(
                    "UPDATE jobs SET next_at = $1 + $3, attempts = attempts + 1
                     WHERE id IN (SELECT id FROM jobs WHERE next_at <= $1 ORDER BY next_at LIMIT $2
                                  FOR UPDATE SKIP LOCKED)
                     RETURNING id, kind, target_id, attempts",
                )
                .bind(now_ms)
                .bind(limit)
                .bind(lease_ms)
                .fetch_all(p)
                .await?
            }
        };
        Ok(jobs)
    }

    pub async fn finish_job(&self, id: i64) -> Result<()> {
        exec_db!(&self.db, |p| sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id))?;
        Ok(())
    }

    /// Leaves the job for a later try, recording why it failed.
    pub async fn retry_job(&self, id: i64, next_at: i64, error: &str) -> Result<()> {
        exec_db!(&self.db, |p| sqlx::query(
            "UPDATE jobs SET next_at = $2, last_error = $3 WHERE id = $1"
        )
        .bind(id)
        .bind(next_at)
        .bind(error))?;
        Ok(())
    }

    pub async fn count_jobs(&self) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs"
        )
        .fetch_one(p)
        .await)?)
    }

    pub async fn conversation_line_user(&self, conversation_id: i64) -> Result<Option<String>> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT line_user_id FROM conversations WHERE id = $1"
        )
        .bind(conversation_id)
        .fetch_optional(p)
        .await)?)
    }

    /// Records the profile from LINE (`state` "ok"), or that LINE has none for the user
    /// ("unavailable": blocked or not a friend; the chat keeps showing the user id).
    pub async fn set_profile(
        &self,
        conversation_id: i64,
        display_name: Option<&str>,
        picture_url: Option<&str>,
        state: &str,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| sqlx::query(
            "UPDATE conversations SET display_name = COALESCE($2, display_name),
                    picture_url = COALESCE($3, picture_url), profile_state = $4, updated_at = $5
             WHERE id = $1"
        )
        .bind(conversation_id)
        .bind(display_name)
        .bind(picture_url)
        .bind(state)
        .bind(now_ms))?;
        tx.announce([Change::Conversation {
            id: conversation_id,
        }]);
        tx.commit().await?;
        Ok(())
    }

    /// Records several fetched profiles (as [`Store::set_profile`]) and finishes their jobs,
    /// in one transaction: a burst of new users (each schedules a profile job) then costs the
    /// webhook's writer one wait for the write lock per round of fetches, not two per user.
    pub async fn finish_profiles(&self, done: &[ProfileResult], now_ms: i64) -> Result<()> {
        if done.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        for r in done {
            exec_tx!(&mut tx, |c| sqlx::query(
                "UPDATE conversations SET display_name = COALESCE($2, display_name),
                        picture_url = COALESCE($3, picture_url), profile_state = $4, updated_at = $5
                 WHERE id = $1"
            )
            .bind(r.conversation_id)
            .bind(&r.display_name)
            .bind(&r.picture_url)
            .bind(r.state)
            .bind(now_ms))?;
            exec_tx!(&mut tx, |c| sqlx::query("DELETE FROM jobs WHERE id = $1")
                .bind(r.job_id))?;
        }
        tx.announce(done.iter().map(|r| Change::Conversation {
            id: r.conversation_id,
        }));
        tx.commit().await?;
        Ok(())
    }

    pub async fn content_target(&self, message_id: i64) -> Result<Option<ContentTarget>> {
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, ContentTarget>(
            "SELECT conversation_id, line_message_id, type AS kind FROM messages WHERE id = $1"
        )
        .bind(message_id)
        .fetch_optional(p)
        .await)?)
    }

    /// Sets a message's media state (`pending` | `ok` | `failed`) and, once fetched, its file.
    pub async fn set_message_media(
        &self,
        message_id: i64,
        media_id: Option<i64>,
        state: &str,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let conv: Option<i64> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "UPDATE messages SET media_id = COALESCE($2, media_id), media_state = $3 WHERE id = $1
             RETURNING conversation_id")
            .bind(message_id).bind(media_id).bind(state).fetch_optional(c).await
        })?;
        if let Some(conversation_id) = conv {
            tx.announce([Change::Message {
                conversation_id,
                id: message_id,
            }]);
        }
        tx.commit().await?;
        Ok(())
    }
}
