//! What the customer pages share: the search (one page of results, its range and paging
//! links) and the fields of the register and edit forms.

use chrono_tz::Tz;
use desk_store::customers::{CustomerRow, LinkedChat};
use serde::Deserialize;

use crate::AppState;
use crate::auth::percent_encode;
use crate::input::customers::SearchQuery;
use crate::page::{PageCtx, PageError};
use crate::time::short;

/// A customer as a row of a list.
pub(super) struct CustomerLine {
    pub(super) id: i64,
    pub(super) code: String,
    pub(super) name: String,
    pub(super) phone: String,
    pub(super) tags: Vec<String>,
    pub(super) line_users: usize,
    pub(super) updated_at: String,
}

impl CustomerLine {
    pub(super) fn new(c: CustomerRow, chats: &[LinkedChat], tz: Tz) -> CustomerLine {
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
pub(super) struct SearchParams {
    #[serde(default)]
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) phone: String,
    #[serde(default)]
    pub(super) before: String,
    #[serde(default)]
    pub(super) after: String,
    #[serde(default)]
    pub(super) msg: String,
}

impl SearchParams {
    pub(super) fn query(&self) -> SearchQuery {
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
    pub(super) fn query_string(&self) -> String {
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
pub(super) struct SearchPage {
    pub(super) rows: Vec<CustomerLine>,
    pub(super) range: String,
    pub(super) next_href: Option<String>,
    pub(super) prev_href: Option<String>,
}

impl SearchPage {
    pub(super) fn empty() -> SearchPage {
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
pub(super) enum Searched {
    Found(SearchPage),
    Refused(&'static str),
}

impl Searched {
    /// The page to show and the error above it.
    pub(super) fn shown(self) -> (SearchPage, Option<&'static str>) {
        match self {
            Searched::Found(page) => (page, None),
            Searched::Refused(key) => (SearchPage::empty(), Some(key)),
        }
    }
}

/// Runs a search for the page at `base_path` (`/customers`, `/chats/3/customer`).
pub(super) async fn search(
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
            "customers-range",
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
pub(super) struct CustomerForm {
    #[serde(default)]
    pub(super) name: String,
    #[serde(default)]
    pub(super) phone: String,
    #[serde(default)]
    pub(super) email: String,
    #[serde(default)]
    pub(super) notes: String,
    #[serde(default)]
    pub(super) tags: String,
}

impl CustomerForm {
    pub(super) fn of(c: &CustomerRow) -> CustomerForm {
        CustomerForm {
            name: c.name.clone(),
            phone: c.phone.clone(),
            email: c.email.clone(),
            notes: c.notes.clone(),
            tags: c.tag_list().join(", "),
        }
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
}
