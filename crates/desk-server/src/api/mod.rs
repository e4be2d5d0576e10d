//! The JSON API under `/api/v1` (docs/interface.md; B4).

pub mod conversations;
pub mod customers;
pub mod doc;
pub mod extract;
pub mod media;
pub mod sending;
pub mod settings;
pub mod views;

use std::sync::LazyLock;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(conversations::router())
        .merge(customers::router())
        .merge(media::router())
        .merge(sending::router())
        .merge(settings::router())
        .merge(crate::events::router())
        .route("/openapi.json", get(openapi))
}

/// The document, built once (see `doc.rs`).
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    doc::document()
        .to_pretty_json()
        .expect("the API document serializes")
});

/// The OpenAPI description of this API, generated from the handlers (`doc.rs`).
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}
