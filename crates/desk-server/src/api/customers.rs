//! Customers (顧客管理, L1–L4) in the JSON API: search, create, read, change, delete, the
//! change history, LINE passcodes, and linking a chat's LINE user to a customer.
//!
//! The checks of what people type live here ([`clean_fields`], [`SearchQuery::to_filter`],
//! [`parse_valid_until`]) and are shared with the UI (`ui/customers.rs`): each failure has a
//! locale key for the pages and an English message for the API.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use desk_core::customer_code::{format_code, normalize_phone_digits, parse_code_query};
use desk_core::normalize::{fold_width_char, is_hyphen_like};
use desk_store::customers::{
    ActivePasscode, CustomerFields, CustomerFilter, CustomerPatch, CustomerRow, HistoryRow,
    LinkOutcome, LinkedChat, UnlinkOutcome,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::conversations::non_empty;
use super::views::{AgentView, ConversationView};
use crate::auth::AuthUser;
use crate::error::ApiResult;
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

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_PHONE_CHARS: usize = 30;
pub const MAX_EMAIL_CHARS: usize = 254;
pub const MAX_NOTES_CHARS: usize = 2000;
pub const MAX_TAG_CHARS: usize = 30;
pub const MAX_TAGS: usize = 20;
/// History rows returned (newest first).
pub const HISTORY_LIMIT: i64 = 500;

// ---- checks shared with the UI ---------------------------------------------------------

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

const fn err(key: &'static str, message: &'static str) -> InputError {
    InputError { key, message }
}

fn has_control(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && matches!(c, '\n' | '\r' | '\t')))
}

pub fn clean_name(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > MAX_NAME_CHARS || has_control(s, false) {
        return Err(err(
            "customers.error.name",
            "name is required (at most 100 characters)",
        ));
    }
    Ok(s.to_owned())
}

/// Digits, hyphens (any of the dashes Japanese input gives), spaces, `+` and parentheses,
/// full-width too; at least one digit. Kept as typed; searched by its digits.
pub fn clean_phone(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let allowed = s.chars().all(|c| {
        let f = fold_width_char(c);
        f.is_ascii_digit() || is_hyphen_like(c) || matches!(f, ' ' | '+' | '(' | ')')
    });
    if !allowed || s.chars().count() > MAX_PHONE_CHARS || normalize_phone_digits(s).is_empty() {
        return Err(err(
            "customers.error.phone",
            "phone may hold digits, hyphens, spaces, + and parentheses (at most 30 characters)",
        ));
    }
    Ok(s.to_owned())
}

pub fn clean_email(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(String::new());
    }
    let ok = s.chars().count() <= MAX_EMAIL_CHARS
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if !ok {
        return Err(err(
            "customers.error.email",
            "email must look like name@example.com",
        ));
    }
    Ok(s.to_owned())
}

pub fn clean_notes(s: &str) -> Result<String, InputError> {
    let s = s.trim();
    if s.chars().count() > MAX_NOTES_CHARS || has_control(s, true) {
        return Err(err(
            "customers.error.notes",
            "notes may be at most 2000 characters",
        ));
    }
    Ok(s.replace("\r\n", "\n"))
}

/// Trimmed, empty ones dropped, duplicates dropped (first kept).
pub fn clean_tags<S: AsRef<str>>(tags: &[S]) -> Result<Vec<String>, InputError> {
    let mut out: Vec<String> = Vec::new();
    for t in tags {
        let t = t.as_ref().trim();
        if t.is_empty() || out.iter().any(|o| o == t) {
            continue;
        }
        if t.chars().count() > MAX_TAG_CHARS || has_control(t, false) {
            return Err(err(
                "customers.error.tag",
                "a tag may be at most 30 characters",
            ));
        }
        out.push(t.to_owned());
    }
    if out.len() > MAX_TAGS {
        return Err(err("customers.error.tags", "at most 20 tags"));
    }
    Ok(out)
}

