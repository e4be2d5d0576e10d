//! LINEチャット一覧 (V1): the filters, the rows, paging, and the rows alone for live refreshes.

use askama::Template;
use axum::extract::{Query, State};
use desk_core::ConversationStatus;
use desk_core::customer_code::{format_code, parse_code_query};
use desk_store::conversations::ConversationRow;
use serde::Deserialize;

use super::head::{display_name, status_key};
use crate::AppState;
use crate::auth::percent_encode;
use crate::input::chat_list::ListQuery;
use crate::page::{PageCtx, PageError, PageResult, PageUser, render};
use crate::time::short;

/// Rows per page of the list.
const PAGE_SIZE: i64 = 50;

/// The filter form's values, as typed (shown again in the form).
#[derive(Deserialize, Default, Clone)]
pub(super) struct ListParams {
    #[serde(default)]
    pub(super) customer_id: String,
    #[serde(default)]
    pub(super) customer_name: String,
    #[serde(default)]
    pub(super) phone: String,
    #[serde(default)]
    pub(super) registered: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) agent: String,
    #[serde(default)]
    pub(super) after: String,
}

impl ListParams {
    pub(super) fn filters(&self) -> [(&'static str, &str); 6] {
        [
            ("customer_id", self.customer_id.as_str()),
            ("customer_name", self.customer_name.as_str()),
            ("phone", self.phone.as_str()),
            ("registered", self.registered.as_str()),
            ("status", self.status.as_str()),
            ("agent", self.agent.as_str()),
        ]
    }

    /// The non-empty filters as a query string (no `after`), e.g. `status=unread&agent=sato`.
    pub(super) fn query(&self) -> String {
        self.filters()
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }

    pub(super) fn is_filtered(&self) -> bool {
        self.filters().iter().any(|(_, v)| !v.trim().is_empty())
    }

    pub(super) fn to_query(&self) -> ListQuery {
        let opt = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
        ListQuery {
            customer_id: opt(&self.customer_id),
            customer_name: opt(&self.customer_name),
            phone: opt(&self.phone),
            registered: opt(&self.registered),
            status: opt(&self.status),
            agent: opt(&self.agent),
            limit: Some(PAGE_SIZE),
            after: opt(&self.after),
        }
    }
}

/// One row of the list.
pub(super) struct RowView {
    pub(super) id: i64,
    /// LINE's display name, or the LINE user id while the profile is not fetched.
    pub(super) name: String,
    pub(super) name_is_id: bool,
    pub(super) blocked: bool,
    pub(super) customer_code: String,
    pub(super) customer_name: String,
    pub(super) status: ConversationStatus,
    pub(super) agent: String,
    /// The agent holds the chat now (in progress), rather than having handled it last.
    pub(super) agent_is_current: bool,
    pub(super) started_at: String,
    pub(super) last_message_at: String,
    pub(super) unread: i64,
}

impl RowView {
    pub(super) fn new(c: ConversationRow, tz: chrono_tz::Tz) -> RowView {
        let (name, name_is_id) = display_name(&c);
        RowView {
            id: c.id,
            name,
            name_is_id,
            blocked: c.blocked,
            customer_code: c.customer_id.map(format_code).unwrap_or_default(),
            customer_name: c.customer_name.unwrap_or_default(),
            agent_is_current: c.status == ConversationStatus::InProgress,
            status: c.status,
            agent: c.agent_name.unwrap_or_default(),
            started_at: c.started_at.map(|t| short(t, tz)).unwrap_or_default(),
            last_message_at: short(c.last_message_at, tz),
            unread: c.unread_count,
        }
    }

    pub(super) fn status_key(&self) -> String {
        status_key(self.status)
    }
}

#[derive(Template)]
#[template(path = "chats.html")]
pub(super) struct ListPage {
    pub(super) ctx: PageCtx,
    pub(super) p: ListParams,
    pub(super) rows: Vec<RowView>,
    pub(super) error: Option<String>,
    pub(super) next_href: Option<String>,
    pub(super) first_href: Option<String>,
    pub(super) rows_href: String,
    pub(super) filtered: bool,
}

#[derive(Template)]
#[template(path = "chats.html", block = "results")]
pub(super) struct ListRows {
    pub(super) ctx: PageCtx,
    pub(super) rows: Vec<RowView>,
    pub(super) error: Option<String>,
    pub(super) next_href: Option<String>,
    pub(super) first_href: Option<String>,
    pub(super) rows_href: String,
    pub(super) filtered: bool,
}

/// The rows, paging links and any error of the list with these filters.
pub(super) async fn load_rows(
    st: &AppState,
    ctx: &PageCtx,
    p: &ListParams,
) -> Result<ListRows, PageError> {
    let base = p.query();
    let rows_href = if p.after.trim().is_empty() {
        format!("/chats/rows?{base}")
    } else {
        format!(
            "/chats/rows?{base}&after={}",
            percent_encode(p.after.trim())
        )
    };
    let mut out = ListRows {
        ctx: ctx.clone(),
        rows: Vec::new(),
        error: None,
        next_href: None,
        first_href: (!p.after.trim().is_empty()).then(|| format!("/chats?{base}")),
        rows_href,
        filtered: p.is_filtered(),
    };
    let id = p.customer_id.trim();
    if !id.is_empty() && parse_code_query(id).is_none() {
        out.error = Some(ctx.t("chats-error-customer_id").to_owned());
        return Ok(out);
    }
    let filter = match p.to_query().to_filter() {
        Ok(f) => f,
        Err(e) => {
            out.error = Some(e.message_in(ctx.locale));
            return Ok(out);
        }
    };
    let rows = st.store.list_conversations(&filter).await?;
    if rows.len() as i64 == filter.limit
        && let Some(last) = rows.last()
    {
        let sep = if base.is_empty() { "" } else { "&" };
        out.next_href = Some(format!(
            "/chats?{base}{sep}after={}_{}",
            last.last_message_at, last.id
        ));
    }
    let tz = st.config.time_zone;
    out.rows = rows.into_iter().map(|r| RowView::new(r, tz)).collect();
    Ok(out)
}

pub(super) async fn list_page(
    page: PageUser,
    State(st): State<AppState>,
    Query(p): Query<ListParams>,
) -> PageResult {
    let ctx = page.ctx_t("chats-title");
    let r = load_rows(&st, &ctx, &p).await?;
    Ok(render(&ListPage {
        ctx,
        p,
        rows: r.rows,
        error: r.error,
        next_href: r.next_href,
        first_href: r.first_href,
        rows_href: r.rows_href,
        filtered: r.filtered,
    }))
}

/// The list's results alone, for live refreshes.
pub(super) async fn list_rows(
    page: PageUser,
    State(st): State<AppState>,
    Query(p): Query<ListParams>,
) -> PageResult {
    let ctx = page.ctx_t("chats-title");
    Ok(render(&load_rows(&st, &ctx, &p).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_keeps_only_filled_filters() {
        let p = ListParams {
            customer_name: "山田 花子".into(),
            status: "unread".into(),
            agent: " ".into(),
            ..Default::default()
        };
        assert_eq!(
            p.query(),
            "customer_name=%E5%B1%B1%E7%94%B0%20%E8%8A%B1%E5%AD%90&status=unread"
        );
        assert!(p.is_filtered());
        assert!(!ListParams::default().is_filtered());
    }
}
