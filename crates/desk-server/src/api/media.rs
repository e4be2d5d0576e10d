//! `GET /api/v1/media/{key}`: a stored file, for logged-in users (customers' images stay private).

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;

use super::extract::Path;
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/media/{key}", get(download))
}

/// A stored file (a customer's image, video, audio or file)
///
/// Customers' files are the sender's bytes: a file is served inline only when its bytes
/// sniff as a picture, video or sound format (JPEG, PNG, GIF, WebP, MP4, WebM, QuickTime,
/// MP3, M4A/AAC, Ogg, WAV), with that sniffed `Content-Type` and `Content-Disposition:
/// inline`; everything else (HTML, SVG, PDF, …, whatever type LINE reported) as
/// `application/octet-stream` with `Content-Disposition: attachment`. Every media response
/// carries `Content-Security-Policy: sandbox; default-src 'none'; …` and
/// `X-Content-Type-Options: nosniff`.
#[utoipa::path(get, path = "/media/{key}", tag = "media",
    params(("key" = String, Path, description = "The file's key (from a message's `media_url`)")),
    responses(
        (status = 200, description = "The bytes: inline with their sniffed type, or as an attachment (see above)",
            content_type = "application/octet-stream"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such file", body = ErrorBody),
    ))]
pub(crate) async fn download(
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
