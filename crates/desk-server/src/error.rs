//! One error type for every handler: JSON `{"error": {"code", "message"}}` with a fitting
//! status (docs/interface.md). Internal details go to the log, not to the client.
//!
//! An error an agent may see also carries `key` (a locale key) and `args` (its placeholders):
//! `message` is the English text of that key (`locales/en.ftl`), and the UI shows the key in
//! the agent's language — so no English sentence reaches a Japanese agent (issue 10).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The locale key of the message, when the UI may show it (see the module docs).
    pub key: Option<&'static str>,
    pub args: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            key: None,
            args: Vec::new(),
        }
    }

    /// An error worded by the locale key `key` (English `message`; the UI translates).
    pub fn localized(
        status: StatusCode,
        code: &'static str,
        key: &'static str,
        args: Vec<(&'static str, String)>,
    ) -> ApiError {
        let pairs: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ApiError {
            status,
            code,
            message: crate::i18n::I18n::tf(crate::i18n::Locale::En, key, &pairs),
            key: Some(key),
            args,
        }
    }

    /// The message in `locale` (the key's text, or the English message for errors without one).
    pub fn message_in(&self, locale: crate::i18n::Locale) -> String {
        match self.key {
            Some(key) => {
                let pairs: Vec<(&str, &str)> =
                    self.args.iter().map(|(k, v)| (*k, v.as_str())).collect();
                crate::i18n::I18n::tf(locale, key, &pairs)
            }
            None => self.message.clone(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "log in, or send Authorization: Bearer <token>",
        )
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
    pub fn internal(err: impl std::fmt::Display) -> ApiError {
        tracing::error!(%err, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the desk's log",
        )
    }
}

/// Every error's body, as sent (and as the API document describes it).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// What went wrong, for programs: `bad_request`, `unauthorized`, `forbidden`,
    /// `not_found`, `held_by_other`, `not_in_progress`, `already_sending`, `not_waiting`,
    /// `too_large`, `not_an_image`, `busy`, `internal`, …
    pub code: &'static str,
    /// In English.
    pub message: String,
    /// The locale key of the message, on errors an agent may see.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'static str>,
    /// The key's placeholders (present with `key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<std::collections::BTreeMap<&'static str, String>>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                args: self.key.map(|_| self.args.into_iter().collect()),
                key: self.key,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<desk_store::StoreError> for ApiError {
    fn from(e: desk_store::StoreError) -> ApiError {
        match e {
            desk_store::StoreError::NotFound => ApiError::not_found("resource"),
            desk_store::StoreError::Conflict(m) => ApiError::conflict("conflict", m),
            desk_store::StoreError::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::internal(other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
