//! CRM > 顧客管理 (L1–L4): the customer list with its search (ID, 名称, 電話番号) and a form
//! to register one; the customer detail (edit, LINE accounts, パスコード登録、更新, 削除する,
//! 変更履歴); and the 顧客 dialog of the chat detail as its own page, `/chats/{id}/customer`
//! (search, pick one, 実行 links, 戻る returns; 関連付けを解除 unlinks).
//!
//! Plain forms with POST-redirect-GET; result messages travel as `?msg=<known key>`. The
//! checks and the store calls are the JSON API's (`api/customers.rs`), so both behave alike.
//! Linking and unlinking announce the chat's change, so open chat pages update live.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use chrono::DateTime;
use chrono_tz::Tz;
use desk_core::customer_code::format_code;
use desk_store::StoreError;
use desk_store::customers::{
    CustomerPatch, CustomerRow, HistoryRow, LinkOutcome, LinkedChat, UnlinkOutcome,
};
use serde::Deserialize;

use crate::AppState;
use crate::auth::percent_encode;
use crate::input::InputError;
use crate::input::customers::{
    HISTORY_LIMIT, SearchQuery, clean_email, clean_fields, clean_name, clean_notes, clean_phone,
    clean_tags, passcode_expiry, split_tags,
};
use crate::page::{PageCtx, PageError, PageResult, PageUser, render, render_status};
use crate::time::short;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/customers", get(list_page).post(create))
        .route("/customers/{id}", get(detail_page).post(save))
        .route("/customers/{id}/delete", post(delete))
        .route("/customers/{id}/passcode", post(issue_passcode))
        .route(
            "/customers/{id}/unlink/{conversation_id}",
            post(unlink_from_customer),
        )
        .route("/chats/{id}/customer", get(link_page).post(link))
        .route("/chats/{id}/customer/unlink", post(unlink_from_chat))
}

/// Rows per page of the customer list.
const PAGE_SIZE: i64 = 50;
/// Rows of the 顧客 dialog's result list: a short page, paged with ‹ › like the manual's
/// dialog ("1 - 10 / 35").
const LINK_PAGE_SIZE: i64 = 10;

// ---- shared views ---------------------------------------------------------------------

/// A customer as a row of a list.
pub struct CustomerLine {
    id: i64,
    code: String,
    name: String,
    phone: String,
    tags: Vec<String>,
    line_users: usize,
    updated_at: String,
}

impl CustomerLine {
    fn new(c: CustomerRow, chats: &[LinkedChat], tz: Tz) -> CustomerLine {
        CustomerLine {
            id: c.id,
            code: c.code(),
            line_users: chats.iter().filter(|l| l.customer_id == c.id).count(),
            tags: c.tag_list(),
            name: c.name,
            phone: c.phone,
            updated_at: short(c.updated_at, tz),
        }
    }
}

/// The search form's values, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct SearchParams {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    before: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    msg: String,
}

impl SearchParams {
    fn query(&self) -> SearchQuery {
        let opt = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
        SearchQuery {
            id: opt(&self.id),
            name: opt(&self.name),
            phone: opt(&self.phone),
            limit: None,
            before: opt(&self.before),
            after: opt(&self.after),
        }
    }

    /// The filled search fields as a query string (no paging).
    fn query_string(&self) -> String {
        [
            ("id", &self.id),
            ("name", &self.name),
            ("phone", &self.phone),
        ]
        .iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())))
        .collect::<Vec<_>>()
        .join("&")
    }
}

/// One page of a search: its rows, where it lies in all the results ("1 - 20 / 35"), and
/// the links to the pages before and after it (keyset: `before`/`after` an id).
pub struct SearchPage {
    rows: Vec<CustomerLine>,
    range: String,
    next_href: Option<String>,
    prev_href: Option<String>,
}

impl SearchPage {
    fn empty() -> SearchPage {
        SearchPage {
            rows: Vec::new(),
            range: String::new(),
            next_href: None,
            prev_href: None,
        }
    }
}

