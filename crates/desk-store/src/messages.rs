//! A chat's history (spec C2, C7, C8).

use crate::{Result, Store};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: i64,
    #[sqlx(try_from = "String")]
    pub direction: desk_core::Direction,
    #[sqlx(try_from = "String")]
    pub kind: desk_core::MessageKind,
    pub text: Option<String>,
    pub payload: Option<String>,
    pub line_message_id: Option<String>,
    pub media_key: Option<String>,
    pub media_content_type: Option<String>,
    #[sqlx(try_from = "String")]
    pub media_state: desk_core::MediaState,
    pub agent_id: Option<i64>,
    pub agent_login: Option<String>,
    pub agent_name: Option<String>,
    #[sqlx(try_from = "String")]
    pub delivery: desk_core::Delivery,
    pub delivery_error: Option<String>,
    pub sent_via: Option<String>,
    /// When the agent wrote it, or the desk received it.
    pub created_at: i64,
    /// When LINE accepted it (sent messages): what the customer saw.
    pub sent_at: Option<i64>,
    /// The press of 送信 it belongs to (the id of its first message; its own id when alone).
    pub send_group: i64,
    /// 取消: when, and by whom.
    pub cancelled_at: Option<i64>,
    pub cancelled_by_name: Option<String>,
    /// While it waits: `queued` | `sending`, why it waits (a stored
    /// `desk_core::delivery::Problem`), and when it is tried next.
    pub outbox_state: Option<String>,
    pub outbox_error: Option<String>,
    pub outbox_next_at: Option<i64>,
    /// A customer's passcode attempt: `linked` | `failed` | `throttled`.
    pub passcode_outcome: Option<String>,
}

impl MessageRow {
    /// Where it is in the outbox while it waits (`None` once it left: sent, failed, 取消).
    pub fn waiting(&self) -> Option<desk_core::OutboxState> {
        self.outbox_state.as_deref().and_then(|s| s.parse().ok())
    }
}

const COLUMNS: &str = "m.id, m.conversation_id, m.direction, m.type AS kind, m.text, m.payload,
        m.line_message_id, md.key AS media_key, md.content_type AS media_content_type, m.media_state,
        m.agent_id, u.login AS agent_login, u.name AS agent_name, m.delivery, m.delivery_error,
        m.sent_via, m.created_at, m.sent_at, COALESCE(m.send_group, m.id) AS send_group,
        m.cancelled_at, cu.name AS cancelled_by_name, o.state AS outbox_state,
        o.last_error AS outbox_error, o.next_attempt_at AS outbox_next_at,
        pa.outcome AS passcode_outcome";

const TABLES: &str = "FROM messages m
    LEFT JOIN media md ON md.id = m.media_id
    LEFT JOIN users u ON u.id = m.agent_id
    LEFT JOIN users cu ON cu.id = m.cancelled_by
    LEFT JOIN outbox o ON o.message_id = m.id
    LEFT JOIN passcode_attempts pa ON pa.message_id = m.id";

/// The most a history page returns; the From/To range narrows a longer history.
pub const MAX_HISTORY: i64 = 5000;

impl Store {
    /// Messages with `from_ms <= created_at < to_ms`, oldest first.
    pub async fn messages_between(
        &self,
        conversation_id: i64,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<MessageRow>> {
        // The newest MAX_HISTORY of the range, returned oldest first.
        let sql = format!(
            "SELECT * FROM (SELECT {COLUMNS} {TABLES} WHERE m.conversation_id = $1 AND m.created_at >= $2 AND m.created_at < $3
               ORDER BY m.created_at DESC, m.id DESC LIMIT $4) h ORDER BY created_at, id"
        );
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, MessageRow>(&sql)
            .bind(conversation_id)
            .bind(from_ms)
            .bind(to_ms)
            .bind(MAX_HISTORY)
            .fetch_all(p)
            .await)?)
    }

    /// A chat's history as the customer saw it (issue 10): ordered by when each message
    /// reached them — an agent's message at its delivery time (`sent_at`), everything else
    /// when written or received — with the messages that still wait last, in the order
    /// written. The range `[from_ms, to_ms)` applies to that time; waiting messages are shown
    /// only `with_waiting`, whatever their age (a range that reaches now shows what waits).
    pub async fn history(
        &self,
        conversation_id: i64,
        from_ms: i64,
        to_ms: i64,
        with_waiting: bool,
    ) -> Result<Vec<MessageRow>> {
        // `m.created_at < $3` narrows by the index: a message reached the customer after
        // it was written. The newest MAX_HISTORY of the range, returned in display order.
        let sql = format!(
            "SELECT * FROM (SELECT {COLUMNS},
                    CASE WHEN m.delivery = 'unsent' THEN 1 ELSE 0 END AS waiting,
                    COALESCE(m.sent_at, m.created_at) AS shown_at
               {TABLES}
               WHERE m.conversation_id = $1
                 AND ((m.delivery <> 'unsent' AND m.created_at < $3
                       AND COALESCE(m.sent_at, m.created_at) >= $2
                       AND COALESCE(m.sent_at, m.created_at) < $3)
                      OR (m.delivery = 'unsent' AND $5))
               ORDER BY waiting DESC, shown_at DESC, m.id DESC LIMIT $4) h
             ORDER BY waiting, shown_at, id"
        );
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, MessageRow>(&sql)
            .bind(conversation_id)
            .bind(from_ms)
            .bind(to_ms)
            .bind(MAX_HISTORY)
            .bind(with_waiting)
            .fetch_all(p)
            .await)?)
    }

    pub async fn message(&self, id: i64) -> Result<Option<MessageRow>> {
        let sql = format!("SELECT {COLUMNS} {TABLES} WHERE m.id = $1");
        Ok(on_db!(&self.db, |p| sqlx::query_as::<_, MessageRow>(&sql)
            .bind(id)
            .fetch_optional(p)
            .await)?)
    }

    pub async fn count_messages(&self) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages"
        )
        .fetch_one(p)
        .await)?)
    }
}
