//! The JSON shapes of docs/interface.md, built from store rows.

use chrono_tz::Tz;
use desk_core::customer_code::format_code;
use desk_core::{ConversationStatus, Delivery, Direction};
use desk_store::conversations::ConversationRow;
use desk_store::messages::MessageRow;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::schema::{
    DeliverySchema, DeliveryShownSchema, DirectionSchema, MediaStateSchema, MessageTypeSchema,
    PasscodeOutcomeSchema, ProblemDoc, ProfileStateSchema, StatusSchema, WaitReasonSchema,
};
use crate::time::rfc3339;

/// An agent (a user of the desk).
#[derive(Serialize, ToSchema)]
#[schema(as = Agent)]
pub struct AgentView {
    pub id: i64,
    pub login: String,
    pub name: String,
}

/// The customer the chat's LINE user is linked to.
#[derive(Serialize, ToSchema)]
pub struct CustomerRef {
    pub id: i64,
    #[schema(example = "#C15")]
    pub code: String,
    pub name: String,
    pub phone: String,
}

/// A chat (the API calls it a conversation): one LINE user's talk with the desk.
#[derive(Serialize, ToSchema)]
#[schema(as = Conversation)]
pub struct ConversationView {
    pub id: i64,
    pub line_user_id: String,
    /// LINE's display name; null until the profile is fetched (show the user id meanwhile).
    pub display_name: Option<String>,
    pub picture_url: Option<String>,
    #[schema(value_type = StatusSchema)]
    pub status: ConversationStatus,
    /// The handling agent (対応中), or the last one.
    pub agent: Option<AgentView>,
    /// The linked customer (登録済); null: 未登録.
    pub customer: Option<CustomerRef>,
    /// When the current handling began (対応中).
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[schema(format = DateTime)]
    pub last_message_at: String,
    pub unread_count: i64,
    /// The user blocked the account (unfollow); the history stays.
    pub blocked: bool,
    #[schema(value_type = ProfileStateSchema)]
    pub profile_state: String,
    /// How many agent messages wait (未送信) — what 完了/未読 asks about (`unsent`). Filled
    /// for one conversation; 0 in lists.
    pub waiting: i64,
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
            waiting: 0,
        }
    }
}

/// A message of a chat: the customer's, an agent's, or one the desk wrote.
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageView {
    pub id: i64,
    pub conversation_id: i64,
    #[schema(value_type = DirectionSchema)]
    pub direction: Direction,
    #[serde(rename = "type")]
    #[schema(value_type = MessageTypeSchema)]
    pub kind: String,
    pub text: Option<String>,
    /// Where the desk serves the file (login needed); null while not fetched.
    pub media_url: Option<String>,
    pub media_content_type: Option<String>,
    #[schema(value_type = MediaStateSchema)]
    pub media_state: String,
    /// Sticker ids, location, file name, … by type.
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
    /// The agent who wrote it.
    pub agent: Option<AgentView>,
    /// When the agent wrote it (or the desk received it).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When LINE accepted it: what the customer saw (the history is ordered by this).
    #[schema(format = DateTime)]
    pub delivered_at: Option<String>,
    /// One press of 送信 (a text and its images) shares a group: the id of its first message.
    pub group_id: i64,
    /// `received` | `sent` | `unsent` (waiting: 未送信) | `failed` (docs/interface.md) | `cancelled`
    /// (取消: taken back while it waited; never sent).
    #[schema(value_type = DeliveryShownSchema)]
    pub delivery: String,
    /// The exact state: as `delivery`, but `uncertain` where LINE may or may not have
    /// delivered a reply (shown as failed, with a resend button).
    #[schema(value_type = DeliverySchema)]
    pub delivery_state: Delivery,
    /// Why delivery failed, in English, then LINE's own words (docs/interface.md).
    pub delivery_error: Option<String>,
    /// The same as codes: `{code, status, line_message}` (`line_message`: LINE's words).
    #[schema(value_type = Option<ProblemDoc>)]
    pub delivery_problem: Option<desk_core::delivery::Problem>,
    /// Why it still waits (unsent): `next_customer_message`, `kept_for_handler`, … (README).
    #[schema(value_type = Option<WaitReasonSchema>)]
    pub waiting_reason: Option<&'static str>,
    /// `reply` | `push`, once sent.
    #[schema(value_type = Option<crate::schema::ModeSchema>)]
    pub sent_via: Option<String>,
    /// 取消: when.
    #[schema(format = DateTime)]
    pub cancelled_at: Option<String>,
    /// 取消: by whom (name).
    pub cancelled_by: Option<String>,
    /// A customer's LINE passcode attempt, and what came of it.
    #[schema(value_type = Option<PasscodeOutcomeSchema>)]
    pub passcode: Option<String>,
}

impl MessageView {
    /// With why it waits, when it does (see [`crate::delivery_view::wait_reason`]).
    pub fn with_wait(
        m: MessageRow,
        tz: Tz,
        mode: desk_core::Mode,
        state: &desk_core::ConversationState,
        now_ms: i64,
    ) -> MessageView {
        let reason = crate::delivery_view::wait_reason(&m, mode, state, now_ms);
        let mut v = MessageView::new(m, tz);
        v.waiting_reason = reason.map(|r| r.code());
        v
    }

    pub fn new(m: MessageRow, tz: Tz) -> MessageView {
        let problem = crate::delivery_view::problem(&m);

        let agent = match (m.agent_id, m.agent_login, m.agent_name) {
            (Some(id), Some(login), Some(name)) => Some(AgentView { id, login, name }),
            _ => None,
        };
        MessageView {
            id: m.id,
            conversation_id: m.conversation_id,
            direction: m.direction,
            kind: m.kind.to_string(),
            text: m.text,
            media_url: m.media_key.map(|k| format!("/api/v1/media/{k}")),
            media_content_type: m.media_content_type,
            media_state: m.media_state.to_string(),
            details: m.payload.and_then(|p| serde_json::from_str(&p).ok()),
            agent,
            created_at: rfc3339(m.created_at, tz),
            delivered_at: m.sent_at.map(|t| rfc3339(t, tz)),
            group_id: m.send_group,
            delivery: m.delivery.api_str().to_owned(),
            delivery_error: problem.as_ref().map(|p| {
                crate::delivery_view::problem_english(p, m.delivery == Delivery::Uncertain)
            }),
            delivery_problem: problem,
            waiting_reason: None,
            delivery_state: m.delivery,
            sent_via: m.sent_via,
            cancelled_at: m.cancelled_at.map(|t| rfc3339(t, tz)),
            cancelled_by: m.cancelled_by_name,
            passcode: m.passcode_outcome,
        }
    }
}
