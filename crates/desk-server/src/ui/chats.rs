//! CRM > LINEチャット: the chat list (LINEチャット一覧, V1) and the chat detail
//! (LINEチャット詳細, V2) of the vendor manual, server-rendered with askama.
//!
//! The pages read the store directly; every change (status, sending, resending, marking
//! read) goes through the JSON API from `assets/chats.js`, so the UI and integrators share
//! one set of rules. Live updates (B2): the script listens to `/api/v1/events` and
//! re-fetches the parts that changed as fragments rendered from the same templates
//! (`/chats/rows`, `/chats/{id}/header`, `/chats/{id}/history`) — the data is escaped here,
//! never assembled into HTML in the browser (display names are chosen by LINE users).

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::{Duration, NaiveDate};
use desk_core::customer_code::{format_code, parse_code_query};
use desk_core::{ConversationStatus, Delivery, Direction};
use desk_store::conversations::ConversationRow;
use desk_store::messages::MessageRow;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::percent_encode;
use crate::input::chat_list::ListQuery;
use crate::page::{PageCtx, PageError, PageResult, PageUser, render};
use crate::time::{date_of, day_start_ms, parse_date, short};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/chats", get(list_page))
        .route("/chats/rows", get(list_rows))
        .route("/chats/{id}", get(detail_page))
        .route("/chats/{id}/header", get(detail_header))
        .route("/chats/{id}/history", get(detail_history))
        .route("/chats/{id}/notice/{message_id}", get(notice))
}

/// Rows per page of the list.
const PAGE_SIZE: i64 = 50;

// ---- the list (V1) --------------------------------------------------------------------

/// The filter form's values, as typed (shown again in the form).
#[derive(Deserialize, Default, Clone)]
pub struct ListParams {
    #[serde(default)]
    customer_id: String,
    #[serde(default)]
    customer_name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    registered: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    after: String,
}

