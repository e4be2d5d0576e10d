//! The agent UI: server-rendered pages (askama templates in `templates/`, htmx for partial
//! updates, assets embedded by `assets.rs`).
//!
//! How a page is written (see `users.rs` for a full example):
//!
//! ```ignore
//! #[derive(askama::Template)]
//! #[template(path = "chats.html")]          // starts with {% extends "base.html" %}
//! struct ChatsPage { ctx: PageCtx, /* the page's own fields */ }
//!
//! async fn chats(page: PageUser /* or PageAdmin */, State(st): State<AppState>) -> Response {
//!     ui::render(&ChatsPage { ctx: page.ctx_t("chats.title"), /* … */ })
//! }
//! ```
//!
//! In templates: `{{ ctx.t("chats.title") }}` translates (escaped like any output),
//! `{{ ctx.tf("users.msg.created", [("login", login.as_str())]) }}` fills placeholders,
//! `ctx.user` is the current user (`Option<CurrentUser>`), `ctx.csrf_token` goes into
//! plain forms as `<input type="hidden" name="csrf_token" value="{{ ctx.csrf_token }}">`
//! (htmx requests get it as a header from `assets/app.js`), and `ctx.asset("x.js")` links an
//! embedded asset.

pub mod chats;
pub mod customers;
pub mod line_settings;
pub mod login;
pub mod users;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::AppState;
use crate::auth::PageUser;
use crate::i18n::{I18n, Locale};
use crate::session::Session;

/// The UI's routes: `/`, `/login`, `/logout`, `/me/locale`, `/admin/users…`, `/assets/…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .merge(login::router())
        .merge(users::router())
        .merge(line_settings::router())
        .merge(chats::router())
        .merge(customers::router())
        .merge(crate::assets::router())
}

/// `/`: the chat list for logged-in users, the login page otherwise.
async fn root(page: Result<PageUser, Response>) -> Response {
    match page {
        Ok(_) => Redirect::to("/chats").into_response(),
        Err(_) => Redirect::to("/login").into_response(),
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

    /// [`PageCtx::t`] with `{name}` placeholders filled.
    pub fn tf<const N: usize>(&self, key: &str, args: [(&str, &str); N]) -> String {
        I18n::tf(self.locale, key, &args)
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
    message: &'static str,
}

/// A full error page (403, 404, …) with the message of locale key `message_key`.
pub fn error_page(status: StatusCode, ctx: PageCtx, message_key: &str) -> Response {
    let message = ctx.t(message_key);
    render_status(status, &ErrorPage { ctx, message })
}
