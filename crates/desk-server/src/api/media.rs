//! `GET /api/v1/media/{key}`: a stored file, for logged-in users (customers' images stay private).

use axum::Router;
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;

use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/media/{key}", get(download))
}

async fn download(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let row = st
        .store
        .media_by_key(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("media"))?;
    Ok(st.media.respond(&row).await)
}
