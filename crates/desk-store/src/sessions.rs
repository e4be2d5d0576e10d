//! Login sessions of the agent UI. The browser holds a random token in a cookie; the table
//! keeps only its SHA-256 (a database dump logs nobody in), the session's CSRF token and
//! when it ends. How long a session lives is the server's policy (desk-server `session.rs`);
//! the store only keeps `expires_at` and never returns an expired session or one whose
//! user is disabled.

use crate::users::UserRow;
use crate::{Change, Result, Store, hash_token, random_token};

/// The wall clock, for callers without a `Clock` (the CLI, tests).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A session as created: the token goes into the cookie and is not stored anywhere.
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: i64,
    pub token: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// A live session and its (enabled) user.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub session_id: i64,
    pub csrf_token: String,
    pub session_created_at: i64,
    pub expires_at: i64,
    #[sqlx(flatten)]
    pub user: UserRow,
}

impl Store {
    /// Starts a session for `user_id` that ends at `expires_at` (unix ms).
    pub async fn create_session(
        &self,
        user_id: i64,
        now_ms: i64,
        expires_at: i64,
    ) -> Result<NewSession> {
        let token = random_token(32);
        let csrf_token = random_token(32);
        let id: i64 = on_db!(&self.db, |p| sqlx::query_scalar(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5) RETURNING id"
        )
        .bind(hash_token(&token))
        .bind(user_id)
        .bind(&csrf_token)
        .bind(now_ms)
        .bind(expires_at)
        .fetch_one(p)
        .await)?;
        Ok(NewSession {
            id,
            token,
            csrf_token,
            expires_at,
        })
    }

    /// The session a cookie token belongs to, if it has not ended and its user is enabled.
    pub async fn session_by_token(&self, token: &str, now_ms: i64) -> Result<Option<SessionRow>> {
        let sql = "SELECT s.id AS session_id, s.csrf_token, s.created_at AS session_created_at,
                          s.expires_at, u.id, u.login, u.name, u.role, u.password_hash,
                          u.disabled, u.locale
                   FROM sessions s JOIN users u ON u.id = s.user_id
                   WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT u.disabled";
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, SessionRow>(sql)
            .bind(hash_token(token))
            .bind(now_ms)
            .fetch_optional(p)
            .await)?)
    }

    /// Moves a session's end (sliding expiry).
    pub async fn extend_session(&self, session_id: i64, expires_at: i64) -> Result<()> {
        exec_db!(&self.db, |p| sqlx::query(
            "UPDATE sessions SET expires_at = $1 WHERE id = $2"
        )
        .bind(expires_at)
        .bind(session_id))?;
        Ok(())
    }

    /// Ends the session a cookie token belongs to (logout). Unknown tokens are no error.
    /// The user's open event streams re-check their access at once.
    pub async fn delete_session(&self, token: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let user_id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "DELETE FROM sessions WHERE token_hash = $1 RETURNING user_id"
        )
        .bind(hash_token(token))
        .fetch_optional(c)
        .await)?;
        if let Some(user_id) = user_id {
            tx.announce([Change::Access { user_id }]);
        }
        tx.commit().await?;
        Ok(())
    }

    /// A password reset (管理設定 > ユーザー): the new hash (argon2, by the caller), the end of
    /// every session of the user but `keep` (the admin's own, when resetting their own
    /// password), and the revocation of all their API tokens — one transaction, announced
    /// so that their open event streams end.
    pub async fn reset_password(
        &self,
        user_id: i64,
        password_hash: &str,
        keep_session: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2"
        )
        .bind(password_hash)
        .bind(user_id))?;
        if n == 0 {
            return Err(crate::StoreError::NotFound);
        }
        exec_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2"
        )
        .bind(user_id)
        .bind(keep_session.unwrap_or(-1)))?;
        crate::users::revoke_tokens_in(&mut tx, user_id, now_ms).await?;
        tx.announce([Change::Access { user_id }]);
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of a user but `keep` (the caller's own, when they change their
    /// own password). Returns how many ended.
    pub async fn delete_user_sessions(&self, user_id: i64, keep: Option<i64>) -> Result<u64> {
        Ok(exec_db!(&self.db, |p| sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND id <> $2"
        )
        .bind(user_id)
        .bind(keep.unwrap_or(-1)))?)
    }

    /// Housekeeping: forgets sessions that have ended.
    pub async fn delete_expired_sessions(&self, now_ms: i64) -> Result<u64> {
        Ok(exec_db!(&self.db, |p| sqlx::query(
            "DELETE FROM sessions WHERE expires_at <= $1"
        )
        .bind(now_ms))?)
    }

    /// Disables or enables a user. Disabling also ends their sessions and revokes their API
    /// tokens in the same transaction (enabling again brings neither back), and is announced
    /// so that their open event streams end.
    pub async fn set_user_disabled(&self, user_id: i64, disabled: bool) -> Result<()> {
        self.set_user_disabled_at(user_id, disabled, now_ms()).await
    }

    /// [`Store::set_user_disabled`] with the time the tokens are revoked at.
    pub async fn set_user_disabled_at(
        &self,
        user_id: i64,
        disabled: bool,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| sqlx::query(
            "UPDATE users SET disabled = $1 WHERE id = $2"
        )
        .bind(disabled)
        .bind(user_id))?;
        if n == 0 {
            return Err(crate::StoreError::NotFound);
        }
        if disabled {
            exec_tx!(&mut tx, |c| sqlx::query(
                "DELETE FROM sessions WHERE user_id = $1"
            )
            .bind(user_id))?;
            crate::users::revoke_tokens_in(&mut tx, user_id, now_ms).await?;
        }
        tx.announce([Change::Access { user_id }]);
        tx.commit().await?;
        Ok(())
    }
}
