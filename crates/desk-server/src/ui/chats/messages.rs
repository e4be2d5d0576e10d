//! One message as the history shows it: its body (text, image, sticker, other kinds), its
//! times, and its delivery (sent, waiting and why, failed and why, taken back).

use desk_core::{Delivery, Direction, MediaState, MessageKind};
use desk_store::messages::MessageRow;
use serde_json::Value;

use crate::page::PageCtx;
use crate::time::short;

/// What a message shows in its bubble.
pub(super) enum Body {
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

pub(super) struct MsgView {
    pub(super) id: i64,
    pub(super) incoming: bool,
    pub(super) body: Body,
    /// The agent who wrote it; for the desk's own answers, a label saying so.
    pub(super) agent: String,
    /// The desk's own answer (the passcode confirmation), not an agent's.
    pub(super) from_desk: bool,
    /// When the customer saw it: received, or (agent messages) delivered; else written.
    pub(super) time: String,
    /// An agent message's times, labelled: 送信 (delivered) and 作成 (written).
    pub(super) delivered: String,
    pub(super) written: String,
    /// Both times to the second, for the tooltip: 作成 … / 送信 ….
    pub(super) times_title: String,
    pub(super) delivery: Delivery,
    /// Why it waits (未送信), translated.
    pub(super) wait_reason: String,
    /// Why it failed (the desk's sentence, translated) and LINE's own words (quoted apart).
    pub(super) problem: String,
    pub(super) line_says: String,
    /// 取消 by whom and when (translated).
    pub(super) cancelled_note: String,
    /// The viewer may take it back now (取消).
    pub(super) can_cancel: bool,
    /// A customer's passcode attempt: the locale key of what came of it.
    pub(super) passcode_key: Option<&'static str>,
    /// The press of 送信 it belongs to.
    pub(super) group: i64,
    /// A line the desk wrote itself (direction `system`, e.g. a passcode link).
    pub(super) system: Option<SystemLine>,
}

/// What every message of a history needs to be shown to this viewer.
pub(super) struct HistoryFacts<'a> {
    pub ctx: &'a PageCtx,
    pub tz: chrono_tz::Tz,
    pub mode: desk_core::Mode,
    pub state: desk_core::ConversationState,
    pub viewer: desk_core::Actor,
    pub now_ms: i64,
}

/// LINE's public sticker image (what the LINE app shows), by sticker id.
pub(super) fn sticker_image_url(sticker_id: &str) -> Option<String> {
    (!sticker_id.is_empty() && sticker_id.bytes().all(|b| b.is_ascii_digit())).then(|| {
        format!("https://stickershop.line-scdn.net/stickershop/v1/sticker/{sticker_id}/android/sticker.png")
    })
}

