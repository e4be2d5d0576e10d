//! Users (agents and admins) and their API tokens.

use serde::Serialize;

use crate::{Change, Result, Store, StoreError, hash_token, random_token};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Agent,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Agent => "agent",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "agent" => Some(Role::Agent),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub disabled: bool,
    pub locale: String,
}

impl UserRow {
    pub fn role(&self) -> Role {
        Role::parse(&self.role).unwrap_or(Role::Agent)
    }
    pub fn is_admin(&self) -> bool {
        self.role() == Role::Admin
    }
}

const USER_COLUMNS: &str = "id, login, name, role, password_hash, disabled, locale";

impl Store {
    /// `password_hash` is already hashed (argon2) by the caller; the store never sees passwords.
    pub async fn create_user(
        &self,
        login: &str,
        name: &str,
        role: Role,
        password_hash: &str,
        now_ms: i64,
    ) -> Result<i64> {
        let id: Option<i64> = on_db!(&self.db, |p| {
            sqlx::query_scalar(
            "INSERT INTO users (login, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (login) DO NOTHING RETURNING id")
            .bind(login).bind(name).bind(role.as_str()).bind(password_hash).bind(now_ms)
            .fetch_optional(p).await
        })?;
        id.ok_or_else(|| StoreError::Conflict(format!("login {login:?} is taken")))
    }

    pub async fn user_by_login(&self, login: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE login = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, UserRow>(&sql)
            .bind(login)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, UserRow>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, UserRow>(&sql)
            .fetch_all(p)
            .await)?)
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM users"
        )
        .fetch_one(p)
        .await)?)
    }

    /// A new API token for the user that never expires; only its hash is kept. Returns the
    /// token itself.
    pub async fn create_api_token(&self, user_id: i64, now_ms: i64) -> Result<String> {
        self.create_api_token_until(user_id, now_ms, None).await
    }

    /// A new API token that stops working at `expires_at` (unix ms; `None`: never).
    pub async fn create_api_token_until(
        &self,
        user_id: i64,
        now_ms: i64,
        expires_at: Option<i64>,
    ) -> Result<String> {
        let token = format!("ld_{}", random_token(32));
        exec_db!(&self.db, |p| {
            sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(user_id).bind(hash_token(&token)).bind(now_ms).bind(expires_at)
        })?;
        Ok(token)
    }

    /// The enabled user a bearer token belongs to, if the token is neither revoked nor
    /// expired. Notes when it was last used (at most every 5 minutes: not a write per call).
    pub async fn user_by_api_token(&self, token: &str, now_ms: i64) -> Result<Option<UserRow>> {
        let sql = format!(
            "SELECT {}, t.id AS token_id, t.last_used_at FROM users u JOIN api_tokens t ON t.user_id = u.id
             WHERE t.token_hash = $1 AND NOT u.disabled AND t.revoked_at IS NULL
               AND (t.expires_at IS NULL OR t.expires_at > $2)",
            USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let found: Option<TokenUserRow> =
            on_db!(&self.db, |p| sqlx::query_as::<_, TokenUserRow>(&sql)
                .bind(hash_token(token))
                .bind(now_ms)
                .fetch_optional(p)
                .await)?;
        let Some(found) = found else {
            return Ok(None);
        };
        if found
            .last_used_at
            .is_none_or(|t| now_ms - t >= TOKEN_USE_NOTED_EVERY_MS)
        {
            exec_db!(&self.db, |p| sqlx::query(
                "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2"
            )
            .bind(now_ms)
            .bind(found.token_id))?;
        }
        Ok(Some(found.user))
    }

    /// API tokens, newest first: every user's, or one user's. Revoked and expired ones too
    /// (the list says so), never the tokens themselves.
    pub async fn list_api_tokens(&self, user_id: Option<i64>) -> Result<Vec<ApiTokenRow>> {
        let sql = "SELECT t.id, t.user_id, u.login, t.created_at, t.expires_at, t.last_used_at, t.revoked_at
                   FROM api_tokens t JOIN users u ON u.id = t.user_id
                   WHERE $1 IS NULL OR t.user_id = $1
                   ORDER BY t.id DESC";
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, ApiTokenRow>(sql)
            .bind(user_id)
            .fetch_all(p)
            .await)?)
    }

    /// Revokes one token (`NotFound` if it does not exist; revoking twice keeps the first
    /// time). Open event streams of its user re-check their access at once.
    pub async fn revoke_api_token(&self, token_id: i64, now_ms: i64) -> Result<ApiTokenRow> {
        let mut tx = self.begin().await?;
        let user_id: Option<i64> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING user_id")
            .bind(token_id).bind(now_ms).fetch_optional(c).await
        })?;
        let user_id = user_id.ok_or(StoreError::NotFound)?;
        tx.announce([Change::Access { user_id }]);
        tx.commit().await?;
        let rows = self.list_api_tokens(Some(user_id)).await?;
        rows.into_iter()
            .find(|t| t.id == token_id)
            .ok_or(StoreError::NotFound)
    }

    /// Revokes every live token of a user; returns how many.
    pub async fn revoke_user_api_tokens(&self, user_id: i64, now_ms: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = revoke_tokens_in(&mut tx, user_id, now_ms).await?;
        tx.announce([Change::Access { user_id }]);
        tx.commit().await?;
        Ok(n)
    }
}

/// How often a token's `last_used_at` is written at most.
const TOKEN_USE_NOTED_EVERY_MS: i64 = 5 * 60 * 1000;

#[derive(sqlx::FromRow)]
struct TokenUserRow {
    #[sqlx(flatten)]
    user: UserRow,
    token_id: i64,
    last_used_at: Option<i64>,
}

/// An API token as lists show it (its hash stays in the database).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: i64,
    pub user_id: i64,
    pub login: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl ApiTokenRow {
    /// Whether the token still lets its user in (their being disabled aside).
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|t| t > now_ms)
    }
}

/// Revokes the live tokens of `user_id` inside a transaction.
pub(crate) async fn revoke_tokens_in(tx: &mut crate::Tx, user_id: i64, now_ms: i64) -> Result<u64> {
    Ok(exec_tx!(tx, |c| sqlx::query(
        "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL"
    )
    .bind(user_id)
    .bind(now_ms))?)
}

// User administration (管理設定 > ユーザー). Disabling lives in `sessions.rs`, because it
// ends the user's sessions in the same transaction.
impl Store {
    pub async fn set_user_name(&self, user_id: i64, name: &str) -> Result<()> {
        let n = exec_db!(&self.db, |p| sqlx::query(
            "UPDATE users SET name = $1 WHERE id = $2"
        )
        .bind(name)
        .bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    pub async fn set_user_role(&self, user_id: i64, role: Role) -> Result<()> {
        let n = exec_db!(&self.db, |p| sqlx::query(
            "UPDATE users SET role = $1 WHERE id = $2"
        )
        .bind(role.as_str())
        .bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// `password_hash` is already hashed (argon2) by the caller.
    pub async fn set_user_password(&self, user_id: i64, password_hash: &str) -> Result<()> {
        let n = exec_db!(&self.db, |p| sqlx::query(
            "UPDATE users SET password_hash = $1 WHERE id = $2"
        )
        .bind(password_hash)
        .bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// The UI language of the user (`ja` or `en`; the server checks the value).
    pub async fn set_user_locale(&self, user_id: i64, locale: &str) -> Result<()> {
        let n = exec_db!(&self.db, |p| sqlx::query(
            "UPDATE users SET locale = $1 WHERE id = $2"
        )
        .bind(locale)
        .bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}
