//! The chat list's filters as typed (V1: 顧客ID, 顧客名, 電話番号, 顧客登録状態, ステータス,
//! 対応中エージェント), for the page `/chats` and `GET /api/v1/conversations` alike.

use desk_core::customer_code::{normalize_phone_digits, parse_code_query};
use desk_store::conversations::ConversationFilter;
use serde::Deserialize;

use super::non_empty;
use crate::ApiError;

/// Empty fields are no filter; filters combine.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Linked customer's ID: 15 or #C15.
    pub customer_id: Option<String>,
    /// Part of the linked customer's name.
    pub customer_name: Option<String>,
    /// Linked customer's phone, with or without hyphens.
    pub phone: Option<String>,
    /// `true`: linked to a customer (登録済); `false`: not (未登録).
    #[param(value_type = Option<bool>)]
    pub registered: Option<String>,
    #[param(value_type = Option<crate::schema::StatusSchema>)]
    pub status: Option<String>,
    /// The agent the list shows for a chat — its handler, or (not in progress) its last
    /// handler — by login or part of the name; with `status=in_progress` only chats held now.
    pub agent: Option<String>,
    /// Page size, default 50; taken as 1–500 (a number outside, as the nearer bound).
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