impl MsgView {
    pub(super) fn new(m: MessageRow, f: &HistoryFacts<'_>) -> MsgView {
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
        let media = |make: fn(String) -> Body| match (&media_url, m.media_state) {
            (Some(url), _) => make(url.clone()),
            (None, MediaState::Failed) => Body::MediaFailed {
                kind: m.kind.to_string(),
            },
            (None, _) => Body::Pending {
                kind: m.kind.to_string(),
            },
        };
        let body = match m.kind {
            MessageKind::Text => Body::Text(m.text.clone().unwrap_or_default()),
            MessageKind::Image => media(|url| Body::Image { url }),
            MessageKind::Video => media(|url| Body::Video { url }),
            MessageKind::Audio => media(|url| Body::Audio { url }),
            MessageKind::Sticker => {
                let words = s("text");
                let label = if words.is_empty() {
                    ctx.t("chats-msg-sticker").to_owned()
                } else {
                    format!("{}（{}）", ctx.t("chats-msg-sticker"), words)
                };
                match sticker_image_url(&s("sticker_id")) {
                    Some(url) => Body::Sticker { url, label },
                    None => Body::Other {
                        kind: m.kind.to_string(),
                    },
                }
            }
            MessageKind::Location => {
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
            MessageKind::File => {
                let size = details["file_size"]
                    .as_i64()
                    .map(human_size)
                    .unwrap_or_default();
                match (&media_url, m.media_state) {
                    (None, MediaState::Pending) => Body::Pending {
                        kind: m.kind.to_string(),
                    },
                    (url, _) => Body::File {
                        name: s("file_name"),
                        size,
                        url: url.clone(),
                    },
                }
            }
            MessageKind::Other => {
                let t = s("message_type");
                Body::Other {
                    kind: if t.is_empty() { m.kind.to_string() } else { t },
                }
            }
        };
        let incoming = m.direction == Direction::In;
        let outgoing = m.direction == Direction::Out;
        let from_desk = outgoing && m.agent_id.is_none();
        let wait_reason = crate::delivery_view::wait_reason(&m, f.mode, &f.state, f.now_ms)
            .map(|r| match r {
                crate::delivery_view::WaitReason::Retry { at } => {
                    ctx.tf("chats-wait-retry", [("at", short(at, tz).as_str())])
                }
                r => ctx.t(&format!("chats-wait-{}", r.code())).to_owned(),
            })
            .unwrap_or_default();
        let problem = crate::delivery_view::problem(&m);
        let can_cancel = m.waiting() == Some(desk_core::OutboxState::Queued)
            && desk_core::status::may_cancel(&f.viewer, m.agent_id, &f.state);
        let cancelled_note = match (m.cancelled_at, &m.cancelled_by_name) {
            (Some(at), Some(name)) => ctx.tf(
                "chats-msg-cancelled_by",
                [("name", name.as_str()), ("at", short(at, tz).as_str())],
            ),
            (Some(at), None) => ctx.tf("chats-msg-cancelled_at", [("at", short(at, tz).as_str())]),
            _ => String::new(),
        };
        let passcode_key = match m.passcode_outcome.as_deref() {
            Some("linked") => Some("chats-passcode-linked"),
            Some("failed") => Some("chats-passcode-failed"),
            Some("throttled") => Some("chats-passcode-throttled"),
            _ => None,
        };
        let shown = match (outgoing, m.sent_at) {
            (true, Some(sent)) => sent,
            _ => m.created_at,
        };
        let times_title = match m.sent_at {
            Some(sent) if outgoing => format!(
                "{} {} / {} {}",
                ctx.t("chats-msg-written"),
                with_seconds(m.created_at, tz),
                ctx.t("chats-msg-delivered"),
                with_seconds(sent, tz)
            ),
            _ if outgoing => format!(
                "{} {}",
                ctx.t("chats-msg-written"),
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
                ctx.t("chats-msg-desk").to_owned()
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

    pub(super) fn kind_key(kind: &str) -> String {
        match kind {
            "image" | "video" | "audio" | "file" | "sticker" | "location" => {
                format!("chats-msg-{kind}")
            }
            _ => "chats-msg-file".into(),
        }
    }

    pub(super) fn unsent(&self) -> bool {
        self.delivery == Delivery::Unsent
    }
    pub(super) fn failed(&self) -> bool {
        self.delivery == Delivery::Failed
    }
    pub(super) fn uncertain(&self) -> bool {
        self.delivery == Delivery::Uncertain
    }
    pub(super) fn cancelled(&self) -> bool {
        self.delivery == Delivery::Cancelled
    }

    /// The written time differs from the delivery time shown (it waited).
    pub(super) fn waited(&self) -> bool {
        !self.delivered.is_empty() && self.delivered != self.written
    }
}

/// `2017-07-20 04:06:31`: a message's time to the second (the tooltip of its time).
pub(super) fn with_seconds(ms: i64, tz: chrono_tz::Tz) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

pub(super) fn human_size(bytes: i64) -> String {
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / (1024.0 * 1024.0)),
        b if b >= 1024 => format!("{} KB", b / 1024),
        b => format!("{b} B"),
    }
}

/// A line the desk itself wrote into a chat (a `messages` row with direction `system`),
/// shown in the viewer's language. Today: `customer_linked`, after a LINE passcode linked
/// the chat ("#C15 山田花子 と関連付けました").
pub(super) struct SystemLine {
    pub(super) event: String,
    pub(super) code: String,
    pub(super) name: String,
    /// The stored text (Japanese), for events this build does not know.
    pub(super) text: String,
}

impl SystemLine {
    pub(super) fn new(details: &serde_json::Value, text: Option<&str>) -> SystemLine {
        let s = |k: &str| details[k].as_str().unwrap_or_default().to_owned();
        SystemLine {
            event: s("event"),
            code: s("customer_code"),
            name: s("customer_name"),
            text: text.unwrap_or_default().to_owned(),
        }
    }

    pub(super) fn render(&self, ctx: &PageCtx) -> String {
        match self.event.as_str() {
            "customer_linked" => ctx.tf(
                "customers-system-linked",
                [("code", self.code.as_str()), ("name", self.name.as_str())],
            ),
            _ => self.text.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human_size(900), "900 B");
        assert_eq!(human_size(2048), "2 KB");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MB");
    }
}
