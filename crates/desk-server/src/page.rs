//! What every HTML page shares: the logged-in user of a page ([`PageUser`], [`PageAdmin`]:
//! session cookie only; without one, a redirect to `/login?next=<this page>`), the layout's
//! context ([`PageCtx`]), rendering with the headers every page gets ([`render`]), and the
//! error page ([`error_page`]).
//!
//! It sits below the pages (`ui/*`) and beside `auth.rs` (the JSON API's callers), so the
//! middleware that answers with an error page (`csrf.rs`, `security.rs`) need not import the
//! UI, and the UI imports nothing of the API.
//!
//! How a page is written (see `ui/users.rs` for a full example):
//!
//! ```ignore
//! #[derive(askama::Template)]
//! #[template(path = "chats.html")]          // starts with {% extends "base.html" %}
//! struct ChatsPage { ctx: PageCtx, /* the page's own fields */ }
//!
//! async fn chats(page: PageUser /* or PageAdmin */, State(st): State<AppState>) -> Response {
//!     page::render(&ChatsPage { ctx: page.ctx_t("chats-title"), /* … */ })
//! }
//! ```
//!
//! In templates: `{{ ctx.t("chats-title") }}` translates (escaped like any output),
//! `{{ ctx.tf("users-msg-created", [("login", login.as_str())]) }}` fills variables,
//! `ctx.user` is the current user (`Option<CurrentUser>`), `ctx.csrf_token` goes into
//! plain forms as `<input type="hidden" name="csrf_token" value="{{ ctx.csrf_token }}">`
//! (scripts send it as the header `X-CSRF-Token`: `window.linedesk.csrfToken()`), and `ctx.asset("x.js")` links an
//! embedded asset.

use std::sync::{Arc, Mutex};

use askama::Template;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use desk_store::users::UserRow;

use crate::auth::{is_safe_next, percent_encode};
use crate::i18n::{I18n, Locale};
use crate::session::{self, Session};
use crate::{ApiError, AppState};

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

/// Sent by `assets/chats.js` when it fetches a fragment of a page (`/chats/rows`, …).
pub const FRAGMENT_HEADER: &str = "x-fragment";
/// The answer to a fragment request without a session: 401 and where to log in.
pub const LOGIN_HEADER: &str = "x-login";

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
    if parts.headers.contains_key(FRAGMENT_HEADER) {
        // A script fetching a fragment would get the login page as the fragment: tell it
        // where to navigate instead.
        let mut resp = StatusCode::UNAUTHORIZED.into_response();
        if let Ok(v) = HeaderValue::from_str(&target) {
            resp.headers_mut().insert(LOGIN_HEADER, v);
        }
        return resp;
    }
    Redirect::to(&target).into_response()
}

impl FromRequestParts<AppState> for PageUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Response> {
        match session::from_parts(parts, st).await {
            Ok(Some(session)) => {
                let page = PageUser {
                    session,
                    path: this_path(parts),
                };
                if let Some(Viewer(viewer)) = parts.extensions.get::<Viewer>() {
                    *viewer.lock().expect("viewer lock") = Some(page.ctx_t("common-error-title"));
                }
                Ok(page)
            }
            Ok(None) => Err(login_redirect(parts)),
            Err(e) => Err(PageError::from(e).into_response()),
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
            Err(error_page(
                StatusCode::FORBIDDEN,
                page.ctx_t("common-error-title"),
                "common-error-forbidden",
            ))
        }
    }
}

/// The logged-in user as pages show them.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub id: i64,
    pub login: String,
    pub name: String,
    pub is_admin: bool,
}

/// What the layout (`templates/base.html`) needs; every page template has a field
/// `ctx: PageCtx`.
#[derive(Clone, Debug)]
pub struct PageCtx {
    pub locale: Locale,
    /// The page's title (translated or user data; escaped on output).
    pub title: String,
    /// `None` on the login and error pages of logged-out visitors.
    pub user: Option<CurrentUser>,
    /// The session's CSRF token (empty without a session).
    pub csrf_token: String,
    /// This request's path and query.
    pub path: String,
}