/// Tags typed in one field: separated by commas (`,` `、` `，`) or new lines.
pub fn split_tags(s: &str) -> Vec<String> {
    s.split([',', '、', '，', '\n'])
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// All fields of a customer, checked.
pub fn clean_fields<S: AsRef<str>>(
    name: &str,
    phone: &str,
    email: &str,
    notes: &str,
    tags: &[S],
) -> Result<CustomerFields, InputError> {
    Ok(CustomerFields {
        name: clean_name(name)?,
        phone: clean_phone(phone)?,
        email: clean_email(email)?,
        notes: clean_notes(notes)?,
        tags: clean_tags(tags)?,
    })
}

/// A passcode expiry as typed: RFC 3339 (`2024-01-08T10:00:00+09:00`), a local date and
/// time in the desk's time zone (`2024-01-08T10:00`, `2024-01-08 10:00`, as a
/// `datetime-local` field sends it), or a date (valid through that day).
pub fn parse_valid_until(s: &str, tz: Tz) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(local) = NaiveDateTime::parse_from_str(s, fmt) {
            return tz
                .from_local_datetime(&local)
                .earliest()
                .map(|t| t.timestamp_millis());
        }
    }
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(crate::time::day_start_ms(date.succ_opt()?, tz))
}

/// The expiry a passcode issued now gets: `requested` (checked: in the future, within 90
/// days) or the default 7 days.
pub fn passcode_expiry(requested: Option<&str>, now_ms: i64, tz: Tz) -> Result<i64, InputError> {
    let requested = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(parse_valid_until(s, tz).ok_or(err(
            "customers.error.valid_until",
            "valid_until must be a date and time (RFC 3339, or YYYY-MM-DDTHH:MM in the desk's time zone)",
        ))?),
        None => None,
    };
    desk_core::passcode::valid_until(now_ms, requested).map_err(|e| match e {
        desk_core::passcode::ValidUntilError::InThePast => err(
            "customers.error.valid_until_past",
            "valid_until must be in the future",
        ),
        desk_core::passcode::ValidUntilError::TooFar => err(
            "customers.error.valid_until_far",
            "a passcode can be valid for at most 90 days",
        ),
    })
}

/// The customer search as typed (`?id=&name=&phone=`).
#[derive(Deserialize, Default, Clone, Debug)]
pub struct SearchQuery {
    pub id: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub limit: Option<i64>,
    /// The `next` cursor of the previous page.
    pub before: Option<String>,
    /// Paging back: the customers just newer than this id (the `prev` cursor).
    #[serde(default)]
    pub after: Option<String>,
}

impl SearchQuery {
    /// Empty fields are no filter. `id` takes `15`, `#C15`, `C15` (full-width too); `phone`
    /// matches by digits, with or without hyphens.
    pub fn to_filter(&self, default_limit: i64) -> Result<CustomerFilter, InputError> {
        let id = match non_empty(&self.id) {
            Some(s) => Some(parse_code_query(s).ok_or(err(
                "customers.error.search_id",
                "id must be a customer ID like 15 or #C15",
            ))?),
            None => None,
        };
        let phone_digits = match non_empty(&self.phone) {
            Some(s) => {
                let d = normalize_phone_digits(s);
                if d.is_empty() {
                    return Err(err(
                        "customers.error.search_phone",
                        "phone must contain digits",
                    ));
                }
                Some(d)
            }
            None => None,
        };
        let before_id = match non_empty(&self.before) {
            Some(s) => Some(s.parse().map_err(|_| {
                err(
                    "customers.error.search_id",
                    "before is not a cursor from a previous page",
                )
            })?),
            None => None,
        };
        let after_id = match non_empty(&self.after) {
            Some(s) => Some(s.parse().map_err(|_| {
                err(
                    "customers.error.search_id",
                    "after is not a cursor from a previous page",
                )
            })?),
            None => None,
        };
        Ok(CustomerFilter {
            id,
            name: non_empty(&self.name).map(str::to_owned),
            phone_digits,
            before_id,
            after_id,
            limit: self.limit.unwrap_or(default_limit).clamp(1, 500),
        })
    }

    pub fn is_empty(&self) -> bool {
        non_empty(&self.id).is_none()
            && non_empty(&self.name).is_none()
            && non_empty(&self.phone).is_none()
    }
}

// ---- JSON shapes ----------------------------------------------------------------------

