//! The read side of conversations: the list (V1), one chat (V2) and its history (C8).

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use desk_core::ConversationStatus;
use desk_core::customer_code::{normalize_phone_digits, parse_code_query};
use desk_store::conversations::{ConversationFilter, StatusOutcome};
use desk_store::outbox::UnsentChoice;
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::{ConversationView, MessageView};
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::time::{history_range, parse_date};
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/conversations", get(list))
        .route("/conversations/{id}", get(one))
        .route("/conversations/{id}/messages", get(messages))
        .route("/conversations/{id}/status", post(set_status))
        .route("/conversations/{id}/read", post(mark_read))
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
    /// 完了/未読 with messages still waiting: `keep` (そのまま送る, the default) or `cancel`
    /// (取り消す). The UI always asks; an API client that does not say keeps them, so
    /// nothing an agent wrote is dropped unless someone chose so.
    #[serde(default)]
    unsent: Option<String>,
}

/// 対応中 / 完了 / 未読 (C3–C5). 409 when another agent holds the chat.
async fn set_status(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    Json(body): Json<StatusBody>,
) -> ApiResult<Json<ConversationView>> {
    let to: ConversationStatus = body.status.parse().map_err(|_| {
        ApiError::localized(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            "status.error.status",
            vec![("status", body.status.clone())],
        )
    })?;
    let unsent = match non_empty(&body.unsent) {
        None | Some("keep") => UnsentChoice::Keep,
        Some("cancel") => UnsentChoice::Cancel,
        Some(other) => {
            return Err(ApiError::localized(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_request",
                "status.error.unsent",
                vec![("unsent", other.to_owned())],
            ));
        }
    };
    match st
        .store
        .change_status_with(id, user.id, user.is_admin(), to, unsent, st.now_ms())
        .await?
    {
        StatusOutcome::Changed => {}
        StatusOutcome::HeldBy { agent_id } => {
            return Err(super::sending::held_by(&st, agent_id).await);
        }
        StatusOutcome::NotFound => return Err(not_found()),
    }
    one(State(st), AuthUser(user), Path(id)).await
}

fn not_found() -> ApiError {
    ApiError::localized(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "status.error.not_found",
        vec![],
    )
}

/// The agent opened the chat: its unread count goes to zero.
async fn mark_read(
    State(st): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ConversationView>> {
    st.store.mark_read(id).await?;
    one(State(st), user, Path(id)).await
}

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

/// A query field as typed, trimmed; empty counts as absent.
pub(crate) fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
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
                    .ok_or_else(|| list_error("list.error.customer_id", "value", s))?,
            ),
            None => None,
        };
        let registered = match non_empty(&self.registered) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(other) => return Err(list_error("list.error.registered", "value", other)),
            None => None,
        };
        let status = match non_empty(&self.status) {
            Some(s) => {
                let parsed: desk_core::status::ConversationStatus = s
                    .parse()
                    .map_err(|_| list_error("list.error.status", "value", s))?;
                Some(parsed.as_str().to_owned())
            }
            None => None,
        };
        let after = match non_empty(&self.after) {
            Some(s) => Some(
                s.split_once('_')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                    .ok_or_else(|| list_error("list.error.after", "value", s))?,
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

async fn list(
    State(st): State<AppState>,
    _user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let filter = q.to_filter()?;
    let rows = st.store.list_conversations(&filter).await?;
    let next = if rows.len() as i64 == filter.limit {
        rows.last()
            .map(|r| format!("{}_{}", r.last_message_at, r.id))
    } else {
        None
    };
    let tz = st.config.time_zone;
    let list: Vec<ConversationView> = rows
        .into_iter()
        .map(|r| ConversationView::new(r, tz))
        .collect();
    Ok(Json(json!({"conversations": list, "next": next})))
}

async fn one(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ConversationView>> {
    let row = st.store.conversation(id).await?.ok_or_else(not_found)?;
    let mut view = ConversationView::new(row, st.config.time_zone);
    view.waiting = st.store.waiting_count(id).await?;
    Ok(Json(view))
}

#[derive(Deserialize)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

async fn messages(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<Json<Value>> {
    let Some(ctx) = st.store.send_context(id).await? else {
        return Err(not_found());
    };
    let date = |s: &Option<String>| -> ApiResult<_> {
        non_empty(s)
            .map(parse_date)
            .transpose()
            .map_err(ApiError::bad_request)
    };
    let tz = st.config.time_zone;
    let now = st.now_ms();
    let (from, to) =
        history_range(date(&q.from)?, date(&q.to)?, now, tz).map_err(ApiError::bad_request)?;
    // In the order the customer saw them; what still waits last (when the range reaches now).
    let rows = st.store.history(id, from, to, to > now).await?;
    let mode = st.line.current().mode;
    let list: Vec<MessageView> = rows
        .into_iter()
        .map(|m| MessageView::with_wait(m, tz, mode, &ctx.state, now))
        .collect();
    Ok(Json(json!({"messages": list})))
}
