//! The agent UI: server-rendered pages (askama templates in `templates/`, assets embedded by
//! `assets.rs`). What every page shares — the page extractors, the layout context,
//! rendering and the error page — is in `page.rs`; the checks of what people type, shared
//! with the JSON API, are in `input/`. Pages import neither `api/` nor each other.

pub mod api_docs;
pub mod chats;
pub mod customers;
pub mod line_settings;
pub mod login;
pub mod users;

use axum::Router;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::AppState;
use crate::page::PageUser;

/// The UI's routes: `/`, `/login`, `/logout`, `/me/locale`, `/admin/users…`, `/assets/…`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .merge(login::router())
        .merge(api_docs::router())
        .merge(users::router())
        .merge(line_settings::router())
        .merge(chats::router())
        .merge(customers::router())
        .merge(crate::assets::router())
        .layer(axum::middleware::from_fn(crate::page::error_pages))
}

/// `/`: the chat list for logged-in users, the login page otherwise.
async fn root(page: Result<PageUser, Response>) -> Response {
    match page {
        Ok(_) => Redirect::to("/chats").into_response(),
        Err(_) => Redirect::to("/login").into_response(),
    }
}