impl PageCtx {
    pub fn for_session(session: &Session, path: &str, title: String) -> PageCtx {
        let u = &session.user;
        PageCtx {
            locale: session.locale(),
            title,
            user: Some(CurrentUser {
                id: u.id,
                login: u.login.clone(),
                name: u.name.clone(),
                is_admin: u.is_admin(),
            }),
            csrf_token: session.csrf_token.clone(),
            path: path.to_owned(),
        }
    }

    /// A page for a visitor without a session (login, errors).
    pub fn anonymous(locale: Locale, title: impl Into<String>) -> PageCtx {
        PageCtx {
            locale,
            title: title.into(),
            user: None,
            csrf_token: String::new(),
            path: "/".into(),
        }
    }

    /// The UI string `key` in this page's language.
    pub fn t(&self, key: &str) -> &'static str {
        I18n::t(self.locale, key)
    }

    /// [`PageCtx::t`] with its variables (`{ $name }`) filled.
    pub fn tf<const N: usize>(&self, key: &str, args: [(&str, &str); N]) -> String {
        I18n::tf(self.locale, key, &args)
    }

    /// [`PageCtx::tf`] with one placeholder, for templates (askama cannot write the array).
    pub fn tf1(&self, key: &str, name: &str, value: impl std::fmt::Display) -> String {
        self.tf(key, [(name, value.to_string().as_str())])
    }

    /// Every UI string whose key starts with one of `prefixes`, as a JSON object, for a page
    /// script that must word what the API says (an error's `key` and `args`) in this
    /// page's language. Put into an attribute, escaped like any output.
    pub fn strings_json(&self, prefixes: &[&str]) -> String {
        let map: serde_json::Map<String, serde_json::Value> = I18n::keys(self.locale)
            .into_iter()
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
            .map(|k| (k.to_owned(), serde_json::Value::from(self.t(k))))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    /// `<html lang>`.
    pub fn lang(&self) -> &'static str {
        self.locale.as_str()
    }

    /// The versioned URL of an embedded asset.
    pub fn asset(&self, name: &str) -> String {
        crate::assets::url(name)
    }

    /// Whether the current page lies under `prefix` (for `aria-current` in the nav).
    pub fn is_current(&self, prefix: &str) -> bool {
        self.path == prefix
            || self
                .path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(['/', '?']))
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(|u| u.is_admin)
    }

    /// The language the switch offers.
    pub fn other_locale(&self) -> Locale {
        self.locale.other()
    }
}

/// Renders a page (200) with the headers every page gets.
pub fn render<T: Template>(page: &T) -> Response {
    render_status(StatusCode::OK, page)
}

/// Renders a page with a given status (e.g. 401 for a failed login, 422 for a form error).
/// Pages are never cached (they hold the CSRF token) and never framed (clickjacking).
pub fn render_status<T: Template>(status: StatusCode, page: &T) -> Response {
    match page.render() {
        Ok(html) => (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("same-origin"),
                ),
            ],
            html,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error; see the desk's log",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    ctx: PageCtx,
    message: String,
}

/// A full error page (403, 404, …) with the message of locale key `message_key`.
pub fn error_page(status: StatusCode, ctx: PageCtx, message_key: &str) -> Response {
    let message = ctx.t(message_key).to_owned();
    render_status(status, &ErrorPage { ctx, message })
}

// ---- how a page fails ------------------------------------------------------------------