/// What a search gave: a page of results, or the locale key of why the search as typed
/// cannot run (shown above an empty list).
enum Searched {
    Found(SearchPage),
    Refused(&'static str),
}

impl Searched {
    /// The page to show and the error above it.
    fn shown(self) -> (SearchPage, Option<&'static str>) {
        match self {
            Searched::Found(page) => (page, None),
            Searched::Refused(key) => (SearchPage::empty(), Some(key)),
        }
    }
}

/// Runs a search for the page at `base_path` (`/customers`, `/chats/3/customer`).
async fn search(
    st: &AppState,
    ctx: &PageCtx,
    p: &SearchParams,
    limit: i64,
    base_path: &str,
) -> Result<Searched, PageError> {
    let filter = match p.query().to_filter(limit) {
        Ok(f) => f,
        Err(e) => return Ok(Searched::Refused(e.key)),
    };
    let rows = st.store.list_customers(&filter).await?;
    let (total, before) = st
        .store
        .count_customers(&filter, rows.first().map(|r| r.id))
        .await?;
    let shown_to = before + rows.len() as i64;
    let base = p.query_string();
    let sep = if base.is_empty() { "" } else { "&" };
    let next_href = (shown_to < total)
        .then(|| rows.last())
        .flatten()
        .map(|r| format!("{base_path}?{base}{sep}before={}", r.id));
    let prev_href = (before > 0)
        .then(|| rows.first())
        .flatten()
        .map(|r| format!("{base_path}?{base}{sep}after={}", r.id));
    let range = if rows.is_empty() {
        String::new()
    } else {
        ctx.tf(
            "customers.range",
            [
                ("from", (before + 1).to_string().as_str()),
                ("to", shown_to.to_string().as_str()),
                ("total", total.to_string().as_str()),
            ],
        )
    };
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let chats = st.store.linked_chats(&ids).await?;
    let tz = st.config.time_zone;
    Ok(Searched::Found(SearchPage {
        rows: rows
            .into_iter()
            .map(|r| CustomerLine::new(r, &chats, tz))
            .collect(),
        range,
        next_href,
        prev_href,
    }))
}

/// The fields of the register and edit forms, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct CustomerForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    tags: String,
}

impl CustomerForm {
    fn of(c: &CustomerRow) -> CustomerForm {
        CustomerForm {
            name: c.name.clone(),
            phone: c.phone.clone(),
            email: c.email.clone(),
            notes: c.notes.clone(),
            tags: c.tag_list().join(", "),
        }
    }
}

// ---- 顧客一覧 ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "customers.html")]
struct ListPage {
    ctx: PageCtx,
    p: SearchParams,
    rows: Vec<CustomerLine>,
    searched: bool,
    /// "1 - 50 / 120" of this page.
    range: String,
    next_href: Option<String>,
    prev_href: Option<String>,
    ok: Option<&'static str>,
    error: Option<&'static str>,
    form: CustomerForm,
    form_error: Option<&'static str>,
}

async fn list(st: &AppState, page: &PageUser, p: SearchParams) -> Result<ListPage, PageError> {
    let ctx = page.ctx_t("customers.title");
    let (found, error) = search(st, &ctx, &p, PAGE_SIZE, "/customers").await?.shown();
    let ok = match p.msg.as_str() {
        "deleted" => Some("customers.msg.deleted"),
        _ => None,
    };
    Ok(ListPage {
        ctx,
        searched: !p.query().is_empty(),
        p,
        rows: found.rows,
        range: found.range,
        next_href: found.next_href,
        prev_href: found.prev_href,
        ok,
        error,
        form: CustomerForm::default(),
        form_error: None,
    })
}

async fn list_page(
    page: PageUser,
    State(st): State<AppState>,
    Query(p): Query<SearchParams>,
) -> PageResult {
    Ok(render(&list(&st, &page, p).await?))
}

/// 顧客の新規登録: to the new customer's detail page.
async fn create(
    page: PageUser,
    State(st): State<AppState>,
    Form(form): Form<CustomerForm>,
) -> PageResult {
    let fields = clean_fields(
        &form.name,
        &form.phone,
        &form.email,
        &form.notes,
        &split_tags(&form.tags),
    );
    let fields = match fields {
        Ok(f) => f,
        Err(e) => {
            let mut l = list(&st, &page, SearchParams::default()).await?;
            l.form = form;
            l.form_error = Some(e.key);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &l));
        }
    };
    let id = st
        .store
        .create_customer(&fields, Some(page.user().id), st.now_ms())
        .await?;
    tracing::info!(agent = %page.user().login, customer = id, "customer created");
    Ok(Redirect::to(&format!("/customers/{id}?msg=created")).into_response())
}

// ---- 顧客詳細 ---------------------------------------------------------------------------

/// A LINE account linked to the customer.
pub struct ChatLine {
    conversation_id: i64,
    name: String,
    line_user_id: String,
    status: desk_core::ConversationStatus,
}