#[derive(Serialize)]
pub struct LinkedChatView {
    /// The conversation (chat) id.
    pub id: i64,
    pub line_user_id: String,
    pub display_name: Option<String>,
    pub status: String,
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
                    status: l.status.clone(),
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
        let actor = match (h.actor_id, h.actor_login, h.actor_name) {
            (Some(id), Some(login), Some(name)) => Some(AgentView { id, login, name }),
            _ => None,
        };
        HistoryView {
            id: h.id,
            at: rfc3339(h.at, tz),
            action: h.action,
            field: h.field,
            old_value: h.old_value,
            new_value: h.new_value,
            actor,
            line_user_id: h.line_user_id,
            conversation_id: h.conversation_id,
            via: h.via,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        assert_eq!(clean_name("  山田 花子 ").unwrap(), "山田 花子");
        assert!(clean_name(" ").is_err());
        assert!(clean_name(&"あ".repeat(101)).is_err());
        assert_eq!(clean_phone(" 090-1234-5678 ").unwrap(), "090-1234-5678");
        assert_eq!(
            clean_phone("０９０ー１２３４ー５６７８").unwrap(),
            "０９０ー１２３４ー５６７８"
        );
        assert_eq!(
            clean_phone("+81 (90) 1234 5678").unwrap(),
            "+81 (90) 1234 5678"
        );
        assert_eq!(clean_phone("").unwrap(), "");
        assert!(clean_phone("090-abcd").is_err());
        assert!(clean_phone("--").is_err());
        assert_eq!(clean_email("a@example.jp").unwrap(), "a@example.jp");
        assert!(clean_email("a@").is_err());
        assert!(clean_email("a b@example.jp").is_err());
        assert_eq!(clean_notes("a\r\nb").unwrap(), "a\nb");
        assert_eq!(
            clean_tags(&split_tags("VIP、 要注意, VIP,\n法人")).unwrap(),
            vec!["VIP", "要注意", "法人"]
        );
        assert!(clean_tags(&["x".repeat(31)]).is_err());
    }

    #[test]
    fn expiries() {
        let tz = chrono_tz::Asia::Tokyo;
        let now = tz
            .with_ymd_and_hms(2024, 1, 1, 10, 0, 0)
            .unwrap()
            .timestamp_millis();
        let day = 86_400_000;
        assert_eq!(passcode_expiry(None, now, tz), Ok(now + 7 * day));
        assert_eq!(passcode_expiry(Some(" "), now, tz), Ok(now + 7 * day));
        assert_eq!(
            passcode_expiry(Some("2024-01-02T10:00"), now, tz),
            Ok(now + day)
        );
        assert_eq!(
            passcode_expiry(Some("2024-01-02T10:00:00+09:00"), now, tz),
            Ok(now + day)
        );
        assert_eq!(
            passcode_expiry(Some("2024-01-02T01:00:00Z"), now, tz),
            Ok(now + day)
        );
        // A date: through the end of that day.
        assert_eq!(
            passcode_expiry(Some("2024-01-02"), now, tz),
            Ok(now + day + 14 * 3_600_000)
        );
        assert_eq!(
            passcode_expiry(Some("2023-12-31"), now, tz)
                .unwrap_err()
                .key,
            "customers.error.valid_until_past"
        );
        assert_eq!(
            passcode_expiry(Some("2024-06-01"), now, tz)
                .unwrap_err()
                .key,
            "customers.error.valid_until_far"
        );
        assert_eq!(
            passcode_expiry(Some("soon"), now, tz).unwrap_err().key,
            "customers.error.valid_until"
        );
    }

    #[test]
    fn searches() {
        let q = SearchQuery {
            id: Some("＃Ｃ１５".into()),
            phone: Some("090-1234".into()),
            name: Some("  ".into()),
            ..Default::default()
        };
        let f = q.to_filter(50).unwrap();
        assert_eq!(
            (f.id, f.phone_digits.as_deref(), f.name),
            (Some(15), Some("0901234"), None)
        );
        let bad = SearchQuery {
            id: Some("山田".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.to_filter(50).unwrap_err().key,
            "customers.error.search_id"
        );
        let bad = SearchQuery {
            phone: Some("なし".into()),
            ..Default::default()
        };
        assert_eq!(
            bad.to_filter(50).unwrap_err().key,
            "customers.error.search_phone"
        );
    }
}
