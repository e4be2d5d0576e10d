//! Sending (C4, C6, C7, M1–M7): an agent message is written together with its outbox row
//! in one transaction — and only if the writer is the handling agent of an in-progress
//! chat, checked by the INSERT itself, so a chat released a moment earlier takes nothing.
//! The outbox worker then delivers it. Every outgoing message is therefore always either
//! delivered, waiting (`unsent`), or visibly `failed`/`uncertain` — never lost.
//!
//! One worker at a time sends for a conversation (a lease on the conversation row), which
//! keeps messages in the order written, across instances too. The lease's expiry time is
//! also its fence: it is renewed in the same transaction that marks messages `sending`
//! (so a worker whose lease ran out and was taken over can never start another request),
//! and released only by its holder. Marking checks the facts too: a reply token is used
//! only if it is still unused, and reply messages only if they still wait — so a reply
//! token goes out at most once, whichever instances race for it.

use crate::{Change, Db, Result, Store, exec_db, exec_tx, on_db, on_tx};

/// A message an agent writes.
pub struct NewOutgoing<'a> {
    /// `text` | `image`.
    pub kind: &'a str,
    pub text: Option<&'a str>,
    /// For images: `{"original_url", "preview_url"}`.
    pub payload: Option<&'a str>,
    pub media_id: Option<i64>,
}

/// Why the desk refused to take a message: the writer does not hold the chat (C4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHandler {
    pub status: String,
    pub agent_id: Option<i64>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxItem {
    pub outbox_id: i64,
    pub message_id: i64,
    pub state: String,
    pub attempt_via: Option<String>,
    pub retry_key: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    pub kind: String,
    pub text: Option<String>,
    pub payload: Option<String>,
}

/// A worker's right to send for one conversation, until `until` (unix ms); see
/// [`Store::lease_conversation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub conversation_id: i64,
    pub until: i64,
}

/// A customer message whose reply token is still unused.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRow {
    pub message_id: i64,
    pub reply_token: String,
    pub created_at: i64,
}

