//! Who is calling. The JSON API takes `Authorization: Bearer <token>` (tokens from
//! `linedesk token create`, stored hashed) or the agent UI's session cookie (`session.rs`).
//! Everything but `/line`, `/healthz`, `/metrics`, `/login`, `/assets` and public media
//! requires one of them.
//!
//! Extractors:
//! - [`AuthUser`] / [`AdminUser`]: for the JSON API; rejections are JSON 401 / 403.
//! - The pages' extractors (`PageUser`, `PageAdmin`) are in `page.rs`.
//!
//! Beside them, the `next` target of a login redirect (checked here, so both sides agree).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use desk_store::users::UserRow;

use crate::session::{self, TokenUser, bearer_token};
use crate::{ApiError, AppState};

/// An authenticated, enabled user (bearer token or session cookie).
#[derive(Clone, Debug)]
pub struct AuthUser(pub UserRow);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        // A bearer token decides alone: a wrong token is 401 even with a cookie beside it.
        if let Some(token) = bearer_token(&parts.headers) {
            if let Some(TokenUser(user)) = parts.extensions.get::<TokenUser>() {
                return Ok(AuthUser(user.clone()));
            }
            return match st.store.user_by_api_token(token, st.now_ms()).await? {
                Some(user) => Ok(AuthUser(user)),
                None => Err(ApiError::unauthorized()),
            };
        }
        match session::from_parts(parts, st).await? {
            Some(s) => Ok(AuthUser(s.user)),
            None => Err(ApiError::unauthorized()),
        }
    }
}

/// An authenticated admin (settings, user management).
#[derive(Clone, Debug)]
pub struct AdminUser(pub UserRow);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, st).await?;
        if user.is_admin() {
            Ok(AdminUser(user))
        } else {
            Err(ApiError::forbidden("admins only"))
        }
    }
}

/// Whether `next` is a same-site relative path we may redirect to after login: it starts
/// with one `/` (not `//` or `/\`, which browsers treat as another host) and has no
/// control characters or backslashes.
pub fn is_safe_next(next: &str) -> bool {
    next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(|c| c.is_control())
        && next.len() <= 2000
}

/// `next` if it is safe, else the default landing page.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_safe_next(n) && !n.starts_with("/login") => n.to_owned(),
        _ => "/chats".to_owned(),
    }
}

/// Percent-encodes everything but unreserved characters and `/`, for a query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_targets() {
        assert!(is_safe_next("/chats/5?from=2024-01-01"));
        assert!(!is_safe_next("//evil.example/"));
        assert!(!is_safe_next("/\\evil.example"));
        assert!(!is_safe_next("https://evil.example/"));
        assert!(!is_safe_next("/a\r\nSet-Cookie: x"));
        assert_eq!(safe_next(Some("https://evil.example")), "/chats");
        assert_eq!(safe_next(Some("/login?next=/x")), "/chats");
        assert_eq!(safe_next(Some("/admin/users")), "/admin/users");
        assert_eq!(
            percent_encode("/chats?a=1&b=日"),
            "/chats%3Fa%3D1%26b%3D%E6%97%A5"
        );
    }
}
