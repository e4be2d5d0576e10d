//! The chat list's filters as typed (V1: 顧客ID, 顧客名, 電話番号, 顧客登録状態, ステータス,
//! 対応中エージェント), for the page `/chats` and `GET /api/v1/conversations` alike.

use desk_core::customer_code::{normalize_phone_digits, parse_code_query};
use desk_store::conversations::ConversationFilter;
use serde::Deserialize;

use super::non_empty;
use crate::ApiError;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub phone: Option<String>,
    pub registered: Option<String>,
    pub status: Option<String>,
    pub agent: Option<String>,
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
}

/// A filter the list cannot take, worded by the locale key `key` (the page shows it).
fn list_error(key: &'static str, name: &'static str, value: &str) -> ApiError {
    ApiError::localized(
        axum::http::StatusCode::BAD_REQUEST,
        "bad_request",
        key,
        vec![(name, value.to_owned())],
    )
}

impl ListQuery {
    /// Empty fields are no filter (the manual: all empty lists everyone).
    pub fn to_filter(&self) -> Result<ConversationFilter, ApiError> {
        let customer_id = match non_empty(&self.customer_id) {
            Some(s) => Some(
                parse_code_query(s)
                    .ok_or_else(|| list_error("list-error-customer_id", "value", s))?,
            ),
            None => None,
        };
        let registered = match non_empty(&self.registered) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return Err(list_error("list-error-registered", "value", other)),
            None => None,
        };
        let status = match non_empty(&self.status) {
            Some(s) => {
                let parsed: desk_core::status::ConversationStatus = s
                    .parse()
                    .map_err(|_| list_error("list-error-status", "value", s))?;
                Some(parsed)
            }
            None => None,
        };
        let after = match non_empty(&self.after) {
            Some(s) => Some(
                s.split_once('_')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .ok_or_else(|| list_error("list-error-after", "value", s))?,
            ),
            None => None,
        };
        Ok(ConversationFilter {
            customer_id,
            customer_name: non_empty(&self.customer_name).map(str::to_owned),
            phone_digits: non_empty(&self.phone)
                .map(normalize_phone_digits)
                .filter(|d| !d.is_empty()),
            registered,
            status,
            agent: non_empty(&self.agent).map(str::to_owned),
            after,
            limit: self.limit.unwrap_or(50).clamp(1, 500),
        })
    }
}