impl ChatLine {
    fn status_key(&self) -> String {
        format!("common.status.{}", self.status)
    }
}

/// One line of 変更履歴, ready to show.
pub struct HistoryLine {
    at: String,
    who: String,
    action_key: String,
    field_key: String,
    old: String,
    new: String,
    /// What else there is to say (via a passcode, the expiry, …), translated.
    note: String,
    chat_href: Option<String>,
    line_user_id: String,
}

impl HistoryLine {
    fn new(h: HistoryRow, ctx: &PageCtx, tz: Tz) -> HistoryLine {
        let who = match (&h.actor_name, h.via.as_deref()) {
            (Some(name), _) => name.clone(),
            (None, Some("passcode")) => ctx.t("customers.history.by_line").to_owned(),
            (None, _) => ctx.t("customers.history.system").to_owned(),
        };
        let note = match (h.action.as_str(), h.via.as_deref()) {
            ("linked", Some("passcode")) => ctx.tf(
                "customers.history.via_passcode",
                [("code", h.new_value.as_deref().unwrap_or_default())],
            ),
            ("unlinked", Some("deleted")) => ctx.t("customers.history.via_deleted").to_owned(),
            ("unlinked", Some("passcode")) => ctx.t("customers.history.via_other").to_owned(),
            ("passcode_issued", _) => h
                .valid_until
                .map(|t| {
                    ctx.tf(
                        "customers.history.valid_until",
                        [("at", short(t, tz).as_str())],
                    )
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let (old, new) = match h.action.as_str() {
            // The passcode is the note of a link, not a value.
            "linked" | "unlinked" => (String::new(), String::new()),
            _ => (
                h.old_value.unwrap_or_default(),
                h.new_value.unwrap_or_default(),
            ),
        };
        HistoryLine {
            at: short(h.at, tz),
            who,
            action_key: format!("customers.action.{}", h.action),
            field_key: h
                .field
                .filter(|f| desk_store::customers::FIELDS.contains(&f.as_str()))
                .map(|f| format!("customers.field.{f}"))
                .unwrap_or_default(),
            old,
            new,
            note,
            chat_href: h.conversation_id.map(|id| format!("/chats/{id}")),
            line_user_id: h.line_user_id.unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "customers_detail.html")]
struct DetailPage {
    ctx: PageCtx,
    id: i64,
    code: String,
    heading: String,
    form: CustomerForm,
    tags: Vec<String>,
    created_at: String,
    updated_at: String,
    chats: Vec<ChatLine>,
    passcode: Option<String>,
    passcode_until: String,
    passcode_expired: bool,
    /// The expiry field's value (`datetime-local`, the desk's time zone).
    valid_until_value: String,
    history: Vec<HistoryLine>,
    ok: Option<&'static str>,
    ok_text: Option<String>,
    error: Option<&'static str>,
    passcode_error: Option<&'static str>,
}

fn local_input(ms: i64, tz: Tz) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// The detail page of customer `id`, or the 404 page.
async fn detail(st: &AppState, page: &PageUser, id: i64) -> Result<DetailPage, PageError> {
    let ctx = page.ctx_t("customers.detail.title");
    let c = st.store.customer(id).await?.ok_or(NOT_FOUND)?;
    let tz = st.config.time_zone;
    let now = st.now_ms();
    let chats = st.store.linked_chats(&[id]).await?;
    let passcode = st.store.active_passcode(id).await?;
    let history = st.store.customer_history(id, HISTORY_LIMIT).await?;
    let mut ctx = ctx;
    ctx.title = format!(
        "{} {} - {}",
        c.code(),
        c.name,
        ctx.t("customers.detail.title")
    );
    let heading = ctx.tf("customers.detail.heading", [("code", c.code().as_str())]);
    let valid_until_value = match &passcode {
        Some(p) if p.valid_until > now => local_input(p.valid_until, tz),
        _ => local_input(now + desk_core::passcode::DEFAULT_VALIDITY_MS, tz),
    };
    Ok(DetailPage {
        id,
        code: c.code(),
        heading,
        form: CustomerForm::of(&c),
        tags: c.tag_list(),
        created_at: short(c.created_at, tz),
        updated_at: short(c.updated_at, tz),
        chats: chats
            .into_iter()
            .map(|l| ChatLine {
                conversation_id: l.conversation_id,
                name: l
                    .display_name
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| l.line_user_id.clone()),
                line_user_id: l.line_user_id,
                status: l.status,
            })
            .collect(),
        passcode_expired: passcode.as_ref().is_some_and(|p| p.valid_until <= now),
        passcode_until: passcode
            .as_ref()
            .map(|p| short(p.valid_until, tz))
            .unwrap_or_default(),
        passcode: passcode.map(|p| p.code),
        valid_until_value,
        history: history
            .into_iter()
            .map(|h| HistoryLine::new(h, &ctx, tz))
            .collect(),
        ok: None,
        ok_text: None,
        error: None,
        passcode_error: None,
        ctx,
    })
}

#[derive(Deserialize, Default)]
struct MsgQuery {
    #[serde(default)]
    msg: String,
}

async fn detail_page(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let mut d = detail(&st, &page, id).await?;
    match q.msg.as_str() {
        "created" => {
            d.ok_text = Some(
                d.ctx
                    .tf("customers.msg.created", [("code", d.code.as_str())]),
            );
        }
        "saved" => d.ok = Some("customers.msg.saved"),
        "unchanged" => d.ok = Some("customers.msg.unchanged"),
        "passcode" => d.ok = Some("customers.msg.passcode"),
        "unlinked" => d.ok = Some("customers.msg.unlinked"),
        _ => {}
    }
    Ok(render(&d))
}

fn back(id: i64, msg: &str) -> PageResult {
    Ok(Redirect::to(&format!("/customers/{id}?msg={msg}")).into_response())
}

/// The customer is gone (deleted meanwhile, or a wrong link).
const NOT_FOUND: PageError = PageError::NotFound("customers.error.not_found");

/// The store's "no such customer" as the customer 404 page.
fn missing(e: StoreError) -> PageError {
    match e {
        StoreError::NotFound => NOT_FOUND,
        other => other.into(),
    }
}

/// 変更を保存.
async fn save(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Form(form): Form<CustomerForm>,
) -> PageResult {
    let checked = (|| -> Result<CustomerPatch, InputError> {
        Ok(CustomerPatch {
            name: Some(clean_name(&form.name)?),
            phone: Some(clean_phone(&form.phone)?),
            email: Some(clean_email(&form.email)?),
            notes: Some(clean_notes(&form.notes)?),
            tags: Some(clean_tags(&split_tags(&form.tags))?),
        })
    })();
    let patch = match checked {
        Ok(p) => p,
        Err(e) => {
            let mut d = detail(&st, &page, id).await?;
            d.form = form;
            d.error = Some(e.key);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &d));
        }
    };
    let changed = st
        .store
        .update_customer(id, &patch, Some(page.user().id), st.now_ms())
        .await
        .map_err(missing)?;
    back(id, if changed == 0 { "unchanged" } else { "saved" })
}

/// 削除する (the form asks for confirmation first).
async fn delete(page: PageUser, State(st): State<AppState>, Path(id): Path<i64>) -> PageResult {
    st.store
        .delete_customer(id, Some(page.user().id), st.now_ms())
        .await
        .map_err(missing)?;
    tracing::info!(agent = %page.user().login, customer = id, "customer deleted");
    Ok(Redirect::to("/customers?msg=deleted").into_response())
}

#[derive(Deserialize, Default)]
struct PasscodeForm {
    #[serde(default)]
    valid_until: String,
}

/// パスコード登録、更新.
async fn issue_passcode(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Form(form): Form<PasscodeForm>,
) -> PageResult {
    let now = st.now_ms();
    let until = match passcode_expiry(Some(&form.valid_until), now, st.config.time_zone) {
        Ok(t) => t,
        Err(e) => {
            let mut d = detail(&st, &page, id).await?;
            d.valid_until_value = form.valid_until;
            d.passcode_error = Some(e.key);
            return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &d));
        }
    };
    st.store
        .issue_passcode(id, Some(page.user().id), until, now)
        .await
        .map_err(missing)?;
    tracing::info!(agent = %page.user().login, customer = id, "LINE passcode issued");
    back(id, "passcode")
}

