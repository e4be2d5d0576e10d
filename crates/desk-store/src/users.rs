//! Users (agents and admins) and their API tokens.

use serde::Serialize;

use crate::{Result, Store, StoreError, exec_db, hash_token, on_db, random_token};

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
        let id: Option<i64> = on_db!(&self.db, p => sqlx::query_scalar(
            "INSERT INTO users (login, name, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (login) DO NOTHING RETURNING id")
            .bind(login).bind(name).bind(role.as_str()).bind(password_hash).bind(now_ms)
            .fetch_optional(p).await)?;
        id.ok_or_else(|| StoreError::Conflict(format!("login {login:?} is taken")))
    }

    pub async fn user_by_login(&self, login: &str) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE login = $1");
        Ok(
            on_db!(&self.db, p => sqlx::query_as::<_, UserRow>(&sql).bind(login).fetch_optional(p).await)?,
        )
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        Ok(
            on_db!(&self.db, p => sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_optional(p).await)?,
        )
    }

    pub async fn list_users(&self) -> Result<Vec<UserRow>> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id");
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, UserRow>(&sql).fetch_all(p).await)?)
    }

    pub async fn count_users(&self) -> Result<i64> {
        Ok(
            on_db!(&self.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(p).await)?,
        )
    }

    /// A new API token for the user; only its hash is kept. Returns the token itself.
    pub async fn create_api_token(&self, user_id: i64, now_ms: i64) -> Result<String> {
        let token = format!("ld_{}", random_token(32));
        exec_db!(&self.db, p => sqlx::query(
            "INSERT INTO api_tokens (user_id, token_hash, created_at) VALUES ($1, $2, $3)")
            .bind(user_id).bind(hash_token(&token)).bind(now_ms))?;
        Ok(token)
    }

    /// The enabled user a bearer token belongs to.
    pub async fn user_by_api_token(&self, token: &str) -> Result<Option<UserRow>> {
        let sql = format!(
            "SELECT {} FROM users u JOIN api_tokens t ON t.user_id = u.id
             WHERE t.token_hash = $1 AND NOT u.disabled",
            USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(
            on_db!(&self.db, p => sqlx::query_as::<_, UserRow>(&sql).bind(hash_token(token)).fetch_optional(p).await)?,
        )
    }
}

// User administration (管理設定 > ユーザー). Disabling lives in `sessions.rs`, because it
// ends the user's sessions in the same transaction.
impl Store {
    pub async fn set_user_name(&self, user_id: i64, name: &str) -> Result<()> {
        let n = exec_db!(&self.db, p => sqlx::query("UPDATE users SET name = $1 WHERE id = $2")
            .bind(name).bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    pub async fn set_user_role(&self, user_id: i64, role: Role) -> Result<()> {
        let n = exec_db!(&self.db, p => sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
            .bind(role.as_str()).bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// `password_hash` is already hashed (argon2) by the caller.
    pub async fn set_user_password(&self, user_id: i64, password_hash: &str) -> Result<()> {
        let n = exec_db!(&self.db, p => sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(password_hash).bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// The UI language of the user (`ja` or `en`; the server checks the value).
    pub async fn set_user_locale(&self, user_id: i64, locale: &str) -> Result<()> {
        let n = exec_db!(&self.db, p => sqlx::query("UPDATE users SET locale = $1 WHERE id = $2")
            .bind(locale).bind(user_id))?;
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}
