//! LINEチャット詳細 (V2): the page, its header and history as fragments for live refreshes, the
//! From/To range (C8), and the text of a new message's notification.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use chrono::{Duration, NaiveDate};
use desk_core::{Direction, MessageKind};
use serde::Deserialize;
use serde_json::json;

use super::head::{HeadFacts, HeadView, display_name};
use super::messages::{Body, HistoryFacts, MsgView};
use crate::AppState;
use crate::page::{PageCtx, PageError, PageResult, PageUser, render};
use crate::time::{date_of, day_start_ms, parse_date};

/// `?from=&to=` of the detail, as typed.
#[derive(Deserialize, Default)]
pub(super) struct RangeParams {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// The history range: the dates shown in From/To, the `[from, to)` instants, and whether
/// the typed range was refused (then the last 7 days are shown).
pub(super) struct Range {
    from: NaiveDate,
    to: NaiveDate,
    error: bool,
}

impl Range {
    fn parse(p: &RangeParams, now_ms: i64, tz: chrono_tz::Tz) -> Range {
        let today = date_of(now_ms, tz);
        let default = Range {
            from: today - Duration::days(6),
            to: today,
            error: false,
        };
        let date = |s: &str| -> Result<Option<NaiveDate>, ()> {
            let s = s.trim();
            if s.is_empty() {
                Ok(None)
            } else {
                parse_date(s).map(Some).map_err(|_| ())
            }
        };
        match (date(&p.from), date(&p.to)) {
            (Ok(from), Ok(to)) => {
                let to = to.unwrap_or(today);
                let from = from.unwrap_or(to - Duration::days(6));
                if from > to {
                    Range {
                        error: true,
                        ..default
                    }
                } else {
                    Range {
                        from,
                        to,
                        error: false,
                    }
                }
            }
            _ => Range {
                error: true,
                ..default
            },
        }
    }