/// 関連付けを解除 on the customer page.
async fn unlink_from_customer(
    page: PageUser,
    State(st): State<AppState>,
    Path((id, conversation_id)): Path<(i64, i64)>,
) -> PageResult {
    // Only this customer's link: a stale page must not unlink someone else's.
    let chat = st.store.conversation(conversation_id).await?;
    if chat.is_some_and(|c| c.customer_id == Some(id)) {
        st.store
            .unlink_conversation(conversation_id, Some(page.user().id), st.now_ms())
            .await?;
    }
    back(id, "unlinked")
}

// ---- 顧客 (the chat's link dialog) ------------------------------------------------------

#[derive(Template)]
#[template(path = "customers_link.html")]
struct LinkPage {
    ctx: PageCtx,
    chat_id: i64,
    chat_name: String,
    current: Option<(i64, String)>,
    p: SearchParams,
    searched: bool,
    rows: Vec<CustomerLine>,
    range: String,
    next_href: Option<String>,
    prev_href: Option<String>,
    error: Option<&'static str>,
}

async fn link_view(
    st: &AppState,
    page: &PageUser,
    chat_id: i64,
    p: SearchParams,
) -> Result<LinkPage, PageError> {
    let ctx = page.ctx_t("customers.link.title");
    let chat = st
        .store
        .conversation(chat_id)
        .await?
        .ok_or(PageError::NotFound("common.error.not_found"))?;
    let base_path = format!("/chats/{chat_id}/customer");
    let (found, error) = search(st, &ctx, &p, LINK_PAGE_SIZE, &base_path)
        .await?
        .shown();
    let chat_name = chat
        .display_name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| chat.line_user_id.clone());
    Ok(LinkPage {
        chat_id,
        chat_name,
        current: chat.customer_id.map(|id| {
            (
                id,
                format!(
                    "{} {}",
                    format_code(id),
                    chat.customer_name.unwrap_or_default()
                ),
            )
        }),
        searched: !p.query().is_empty(),
        p,
        rows: found.rows,
        range: found.range,
        next_href: found.next_href,
        prev_href: found.prev_href,
        error,
        ctx,
    })
}

