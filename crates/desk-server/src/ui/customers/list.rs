//! 顧客一覧: the customer search and the form that registers one.

use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};

use super::parts::*;
use crate::AppState;
use crate::input::customers::{clean_fields, split_tags};
use crate::page::{PageCtx, PageError, PageResult, PageUser, render, render_status};

/// Rows per page of the customer list.
const PAGE_SIZE: i64 = 50;

#[derive(Template)]
#[template(path = "customers.html")]
pub(super) struct ListPage {
    pub(super) ctx: PageCtx,
    pub(super) p: SearchParams,
    pub(super) rows: Vec<CustomerLine>,
    pub(super) searched: bool,
    /// "1 - 50 / 120" of this page.
    pub(super) range: String,
    pub(super) next_href: Option<String>,
    pub(super) prev_href: Option<String>,
    pub(super) ok: Option<&'static str>,
    pub(super) error: Option<&'static str>,
    pub(super) form: CustomerForm,
    pub(super) form_error: Option<&'static str>,
}

pub(super) async fn list(
    st: &AppState,
    page: &PageUser,
    p: SearchParams,
) -> Result<ListPage, PageError> {
    let ctx = page.ctx_t("customers-title");
    let (found, error) = search(st, &ctx, &p, PAGE_SIZE, "/customers").await?.shown();
    let ok = match p.msg.as_str() {
        "deleted" => Some("customers-msg-deleted"),
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

pub(super) async fn list_page(
    page: PageUser,
    State(st): State<AppState>,
    Query(p): Query<SearchParams>,
) -> PageResult {
    Ok(render(&list(&st, &page, p).await?))
}

/// 顧客の新規登録: to the new customer's detail page.
pub(super) async fn create(
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