impl Store {
    /// Writes an agent's message and queues it, if `agent_id` handles the in-progress chat.
    pub async fn queue_outgoing(
        &self,
        conversation_id: i64,
        agent_id: i64,
        m: NewOutgoing<'_>,
        retry_key: &str,
        now_ms: i64,
    ) -> Result<Result<i64, NotHandler>> {
        let mut tx = self.begin().await?;
        // On PostgreSQL the chat row is locked (and the condition re-checked after any
        // concurrent release commits), so a message is never taken for a chat that another
        // instance has just released or handed to someone else.
        let sql = format!(
            "INSERT INTO messages (conversation_id, direction, type, text, payload, media_id, media_state,
                                   agent_id, delivery, created_at)
             SELECT id, 'out', $3, $4, $5, $6, CASE WHEN $6 IS NULL THEN 'none' ELSE 'ok' END, $2, 'unsent', $7
             FROM conversations WHERE id = $1 AND status = 'in_progress' AND agent_id = $2{}
             RETURNING id",
            tx.for_update()
        );
        let id: Option<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(&sql)
            .bind(conversation_id).bind(agent_id).bind(m.kind).bind(m.text).bind(m.payload)
            .bind(m.media_id).bind(now_ms)
            .fetch_optional(c).await)?;
        let Some(message_id) = id else {
            let row: Option<(String, Option<i64>)> = on_tx!(&mut tx, c => sqlx::query_as(
                "SELECT status, agent_id FROM conversations WHERE id = $1")
                .bind(conversation_id).fetch_optional(c).await)?;
            let (status, agent_id) = row.ok_or(crate::StoreError::NotFound)?;
            return Ok(Err(NotHandler { status, agent_id }));
        };
        exec_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO outbox (message_id, conversation_id, state, retry_key, next_attempt_at, created_at)
             VALUES ($1, $2, 'queued', $3, $4, $4)")
            .bind(message_id).bind(conversation_id).bind(retry_key).bind(now_ms))?;
        tx.announce([Change::Message {
            conversation_id,
            id: message_id,
        }]);
        tx.commit().await?;
        Ok(Ok(message_id))
    }

    /// Queues a failed or uncertain message again, when the agent presses resend; only the
    /// handler of the in-progress chat may. A fresh retry key: this is a new attempt.
    pub async fn resend(
        &self,
        message_id: i64,
        agent_id: i64,
        retry_key: &str,
        now_ms: i64,
    ) -> Result<Result<i64, NotHandler>> {
        let mut tx = self.begin().await?;
        let conv: Option<i64> = on_tx!(&mut tx, c => sqlx::query_scalar(
            "UPDATE messages SET delivery = 'unsent', delivery_error = NULL
             WHERE id = $1 AND direction = 'out' AND delivery IN ('failed', 'uncertain')
               AND conversation_id IN (SELECT id FROM conversations
                                       WHERE status = 'in_progress' AND agent_id = $2)
             RETURNING conversation_id")
            .bind(message_id).bind(agent_id).fetch_optional(c).await)?;
        let Some(conversation_id) = conv else {
            let row: Option<(String, Option<i64>)> = on_tx!(&mut tx, c => sqlx::query_as(
                "SELECT c.status, c.agent_id FROM conversations c JOIN messages m ON m.conversation_id = c.id
                 WHERE m.id = $1")
                .bind(message_id).fetch_optional(c).await)?;
            let (status, agent_id) = row.ok_or(crate::StoreError::NotFound)?;
            return Ok(Err(NotHandler { status, agent_id }));
        };
        exec_tx!(&mut tx, c => sqlx::query(
            "INSERT INTO outbox (message_id, conversation_id, state, retry_key, next_attempt_at, created_at)
             VALUES ($1, $2, 'queued', $3, $4, $4)")
            .bind(message_id).bind(conversation_id).bind(retry_key).bind(now_ms))?;
        tx.announce([Change::Message {
            conversation_id,
            id: message_id,
        }]);
        tx.commit().await?;
        Ok(Ok(conversation_id))
    }

    /// Conversations with something to send now: in push mode every due message; in reply
    /// mode also those whose customer just brought a usable reply token.
    pub async fn conversations_to_send(
        &self,
        now_ms: i64,
        token_since_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        Ok(on_db!(&self.db, p => sqlx::query_scalar(
            "SELECT DISTINCT o.conversation_id FROM outbox o
             WHERE o.next_attempt_at <= $1
                OR EXISTS (SELECT 1 FROM messages m
                           WHERE m.conversation_id = o.conversation_id AND m.direction = 'in'
                             AND m.reply_token IS NOT NULL AND NOT m.reply_token_used
                             AND m.created_at > $2)
             LIMIT $3")
            .bind(now_ms).bind(token_since_ms).bind(limit)
            .fetch_all(p).await)?)
    }

    /// Takes the right to send for a conversation until `now + lease_ms`; `None` when
    /// another worker holds it. One conditional UPDATE: on PostgreSQL a concurrent taker
    /// waits for the row lock and then re-checks the condition, so exactly one wins.
    pub async fn lease_conversation(
        &self,
        conversation_id: i64,
        now_ms: i64,
        lease_ms: i64,
    ) -> Result<Option<Lease>> {
        let until = now_ms + lease_ms;
        let n = exec_db!(&self.db, p => sqlx::query(
            "UPDATE conversations SET send_lease_until = $2
             WHERE id = $1 AND (send_lease_until IS NULL OR send_lease_until < $3)")
            .bind(conversation_id).bind(until).bind(now_ms))?;
        Ok((n == 1).then_some(Lease {
            conversation_id,
            until,
        }))
    }

    /// At the start of a single-machine (SQLite) desk: no other process can be sending, so
    /// leases a killed process left are void at once instead of when they expire.
    pub async fn clear_send_leases(&self) -> Result<u64> {
        Ok(exec_db!(&self.db, p => sqlx::query(
            "UPDATE conversations SET send_lease_until = NULL WHERE send_lease_until IS NOT NULL"))?)
    }

    /// Gives the lease up, if it is still this holder's (an expired lease taken over by
    /// another worker is left alone).
    pub async fn release_conversation(&self, lease: &Lease) -> Result<()> {
        exec_db!(&self.db, p => sqlx::query(
            "UPDATE conversations SET send_lease_until = NULL WHERE id = $1 AND send_lease_until = $2")
            .bind(lease.conversation_id).bind(lease.until))?;
        Ok(())
    }

    /// The conversation's waiting messages, in the order written.
    pub async fn outbox_items(&self, conversation_id: i64) -> Result<Vec<OutboxItem>> {
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, OutboxItem>(
            "SELECT o.id AS outbox_id, o.message_id, o.state, o.attempt_via, o.retry_key, o.attempts, o.next_attempt_at,
                    m.type AS kind, m.text, m.payload
             FROM outbox o JOIN messages m ON m.id = o.message_id
             WHERE o.conversation_id = $1 ORDER BY o.message_id")
            .bind(conversation_id).fetch_all(p).await)?)
    }

    /// Customer messages of this chat whose reply token is unused and not older than `since_ms`.
    pub async fn unused_reply_tokens(
        &self,
        conversation_id: i64,
        since_ms: i64,
    ) -> Result<Vec<TokenRow>> {
        Ok(on_db!(&self.db, p => sqlx::query_as::<_, TokenRow>(
            "SELECT id AS message_id, reply_token, created_at FROM messages
             WHERE conversation_id = $1 AND direction = 'in' AND reply_token IS NOT NULL
               AND NOT reply_token_used AND created_at > $2
             ORDER BY created_at, id")
            .bind(conversation_id).bind(since_ms).fetch_all(p).await)?)
    }

    /// Before a request to LINE: marks the messages `sending` and uses up the reply token,
    /// durably, so that a crash during the request can never lead to a blind resend.
    ///
    /// In the same transaction the lease is renewed until `now + lease_ms`, if the caller
    /// still holds it. False (and nothing changed) when it does not, when the reply token
    /// is already used, or when a message is no longer waiting (for a reply: no longer
    /// `queued`; a push found `sending` after a crash goes again with its retry key):
    /// another worker got there first, and the caller must not send.
    pub async fn mark_sending(
        &self,
        lease: &mut Lease,
        now_ms: i64,
        lease_ms: i64,
        outbox_ids: &[i64],
        via: &str,
        token_message_id: Option<i64>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let until = (now_ms + lease_ms).max(lease.until + 1);
        let held = exec_tx!(&mut tx, c => sqlx::query(
            "UPDATE conversations SET send_lease_until = $3 WHERE id = $1 AND send_lease_until = $2")
            .bind(lease.conversation_id).bind(lease.until).bind(until))?;
        if held != 1 {
            return Ok(false);
        }
        for id in outbox_ids {
            let n = exec_tx!(&mut tx, c => sqlx::query(
                "UPDATE outbox SET state = 'sending', attempt_via = $2, attempts = attempts + 1
                 WHERE id = $1 AND (state = 'queued' OR $2 = 'push')")
                .bind(id).bind(via))?;
            if n != 1 {
                return Ok(false);
            }
        }
        if let Some(mid) = token_message_id {
            let n = exec_tx!(&mut tx, c => sqlx::query(
                "UPDATE messages SET reply_token_used = TRUE WHERE id = $1 AND NOT reply_token_used")
                .bind(mid))?;
            if n != 1 {
                return Ok(false);
            }
        }
        tx.commit().await?;
        lease.until = until;
        Ok(true)
    }

    /// Gives a reply token back when LINE certainly did not take the request (it was
    /// refused before it went out, or rate limited), so it can still carry the messages.
    pub async fn restore_reply_token(&self, token_message_id: i64) -> Result<()> {
        exec_db!(&self.db, p => sqlx::query("UPDATE messages SET reply_token_used = FALSE WHERE id = $1")
            .bind(token_message_id))?;
        Ok(())
    }

    /// The messages reached LINE: they leave the outbox and lose their Unsent mark (M6).
    pub async fn mark_sent(
        &self,
        conversation_id: i64,
        message_ids: &[i64],
        via: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.finish_outgoing(
            conversation_id,
            message_ids,
            "sent",
            None,
            Some(via),
            now_ms,
        )
        .await
    }

    /// The messages could not be delivered (`failed`), or may or may not have been
    /// (`uncertain`): they leave the outbox, shown with LINE's answer and a resend button.
    pub async fn mark_failed(
        &self,
        conversation_id: i64,
        message_ids: &[i64],
        delivery: &str,
        error: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.finish_outgoing(
            conversation_id,
            message_ids,
            delivery,
            Some(error),
            None,
            now_ms,
        )
        .await
    }

    async fn finish_outgoing(
        &self,
        conversation_id: i64,
        message_ids: &[i64],
        delivery: &str,
        error: Option<&str>,
        via: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for id in message_ids {
            exec_tx!(&mut tx, c => sqlx::query("DELETE FROM outbox WHERE message_id = $1").bind(id))?;
            exec_tx!(&mut tx, c => sqlx::query(
                "UPDATE messages SET delivery = $2, delivery_error = $3, sent_via = $4,
                        sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END
                 WHERE id = $1")
                .bind(id).bind(delivery).bind(error).bind(via).bind(now_ms))?;
        }
        tx.announce(message_ids.iter().map(|&id| Change::Message {
            conversation_id,
            id,
        }));
        tx.commit().await?;
        Ok(())
    }

    /// Back to waiting (a retryable failure, an invalid reply token, or no token yet).
    /// Announced like any change, so whoever waits for the first attempt learns it is done.
    pub async fn requeue(
        &self,
        outbox_ids: &[i64],
        next_attempt_at: i64,
        error: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut changes = Vec::new();
        for id in outbox_ids {
            let row: Option<(i64, i64)> = on_tx!(&mut tx, c => sqlx::query_as(
                "UPDATE outbox SET state = 'queued', next_attempt_at = $2, last_error = COALESCE($3, last_error)
                 WHERE id = $1 RETURNING conversation_id, message_id")
                .bind(id).bind(next_attempt_at).bind(error).fetch_optional(c).await)?;
            if let Some((conversation_id, id)) = row {
                changes.push(Change::Message {
                    conversation_id,
                    id,
                });
            }
        }
        tx.announce(changes);
        tx.commit().await?;
        Ok(())
    }

    /// Whether a sender has dealt with this message since it was written: it left the
    /// outbox (sent or failed), or it waits again after a try or for a reply token — not
    /// while a request for it is under way (`sending`).
    pub async fn outgoing_settled(&self, message_id: i64) -> Result<bool> {
        let row: Option<(String, i64, i64, i64)> = on_db!(&self.db, p => sqlx::query_as(
            "SELECT state, attempts, next_attempt_at, created_at FROM outbox WHERE message_id = $1")
            .bind(message_id).fetch_optional(p).await)?;
        Ok(match row {
            None => true,
            Some((state, attempts, next_at, created_at)) => {
                state == "queued" && (attempts > 0 || next_at > created_at)
            }
        })
    }

    /// After switching to push mode: everything waiting for a reply token goes now (M1/M2).
    pub async fn wake_outbox(&self, now_ms: i64) -> Result<u64> {
        Ok(exec_db!(&self.db, p => sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE state = 'queued' AND next_attempt_at > $1")
            .bind(now_ms))?)
    }

    /// How many messages wait, and since when (for /metrics).
    pub async fn outbox_depth(&self) -> Result<(i64, Option<i64>)> {
        Ok(
            on_db!(&self.db, p => sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT COUNT(*), MIN(created_at) FROM outbox").fetch_one(p).await)?,
        )
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.db, Db::Sqlite(_))
    }
}