async fn link_page(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<SearchParams>,
) -> PageResult {
    Ok(render(&link_view(&st, &page, id, p).await?))
}

#[derive(Deserialize, Default)]
struct LinkForm {
    #[serde(default)]
    customer_id: String,
    /// The search that showed the list (to show it again after an error).
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone: String,
}

/// 実行: links and returns to the chat.
async fn link(
    page: PageUser,
    State(st): State<AppState>,
    Path(chat_id): Path<i64>,
    Form(form): Form<LinkForm>,
) -> PageResult {
    let again = |error: &'static str| {
        let st = st.clone();
        let page = page.clone();
        let p = SearchParams {
            id: form.id.clone(),
            name: form.name.clone(),
            phone: form.phone.clone(),
            ..Default::default()
        };
        async move {
            let mut l = link_view(&st, &page, chat_id, p).await?;
            l.error = Some(error);
            Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &l))
        }
    };
    let Ok(customer_id) = form.customer_id.trim().parse::<i64>() else {
        return again("customers.error.select").await;
    };
    match st
        .store
        .link_conversation(chat_id, customer_id, Some(page.user().id), st.now_ms())
        .await?
    {
        LinkOutcome::Linked { .. } | LinkOutcome::Unchanged => {
            tracing::info!(agent = %page.user().login, chat = chat_id, customer = customer_id, "LINE user linked");
            Ok(Redirect::to(&format!("/chats/{chat_id}")).into_response())
        }
        LinkOutcome::NoCustomer => again("customers.error.not_found").await,
        LinkOutcome::NoConversation => Err(PageError::NotFound("common.error.not_found")),
    }
}

/// 関連付けを解除 on the 顧客 page: back to the chat.
async fn unlink_from_chat(
    page: PageUser,
    State(st): State<AppState>,
    Path(chat_id): Path<i64>,
) -> PageResult {
    match st
        .store
        .unlink_conversation(chat_id, Some(page.user().id), st.now_ms())
        .await?
    {
        UnlinkOutcome::Unlinked { .. } | UnlinkOutcome::NotLinked => {
            Ok(Redirect::to(&format!("/chats/{chat_id}")).into_response())
        }
        UnlinkOutcome::NoConversation => Err(PageError::NotFound("common.error.not_found")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_query_string_keeps_filled_fields() {
        let p = SearchParams {
            id: " #C15 ".into(),
            name: "山田".into(),
            ..Default::default()
        };
        assert_eq!(p.query_string(), "id=%23C15&name=%E5%B1%B1%E7%94%B0");
        assert!(!p.query().is_empty());
        assert!(SearchParams::default().query().is_empty());
    }

    #[test]
    fn datetime_local_values_are_in_the_desk_time_zone() {
        let tz = chrono_tz::Asia::Tokyo;
        // 2024-01-01 01:00 UTC = 10:00 JST
        assert_eq!(local_input(1_704_070_800_000, tz), "2024-01-01T10:00");
    }
}
