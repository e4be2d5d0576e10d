//! The checks of what people type, and the query types, that both the pages (`ui/`) and the
//! JSON API (`api/`) take: one place, so both refuse and accept alike. A refused input is an
//! [`InputError`]: a locale key for the pages and an English message for the API.

pub mod chat_list;
pub mod customers;

use crate::ApiError;

/// A refused input: the locale key for pages, a message for the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputError {
    pub key: &'static str,
    pub message: &'static str,
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> ApiError {
        ApiError::bad_request(e.message)
    }
}

pub(crate) const fn err(key: &'static str, message: &'static str) -> InputError {
    InputError { key, message }
}

/// A query field as typed, trimmed; empty counts as absent.
pub fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
