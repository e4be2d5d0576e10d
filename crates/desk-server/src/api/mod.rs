//! The JSON API under `/api/v1` (docs/interface.md; B4).

pub mod conversations;
pub mod customers;
pub mod media;
pub mod sending;
pub mod settings;
pub mod views;

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

/// The OpenAPI description of this API, kept beside the code that serves it.
async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
}
