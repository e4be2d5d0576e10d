//! 顧客詳細: edit (変更を保存), the linked LINE accounts, パスコード登録、更新, 削除する and
//! 変更履歴.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use chrono::DateTime;
use chrono_tz::Tz;
use desk_core::{HistoryAction, LinkVia};
use desk_store::StoreError;
use desk_store::customers::{CustomerPatch, HistoryRow};
use serde::Deserialize;

use super::parts::*;
use crate::AppState;
use crate::input::InputError;
use crate::input::customers::{
    HISTORY_LIMIT, clean_email, clean_name, clean_notes, clean_phone, clean_tags, passcode_expiry,
    split_tags,
};
use crate::page::{PageCtx, PageError, PageResult, PageUser, render, render_status};
use crate::time::short;

/// A LINE account linked to the customer.
pub(super) struct ChatLine {
    pub(super) conversation_id: i64,
    pub(super) name: String,
    pub(super) line_user_id: String,
    pub(super) status: desk_core::ConversationStatus,
}

impl ChatLine {
    fn status_key(&self) -> String {
        format!("common-status-{}", self.status)
    }
}

/// One line of 変更履歴, ready to show.
pub(super) struct HistoryLine {
    pub(super) at: String,
    pub(super) who: String,
    pub(super) action_key: String,
    pub(super) field_key: String,
    pub(super) old: String,
    pub(super) new: String,
    /// What else there is to say (via a passcode, the expiry, …), translated.
    pub(super) note: String,
    pub(super) chat_href: Option<String>,
    pub(super) line_user_id: String,
}

impl HistoryLine {
    fn new(h: HistoryRow, ctx: &PageCtx, tz: Tz) -> HistoryLine {
        let via = h.via();
        let who = match (&h.actor_name, via) {
            (Some(name), _) => name.clone(),
            (None, Some(LinkVia::Passcode)) => ctx.t("customers-history-by_line").to_owned(),
            (None, _) => ctx.t("customers-history-system").to_owned(),
        };
        let note = match (h.action, via) {
            (HistoryAction::Linked, Some(LinkVia::Passcode)) => ctx.tf(
                "customers-history-via_passcode",
                [("code", h.new_value.as_deref().unwrap_or_default())],
            ),
            (HistoryAction::Unlinked, Some(LinkVia::Deleted)) => {
                ctx.t("customers-history-via_deleted").to_owned()
            }
            (HistoryAction::Unlinked, Some(LinkVia::Passcode)) => {
                ctx.t("customers-history-via_other").to_owned()
            }
            (HistoryAction::PasscodeIssued, _) => h
                .valid_until
                .map(|t| {
                    ctx.tf(
                        "customers-history-valid_until",
                        [("at", short(t, tz).as_str())],
                    )
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let (old, new) = match h.action {
            // The passcode is the note of a link, not a value.
            HistoryAction::Linked | HistoryAction::Unlinked => (String::new(), String::new()),
            _ => (
                h.old_value.unwrap_or_default(),
                h.new_value.unwrap_or_default(),
            ),
        };
        HistoryLine {
            at: short(h.at, tz),
            who,
            action_key: format!("customers-action-{}", h.action),
            field_key: h
                .field
                .filter(|f| desk_store::customers::FIELDS.contains(&f.as_str()))
                .map(|f| format!("customers-field-{f}"))
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
pub(super) struct DetailPage {
    pub(super) ctx: PageCtx,
    pub(super) id: i64,
    pub(super) code: String,
    pub(super) heading: String,
    pub(super) form: CustomerForm,
    pub(super) tags: Vec<String>,
    pub(super) created_at: String,
    pub(super) updated_at: String,
    pub(super) chats: Vec<ChatLine>,
    pub(super) passcode: Option<String>,
    pub(super) passcode_until: String,
    pub(super) passcode_expired: bool,
    /// The expiry field's value (`datetime-local`, the desk's time zone).
    pub(super) valid_until_value: String,
    pub(super) history: Vec<HistoryLine>,
    pub(super) ok: Option<&'static str>,
    pub(super) ok_text: Option<String>,
    pub(super) error: Option<&'static str>,
    pub(super) passcode_error: Option<&'static str>,
}

pub(super) fn local_input(ms: i64, tz: Tz) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

/// The detail page of customer `id`, or the 404 page.
pub(super) async fn detail(
    st: &AppState,
    page: &PageUser,
    id: i64,
) -> Result<DetailPage, PageError> {
    let ctx = page.ctx_t("customers-detail-title");
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
        ctx.t("customers-detail-title")
    );
    let heading = ctx.tf("customers-detail-heading", [("code", c.code().as_str())]);
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
pub(super) struct MsgQuery {
    #[serde(default)]
    pub(super) msg: String,
}

pub(super) async fn detail_page(
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
                    .tf("customers-msg-created", [("code", d.code.as_str())]),
            );
        }
        "saved" => d.ok = Some("customers-msg-saved"),
        "unchanged" => d.ok = Some("customers-msg-unchanged"),
        "passcode" => d.ok = Some("customers-msg-passcode"),
        "unlinked" => d.ok = Some("customers-msg-unlinked"),
        _ => {}
    }
    Ok(render(&d))
}

pub(super) fn back(id: i64, msg: &str) -> PageResult {
    Ok(Redirect::to(&format!("/customers/{id}?msg={msg}")).into_response())
}

/// The customer is gone (deleted meanwhile, or a wrong link).
pub(super) const NOT_FOUND: PageError = PageError::NotFound("customers-error-not_found");

/// The store's "no such customer" as the customer 404 page.
pub(super) fn missing(e: StoreError) -> PageError {
    match e {
        StoreError::NotFound => NOT_FOUND,
        other => other.into(),
    }
}

/// 変更を保存.
pub(super) async fn save(
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
pub(super) async fn delete(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> PageResult {
    st.store
        .delete_customer(id, Some(page.user().id), st.now_ms())
        .await
        .map_err(missing)?;
    tracing::info!(agent = %page.user().login, customer = id, "customer deleted");
    Ok(Redirect::to("/customers?msg=deleted").into_response())
}

#[derive(Deserialize, Default)]
pub(super) struct PasscodeForm {
    #[serde(default)]
    pub(super) valid_until: String,
}

/// パスコード登録、更新.
pub(super) async fn issue_passcode(
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
pub(super) async fn unlink_from_customer(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_local_values_are_in_the_desk_time_zone() {
        let tz = chrono_tz::Asia::Tokyo;
        // 2024-01-01 01:00 UTC = 10:00 JST
        assert_eq!(local_input(1_704_070_800_000, tz), "2024-01-01T10:00");
    }
}