impl ListParams {
    fn filters(&self) -> [(&'static str, &str); 6] {
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
    fn query(&self) -> String {
        self.filters()
            .iter()
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| format!("{k}={}", percent_encode(v.trim())))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn is_filtered(&self) -> bool {
        self.filters().iter().any(|(_, v)| !v.trim().is_empty())
    }

    fn to_query(&self) -> ListQuery {
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
pub struct RowView {
    id: i64,
    /// LINE's display name, or the LINE user id while the profile is not fetched.
    name: String,
    name_is_id: bool,
    blocked: bool,
    customer_code: String,
    customer_name: String,
    status: ConversationStatus,
    agent: String,
    /// The agent holds the chat now (in progress), rather than having handled it last.
    agent_is_current: bool,
    started_at: String,
    last_message_at: String,
    unread: i64,
}

impl RowView {
    fn new(c: ConversationRow, tz: chrono_tz::Tz) -> RowView {
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

    fn status_key(&self) -> String {
        status_key(self.status)
    }
}

/// A line the desk itself wrote into a chat (a `messages` row with direction `system`),
/// shown in the viewer's language. Today: `customer_linked`, after a LINE passcode linked
/// the chat ("#C15 山田花子 と関連付けました").
pub struct SystemLine {
    event: String,
    code: String,
    name: String,
    /// The stored text (Japanese), for events this build does not know.
    text: String,
}

impl SystemLine {
    pub fn new(details: &serde_json::Value, text: Option<&str>) -> SystemLine {
        let s = |k: &str| details[k].as_str().unwrap_or_default().to_owned();
        SystemLine {
            event: s("event"),
            code: s("customer_code"),
            name: s("customer_name"),
            text: text.unwrap_or_default().to_owned(),
        }
    }

    pub fn render(&self, ctx: &PageCtx) -> String {
        match self.event.as_str() {
            "customer_linked" => ctx.tf(
                "customers.system.linked",
                [("code", self.code.as_str()), ("name", self.name.as_str())],
            ),
            _ => self.text.clone(),
        }
    }
}

fn status_key(status: ConversationStatus) -> String {
    format!("common.status.{status}")
}

/// (what to show as the name, whether it is the LINE user id in its place)
fn display_name(c: &ConversationRow) -> (String, bool) {
    match c.display_name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => (n.to_owned(), false),
        _ => (c.line_user_id.clone(), true),
    }
}

#[derive(Template)]
#[template(path = "chats.html")]
struct ListPage {
    ctx: PageCtx,
    p: ListParams,
    rows: Vec<RowView>,
    error: Option<String>,
    next_href: Option<String>,
    first_href: Option<String>,
    rows_href: String,
    filtered: bool,
}

#[derive(Template)]
#[template(path = "chats.html", block = "results")]
struct ListRows {
    ctx: PageCtx,
    rows: Vec<RowView>,
    error: Option<String>,
    next_href: Option<String>,
    first_href: Option<String>,
    rows_href: String,
    filtered: bool,
}

/// The rows, paging links and any error of the list with these filters.
async fn load_rows(st: &AppState, ctx: &PageCtx, p: &ListParams) -> Result<ListRows, PageError> {
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
        out.error = Some(ctx.t("chats.error.customer_id").to_owned());
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

async fn list_page(
    page: PageUser,
    State(st): State<AppState>,
    Query(p): Query<ListParams>,
) -> PageResult {
    let ctx = page.ctx_t("chats.title");
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
async fn list_rows(
    page: PageUser,
    State(st): State<AppState>,
    Query(p): Query<ListParams>,
) -> PageResult {
    let ctx = page.ctx_t("chats.title");
    Ok(render(&load_rows(&st, &ctx, &p).await?))
}

// ---- the detail (V2) ------------------------------------------------------------------

/// The header of the detail: who, which customer, who handles it, the status, and how
/// messages go out (the mode, and in Reply mode whether a reply token is usable now).
pub struct HeadView {
    id: i64,
    name: String,
    name_is_id: bool,
    blocked: bool,
    line_user_id: String,
    customer: Option<String>,
    status: ConversationStatus,
    agent: String,
    agent_is_current: bool,
    started_at: String,
    /// The viewer is the handling agent of the in-progress chat (C4).
    can_send: bool,
    /// Why the viewer cannot send (translated), or empty.
    send_hint: String,
    /// Someone else holds the chat: who and since when, said up front (translated), or empty.
    lock_notice: String,
    /// The viewer may press none of the status buttons (another agent holds the chat).
    status_locked: bool,
    /// An admin viewing another agent's chat: 未読/完了 release it, 対応中 stays off.
    admin_release: bool,
    /// `reply` | `push`.
    mode: desk_core::Mode,
    /// Reply mode: when the newest unused reply token stops being usable (unix ms), 0 if none.
    reply_until: i64,
    window_secs: i64,
    /// Messages waiting (未送信): 完了/未読 ask what to do with them.
    waiting: i64,
}

/// What the header needs besides the chat row.
pub struct HeadFacts {
    pub mode: desk_core::Mode,
    pub reply_until: Option<i64>,
    pub window_ms: i64,
    pub waiting: i64,
}

impl HeadView {
    fn new(
        c: ConversationRow,
        me: i64,
        me_admin: bool,
        ctx: &PageCtx,
        tz: chrono_tz::Tz,
        facts: HeadFacts,
    ) -> HeadView {
        let (name, name_is_id) = display_name(&c);
        let in_progress = c.status == ConversationStatus::InProgress;
        let mine = in_progress && c.agent_id == Some(me);
        let agent = c.agent_name.clone().unwrap_or_default();
        let started_at = c.started_at.map(|t| short(t, tz)).unwrap_or_default();
        let send_hint = if mine {
            if c.blocked {
                ctx.t("chats.detail.hint.blocked").to_owned()
            } else {
                String::new()
            }
        } else if in_progress {
            ctx.tf("chats.detail.hint.held", [("agent", agent.as_str())])
        } else {
            ctx.t("chats.detail.hint.take").to_owned()
        };
        let held_by_other = in_progress && !mine;
        let lock_notice = if held_by_other {
            let key = if me_admin {
                "chats.lock.held_admin"
            } else {
                "chats.lock.held"
            };
            ctx.tf(
                key,
                [("agent", agent.as_str()), ("since", started_at.as_str())],
            )
        } else {
            String::new()
        };
        HeadView {
            id: c.id,
            name,
            name_is_id,
            blocked: c.blocked,
            line_user_id: c.line_user_id,
            customer: c.customer_id.map(|id| {
                format!(
                    "{} {}",
                    format_code(id),
                    c.customer_name.unwrap_or_default()
                )
                .trim()
                .to_owned()
            }),
            agent_is_current: in_progress,
            status: c.status,
            agent,
            started_at,
            can_send: mine,
            send_hint,
            lock_notice,
            status_locked: held_by_other && !me_admin,
            admin_release: held_by_other && me_admin,
            mode: facts.mode,
            reply_until: facts.reply_until.unwrap_or(0),
            window_secs: facts.window_ms / 1000,
            waiting: facts.waiting,
        }
    }

    fn is_push(&self) -> bool {
        self.mode == desk_core::Mode::Push
    }
}

/// What a message shows in its bubble.
pub enum Body {
    Text(String),
    Image {
        url: String,
    },
    /// LINE's public image of the sticker, loaded by the agent's browser; `label` shows
    /// while it loads and when it cannot (no internet, an unknown sticker).
    Sticker {
        url: String,
        label: String,
    },
    Location {
        title: String,
        address: String,
        coords: String,
        map: String,
    },
    File {
        name: String,
        size: String,
        url: Option<String>,
    },
    Video {
        url: String,
    },
    Audio {
        url: String,
    },
    /// Content not fetched from LINE yet (retried in the background).
    Pending {
        kind: String,
    },
    /// LINE no longer had the content.
    MediaFailed {
        kind: String,
    },
    Other {
        kind: String,
    },
}

pub struct MsgView {
    id: i64,
    incoming: bool,
    body: Body,
    /// The agent who wrote it; for the desk's own answers, a label saying so.
    agent: String,
    /// The desk's own answer (the passcode confirmation), not an agent's.
    from_desk: bool,
    /// When the customer saw it: received, or (agent messages) delivered; else written.
    time: String,
    /// An agent message's times, labelled: 送信 (delivered) and 作成 (written).
    delivered: String,
    written: String,
    /// Both times to the second, for the tooltip: 作成 … / 送信 ….
    times_title: String,
    delivery: Delivery,
    /// Why it waits (未送信), translated.
    wait_reason: String,
    /// Why it failed (the desk's sentence, translated) and LINE's own words (quoted apart).
    problem: String,
    line_says: String,
    /// 取消 by whom and when (translated).
    cancelled_note: String,
    /// The viewer may take it back now (取消).
    can_cancel: bool,
    /// A customer's passcode attempt: the locale key of what came of it.
    passcode_key: Option<&'static str>,
    /// The press of 送信 it belongs to.
    group: i64,
    /// A line the desk wrote itself (direction `system`, e.g. a passcode link).
    system: Option<SystemLine>,
}

/// What every message of a history needs to be shown to this viewer.
pub struct HistoryFacts<'a> {
    pub ctx: &'a PageCtx,
    pub tz: chrono_tz::Tz,
    pub mode: desk_core::Mode,
    pub state: desk_core::ConversationState,
    pub viewer: desk_core::Actor,
    pub now_ms: i64,
}

/// LINE's public sticker image (what the LINE app shows), by sticker id.
pub fn sticker_image_url(sticker_id: &str) -> Option<String> {
    (!sticker_id.is_empty() && sticker_id.bytes().all(|b| b.is_ascii_digit())).then(|| {
        format!("https://stickershop.line-scdn.net/stickershop/v1/sticker/{sticker_id}/android/sticker.png")
    })
}

impl MsgView {
    fn new(m: MessageRow, f: &HistoryFacts<'_>) -> MsgView {
        let (ctx, tz) = (f.ctx, f.tz);
        let details: Value = m
            .payload
            .as_deref()
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or(Value::Null);
        let s = |k: &str| match &details[k] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let media_url = m.media_key.as_ref().map(|k| format!("/api/v1/media/{k}"));
        let media = |make: fn(String) -> Body| match (&media_url, m.media_state.as_str()) {
            (Some(url), _) => make(url.clone()),
            (None, "failed") => Body::MediaFailed {
                kind: m.kind.clone(),
            },
            (None, _) => Body::Pending {
                kind: m.kind.clone(),
            },
        };
        let body = match m.kind.as_str() {
            "text" => Body::Text(m.text.clone().unwrap_or_default()),
            "image" => media(|url| Body::Image { url }),
            "video" => media(|url| Body::Video { url }),
            "audio" => media(|url| Body::Audio { url }),
            "sticker" => {
                let words = s("text");
                let label = if words.is_empty() {
                    ctx.t("chats.msg.sticker").to_owned()
                } else {
                    format!("{}（{}）", ctx.t("chats.msg.sticker"), words)
                };
                match sticker_image_url(&s("sticker_id")) {
                    Some(url) => Body::Sticker { url, label },
                    None => Body::Other {
                        kind: m.kind.clone(),
                    },
                }
            }
            "location" => {
                let (lat, lon) = (s("latitude"), s("longitude"));
                Body::Location {
                    title: s("title"),
                    address: s("address"),
                    map: format!(
                        "https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=17/{lat}/{lon}"
                    ),
                    coords: format!("{lat}, {lon}"),
                }
            }
            "file" => {
                let size = details["file_size"]
                    .as_i64()
                    .map(human_size)
                    .unwrap_or_default();
                match (&media_url, m.media_state.as_str()) {
                    (None, "pending") => Body::Pending {
                        kind: m.kind.clone(),
                    },
                    (url, _) => Body::File {
                        name: s("file_name"),
                        size,
                        url: url.clone(),
                    },
                }
            }
            _ => {
                let t = s("message_type");
                Body::Other {
                    kind: if t.is_empty() { m.kind.clone() } else { t },
                }
            }
        };
        let incoming = m.direction == Direction::In;
        let outgoing = m.direction == Direction::Out;
        let from_desk = outgoing && m.agent_id.is_none();
        let wait_reason = crate::delivery_view::wait_reason(&m, f.mode, &f.state, f.now_ms)
            .map(|r| match r {
                crate::delivery_view::WaitReason::Retry { at } => {
                    ctx.tf("chats.wait.retry", [("at", short(at, tz).as_str())])
                }
                r => ctx.t(&format!("chats.wait.{}", r.code())).to_owned(),
            })
            .unwrap_or_default();
        let problem = crate::delivery_view::problem(&m);
        let can_cancel = m.outbox_state.as_deref() == Some("queued")
            && desk_core::status::may_cancel(&f.viewer, m.agent_id, &f.state);
        let cancelled_note = match (m.cancelled_at, &m.cancelled_by_name) {
            (Some(at), Some(name)) => ctx.tf(
                "chats.msg.cancelled_by",
                [("name", name.as_str()), ("at", short(at, tz).as_str())],
            ),
            (Some(at), None) => ctx.tf("chats.msg.cancelled_at", [("at", short(at, tz).as_str())]),
            _ => String::new(),
        };
        let passcode_key = match m.passcode_outcome.as_deref() {
            Some("linked") => Some("chats.passcode.linked"),
            Some("failed") => Some("chats.passcode.failed"),
            Some("throttled") => Some("chats.passcode.throttled"),
            _ => None,
        };
        let shown = match (outgoing, m.sent_at) {
            (true, Some(sent)) => sent,
            _ => m.created_at,
        };
        let times_title = match m.sent_at {
            Some(sent) if outgoing => format!(
                "{} {} / {} {}",
                ctx.t("chats.msg.written"),
                with_seconds(m.created_at, tz),
                ctx.t("chats.msg.delivered"),
                with_seconds(sent, tz)
            ),
            _ if outgoing => format!(
                "{} {}",
                ctx.t("chats.msg.written"),
                with_seconds(m.created_at, tz)
            ),
            _ => with_seconds(m.created_at, tz),
        };
        MsgView {
            id: m.id,
            times_title,
            incoming,
            system: (m.direction == Direction::System)
                .then(|| SystemLine::new(&details, m.text.as_deref())),
            body,
            agent: if from_desk {
                ctx.t("chats.msg.desk").to_owned()
            } else {
                m.agent_name.unwrap_or_default()
            },
            from_desk,
            time: short(shown, tz),
            delivered: m.sent_at.map(|t| short(t, tz)).unwrap_or_default(),
            written: short(m.created_at, tz),
            // An unknown mark (a newer version's) shows as a customer's: no badge.
            delivery: m.delivery,
            wait_reason,
            problem: problem
                .as_ref()
                .map(|p| crate::delivery_view::problem_text(p, ctx.locale))
                .unwrap_or_default(),
            line_says: problem.and_then(|p| p.line_message).unwrap_or_default(),
            cancelled_note,
            can_cancel,
            passcode_key,
            group: m.send_group,
        }
    }

    fn kind_key(kind: &str) -> String {
        match kind {
            "image" | "video" | "audio" | "file" | "sticker" | "location" => {
                format!("chats.msg.{kind}")
            }
            _ => "chats.msg.file".into(),
        }
    }

    fn unsent(&self) -> bool {
        self.delivery == Delivery::Unsent
    }
    fn failed(&self) -> bool {
        self.delivery == Delivery::Failed
    }
    fn uncertain(&self) -> bool {
        self.delivery == Delivery::Uncertain
    }
    fn cancelled(&self) -> bool {
        self.delivery == Delivery::Cancelled
    }

    /// The written time differs from the delivery time shown (it waited).
    fn waited(&self) -> bool {
        !self.delivered.is_empty() && self.delivered != self.written
    }
}

/// `2017-07-20 04:06:31`: a message's time to the second (the tooltip of its time).
fn with_seconds(ms: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{} KB", b / 1024),
        b => format!("{b} B"),
    }
}

/// `?from=&to=` of the detail, as typed.
#[derive(Deserialize, Default)]
struct RangeParams {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// The history range: the dates shown in From/To, the `[from, to)` instants, and whether
/// the typed range was refused (then the last 7 days are shown).
struct Range {
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
struct DetailPage {
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
struct HeaderFragment {
    ctx: PageCtx,
    head: HeadView,
}

#[derive(Template)]
#[template(path = "chats_detail.html", block = "history")]
struct HistoryFragment {
    ctx: PageCtx,
    msgs: Vec<MsgView>,
}

async fn load_head(
    st: &AppState,
    page: &PageUser,
    ctx: &PageCtx,
    id: i64,
) -> Result<HeadView, PageError> {
    let c = st
        .store
        .conversation(id)
        .await?
        .ok_or(PageError::NotFound("common.error.not_found"))?;
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

async fn load_history(
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

async fn detail_page(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<RangeParams>,
) -> PageResult {
    let mut ctx = page.ctx_t("chats.detail.title");
    let head = load_head(&st, &page, &ctx, id).await?;
    ctx.title = format!("{} - {}", head.name, ctx.t("chats.detail.title"));
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

async fn detail_header(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
) -> PageResult {
    let ctx = page.ctx_t("chats.detail.title");
    let head = load_head(&st, &page, &ctx, id).await?;
    Ok(render(&HeaderFragment { ctx, head }))
}

async fn detail_history(
    page: PageUser,
    State(st): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<RangeParams>,
) -> PageResult {
    let ctx = page.ctx_t("chats.detail.title");
    let range = Range::parse(&p, st.now_ms(), st.config.time_zone);
    let msgs = load_history(&st, &page, &ctx, id, &range).await?;
    Ok(render(&HistoryFragment { ctx, msgs }))
}

/// How long after it arrived a customer message still rings (a page opened later, or a
/// content fetch announcing the same message again, stays quiet).
const NOTICE_FRESH_MS: i64 = 60_000;

/// What the browser needs to announce a new message (sound, desktop notification):
/// whether it came from the customer and just now, and a title and text for it. JSON; the
/// browser shows it with `textContent`/the Notification API, never as HTML.
async fn notice(
    page: PageUser,
    State(st): State<AppState>,
    Path((id, message_id)): Path<(i64, i64)>,
) -> PageResult {
    let ctx = page.ctx_t("chats.title");
    let (m, c) = match (
        st.store.message(message_id).await?,
        st.store.conversation(id).await?,
    ) {
        (Some(m), Some(c)) if m.conversation_id == id => (m, c),
        _ => return Err(PageError::NotFound("common.error.not_found")),
    };
    let (name, _) = display_name(&c);
    let body = match (m.kind.as_str(), m.text.as_deref()) {
        ("text", Some(t)) => t.chars().take(140).collect(),
        (kind, _) => format!("[{}]", ctx.t(&MsgView::kind_key(kind))),
    };
    let v = json!({
        "incoming": m.direction == Direction::In,
        "fresh": st.now_ms() - m.created_at < NOTICE_FRESH_MS,
        "title": ctx.tf("chats.notify.title", [("name", name.as_str())]),
        "body": body,
        "url": format!("/chats/{id}"),
    });
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], Json(v)).into_response())
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

    #[test]
    fn sizes() {
        assert_eq!(human_size(900), "900 B");
        assert_eq!(human_size(2048), "2 KB");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MB");
    }
}
