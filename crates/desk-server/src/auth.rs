//! Who is calling. The JSON API takes `Authorization: Bearer <token>` (tokens from
//! `linedesk token create`, stored hashed) or the agent UI's session cookie (`session.rs`).
//! Everything but `/line`, `/healthz`, `/metrics`, `/login`, `/assets` and public media
//! requires one of them.
//!
//! Extractors:
//! - [`AuthUser`] / [`AdminUser`]: for the JSON API; rejections are JSON 401 / 403.
//! - [`PageUser`] / [`PageAdmin`]: for HTML pages; they take the session cookie only, and
//!   their rejections are a redirect to `/login?next=<this page>` (htmx requests get
//!   `HX-Redirect`) and a 403 page.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use desk_store::users::UserRow;

use crate::csrf::TokenUser;
use crate::i18n::Locale;
use crate::session::{self, Session, bearer_token};
use crate::ui::PageCtx;
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

/// The logged-in user of an HTML page, with what the page's layout needs.
/// `page.ctx(title)` gives the [`PageCtx`] every template holds.
#[derive(Clone, Debug)]
pub struct PageUser {
    pub session: Session,
    /// This request's path and query (where the language switch and login return to).
    pub path: String,
}

impl PageUser {
    pub fn user(&self) -> &UserRow {
        &self.session.user
    }
    pub fn locale(&self) -> Locale {
        self.session.locale()
    }
    pub fn csrf_token(&self) -> &str {
        &self.session.csrf_token
    }
    /// The layout context for a page titled `title` (already translated, or user data).
    pub fn ctx(&self, title: impl Into<String>) -> PageCtx {
        PageCtx::for_session(&self.session, &self.path, title.into())
    }
    /// [`PageUser::ctx`] with the title looked up by its locale key.
    pub fn ctx_t(&self, title_key: &str) -> PageCtx {
        self.ctx(crate::i18n::I18n::t(self.locale(), title_key))
    }
}

/// Path and query of the request, as a same-site `next` target.
fn this_path(parts: &Parts) -> String {
    parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into())
}

/// Not logged in: to the login page, which brings the user back here afterwards (for
/// page loads; after a form post whose session ended, back to the default page, since the
/// post's URL cannot be loaded).
pub fn login_redirect(parts: &Parts) -> Response {
    let next = this_path(parts);
    let is_load = matches!(parts.method, Method::GET | Method::HEAD);
    let target = if next == "/" || !is_load || !is_safe_next(&next) {
        "/login".to_owned()
    } else {
        format!("/login?next={}", percent_encode(&next))
    };
    if parts.headers.contains_key("hx-request") {
        // htmx would swap a redirected login page into a fragment; make it navigate.
        let mut resp = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            resp.headers_mut().insert("hx-redirect", v);
        }
        return resp;
    }
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        match session::from_parts(parts, st).await {
            Ok(Some(session)) => Ok(PageUser {
                session,
                path: this_path(parts),
            }),
            Ok(None) => Err(login_redirect(parts)),
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The logged-in admin of an HTML page; agents get a 403 page.
#[derive(Clone, Debug)]
pub struct PageAdmin(pub PageUser);

impl std::ops::Deref for PageAdmin {
    type Target = PageUser;
    fn deref(&self) -> &PageUser {
        &self.0
    }
}

impl FromRequestParts<AppState> for PageAdmin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        let page = PageUser::from_request_parts(parts, st).await?;
        if page.user().is_admin() {
            Ok(PageAdmin(page))
        } else {
            Err(crate::ui::error_page(
                StatusCode::FORBIDDEN,
                page.ctx_t("common.error.title"),
                "common.error.forbidden",
            ))
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
