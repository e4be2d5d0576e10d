//! A chat's history (spec C2, C7, C8).

use crate::{Result, Store, on_db};

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageRow {
    pub id: i64,
    pub conversation_id: i64,
    pub direction: String,
    pub kind: String,
    pub text: Option<String>,
    pub payload: Option<String>,
    pub line_message_id: Option<String>,
    pub media_key: Option<String>,
    pub media_content_type: Option<String>,
    pub media_state: String,
    pub agent_id: Option<i64>,
    pub agent_login: Option<String>,
    pub agent_name: Option<String>,
    pub delivery: String,
    pub delivery_error: Option<String>,
    pub sent_via: Option<String>,
    pub created_at: i64,
}

const SELECT: &str = "SELECT m.id, m.conversation_id, m.direction, m.type AS kind, m.text, m.payload,
        m.line_message_id, md.key AS media_key, md.content_type AS media_content_type, m.media_state,
        m.agent_id, u.login AS agent_login, u.name AS agent_name, m.delivery, m.delivery_error,
        m.sent_via, m.created_at
    FROM messages m
    LEFT JOIN media md ON md.id = m.media_id
    LEFT JOIN users u ON u.id = m.agent_id";

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
            "SELECT * FROM ({SELECT} WHERE m.conversation_id = $1 AND m.created_at >= $2 AND m.created_at < $3
               ORDER BY m.created_at DESC, m.id DESC LIMIT $4) h ORDER BY created_at, id"
        );
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, MessageRow>(&sql)
            .bind(conversation_id).bind(from_ms).bind(to_ms).bind(MAX_HISTORY)
            .fetch_all(p).await)?)
    }

    pub async fn message(&self, id: i64) -> Result<Option<MessageRow>> {
        let sql = format!("{SELECT} WHERE m.id = $1");
        Ok(
            on_db!(&self.db, p => sqlx::query_as::<_, MessageRow>(&sql).bind(id).fetch_optional(p).await)?,
        )
    }

    pub async fn count_messages(&self) -> Result<i64> {
        Ok(
            on_db!(&self.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM messages").fetch_one(p).await)?,
        )
    }
}
