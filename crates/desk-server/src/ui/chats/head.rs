//! The detail's header: who, which customer, who handles it, the status, and how messages
//! go out (the mode, and in Reply mode whether a reply token is usable now).

use desk_core::ConversationStatus;
use desk_core::customer_code::format_code;
use desk_store::conversations::ConversationRow;

use crate::page::PageCtx;
use crate::time::short;

/// The header of the detail: who, which customer, who handles it, the status, and how
/// messages go out (the mode, and in Reply mode whether a reply token is usable now).
pub(super) struct HeadView {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) name_is_id: bool,
    pub(super) blocked: bool,
    pub(super) line_user_id: String,
    pub(super) customer: Option<String>,
    pub(super) status: ConversationStatus,
    pub(super) agent: String,
    pub(super) agent_is_current: bool,
    pub(super) started_at: String,
    /// The viewer is the handling agent of the in-progress chat (C4).
    pub(super) can_send: bool,
    /// Why the viewer cannot send (translated), or empty.
    pub(super) send_hint: String,
    /// Someone else holds the chat: who and since when, said up front (translated), or empty.
    pub(super) lock_notice: String,
    /// The viewer may press none of the status buttons (another agent holds the chat).
    pub(super) status_locked: bool,
    /// An admin viewing another agent's chat: 未読/完了 release it, 対応中 stays off.
    pub(super) admin_release: bool,
    /// `reply` | `push`.
    pub(super) mode: desk_core::Mode,
    /// Reply mode: when the newest unused reply token stops being usable (unix ms), 0 if none.
    pub(super) reply_until: i64,
    pub(super) window_secs: i64,
    /// Messages waiting (未送信): 完了/未読 ask what to do with them.
    pub(super) waiting: i64,
}

/// What the header needs besides the chat row.
pub(super) struct HeadFacts {
    pub mode: desk_core::Mode,
    pub reply_until: Option<i64>,
    pub window_ms: i64,
    pub waiting: i64,
}

impl HeadView {
    pub(super) fn new(
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
                ctx.t("chats-detail-hint-blocked").to_owned()
            } else {
                String::new()
            }
        } else if in_progress {
            ctx.tf("chats-detail-hint-held", [("agent", agent.as_str())])
        } else {
            ctx.t("chats-detail-hint-take").to_owned()
        };
        let held_by_other = in_progress && !mine;
        let lock_notice = if held_by_other {
            let key = if me_admin {
                "chats-lock-held_admin"
            } else {
                "chats-lock-held"
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

    pub(super) fn is_push(&self) -> bool {
        self.mode == desk_core::Mode::Push
    }
}

pub(super) fn status_key(status: ConversationStatus) -> String {
    format!("common-status-{status}")
}

/// (what to show as the name, whether it is the LINE user id in its place)
pub(super) fn display_name(c: &ConversationRow) -> (String, bool) {
    match c.display_name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => (n.to_owned(), false),
        _ => (c.line_user_id.clone(), true),
    }
}
