//! Customers (顧客管理, L1–L4) in the JSON API: search, create, read, change, delete, the
//! change history, LINE passcodes, and linking a chat's LINE user to a customer.
//!
//! The checks of what people type are in `input/customers.rs`, shared with the pages.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use chrono_tz::Tz;
use desk_core::customer_code::{format_code, parse_code_query};
use desk_store::customers::{
    ActivePasscode, CustomerPatch, CustomerRow, HistoryRow, LinkOutcome, LinkedChat, UnlinkOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::extract::{Json, Path, Query};
use super::views::{AgentView, ConversationView};
use crate::auth::AuthUser;
use crate::error::{ApiResult, ErrorBody};
use crate::input::customers::{
    HISTORY_LIMIT, SearchQuery, TagSchema, clean_email, clean_fields, clean_name, clean_notes,
    clean_phone, clean_tags, passcode_expiry,
};
use crate::schema::{
    CustomerIdSchema, HistoryActionSchema, HistoryFieldSchema, HistoryViaSchema, StatusSchema,
};
use crate::time::rfc3339;
use crate::{ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list).post(create))
        .route("/customers/{id}", get(one).patch(update).delete(remove))
        .route("/customers/{id}/history", get(history))
        .route("/customers/{id}/line-passcode", post(issue_passcode))
        .route("/conversations/{id}/customer", put(link).delete(unlink))
}

// ---- JSON shapes ----------------------------------------------------------------------

/// A chat of the customer's linked LINE users.
#[derive(Serialize, ToSchema)]
#[schema(as = LinkedChat)]
pub struct LinkedChatView {
    /// The conversation (chat) id.
    pub id: i64,
    pub line_user_id: String,
    pub display_name: Option<String>,
    #[schema(value_type = StatusSchema)]
    pub status: desk_core::ConversationStatus,
    #[schema(format = DateTime)]
    pub last_message_at: String,
}

/// A customer (顧客).
#[derive(Serialize, ToSchema)]
#[schema(as = Customer)]
pub struct CustomerView {
    pub id: i64,
    /// The customer ID as shown.
    #[schema(example = "#C15")]
    pub code: String,
    pub name: String,
    pub phone: String,
    pub email: String,
    pub notes: String,
    pub tags: Vec<String>,
    /// The linked LINE user ids.
    pub line_users: Vec<String>,
    /// Their chats.
    pub conversations: Vec<LinkedChatView>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl CustomerView {
    /// `chats` may hold other customers' chats; only this one's are taken.
    pub fn new(c: CustomerRow, chats: &[LinkedChat], tz: Tz) -> CustomerView {
        let mine: Vec<&LinkedChat> = chats.iter().filter(|l| l.customer_id == c.id).collect();
        CustomerView {
            id: c.id,
            code: format_code(c.id),
            tags: c.tag_list(),
            name: c.name,
            phone: c.phone,
            email: c.email,
            notes: c.notes,
            line_users: mine.iter().map(|l| l.line_user_id.clone()).collect(),
            conversations: mine
                .iter()
                .map(|l| LinkedChatView {
                    id: l.conversation_id,
                    line_user_id: l.line_user_id.clone(),
                    display_name: l.display_name.clone(),
                    status: l.status,
                    last_message_at: rfc3339(l.last_message_at, tz),
                })
                .collect(),
            created_at: rfc3339(c.created_at, tz),
            updated_at: rfc3339(c.updated_at, tz),
        }
    }
}

/// The customer's LINE passcode neither used nor replaced (it may have expired).
#[derive(Serialize, ToSchema)]
#[schema(as = LinePasscode)]
pub struct PasscodeView {
    #[schema(example = "@105-908")]
    pub passcode: String,
    #[schema(format = DateTime)]
    pub issued_at: String,
    #[schema(format = DateTime)]
    pub valid_until: String,
    pub expired: bool,
}

impl PasscodeView {
    pub fn new(p: ActivePasscode, now_ms: i64, tz: Tz) -> PasscodeView {
        PasscodeView {
            passcode: p.code,
            issued_at: rfc3339(p.issued_at, tz),
            valid_until: rfc3339(p.valid_until, tz),
            expired: p.valid_until <= now_ms,
        }
    }
}

/// One customer with their linked LINE users and current LINE passcode.
#[derive(Serialize, ToSchema)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: CustomerView,
    /// The passcode neither used nor replaced (it may have expired); null when there is none.
    pub line_passcode: Option<PasscodeView>,
}

