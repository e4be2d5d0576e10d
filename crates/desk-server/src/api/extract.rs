//! The extractors of the JSON API: axum's `Json`, `Path` and `Query`, but a request they
//! cannot read is refused with the API's error body (`{"error": {"code", "message"}}`,
//! as the document promises) instead of axum's plain-text rejection. A body that is not
//! JSON, lacks a field or has one of the wrong type, and a path or query value of the wrong
//! type, are 400 `bad_request`; a body without `Content-Type: application/json` is 415
//! `unsupported_media_type`; one over the size limit 413 `too_large`; a path parameter that
//! is not what the route takes (an id that is no number) 404 `not_found`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// A JSON body.
pub struct Json<T>(pub T);

/// Path parameters.
pub struct Path<T>(pub T);

/// The query string.
pub struct Query<T>(pub T);

fn refused(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(status, "unsupported_media_type", text),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, "too_large", text),
        // 422 (a field missing or of the wrong type) included: 400 is the API's answer
        // to input it cannot take.
        _ => ApiError::bad_request(text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        refused(e.status(), e.body_text())
    }
}

/// A path whose id is no id (`/conversations/abc`, or beyond 64 bits) names nothing: 404,
/// as for an id that does not exist.
impl From<PathRejection> for ApiError {
    fn from(e: PathRejection) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        refused(e.status(), e.body_text())
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = <axum::Json<T> as FromRequest<S>>::from_request(req, state).await?;
        Ok(Json(value))
    }
}

/// `Option<Json<T>>`: `None` without a JSON body, an error for a JSON body that is wrong.
impl<T: DeserializeOwned, S: Send + Sync> OptionalFromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let value = <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await?;
        Ok(value.map(|axum::Json(v)| Json(v)))
    }
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(value))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(value))
    }
}
