//! Storing what LINE's webhook delivers (spec S4, C1, C5, C7), many events in one
//! transaction so that one fsync makes a whole batch durable.
//!
//! Idempotency is by constraint: `webhook_events.webhook_event_id` is unique, so a
//! redelivered event inserts nothing and changes nothing. Old-shape events without a
//! `webhookEventId` fall back to the unique LINE message id.

use crate::{exec_tx, Change, Result, Store, Tx, on_tx};

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
    Follow { unblocked: bool },
    /// Block: the history stays, the user is marked blocked.
    Unfollow,
    /// Kept in `webhook_events` only.
    Ignore,
}

#[derive(Clone, Debug)]
pub struct InboundMessage {
    pub line_message_id: Option<String>,
    /// `text` | `image` | `video` | `audio` | `file` | `location` | `sticker` | `other`.
    pub kind: String,
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
}

pub const JOB_PROFILE: &str = "profile";
pub const JOB_CONTENT: &str = "content";

impl Store {
    /// Stores a batch of events in one transaction; returns once it is committed (durable).
    pub async fn ingest(&self, events: &[InboundEvent], now_ms: i64) -> Result<IngestOutcome> {
        let mut tx = self.begin().await?;
        let mut outcome = IngestOutcome::default();
        let mut changes = Vec::new();
        for ev in events {
            if ingest_one(&mut tx, ev, now_ms, &mut changes).await? {
                outcome.stored += 1;
            } else {
                outcome.duplicates += 1;
            }
        }
        tx.commit().await?;
        self.notifier.publish(changes);
        Ok(outcome)
    }
}

/// Returns false when the event was already stored.
async fn ingest_one(
    tx: &mut Tx,
    ev: &InboundEvent,
    now: i64,
    changes: &mut Vec<Change>,
) -> Result<bool> {
    if ev.webhook_event_id.is_none() {
        // Old-shape body: no event id to dedupe on; a message id is the next best key.
        if let InboundAction::Message(m) = &ev.action {
            if let Some(mid) = &m.line_message_id {
                let seen: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
                    "SELECT id FROM messages WHERE line_message_id = $1")
                    .bind(mid).fetch_optional(c).await)?;
                if seen.is_some() {
                    return Ok(false);
                }
            }
        }
    }
    let inserted = exec_tx!(tx, c => sqlx::query(
        "INSERT INTO webhook_events (webhook_event_id, event_type, line_user_id, timestamp, received_at, raw)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (webhook_event_id) DO NOTHING")
        .bind(&ev.webhook_event_id).bind(&ev.event_type).bind(&ev.line_user_id)
        .bind(ev.timestamp).bind(now).bind(&ev.raw))?;
    if inserted == 0 {
        return Ok(false);
    }
    let Some(user) = ev.line_user_id.as_deref() else {
        return Ok(true);
    };
    match &ev.action {
        InboundAction::Message(m) => {
            // One statement creates the chat or brings it up to date. The status CASE is
            // desk_core::status::status_after_customer_message (C5) in SQL, so a 完了 chat
            // turns 未読 atomically even while an agent presses a button at the same time.
            let (conv_id, created_at): (i64, i64) = on_tx!(tx, c => sqlx::query_as(
                "INSERT INTO conversations (line_user_id, unread_count, last_message_at, created_at, updated_at)
                 VALUES ($1, 1, $2, $3, $3)
                 ON CONFLICT (line_user_id) DO UPDATE SET
                   unread_count = conversations.unread_count + 1,
                   last_message_at = CASE WHEN excluded.last_message_at > conversations.last_message_at
                                          THEN excluded.last_message_at ELSE conversations.last_message_at END,
                   status = CASE WHEN conversations.status = 'done' THEN 'unread' ELSE conversations.status END,
                   blocked = FALSE,
                   updated_at = excluded.updated_at
                 RETURNING id, created_at")
                .bind(user).bind(ev.timestamp).bind(now)
                .fetch_one(c).await)?;
            if created_at == now {
                schedule_job(tx, JOB_PROFILE, conv_id, now).await?;
            }
            let media_state = if m.fetch_content { "pending" } else { "none" };
            let msg_id: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
                "INSERT INTO messages (conversation_id, direction, type, text, payload, line_message_id,
                                       media_state, delivery, reply_token, created_at)
                 VALUES ($1, 'in', $2, $3, $4, $5, $6, 'received', $7, $8)
                 ON CONFLICT (line_message_id) DO NOTHING RETURNING id")
                .bind(conv_id).bind(&m.kind).bind(&m.text).bind(&m.payload).bind(&m.line_message_id)
                .bind(media_state).bind(&m.reply_token).bind(ev.timestamp)
                .fetch_optional(c).await)?;
            let Some(msg_id) = msg_id else {
                // Another event carried the same LINE message (never seen from LINE itself,
                // but SDK fixtures do it): keep the event raw, count the message once.
                exec_tx!(tx, c => sqlx::query(
                    "UPDATE conversations SET unread_count = unread_count - 1 WHERE id = $1").bind(conv_id))?;
                return Ok(true);
            };
            if m.fetch_content {
                schedule_job(tx, JOB_CONTENT, msg_id, now).await?;
            }
            changes.push(Change::Message {
                conversation_id: conv_id,
                id: msg_id,
            });
            changes.push(Change::Conversation { id: conv_id });
        }
        InboundAction::Follow { .. } => {
            // Following (again) brings the chat to the top and refreshes the display name.
            let conv_id: i64 = on_tx!(tx, c => sqlx::query_scalar(
                "INSERT INTO conversations (line_user_id, last_message_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $3)
                 ON CONFLICT (line_user_id) DO UPDATE SET
                   blocked = FALSE,
                   last_message_at = CASE WHEN excluded.last_message_at > conversations.last_message_at
                                          THEN excluded.last_message_at ELSE conversations.last_message_at END,
                   updated_at = excluded.updated_at
                 RETURNING id")
                .bind(user).bind(ev.timestamp).bind(now)
                .fetch_one(c).await)?;
            schedule_job(tx, JOB_PROFILE, conv_id, now).await?;
            changes.push(Change::Conversation { id: conv_id });
        }
        InboundAction::Unfollow => {
            let conv_id: Option<i64> = on_tx!(tx, c => sqlx::query_scalar(
                "UPDATE conversations SET blocked = TRUE, updated_at = $2 WHERE line_user_id = $1 RETURNING id")
                .bind(user).bind(now).fetch_optional(c).await)?;
            if let Some(id) = conv_id {
                changes.push(Change::Conversation { id });
            }
        }
        InboundAction::Ignore => {}
    }
    Ok(true)
}

/// Schedules (or reschedules at once) a background job; one per kind and target.
pub(crate) async fn schedule_job(tx: &mut Tx, kind: &str, target_id: i64, at: i64) -> Result<()> {
    exec_tx!(tx, c => sqlx::query(
        "INSERT INTO jobs (kind, target_id, next_at) VALUES ($1, $2, $3)
         ON CONFLICT (kind, target_id) DO UPDATE SET next_at = excluded.next_at, attempts = 0")
        .bind(kind).bind(target_id).bind(at))?;
    Ok(())
}
