//! What the webhook's ingest takes and gives (events reduced to what the desk acts on, the
//! outcome) and the per-event SQL, shared by both ingest paths: sqlx on either database
//! (`ingest.rs`) and the SQLite writer's own connection (`ingest_sqlite.rs`). A neutral home,
//! so neither path imports the other's internals.

/// One webhook event, already parsed and reduced to what the desk acts on.
#[derive(Clone, Debug)]
pub struct InboundEvent {
    pub webhook_event_id: Option<String>,
    pub event_type: String,
    /// Set only for events from a 1:1 chat with a user (group and room events are kept raw).
    pub line_user_id: Option<String>,
    /// LINE's event time (ms): it becomes the message's time.
    pub timestamp: i64,
    /// The event's exact JSON as LINE sent it.
    pub raw: String,
    pub action: InboundAction,
}

#[derive(Clone, Debug)]
pub enum InboundAction {
    Message(InboundMessage),
    /// Follow, or unblock (`unblocked`): the chat appears or reappears.
    Follow {
        unblocked: bool,
    },
    /// Block: the history stays, the user is marked blocked.
    Unfollow,
    /// Kept in `webhook_events` only.
    Ignore,
}

#[derive(Clone, Debug)]
pub struct InboundMessage {
    pub line_message_id: Option<String>,
    /// `text` | `image` | `video` | `audio` | `file` | `location` | `sticker` | `other`.
    pub kind: desk_core::MessageKind,
    pub text: Option<String>,
    /// Kind-specific details as JSON (sticker ids, location, file name…).
    pub payload: Option<String>,
    /// The content must be downloaded from LINE's data API (it is deleted there later).
    pub fetch_content: bool,
    pub reply_token: Option<String>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct IngestOutcome {
    /// Events new to the desk.
    pub stored: usize,
    /// Redeliveries of events already stored.
    pub duplicates: usize,
    /// Background work (a profile or content fetch) was scheduled or rescheduled.
    pub scheduled_jobs: bool,
}

pub const JOB_PROFILE: &str = "profile";
pub const JOB_CONTENT: &str = "content";
/// A text that looks like a LINE passcode (L2): checked after the 200, in the order the user
/// sent them (customers.rs). Scheduled in the webhook's transaction, so it is as durable as
/// the message.
pub const JOB_PASSCODE: &str = "passcode";

/// Whether a customer message is a passcode attempt to check.
/// Where a new message's bytes are: to be fetched from LINE, or none.
pub(crate) fn media_state(fetch_content: bool) -> desk_core::MediaState {
    if fetch_content {
        desk_core::MediaState::Pending
    } else {
        desk_core::MediaState::None
    }
}

pub(crate) fn passcode_attempt(kind: desk_core::MessageKind, text: Option<&str>) -> bool {
    kind == desk_core::MessageKind::Text
        && text.is_some_and(desk_core::passcode::looks_like_passcode)
}

/// The per-event statements, written once for sqlx (both backends, [`ingest_one`]) and the
/// SQLite writer's rusqlite connection (`ingest_sqlite.rs`). Placeholders first appear in
/// ascending order, so SQLite numbers `$n` as the n-th parameter, as PostgreSQL does.
pub(crate) mod sql {
    /// Old-shape body: no event id to dedupe on; a message id is the next best key.
    pub const MESSAGE_SEEN: &str = "SELECT id FROM messages WHERE line_message_id = $1";
    pub const INSERT_EVENT: &str = "INSERT INTO webhook_events (webhook_event_id, event_type, line_user_id, timestamp, received_at, raw)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (webhook_event_id) DO NOTHING";
    /// One statement creates the chat or brings it up to date. The status CASE is
    /// desk_core::status::status_after_customer_message (C5) in SQL, so a 完了 chat turns
    /// 未読 atomically even while an agent presses a button at the same time.
    pub const UPSERT_CHAT_FOR_MESSAGE: &str = "INSERT INTO conversations (line_user_id, unread_count, last_message_at, created_at, updated_at)
         VALUES ($1, 1, $2, $3, $3)
         ON CONFLICT (line_user_id) DO UPDATE SET
           unread_count = conversations.unread_count + 1,
           last_message_at = CASE WHEN excluded.last_message_at > conversations.last_message_at
                                  THEN excluded.last_message_at ELSE conversations.last_message_at END,
           status = CASE WHEN conversations.status = 'done' THEN 'unread' ELSE conversations.status END,
           blocked = FALSE,
           updated_at = excluded.updated_at
         RETURNING id, created_at";
    pub const INSERT_MESSAGE: &str =
        "INSERT INTO messages (conversation_id, direction, type, text, payload, line_message_id,
                               media_state, delivery, reply_token, created_at)
         VALUES ($1, 'in', $2, $3, $4, $5, $6, 'received', $7, $8)
         ON CONFLICT (line_message_id) DO NOTHING RETURNING id";
    /// Another event carried the same LINE message (never seen from LINE itself, but SDK
    /// fixtures do it): keep the event raw, count the message once.
    pub const UNREAD_MINUS_ONE: &str =
        "UPDATE conversations SET unread_count = unread_count - 1 WHERE id = $1";
    /// Following (again) brings the chat to the top and refreshes the display name.
    pub const UPSERT_CHAT_FOR_FOLLOW: &str = "INSERT INTO conversations (line_user_id, last_message_at, created_at, updated_at)
         VALUES ($1, $2, $3, $3)
         ON CONFLICT (line_user_id) DO UPDATE SET
           blocked = FALSE,
           last_message_at = CASE WHEN excluded.last_message_at > conversations.last_message_at
                                  THEN excluded.last_message_at ELSE conversations.last_message_at END,
           updated_at = excluded.updated_at
         RETURNING id";
    pub const BLOCK_CHAT: &str = "UPDATE conversations SET blocked = TRUE, updated_at = $1 WHERE line_user_id = $2 RETURNING id";
    pub const SCHEDULE_JOB: &str = "INSERT INTO jobs (kind, target_id, next_at) VALUES ($1, $2, $3)
         ON CONFLICT (kind, target_id) DO UPDATE SET next_at = excluded.next_at, attempts = 0";
}