/// One row of a customer's 変更履歴.
#[derive(Serialize, ToSchema)]
#[schema(as = HistoryEntry)]
pub struct HistoryView {
    pub id: i64,
    #[schema(format = DateTime)]
    pub at: String,
    #[schema(value_type = HistoryActionSchema)]
    pub action: String,
    #[schema(value_type = Option<HistoryFieldSchema>)]
    pub field: Option<String>,
    pub old_value: Option<String>,
    /// For a link by passcode: the passcode; for passcode_issued: the new passcode
    /// (old_value: the one it replaced).
    pub new_value: Option<String>,
    /// Who: the agent, or null when the LINE user linked themselves with a passcode.
    pub actor: Option<AgentView>,
    pub line_user_id: Option<String>,
    pub conversation_id: Option<i64>,
    #[schema(value_type = Option<HistoryViaSchema>)]
    pub via: Option<String>,
    /// passcode_issued: the expiry.
    #[schema(format = DateTime)]
    pub valid_until: Option<String>,
}

impl HistoryView {
    pub fn new(h: HistoryRow, tz: Tz) -> HistoryView {
        let via = h.via().map(|v| v.to_string());
        let actor = match (h.actor_id, h.actor_login, h.actor_name) {
            (Some(id), Some(login), Some(name)) => Some(AgentView { id, login, name }),
            _ => None,
        };
        HistoryView {
            id: h.id,
            at: rfc3339(h.at, tz),
            action: h.action.to_string(),
            field: h.field,
            old_value: h.old_value,
            new_value: h.new_value,
            actor,
            line_user_id: h.line_user_id,
            conversation_id: h.conversation_id,
            via,
            valid_until: h.valid_until.map(|t| rfc3339(t, tz)),
        }
    }
}

/// One customer as the API shows it; 404 when there is none.
pub async fn detail(st: &AppState, id: i64) -> ApiResult<CustomerDetail> {
    let c = st
        .store
        .customer(id)
        .await?
        .ok_or_else(|| ApiError::not_found("customer"))?;
    let chats = st.store.linked_chats(&[id]).await?;
    let tz = st.config.time_zone;
    let now = st.now_ms();
    let line_passcode = st
        .store
        .active_passcode(id)
        .await?
        .map(|p| PasscodeView::new(p, now, tz));
    Ok(CustomerDetail {
        customer: CustomerView::new(c, &chats, tz),
        line_passcode,
    })
}

// ---- handlers -------------------------------------------------------------------------

/// A page of the customer search.
#[derive(Serialize, ToSchema)]
pub(crate) struct CustomerPage {
    customers: Vec<CustomerView>,
    /// Pass as `before` for the next page; null on the last.
    next: Option<String>,
    /// Pass as `after` for the page before; null on the first.
    prev: Option<String>,
    /// How many customers the search finds in all.
    total: i64,
    /// This page's first row's place in all (1-based; 0 when empty).
    from: i64,
    /// This page's last row's place in all ("1 - 50 / 120").
    to: i64,
}

/// The customer search (顧客管理), newest first
///
/// Filters combine; none lists everyone.
#[utoipa::path(get, path = "/customers", tag = "customers",
    params(SearchQuery),
    responses(
        (status = 200, description = "One page", body = CustomerPage),
        (status = 400, description = "A filter the search cannot take", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(st): State<AppState>,
    _user: AuthUser,
    Query(q): Query<SearchQuery>,
) -> ApiResult<axum::Json<CustomerPage>> {
    let filter = q.to_filter(50)?;
    let rows = st.store.list_customers(&filter).await?;
    // Keyset paging; the counts only number the page ("1 - 50 / 120").
    let (total, before) = st
        .store
        .count_customers(&filter, rows.first().map(|r| r.id))
        .await?;
    let shown_to = before + rows.len() as i64;
    let next = (shown_to < total)
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    let prev = (before > 0)
        .then(|| rows.first().map(|r| r.id.to_string()))
        .flatten();
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let chats = st.store.linked_chats(&ids).await?;
    let tz = st.config.time_zone;
    let from = if rows.is_empty() { 0 } else { before + 1 };
    let list: Vec<CustomerView> = rows
        .into_iter()
        .map(|r| CustomerView::new(r, &chats, tz))
        .collect();
    Ok(axum::Json(CustomerPage {
        customers: list,
        next,
        prev,
        total,
        from,
        to: shown_to,
    }))
}

/// A new customer.
#[derive(Deserialize, ToSchema)]
#[schema(as = CustomerInput)]
pub(crate) struct CreateBody {
    #[schema(max_length = 100)]
    name: String,
    /// Digits, hyphens, spaces, + and parentheses (full-width too); searched by its digits.
    #[serde(default)]
    #[schema(max_length = 30)]
    phone: String,
    #[serde(default)]
    #[schema(max_length = 254)]
    email: String,
    #[serde(default)]
    #[schema(max_length = 2000)]
    notes: String,
    #[serde(default)]
    #[schema(max_items = 20, value_type = Vec<TagSchema>)]
    tags: Vec<String>,
}

/// Register a customer (recorded in its history)
#[utoipa::path(post, path = "/customers", tag = "customers",
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new customer", body = CustomerDetail),
        (status = 400, description = "A field the desk cannot take", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Json(b): Json<CreateBody>,
) -> ApiResult<(StatusCode, axum::Json<CustomerDetail>)> {
    let fields = clean_fields(&b.name, &b.phone, &b.email, &b.notes, &b.tags)?;
    let id = st
        .store
        .create_customer(&fields, Some(user.id), st.now_ms())
        .await?;
    tracing::info!(agent = %user.login, customer = id, "customer created");
    Ok((StatusCode::CREATED, axum::Json(detail(&st, id).await?)))
}

/// One customer, with their linked LINE users and current LINE passcode
#[utoipa::path(get, path = "/customers/{id}", tag = "customers",
    params(("id" = i64, Path, description = "Customer id (15 for #C15)")),
    responses(
        (status = 200, description = "The customer", body = CustomerDetail),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
    ))]