    fn bounds_ms(&self, tz: chrono_tz::Tz) -> (i64, i64) {
        let end = self.to.succ_opt().unwrap_or(self.to);
        (day_start_ms(self.from, tz), day_start_ms(end, tz))
    }
}

#[derive(Template)]
#[template(path = "chats_detail.html")]
pub(super) struct DetailPage {
    ctx: PageCtx,
    head: HeadView,
    msgs: Vec<MsgView>,
    from: String,
    to: String,
    range_error: bool,
    history_href: String,
}

#[derive(Template)]
#[template(path = "chats_detail.html", block = "header")]
pub(super) struct HeaderFragment {
    ctx: PageCtx,
    head: HeadView,
}

#[derive(Template)]
#[template(path = "chats_detail.html", block = "history")]
pub(super) struct HistoryFragment {
    ctx: PageCtx,
    msgs: Vec<MsgView>,
}

pub(super) async fn load_head(
    st: &AppState,
    page: &PageUser,
    ctx: &PageCtx,
    id: i64,
) -> Result<HeadView, PageError> {
    let c = st
        .store
        .conversation(id)
        .await?
        .ok_or(PageError::NotFound("common-error-not_found"))?;
    let now = st.now_ms();
    let window = st.reply_window_ms();
    let newest = st.store.newest_reply_token_at(id, now - window).await?;
    let facts = HeadFacts {
        mode: st.line.current().mode,
        reply_until: newest.map(|at| at + window).filter(|until| *until > now),
        window_ms: window,
        waiting: st.store.waiting_count(id).await?,
    };
    let user = page.user();
    Ok(HeadView::new(
        c,
        user.id,
        user.is_admin(),
        ctx,
        st.config.time_zone,
        facts,
    ))
}

pub(super) async fn load_history(
    st: &AppState,
    page: &PageUser,
    ctx: &PageCtx,
    id: i64,
    range: &Range,
) -> Result<Vec<MsgView>, PageError> {
    let tz = st.config.time_zone;
    let now = st.now_ms();
    let (from, to) = range.bounds_ms(tz);
    let state = st
        .store
        .send_context(id)
        .await?
        .map(|c| c.state)
        .unwrap_or_default();
    // In the order the customer saw them; what still waits last (when the range reaches now).
    let rows = st.store.history(id, from, to, to > now).await?;
    let user = page.user();
    let facts = HistoryFacts {
        ctx,
        tz,
        mode: st.line.current().mode,
        state,
        viewer: desk_core::Actor {
            agent_id: user.id,
            is_admin: user.is_admin(),
        },
        now_ms: now,
    };
    Ok(rows.into_iter().map(|m| MsgView::new(m, &facts)).collect())
}

pub(super) async fn detail_page(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<RangeParams>,
) -> PageResult {
    let mut ctx = page.ctx_t("chats-detail-title");
    let head = load_head(&st, &page, &ctx, id).await?;
    ctx.title = format!("{} - {}", head.name, ctx.t("chats-detail-title"));
    let tz = st.config.time_zone;
    let range = Range::parse(&p, st.now_ms(), tz);
    let msgs = load_history(&st, &page, &ctx, id, &range).await?;
    // Live refreshes ask for what the page shows: the typed range, or (none typed) the
    // default range as of the refresh, so a page left open past midnight keeps up.
    let history_href = if range.error || (p.from.trim().is_empty() && p.to.trim().is_empty()) {
        format!("/chats/{id}/history")
    } else {
        format!("/chats/{id}/history?from={}&to={}", range.from, range.to)
    };
    Ok(render(&DetailPage {
        ctx,
        head,
        msgs,
        from: range.from.to_string(),
        to: range.to.to_string(),
        range_error: range.error,
        history_href,
    }))
}

pub(super) async fn detail_header(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> PageResult {
    let ctx = page.ctx_t("chats-detail-title");
    let head = load_head(&st, &page, &ctx, id).await?;
    Ok(render(&HeaderFragment { ctx, head }))
}

pub(super) async fn detail_history(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<RangeParams>,
) -> PageResult {
    let ctx = page.ctx_t("chats-detail-title");
    let range = Range::parse(&p, st.now_ms(), st.config.time_zone);
    let msgs = load_history(&st, &page, &ctx, id, &range).await?;
    Ok(render(&HistoryFragment { ctx, msgs }))
}

/// How long after it arrived a customer message still rings (a page opened later, or a
/// content fetch announcing the same message again, stays quiet).
pub(super) const NOTICE_FRESH_MS: i64 = 60_000;

/// What the browser needs to announce a new message (sound, desktop notification):
/// whether it came from the customer and just now, and a title and text for it. JSON; the
/// browser shows it with `textContent`/the Notification API, never as HTML.
pub(super) async fn notice(
    page: PageUser,
    State(st): State<AppState>,
    Path((id, message_id)): Path<(i64, i64)>,
) -> PageResult {
    let ctx = page.ctx_t("chats-title");
    let (m, c) = match (
        st.store.message(message_id).await?,
        st.store.conversation(id).await?,
    ) {
        (Some(m), Some(c)) if m.conversation_id == id => (m, c),
        _ => return Err(PageError::NotFound("common-error-not_found")),
    };
    let (name, _) = display_name(&c);
    let body = match (m.kind, m.text.as_deref()) {
        (MessageKind::Text, Some(t)) => t.chars().take(140).collect(),
        (kind, _) => format!("[{}]", ctx.t(&MsgView::kind_key(kind.as_str()))),
    };
    let v = json!({
        "incoming": m.direction == Direction::In,
        "fresh": st.now_ms() - m.created_at < NOTICE_FRESH_MS,
        "title": ctx.tf("chats-notify-title", [("name", name.as_str())]),
        "body": body,
        "url": format!("/chats/{id}"),
    });
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], Json(v)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_defaults_to_the_last_week_and_refuses_reversed_dates() {
        use chrono::TimeZone;
        let tz = chrono_tz::Asia::Tokyo;
        let now = tz
            .with_ymd_and_hms(2017, 7, 20, 4, 6, 0)
            .unwrap()
            .timestamp_millis();
        let r = Range::parse(&RangeParams::default(), now, tz);
        assert_eq!(
            (r.from.to_string(), r.to.to_string(), r.error),
            ("2017-07-14".into(), "2017-07-20".into(), false)
        );
        let typed = RangeParams {
            from: "2017-07-15".into(),
            to: "2017-07-16".into(),
        };
        let r = Range::parse(&typed, now, tz);
        assert_eq!(
            (r.from.to_string(), r.to.to_string(), r.error),
            ("2017-07-15".into(), "2017-07-16".into(), false)
        );
        let reversed = RangeParams {
            from: "2017-07-18".into(),
            to: "2017-07-16".into(),
        };
        assert!(Range::parse(&reversed, now, tz).error);
        let garbage = RangeParams {
            from: "yesterday".into(),
            to: String::new(),
        };
        let r = Range::parse(&garbage, now, tz);
        assert!(r.error);
        assert_eq!(r.to.to_string(), "2017-07-20");
    }
}
