//! Login sessions of the agent UI, small and written here (no session crate).
//!
//! - The cookie `linedesk_session` holds a random 256-bit token; the `sessions` table keeps
//!   only its SHA-256, the session's CSRF token and when it ends.
//! - Cookie flags: `HttpOnly; SameSite=Lax; Path=/`, plus `Secure` when the configured
//!   public URL is `https://`. No `Max-Age`: the cookie goes with the browser session and the
//!   server decides when the session ends.
//! - Lifetime: **sliding 12 hours** of inactivity (an agent's shift), renewed at most every
//!   5 minutes of use (so requests do not all write), and **at most 24 hours** after login,
//!   so a desk PC left logged in does not stay logged in for days.
//! - A disabled user's sessions are deleted when they are disabled, and lookups skip disabled
//!   users anyway, so their access ends at once.
//! - Failed logins are throttled in the database, per login ID and client address and
//!   wider (desk_core::login_throttle; `ui/login.rs`).

use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use desk_store::users::UserRow;

use crate::error::ApiResult;
use crate::i18n::Locale;
use crate::{AppState, Config};

/// The session cookie's name.
pub const COOKIE_NAME: &str = "linedesk_session";
/// A session ends after this long without use.
pub const IDLE_TIMEOUT_MS: i64 = 12 * 60 * 60 * 1000;
/// … and at the latest this long after login.
pub const MAX_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;
/// The sliding end is moved at most this often.
const RENEW_EVERY_MS: i64 = 5 * 60 * 1000;

/// A live session of an enabled user.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: i64,
    pub user: UserRow,
    pub csrf_token: String,
    pub expires_at: i64,
}

impl Session {
    pub fn locale(&self) -> Locale {
        Locale::from_code(&self.user.locale)
    }
}

/// The session cookie's token, if the request carries one.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// The `Authorization: Bearer` token, if any. A request that has one is authenticated by it
/// alone (never by a cookie beside it).
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

fn secure(config: &Config) -> &'static str {
    if config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

/// `Set-Cookie` for a new session.
pub fn set_cookie(config: &Config, token: &str) -> HeaderValue {
    let v = format!(
        "{COOKIE_NAME}={token}; HttpOnly; SameSite=Lax; Path=/{}",
        secure(config)
    );
    HeaderValue::from_str(&v).expect("tokens are URL-safe base64")
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(config: &Config) -> HeaderValue {
    let v = format!(
        "{COOKIE_NAME}=; Max-Age=0; HttpOnly; SameSite=Lax; Path=/{}",
        secure(config)
    );
    HeaderValue::from_str(&v).expect("ascii")
}

/// Starts a session for `user`; returns it and its cookie token.
pub async fn start(st: &AppState, user: UserRow) -> ApiResult<(Session, String)> {
    let now = st.now_ms();
    // Housekeeping on the (rare) login path instead of a timer.
    st.store.delete_expired_sessions(now).await?;
    let new = st
        .store
        .create_session(user.id, now, now + IDLE_TIMEOUT_MS)
        .await?;
    let session = Session {
        id: new.id,
        user,
        csrf_token: new.csrf_token,
        expires_at: new.expires_at,
    };
    Ok((session, new.token))
}

/// The live session for a cookie token, renewing its sliding end when due.
pub async fn lookup(st: &AppState, token: &str) -> ApiResult<Option<Session>> {
    let now = st.now_ms();
    let Some(row) = st.store.session_by_token(token, now).await? else {
        return Ok(None);
    };
    let hard_end = row.session_created_at + MAX_LIFETIME_MS;
    let mut expires_at = row.expires_at;
    let wanted = (now + IDLE_TIMEOUT_MS).min(hard_end);
    if wanted - expires_at >= RENEW_EVERY_MS {
        st.store.extend_session(row.session_id, wanted).await?;
        expires_at = wanted;
    }
    Ok(Some(Session {
        id: row.session_id,
        user: row.user,
        csrf_token: row.csrf_token,
        expires_at,
    }))
}

/// The user of a request authenticated by a valid API token: looked up once, by the CSRF
/// layer (which lets such requests through), and kept in the request for the extractors.
#[derive(Clone, Debug)]
pub struct TokenUser(pub UserRow);

/// The session resolved for this request, kept in its extensions so the CSRF layer and
/// the extractors look it up once.
#[derive(Clone, Debug)]
pub struct ResolvedSession(pub Option<Session>);

/// The request's session (from the cookie), looked up once per request.
pub async fn from_parts(parts: &mut Parts, st: &AppState) -> ApiResult<Option<Session>> {
    if let Some(ResolvedSession(s)) = parts.extensions.get::<ResolvedSession>() {
        return Ok(s.clone());
    }
    let session = match cookie_token(&parts.headers) {
        Some(token) => lookup(st, token).await?,
        None => None,
    };
    parts.extensions.insert(ResolvedSession(session.clone()));
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing() {
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("a=1; linedesk_session=abc_-9; b=2"),
        );
        assert_eq!(cookie_token(&h), Some("abc_-9"));
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            HeaderValue::from_static("linedesk_session_x=1; linedesk_session="),
        );
        assert_eq!(cookie_token(&h), None);
    }
}
