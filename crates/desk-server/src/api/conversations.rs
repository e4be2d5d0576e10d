//! The read side of conversations: the list (V1), one chat (V2) and its history (C8).

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use desk_core::ConversationStatus;
use desk_store::conversations::StatusOutcome;
use desk_store::outbox::UnsentChoice;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Json, Path, Query};
use super::views::{ConversationView, MessageView};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::input::chat_list::ListQuery;
use crate::input::non_empty;
use crate::schema::{StatusSchema, UnsentChoiceSchema};
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

#[derive(Deserialize, ToSchema)]
pub(crate) struct StatusBody {
    #[schema(value_type = StatusSchema)]
    status: String,
    /// 完了/未読 with messages still waiting: `keep` (そのまま送る, the default) or `cancel`
    /// (取り消す). The UI always asks; an API client that does not say keeps them, so
    /// nothing an agent wrote is dropped unless someone chose so.
    #[serde(default)]
    #[schema(value_type = Option<UnsentChoiceSchema>, default = "keep")]
    unsent: Option<String>,
}

/// 未読 / 対応中 / 完了 (the handling lock; C3–C5)
///
/// 409 `held_by_other` when another agent holds the chat (admins may release with `done`
/// or `unread`). `unsent` decides what becomes of messages still waiting when the chat is
/// completed or released: `keep` (そのまま送る — the default for clients that do not say:
/// nothing an agent wrote is dropped unless someone chose so; in Reply mode they go right
/// after the next handler's own answer, who may cancel them) or `cancel` (取り消す: each
/// waiting message the caller may cancel becomes `cancelled`).
#[utoipa::path(post, path = "/conversations/{id}/status", tag = "conversations",
    params(("id" = i64, Path, description = "Conversation id")),
    request_body = inline(StatusBody),
    responses(
        (status = 200, description = "The chat", body = ConversationView),
        (status = 400, description = "Not a status, or not a choice for `unsent`", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
        (status = 409, description = "`held_by_other`: another agent handles the chat", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub(crate) async fn set_status(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    Json(body): Json<StatusBody>,
) -> ApiResult<axum::Json<ConversationView>> {
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

/// Mark read: the agent opened the chat, its unread count goes to zero
#[utoipa::path(post, path = "/conversations/{id}/read", tag = "conversations",
    params(("id" = i64, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The chat", body = ConversationView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
    ))]
pub(crate) async fn mark_read(
    State(st): State<AppState>,
    user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ConversationView>> {
    st.store.mark_read(id).await?;
    one(State(st), user, Path(id)).await
}

/// A page of the chat list.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConversationPage {
    conversations: Vec<ConversationView>,
    /// Pass as `after` for the next page; null on the last.
    next: Option<String>,
}

/// The chat list (LINEチャット一覧), newest activity first
#[utoipa::path(get, path = "/conversations", tag = "conversations",
    params(ListQuery),
    responses(
        (status = 200, description = "A page", body = ConversationPage),
        (status = 400, description = "A filter the list cannot take", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(st): State<AppState>,
    _user: AuthUser,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<ConversationPage>> {
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
    Ok(axum::Json(ConversationPage {
        conversations: list,
        next,
    }))
}

/// One chat
#[utoipa::path(get, path = "/conversations/{id}", tag = "conversations",
    params(("id" = i64, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The chat", body = ConversationView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
    ))]
pub(crate) async fn one(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ConversationView>> {
    let row = st.store.conversation(id).await?.ok_or_else(not_found)?;
    let mut view = ConversationView::new(row, st.config.time_zone);
    view.waiting = st.store.waiting_count(id).await?;
    Ok(axum::Json(view))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct RangeQuery {
    /// First day (inclusive), default six days before `to`; `YYYY-MM-DD` with a four-digit
    /// year (anything else is 400).
    #[param(format = Date)]
    from: Option<String>,
    /// Last day (inclusive), default today; `YYYY-MM-DD` with a four-digit year (anything
    /// else is 400).
    #[param(format = Date)]
    to: Option<String>,
}

/// A chat's history.
#[derive(Serialize, ToSchema)]
pub(crate) struct MessageList {
    messages: Vec<MessageView>,
}

/// A chat's history in the order the customer saw it
///
/// An agent message at its delivery time (`delivered_at`), everything else when written or
/// received; messages still waiting (未送信) last, in the order written, when the range
/// reaches today.
#[utoipa::path(get, path = "/conversations/{id}/messages", tag = "conversations",
    params(("id" = i64, Path, description = "Conversation id"), RangeQuery),
    responses(
        (status = 200, description = "Messages", body = MessageList),
        (status = 400, description = "`from` or `to` is not a date, or `from` is after `to`", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
    ))]
pub(crate) async fn messages(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
    Query(q): Query<RangeQuery>,
) -> ApiResult<axum::Json<MessageList>> {
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
    Ok(axum::Json(MessageList { messages: list }))
}
