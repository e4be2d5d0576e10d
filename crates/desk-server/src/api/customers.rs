//! Customers (顧客管理, L1–L4) in the JSON API: search, create, read, change, delete, the
//! change history, LINE passcodes, and linking a chat's LINE user to a customer.
//!
//! The checks of what people type are in `input/customers.rs`, shared with the pages.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono_tz::Tz;
use desk_core::customer_code::{format_code, parse_code_query};
use desk_store::customers::{
    ActivePasscode, CustomerPatch, CustomerRow, HistoryRow, LinkOutcome, LinkedChat, UnlinkOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::views::{AgentView, ConversationView};
use crate::auth::AuthUser;
use crate::error::ApiResult;
use crate::input::customers::{
    HISTORY_LIMIT, SearchQuery, clean_email, clean_fields, clean_name, clean_notes, clean_phone,
    clean_tags, passcode_expiry,
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

#[derive(Serialize)]
pub struct LinkedChatView {
    /// The conversation (chat) id.
    pub id: i64,
    pub line_user_id: String,
    pub display_name: Option<String>,
    pub status: desk_core::ConversationStatus,
    pub last_message_at: String,
}

#[derive(Serialize)]
pub struct CustomerView {
    pub id: i64,
    /// `#C15`.
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
    pub created_at: String,
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

#[derive(Serialize)]
pub struct PasscodeView {
    pub passcode: String,
    pub issued_at: String,
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

/// One customer with their current LINE passcode (null when none is active).
#[derive(Serialize)]
pub struct CustomerDetail {
    #[serde(flatten)]
    pub customer: CustomerView,
    pub line_passcode: Option<PasscodeView>,
}

#[derive(Serialize)]
pub struct HistoryView {
    pub id: i64,
    pub at: String,
    /// `created` | `updated` | `deleted` | `linked` | `unlinked` | `passcode_issued`.
    pub action: String,
    pub field: Option<String>,
    pub old_value: Option<String>,
    pub new_value: Option<String>,
    /// Who: the agent, or null when the LINE user linked themselves with a passcode.
    pub actor: Option<AgentView>,
    pub line_user_id: Option<String>,
    pub conversation_id: Option<i64>,
    /// `agent` | `passcode` | `deleted` (links and unlinks).
    pub via: Option<String>,
    /// passcode_issued: the expiry.
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

async fn list(
    State(st): State<AppState>,
    _user: AuthUser,
    Query(q): Query<SearchQuery>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({"customers": list, "next": next, "prev": prev,
                   "total": total, "from": from, "to": shown_to})))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    tags: Vec<String>,
}

async fn create(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Json(b): Json<CreateBody>,
) -> ApiResult<(StatusCode, Json<CustomerDetail>)> {
    let fields = clean_fields(&b.name, &b.phone, &b.email, &b.notes, &b.tags)?;
    let id = st
        .store
        .create_customer(&fields, Some(user.id), st.now_ms())
        .await?;
    tracing::info!(agent = %user.login, customer = id, "customer created");
    Ok((StatusCode::CREATED, Json(detail(&st, id).await?)))
}

async fn one(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<CustomerDetail>> {
    Ok(Json(detail(&st, id).await?))
}

#[derive(Deserialize)]
struct PatchBody {
    name: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    notes: Option<String>,
    tags: Option<Vec<String>>,
}

async fn update(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    Json(b): Json<PatchBody>,
) -> ApiResult<Json<CustomerDetail>> {
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
        Ok(_) => Ok(Json(detail(&st, id).await?)),
        Err(desk_store::StoreError::NotFound) => Err(ApiError::not_found("customer")),
        Err(e) => Err(e.into()),
    }
}

/// 削除する: the customer's LINE users become 未登録 again; their chats stay.
async fn remove(
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

/// 変更履歴, newest first. A deleted customer's history is still served.
async fn history(
    State(st): State<AppState>,
    _user: AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let rows = st.store.customer_history(id, HISTORY_LIMIT).await?;
    if rows.is_empty() && st.store.customer(id).await?.is_none() {
        return Err(ApiError::not_found("customer"));
    }
    let tz = st.config.time_zone;
    let list: Vec<HistoryView> = rows.into_iter().map(|h| HistoryView::new(h, tz)).collect();
    Ok(Json(json!({"history": list})))
}

#[derive(Deserialize, Default)]
struct PasscodeBody {
    valid_until: Option<String>,
}

/// パスコード登録、更新: a new passcode replaces the active one.
async fn issue_passcode(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    body: Option<Json<PasscodeBody>>,
) -> ApiResult<Json<Value>> {
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let tz = st.config.time_zone;
    let now = st.now_ms();
    let until = passcode_expiry(body.valid_until.as_deref(), now, tz)?;
    match st.store.issue_passcode(id, Some(user.id), until, now).await {
        Ok(code) => {
            tracing::info!(agent = %user.login, customer = id, "LINE passcode issued");
            Ok(Json(json!({
                "passcode": code.as_str(),
                "valid_until": rfc3339(until, tz),
            })))
        }
        Err(desk_store::StoreError::NotFound) => Err(ApiError::not_found("customer")),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct LinkBody {
    /// `15`, or `"15"` / `"#C15"`.
    customer_id: Value,
}

/// The 顧客 button's 実行 (L1): links the chat's LINE user to the customer.
async fn link(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
    Json(b): Json<LinkBody>,
) -> ApiResult<Json<ConversationView>> {
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

/// Unlinks the chat's LINE user (it becomes 未登録). Unlinking an unlinked chat is no error.
async fn unlink(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> ApiResult<Json<ConversationView>> {
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

async fn conversation(st: &AppState, id: i64) -> ApiResult<Json<ConversationView>> {
    let row = st
        .store
        .conversation(id)
        .await?
        .ok_or_else(|| ApiError::not_found("conversation"))?;
    Ok(Json(ConversationView::new(row, st.config.time_zone)))
}