pub(crate) async fn one(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<CustomerDetail>> {
    Ok(axum::Json(detail(&st, id).await?))
}

/// Only the fields present change.
#[derive(Deserialize, ToSchema)]
#[schema(as = CustomerPatch)]
pub(crate) struct PatchBody {
    #[schema(max_length = 100)]
    name: Option<String>,
    /// Digits, hyphens, spaces, + and parentheses (full-width too); searched by its digits.
    #[schema(max_length = 30)]
    phone: Option<String>,
    #[schema(max_length = 254)]
    email: Option<String>,
    #[schema(max_length = 2000)]
    notes: Option<String>,
    #[schema(max_items = 20, value_type = Option<Vec<TagSchema>>)]
    tags: Option<Vec<String>>,
}

/// Change fields (変更を保存)
///
/// Each changed field is a history row (field, old, new, who, when).
#[utoipa::path(patch, path = "/customers/{id}", tag = "customers",
    params(("id" = i64, Path, description = "Customer id (15 for #C15)")),
    request_body = PatchBody,
    responses(
        (status = 200, description = "The customer after the change", body = CustomerDetail),
        (status = 400, description = "A field the desk cannot take", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    Json(b): Json<PatchBody>,
) -> ApiResult<axum::Json<CustomerDetail>> {
    let patch = CustomerPatch {
        name: b.name.as_deref().map(clean_name).transpose()?,
        phone: b.phone.as_deref().map(clean_phone).transpose()?,
        email: b.email.as_deref().map(clean_email).transpose()?,
        notes: b.notes.as_deref().map(clean_notes).transpose()?,
        tags: b.tags.as_deref().map(clean_tags).transpose()?,
    };
    match st
        .store
        .update_customer(id, &patch, Some(user.id), st.now_ms())
        .await
    {
        Ok(_) => Ok(axum::Json(detail(&st, id).await?)),
        Err(desk_store::StoreError::NotFound) => Err(ApiError::not_found("customer")),
        Err(e) => Err(e.into()),
    }
}

/// Delete (削除する)
///
/// Linked LINE users become unregistered (未登録); their chats and messages, and the
/// customer's history, stay.
#[utoipa::path(delete, path = "/customers/{id}", tag = "customers",
    params(("id" = i64, Path, description = "Customer id (15 for #C15)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
    ))]
pub(crate) async fn remove(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<StatusCode> {
    match st
        .store
        .delete_customer(id, Some(user.id), st.now_ms())
        .await
    {
        Ok(()) => {
            tracing::info!(agent = %user.login, customer = id, "customer deleted");
            Ok(StatusCode::NO_CONTENT)
        }
        Err(desk_store::StoreError::NotFound) => Err(ApiError::not_found("customer")),
        Err(e) => Err(e.into()),
    }
}

/// A customer's history.
#[derive(Serialize, ToSchema)]
pub(crate) struct HistoryList {
    history: Vec<HistoryView>,
}

/// 変更履歴: every change and every link/unlink, newest first
///
/// Also of a deleted customer.
#[utoipa::path(get, path = "/customers/{id}/history", tag = "customers",
    params(("id" = i64, Path, description = "Customer id (15 for #C15)")),
    responses(
        (status = 200, description = "The history", body = HistoryList),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
    ))]