/// How a page fails: page handlers return `Result<Response, PageError>` and use `?`.
///
/// The viewer gets `error.html` with the status that fits, worded in their language, with
/// the layout of a logged-in page when they are logged in; the cause of an internal failure
/// goes to the log, never to the page, and no page answers with a JSON body.
///
/// What a page expects to happen — a form refused, a chat someone else holds, a customer
/// already linked — is no `PageError`: the store answers with an outcome enum
/// (`LinkOutcome`, `StatusOutcome`, …) and the page shows it in place.
#[derive(Debug)]
pub enum PageError {
    /// 404, worded by this locale key ("Customer not found.").
    NotFound(&'static str),
    /// 400: the request cannot be served, worded by this locale key.
    BadRequest(&'static str),
    /// A refusal of the checks the JSON API shares (`input/`, `line_settings::apply`): its
    /// status, worded by its locale key when it has one.
    Refused(ApiError),
    /// 500. The cause was logged when the error was made ([`PageError::internal`]).
    Internal,
}

/// What a page handler returns.
pub type PageResult = Result<Response, PageError>;

impl PageError {
    /// A failure the viewer cannot do anything about: logged here with its cause.
    pub fn internal(cause: impl std::fmt::Display) -> PageError {
        tracing::error!(%cause, "page failed");
        PageError::Internal
    }
}

impl From<desk_store::StoreError> for PageError {
    fn from(e: desk_store::StoreError) -> PageError {
        match e {
            desk_store::StoreError::NotFound => PageError::NotFound("common-error-not_found"),
            other => PageError::internal(other),
        }
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> PageError {
        if e.status.is_server_error() {
            // ApiError::internal logged the cause already.
            PageError::Internal
        } else {
            PageError::Refused(e)
        }
    }
}

/// What [`error_pages`] words: kept in the response's extensions, since the handler's error
/// does not know the viewer.
#[derive(Clone, Debug)]
struct Failure {
    key: Option<&'static str>,
    args: Vec<(&'static str, String)>,
    /// For refusals without a locale key (English, from the API's checks).
    text: String,
}

impl Failure {
    fn message(&self, ctx: &PageCtx) -> String {
        match self.key {
            Some(key) => {
                let pairs: Vec<(&str, &str)> =
                    self.args.iter().map(|(k, v)| (*k, v.as_str())).collect();
                I18n::tf(ctx.locale, key, &pairs)
            }
            None => self.text.clone(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let key = |key| Failure {
            key: Some(key),
            args: Vec::new(),
            text: String::new(),
        };
        let (status, failure) = match self {
            PageError::NotFound(k) => (StatusCode::NOT_FOUND, key(k)),
            PageError::BadRequest(k) => (StatusCode::BAD_REQUEST, key(k)),
            PageError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                key("common-error-internal"),
            ),
            PageError::Refused(e) => (
                e.status,
                Failure {
                    key: e.key,
                    args: e.args,
                    text: e.message,
                },
            ),
        };
        // Worded here in Japanese, the desk's first language; `error_pages` words it again
        // for the viewer, in their language and with their layout.
        let ctx = PageCtx::anonymous(Locale::Ja, I18n::t(Locale::Ja, "common-error-title"));
        let message = failure.message(&ctx);
        let mut resp = render_status(status, &ErrorPage { ctx, message });
        resp.extensions_mut().insert(failure);
        resp
    }
}

/// The viewer of this request, as the page extractors found them; read by [`error_pages`].
#[derive(Clone, Default)]
struct Viewer(Arc<Mutex<Option<PageCtx>>>);

/// The middleware over the pages (`ui::router`) that words a [`PageError`] for its viewer:
/// their language (the session's, else `Accept-Language`) and, when logged in, their layout.
pub async fn error_pages(mut req: Request, next: Next) -> Response {
    let viewer = Viewer::default();
    let locale = Locale::from_accept_language(
        req.headers()
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    req.extensions_mut().insert(viewer.clone());
    let resp = next.run(req).await;
    let Some(failure) = resp.extensions().get::<Failure>().cloned() else {
        return resp;
    };
    let known = viewer.0.lock().expect("viewer lock").take();
    let ctx =
        known.unwrap_or_else(|| PageCtx::anonymous(locale, I18n::t(locale, "common-error-title")));
    let message = failure.message(&ctx);
    render_status(resp.status(), &ErrorPage { ctx, message })
}
