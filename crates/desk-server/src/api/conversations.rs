//! The read side of conversations: the list (V1), one chat (V2) and its history (C8).

use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use desk_core::ConversationStatus;
use desk_store::conversations::StatusOutcome;
use desk_store::outbox::UnsentChoice;
use serde::Deserialize;
use serde_json::{Value, json};

use super::views::{ConversationView, MessageView};
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::input::chat_list::ListQuery;
use crate::input::non_empty;
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
            "status-error-status",
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
                "status-error-unsent",
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
        "status-error-not_found",
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