pub(crate) async fn history(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<HistoryList>> {
    let rows = st.store.customer_history(id, HISTORY_LIMIT).await?;
    if rows.is_empty() && st.store.customer(id).await?.is_none() {
        return Err(ApiError::not_found("customer"));
    }
    let tz = st.config.time_zone;
    let list: Vec<HistoryView> = rows.into_iter().map(|h| HistoryView::new(h, tz)).collect();
    Ok(axum::Json(HistoryList { history: list }))
}

#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct PasscodeBody {
    /// RFC 3339, or YYYY-MM-DDTHH:MM in the desk's time zone, or YYYY-MM-DD (through that
    /// day). Default: 7 days; at most 90 days.
    #[schema(example = "2024-01-08T18:00:00+09:00")]
    valid_until: Option<String>,
}

/// A passcode just issued.
#[derive(Serialize, ToSchema)]
pub(crate) struct IssuedPasscode {
    #[schema(example = "@105-908")]
    passcode: String,
    #[schema(format = DateTime)]
    valid_until: String,
}

/// Issue a LINE passcode (パスコード登録、更新)
///
/// Issuing again replaces the active one. When a LINE user sends exactly this text
/// (full-width and without the hyphen too) to the account, they are linked to the customer
/// and the passcode is used up. A LINE user with 5 wrong passcode-shaped messages within an
/// hour is ignored until the oldest is an hour old.
#[utoipa::path(post, path = "/customers/{id}/line-passcode", tag = "customers",
    params(("id" = i64, Path, description = "Customer id (15 for #C15)")),
    request_body(content = Option<PasscodeBody>, description = "Optional"),
    responses(
        (status = 200, description = "The passcode", body = IssuedPasscode),
        (status = 400, description = "`valid_until` is not a time, is past or too far", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such customer", body = ErrorBody),
    ))]
pub(crate) async fn issue_passcode(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    body: Option<Json<PasscodeBody>>,
) -> ApiResult<axum::Json<IssuedPasscode>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let tz = st.config.time_zone;
    let now = st.now_ms();
    let until = passcode_expiry(body.valid_until.as_deref(), now, tz)?;
    match st.store.issue_passcode(id, Some(user.id), until, now).await {
        Ok(code) => {
            tracing::info!(agent = %user.login, customer = id, "LINE passcode issued");
            Ok(axum::Json(IssuedPasscode {
                passcode: code.as_str().to_owned(),
                valid_until: rfc3339(until, tz),
            }))
        }
        Err(desk_store::StoreError::NotFound) => Err(ApiError::not_found("customer")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct LinkBody {
    /// `15`, or `"15"` / `"#C15"`.
    #[schema(value_type = CustomerIdSchema, example = 15)]
    customer_id: Value,
}

/// Link the chat's LINE user to a customer (the 顧客 button's 実行; L1)
///
/// A LINE user has at most one customer: an earlier link is replaced (both customers'
/// histories record it). Announced on /events as a conversation change.
#[utoipa::path(put, path = "/conversations/{id}/customer", tag = "customers",
    params(("id" = i64, Path, description = "Conversation id")),
    request_body = LinkBody,
    responses(
        (status = 200, description = "The chat", body = ConversationView),
        (status = 400, description = "`customer_id` is not a customer ID", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such chat or customer", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub(crate) async fn link(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    Json(b): Json<LinkBody>,
) -> ApiResult<axum::Json<ConversationView>> {
    let customer_id = match &b.customer_id {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_code_query(s),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::bad_request("customer_id must be a customer ID like 15 or \"#C15\"")
    })?;
    match st
        .store
        .link_conversation(id, customer_id, Some(user.id), st.now_ms())
        .await?
    {
        LinkOutcome::Linked { .. } | LinkOutcome::Unchanged => {}
        LinkOutcome::NoConversation => return Err(ApiError::not_found("conversation")),
        LinkOutcome::NoCustomer => return Err(ApiError::not_found("customer")),
    }
    conversation(&st, id).await
}

/// Unlink the chat's LINE user (未登録 again)
///
/// No error when it is not linked.
#[utoipa::path(delete, path = "/conversations/{id}/customer", tag = "customers",
    params(("id" = i64, Path, description = "Conversation id")),
    responses(
        (status = 200, description = "The chat", body = ConversationView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such chat", body = ErrorBody),
    ))]
pub(crate) async fn unlink(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<axum::Json<ConversationView>> {
    match st
        .store
        .unlink_conversation(id, Some(user.id), st.now_ms())
        .await?
    {
        UnlinkOutcome::Unlinked { .. } | UnlinkOutcome::NotLinked => {}
        UnlinkOutcome::NoConversation => return Err(ApiError::not_found("conversation")),
    }
    conversation(&st, id).await
}

async fn conversation(st: &AppState, id: i64) -> ApiResult<axum::Json<ConversationView>> {
    let row = st
        .store
        .conversation(id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(axum::Json(ConversationView::new(row, st.config.time_zone)))
}
