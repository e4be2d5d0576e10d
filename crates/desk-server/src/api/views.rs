//! The JSON shapes of contract.md, built from store rows.

use chrono_tz::Tz;
use desk_core::customer_code::format_code;
use desk_store::conversations::ConversationRow;
use desk_store::messages::MessageRow;
use serde::Serialize;
use serde_json::Value;

use crate::time::rfc3339;

#[derive(Serialize)]
pub struct AgentView {
    pub id: i64,
    pub login: String,
    pub name: String,
}

#[derive(Serialize)]
pub struct CustomerRef {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub phone: String,
}

#[derive(Serialize)]
pub struct ConversationView {
    pub id: i64,
    pub line_user_id: String,
    /// LINE's display name; null until the profile is fetched (show the user id meanwhile).
    pub display_name: Option<String>,
    pub picture_url: Option<String>,
    pub status: String,
    pub agent: Option<AgentView>,
    pub customer: Option<CustomerRef>,
    pub started_at: Option<String>,
    pub last_message_at: String,
    pub unread_count: i64,
    /// The user blocked the account (unfollow); the history stays.
    pub blocked: bool,
    /// `pending` | `ok` | `unavailable`.
    pub profile_state: String,
}

impl ConversationView {
    pub fn new(c: ConversationRow, tz: Tz) -> ConversationView {
        let agent = match (c.agent_id, c.agent_login, c.agent_name) {
            (Some(id), Some(login), Some(name)) => Some(AgentView { id, login, name }),
            _ => None,
        };
        let customer = c.customer_id.map(|id| CustomerRef {
            id,
            code: format_code(id),
            name: c.customer_name.unwrap_or_default(),
            phone: c.customer_phone.unwrap_or_default(),
        });
        ConversationView {
            id: c.id,
            line_user_id: c.line_user_id,
            display_name: c.display_name,
            picture_url: c.picture_url,
            status: c.status,
            agent,
            customer,
            started_at: c.started_at.map(|t| rfc3339(t, tz)),
            last_message_at: rfc3339(c.last_message_at, tz),
            unread_count: c.unread_count,
            blocked: c.blocked,
            profile_state: c.profile_state,
        }
    }
}

#[derive(Serialize)]
pub struct MessageView {
    pub id: i64,
    pub conversation_id: i64,
    pub direction: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    /// Where the desk serves the file (login needed); null while not fetched.
    pub media_url: Option<String>,
    pub media_content_type: Option<String>,
    /// `none` | `pending` (not yet fetched from LINE; retried) | `ok` | `failed` (LINE no longer has it).
    pub media_state: String,
    /// Sticker ids, location, file name, … by type.
    pub details: Option<Value>,
    pub agent: Option<AgentView>,
    pub created_at: String,
    /// `received` | `sent` | `unsent` (waiting: 未送信) | `failed` (contract.md).
    pub delivery: String,
    /// The exact state: as `delivery`, but `uncertain` where LINE may or may not have
    /// delivered a reply (shown as failed, with a resend button).
    pub delivery_state: String,
    /// LINE's answer when delivery failed.
    pub delivery_error: Option<String>,
    /// `reply` | `push`, once sent.
    pub sent_via: Option<String>,
}

impl MessageView {
    pub fn new(m: MessageRow, tz: Tz) -> MessageView {
        let agent = match (m.agent_id, m.agent_login, m.agent_name) {
            (Some(id), Some(login), Some(name)) => Some(AgentView { id, login, name }),
            _ => None,
        };
        MessageView {
            id: m.id,
            conversation_id: m.conversation_id,
            direction: m.direction,
            kind: m.kind,
            text: m.text,
            media_url: m.media_key.map(|k| format!("/api/v1/media/{k}")),
            media_content_type: m.media_content_type,
            media_state: m.media_state,
            details: m.payload.and_then(|p| serde_json::from_str(&p).ok()),
            agent,
            created_at: rfc3339(m.created_at, tz),
            delivery: if m.delivery == "uncertain" {
                "failed".into()
            } else {
                m.delivery.clone()
            },
            delivery_state: m.delivery,
            delivery_error: m.delivery_error,
            sent_via: m.sent_via,
        }
    }
}
