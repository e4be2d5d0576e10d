//! 顧客, the chat's link dialog as its own page (`/chats/{id}/customer`): search, pick one,
//! 実行 links, 戻る returns; 関連付けを解除 unlinks.

use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use desk_core::customer_code::format_code;
use desk_store::customers::{LinkOutcome, UnlinkOutcome};
use serde::Deserialize;

use super::parts::*;
use crate::AppState;
use crate::page::{PageCtx, PageError, PageResult, PageUser, render, render_status};

/// Rows of the 顧客 dialog's result list: a short page, paged with ‹ › like the manual's
/// dialog ("1 - 10 / 35").
const LINK_PAGE_SIZE: i64 = 10;

#[derive(Template)]
#[template(path = "customers_link.html")]
pub(super) struct LinkPage {
    pub(super) ctx: PageCtx,
    pub(super) chat_id: i64,
    pub(super) chat_name: String,
    pub(super) current: Option<(i64, String)>,
    pub(super) p: SearchParams,
    pub(super) searched: bool,
    pub(super) rows: Vec<CustomerLine>,
    pub(super) range: String,
    pub(super) next_href: Option<String>,
    pub(super) prev_href: Option<String>,
    pub(super) error: Option<&'static str>,
}

pub(super) async fn link_view(
    st: &AppState,
    page: &PageUser,
    chat_id: i64,
    p: SearchParams,
) -> Result<LinkPage, PageError> {
    let ctx = page.ctx_t("customers-link-title");
    let chat = st
        .store
        .conversation(chat_id)
        .await?
        .ok_or(PageError::NotFound("common-error-not_found"))?;
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

pub(super) async fn link_page(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<SearchParams>,
) -> PageResult {
    Ok(render(&link_view(&st, &page, id, p).await?))
}

#[derive(Deserialize, Default)]
pub(super) struct LinkForm {
    #[serde(default)]
    pub(super) customer_id: String,
    /// The search that showed the list (to show it again after an error).
    #[serde(default)]
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) phone: String,
}

/// 実行: links and returns to the chat.
pub(super) async fn link(
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
        return again("customers-error-select").await;
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
        LinkOutcome::NoCustomer => again("customers-error-not_found").await,
        LinkOutcome::NoConversation => Err(PageError::NotFound("common-error-not_found")),
    }
}

/// 関連付けを解除 on the 顧客 page: back to the chat.
pub(super) async fn unlink_from_chat(
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
        UnlinkOutcome::NoConversation => Err(PageError::NotFound("common-error-not_found")),
    }
}
