//! Who is calling. The JSON API takes `Authorization: Bearer <token>` (tokens from
//! `linedesk token create`, stored hashed); the agent UI's session cookie comes with the UI.
//! Everything but `/line`, `/healthz`, `/metrics` and public media requires one of them.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use desk_store::users::UserRow;

use crate::{ApiError, AppState};

/// An authenticated, enabled user.
#[derive(Clone, Debug)]
pub struct AuthUser(pub UserRow);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, ApiError> {
        let bearer = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(token) = bearer {
            if let Some(user) = st.store.user_by_api_token(token).await? {
                return Ok(AuthUser(user));
            }
        }
        Err(ApiError::unauthorized())
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
