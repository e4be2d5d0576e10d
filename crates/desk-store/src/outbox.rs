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
//!
//! One press of 送信 is one group ([`Store::queue_group`]): its messages are written in one
//! transaction, share `send_group`, and the planner never splits them across reply tokens.
//! A waiting message can be taken back ([`Store::cancel_message`], 取消): the DELETE of its
//! outbox row only matches while the row is `queued`, and the sender's `mark_sending` only
//! matches a row that still exists, so exactly one of the two wins — a message already marked
//! `sending` cannot be cancelled, and a cancelled one is never sent.
//!
//! Why one file of ~650 lines: writing, cancelling, resending and leasing outbox rows are one
//! protocol with the sender (`desk-server/src/sender.rs`); its guarantees are only visible
//! when all its statements are side by side.

use desk_core::Delivery;

use crate::{Change, Db, Result, Store};

/// A message an agent writes.
pub struct NewOutgoing<'a> {
    /// Text or image (what agents send).
    pub kind: desk_core::MessageKind,
    pub text: Option<&'a str>,
    /// For images: `{"original_url", "preview_url"}`.
    pub payload: Option<&'a str>,
    pub media_id: Option<i64>,
}

/// Why the desk refused to take a message: the writer does not hold the chat (C4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotHandler {
    pub status: desk_core::ConversationStatus,
    pub agent_id: Option<i64>,
}

/// What came of writing into a chat as its handler ([`Store::queue_group`],
/// [`Store::resend`]): the expected refusals are outcomes, not errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerWrite<T> {
    /// Written and queued.
    Queued(T),
    /// No such chat (or message).
    NotFound,
    /// The writer does not hold the chat (C4).
    NotHandler(NotHandler),
}

impl<T> HandlerWrite<T> {
    /// The same outcome with what was queued changed by `f`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> HandlerWrite<U> {
        match self {
            HandlerWrite::Queued(t) => HandlerWrite::Queued(f(t)),
            HandlerWrite::NotFound => HandlerWrite::NotFound,
            HandlerWrite::NotHandler(e) => HandlerWrite::NotHandler(e),
        }
    }

    /// What was queued, if it was.
    pub fn queued(self) -> Option<T> {
        match self {
            HandlerWrite::Queued(t) => Some(t),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxItem {
    pub outbox_id: i64,
    pub message_id: i64,
    #[sqlx(try_from = "String")]
    pub state: desk_core::OutboxState,
    /// How the attempt under way goes; see [`OutboxItem::attempt_via`]. (Text here: sqlx's
    /// `try_from` cannot map a nullable column; [`Store::outbox_items`] checks it.)
    #[sqlx(rename = "attempt_via")]
    attempt_via_text: Option<String>,
    pub retry_key: String,
    pub attempts: i64,
    pub next_attempt_at: i64,
    #[sqlx(try_from = "String")]
    pub kind: desk_core::MessageKind,
    pub text: Option<String>,
    pub payload: Option<String>,
    /// The press of 送信 it belongs to (the id of its first message).
    pub send_group: i64,
    /// Its author; `None` for the desk's own answers.
    pub agent_id: Option<i64>,
    /// For the desk's answer to a customer message: that message's reply token.
    pub reply_to_token: Option<String>,
    pub last_error: Option<String>,
    /// When it was queued (the agent pressed 送信), epoch ms.
    pub queued_at: i64,
}

impl OutboxItem {
    /// Reply or push, for a message being sent (`state` is `Sending`); `None` before.
    pub fn attempt_via(&self) -> Option<desk_core::Mode> {
        self.attempt_via_text
            .as_deref()
            .and_then(|v| v.parse().ok())
    }

    /// A request of this kind carrying it is under way.
    pub fn sending_by(&self, via: desk_core::Mode) -> bool {
        self.state == desk_core::OutboxState::Sending && self.attempt_via() == Some(via)
    }
}

/// What the sender needs to know about a chat besides its queue: who holds it (for
/// `desk_core::status::origin_of`) and whether the holder has answered since taking it.
#[derive(Debug, Clone, Copy)]
pub struct SendContext {
    pub state: desk_core::ConversationState,
    /// A message of the holder was sent since they pressed 対応中.
    pub handler_answered: bool,
}

/// What came of 取消.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled {
        conversation_id: i64,
    },
    /// A request carrying it is under way (`sending`): it can no longer be taken back.
    AlreadySending,
    /// It does not wait (sent, failed, cancelled, or a customer's message).
    NotWaiting,
    /// Neither its author, nor the chat's handler, nor an admin (desk_core::status::may_cancel).
    NotAllowed,
    NotFound,
}

/// What happens to a chat's waiting messages when it is completed or released (完了/未読).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnsentChoice {
    /// そのまま送る: they stay queued, for the next handler (the default: nothing an agent
    /// wrote is dropped unless someone chose so).
    #[default]
    Keep,
    /// 取り消す: every waiting message the actor may cancel is cancelled with the change.
    Cancel,
}

/// A desk answer to queue with a passcode check (see `Store::check_passcodes_with`).
#[derive(Debug, Clone)]
pub struct Confirmation<'a> {
    pub text: &'a str,
    pub retry_key: &'a str,
    /// Reply mode: ride the passcode message's own reply token.
    pub ride_reply_token: bool,
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
    ) -> Result<HandlerWrite<i64>> {
        Ok(self
            .queue_group(conversation_id, agent_id, &[(m, retry_key)], now_ms)
            .await?
            .map(|ids| ids[0]))
    }

    /// Writes one press of 送信 — its messages in the order composed, each with its retry
    /// key — and queues them as one group, in one transaction, if `agent_id` handles the
    /// in-progress chat. All or nothing.
    pub async fn queue_group(
        &self,
        conversation_id: i64,
        agent_id: i64,
        parts: &[(NewOutgoing<'_>, &str)],
        now_ms: i64,
    ) -> Result<HandlerWrite<Vec<i64>>> {
        let mut tx = self.begin().await?;
        // On PostgreSQL the chat row is locked (and the condition re-checked after any
        // concurrent release commits), so a message is never taken for a chat that another
        // instance has just released or handed to someone else.
        let sql = format!(
            "INSERT INTO messages (conversation_id, direction, type, text, payload, media_id, media_state,
                                   agent_id, delivery, created_at, send_group)
             SELECT id, 'out', $3, $4, $5, $6, CASE WHEN $6 IS NULL THEN 'none' ELSE 'ok' END, $2, 'unsent', $7, $8
             FROM conversations WHERE id = $1 AND status = 'in_progress' AND agent_id = $2{}
             RETURNING id",
            tx.for_update()
        );
        let mut ids = Vec::with_capacity(parts.len());
        for (m, retry_key) in parts {
            let group = ids.first().copied();
            let id: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
                .bind(conversation_id)
                .bind(agent_id)
                .bind(m.kind.as_str())
                .bind(m.text)
                .bind(m.payload)
                .bind(m.media_id)
                .bind(now_ms)
                .bind(group)
                .fetch_optional(c)
                .await)?;
            let Some(message_id) = id else {
                let row: Option<(String, Option<i64>)> = on_tx!(&mut tx, |c| sqlx::query_as(
                    "SELECT status, agent_id FROM conversations WHERE id = $1"
                )
                .bind(conversation_id)
                .fetch_optional(c)
                .await)?;
                let Some((status, agent_id)) = row else {
                    return Ok(HandlerWrite::NotFound);
                };
                let status = crate::decode(status)?;
                return Ok(HandlerWrite::NotHandler(NotHandler { status, agent_id }));
            };
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                "INSERT INTO outbox (message_id, conversation_id, state, retry_key, next_attempt_at, created_at)
                 VALUES ($1, $2, 'queued', $3, $4, $4)")
                .bind(message_id).bind(conversation_id).bind(*retry_key).bind(now_ms)
            })?;
            ids.push(message_id);
        }
        tx.announce(ids.iter().map(|&id| Change::Message {
            conversation_id,
            id,
        }));
        tx.commit().await?;
        Ok(HandlerWrite::Queued(ids))
    }

    /// 取消: takes back a waiting message, if `actor_id` may (its author, the chat's handler,
    /// an admin — desk_core::status::may_cancel) and no request carrying it is under way.
    /// It stays in the history as `cancelled`, with who and when.
    pub async fn cancel_message(
        &self,
        message_id: i64,
        actor_id: i64,
        actor_is_admin: bool,
        now_ms: i64,
    ) -> Result<CancelOutcome> {
        let mut tx = self.begin().await?;
        // Only a `queued` row: the sender's mark_sending and this DELETE exclude each other.
        let conv: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "DELETE FROM outbox WHERE message_id = $1 AND state = 'queued'
               AND EXISTS (SELECT 1 FROM messages m JOIN conversations c ON c.id = m.conversation_id
                           WHERE m.id = $1 AND ($3 OR m.agent_id = $2
                                                OR (c.status = 'in_progress' AND c.agent_id = $2)))
             RETURNING conversation_id"
        )
        .bind(message_id)
        .bind(actor_id)
        .bind(actor_is_admin)
        .fetch_optional(c)
        .await)?;
        let Some(conversation_id) = conv else {
            // (direction, author, chat status, chat holder, outbox state)
            type Why = (String, Option<i64>, String, Option<i64>, Option<String>);
            let row: Option<Why> = on_tx!(&mut tx, |c| sqlx::query_as(
                "SELECT m.direction, m.agent_id, c.status, c.agent_id, o.state
                 FROM messages m JOIN conversations c ON c.id = m.conversation_id
                 LEFT JOIN outbox o ON o.message_id = m.id WHERE m.id = $1"
            )
            .bind(message_id)
            .fetch_optional(c)
            .await)?;
            let Some((direction, author, status, holder, outbox_state)) = row else {
                return Ok(CancelOutcome::NotFound);
            };
            let state = desk_core::ConversationState {
                status: crate::decode(status)?,
                agent_id: holder,
                started_at: holder.map(|_| 0),
            };
            let actor = desk_core::Actor {
                agent_id: actor_id,
                is_admin: actor_is_admin,
            };
            return Ok(match outbox_state.as_deref() {
                _ if direction != desk_core::Direction::Out.as_str() => CancelOutcome::NotWaiting,
                None => CancelOutcome::NotWaiting,
                Some(_) if !desk_core::status::may_cancel(&actor, author, &state) => {
                    CancelOutcome::NotAllowed
                }
                Some(_) => CancelOutcome::AlreadySending,
            });
        };
        exec_tx!(&mut tx, |c| sqlx::query(
            "UPDATE messages SET delivery = $2, cancelled_at = $3, cancelled_by = $4 WHERE id = $1"
        )
        .bind(message_id)
        .bind(Delivery::Cancelled.as_str())
        .bind(now_ms)
        .bind(actor_id))?;
        tx.announce([Change::Message {
            conversation_id,
            id: message_id,
        }]);
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled { conversation_id })
    }

    /// Inside a status change (完了/未読 with 取り消す): cancels every waiting message of the chat
    /// that the actor may cancel, judged on the chat as it was before the change.
    pub(crate) async fn cancel_waiting_in_tx(
        tx: &mut crate::Tx,
        conversation_id: i64,
        actor_id: i64,
        actor_is_admin: bool,
        was_holder: bool,
        now_ms: i64,
    ) -> Result<Vec<i64>> {
        let ids: Vec<i64> = on_tx!(tx, |c| {
            sqlx::query_scalar(
            "DELETE FROM outbox WHERE conversation_id = $1 AND state = 'queued'
               AND ($3 OR $4 OR message_id IN (SELECT id FROM messages WHERE conversation_id = $1 AND agent_id = $2))
             RETURNING message_id")
            .bind(conversation_id).bind(actor_id).bind(actor_is_admin).bind(was_holder)
            .fetch_all(c).await
        })?;
        for id in &ids {
            exec_tx!(tx, |c| {
                sqlx::query(
                "UPDATE messages SET delivery = $2, cancelled_at = $3, cancelled_by = $4 WHERE id = $1")
                .bind(id).bind(Delivery::Cancelled.as_str()).bind(now_ms).bind(actor_id)
            })?;
        }
        tx.announce(ids.iter().map(|&id| Change::Message {
            conversation_id,
            id,
        }));
        Ok(ids)
    }

    /// Queues a failed or uncertain message again, when the agent presses resend; only the
    /// handler of the in-progress chat may. A fresh retry key: this is a new attempt.
    pub async fn resend(
        &self,
        message_id: i64,
        agent_id: i64,
        retry_key: &str,
        now_ms: i64,
    ) -> Result<HandlerWrite<i64>> {
        let mut tx = self.begin().await?;
        let conv: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
            "UPDATE messages SET delivery = 'unsent', delivery_error = NULL
             WHERE id = $1 AND direction = 'out' AND delivery IN ('failed', 'uncertain')
               AND conversation_id IN (SELECT id FROM conversations
                                       WHERE status = 'in_progress' AND agent_id = $2)
             RETURNING conversation_id"
        )
        .bind(message_id)
        .bind(agent_id)
        .fetch_optional(c)
        .await)?;
        let Some(conversation_id) = conv else {
            let row: Option<(String, Option<i64>)> = on_tx!(&mut tx, |c| {
                sqlx::query_as(
                "SELECT c.status, c.agent_id FROM conversations c JOIN messages m ON m.conversation_id = c.id
                 WHERE m.id = $1")
                .bind(message_id).fetch_optional(c).await
            })?;
            let Some((status, agent_id)) = row else {
                return Ok(HandlerWrite::NotFound);
            };
            let status = crate::decode(status)?;
            return Ok(HandlerWrite::NotHandler(NotHandler { status, agent_id }));
        };
        exec_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO outbox (message_id, conversation_id, state, retry_key, next_attempt_at, created_at)
             VALUES ($1, $2, 'queued', $3, $4, $4)")
            .bind(message_id).bind(conversation_id).bind(retry_key).bind(now_ms)
        })?;
        tx.announce([Change::Message {
            conversation_id,
            id: message_id,
        }]);
        tx.commit().await?;
        Ok(HandlerWrite::Queued(conversation_id))
    }

    /// Conversations with something to send now: in push mode every due message; in reply
    /// mode also those whose customer brought a usable reply token that a waiting message may
    /// use — the desk's answer, the handler's, or a kept one once the handler answered
    /// (desk_core::planner; kept ones otherwise wait, so they must not keep the worker busy).
    pub async fn conversations_to_send(
        &self,
        now_ms: i64,
        token_since_ms: i64,
        limit: i64,
    ) -> Result<Vec<i64>> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_scalar(
            "SELECT DISTINCT o.conversation_id FROM outbox o
             JOIN messages mo ON mo.id = o.message_id
             JOIN conversations c ON c.id = o.conversation_id
             WHERE o.next_attempt_at <= $1
                OR (o.state = 'queued'
                    AND (mo.agent_id IS NULL
                         OR (c.status = 'in_progress'
                             AND (mo.agent_id = c.agent_id
                                  OR EXISTS (SELECT 1 FROM messages a
                                             WHERE a.conversation_id = c.id AND a.direction = 'out'
                                               AND a.agent_id = c.agent_id AND a.delivery = 'sent'
                                               AND a.sent_at >= c.started_at))))
                    AND EXISTS (SELECT 1 FROM messages m
                                WHERE m.conversation_id = o.conversation_id AND m.direction = 'in'
                                  AND m.reply_token IS NOT NULL AND NOT m.reply_token_used
                                  AND m.created_at > $2
                                  AND NOT EXISTS (SELECT 1 FROM jobs j
                                                  WHERE j.kind = 'passcode' AND j.target_id = m.id
                                                    AND NOT EXISTS (SELECT 1 FROM passcode_attempts a
                                                                    WHERE a.message_id = m.id))))
             LIMIT $3")
            .bind(now_ms).bind(token_since_ms).bind(limit)
            .fetch_all(p).await
        })?)
    }

    /// The chat's holder and whether they answered since taking it (see [`SendContext`]).
    pub async fn send_context(&self, conversation_id: i64) -> Result<Option<SendContext>> {
        let row: Option<(String, Option<i64>, Option<i64>, bool)> =
            on_db!(&self.db, |p| sqlx::query_as(
                "SELECT c.status, c.agent_id, c.started_at,
                    EXISTS (SELECT 1 FROM messages a
                            WHERE a.conversation_id = c.id AND a.direction = 'out'
                              AND a.agent_id = c.agent_id AND a.delivery = 'sent'
                              AND a.sent_at >= c.started_at) AS answered
             FROM conversations c WHERE c.id = $1"
            )
            .bind(conversation_id)
            .fetch_optional(p)
            .await)?;
        row.map(|(status, agent_id, started_at, answered)| {
            let state = desk_core::ConversationState {
                status: crate::decode(status)?,
                agent_id,
                started_at,
            };
            Ok(SendContext {
                handler_answered: answered && state.holder().is_some(),
                state,
            })
        })
        .transpose()
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
        let n = exec_db!(&self.db, |p| sqlx::query(
            "UPDATE conversations SET send_lease_until = $2
             WHERE id = $1 AND (send_lease_until IS NULL OR send_lease_until < $3)"
        )
        .bind(conversation_id)
        .bind(until)
        .bind(now_ms))?;
        Ok((n == 1).then_some(Lease {
            conversation_id,
            until,
        }))
    }

    /// At the start of a single-machine (SQLite) desk: no other process can be sending, so
    /// leases a killed process left are void at once instead of when they expire.
    pub async fn clear_send_leases(&self) -> Result<u64> {
        Ok(exec_db!(&self.db, |p| sqlx::query(
            "UPDATE conversations SET send_lease_until = NULL WHERE send_lease_until IS NOT NULL"
        ))?)
    }

    /// Gives the lease up, if it is still this holder's (an expired lease taken over by
    /// another worker is left alone).
    pub async fn release_conversation(&self, lease: &Lease) -> Result<()> {
        exec_db!(&self.db, |p| {
            sqlx::query(
            "UPDATE conversations SET send_lease_until = NULL WHERE id = $1 AND send_lease_until = $2")
            .bind(lease.conversation_id).bind(lease.until)
        })?;
        Ok(())
    }

    /// The conversation's waiting messages, in the order written.
    pub async fn outbox_items(&self, conversation_id: i64) -> Result<Vec<OutboxItem>> {
        let items = on_db!(&self.db, |p| {
            sqlx::query_as::<_, OutboxItem>(
            "SELECT o.id AS outbox_id, o.message_id, o.state, o.attempt_via, o.retry_key, o.attempts, o.next_attempt_at,
                    m.type AS kind, m.text, m.payload, COALESCE(m.send_group, m.id) AS send_group,
                    m.agent_id, rt.reply_token AS reply_to_token, o.last_error,
                    o.created_at AS queued_at
             FROM outbox o JOIN messages m ON m.id = o.message_id
             LEFT JOIN messages rt ON rt.id = o.reply_to
             WHERE o.conversation_id = $1 ORDER BY o.message_id")
            .bind(conversation_id).fetch_all(p).await
        })?;
        for item in &items {
            if let Some(via) = &item.attempt_via_text {
                crate::decode::<desk_core::Mode>(via.clone())?;
            }
        }
        Ok(items)
    }

    /// Customer messages of this chat whose reply token is unused and not older than `since_ms`.
    /// A passcode-shaped message's token waits until its attempt is judged (recorded), so
    /// that the desk's confirmation can ride it.
    pub async fn unused_reply_tokens(
        &self,
        conversation_id: i64,
        since_ms: i64,
    ) -> Result<Vec<TokenRow>> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as::<_, TokenRow>(
            "SELECT id AS message_id, reply_token, created_at FROM messages m
             WHERE conversation_id = $1 AND direction = 'in' AND reply_token IS NOT NULL
               AND NOT reply_token_used AND created_at > $2
               AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'passcode' AND j.target_id = m.id
                                 AND NOT EXISTS (SELECT 1 FROM passcode_attempts a WHERE a.message_id = m.id))
             ORDER BY created_at, id")
            .bind(conversation_id).bind(since_ms).fetch_all(p).await
        })?)
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
        via: desk_core::Mode,
        token_message_id: Option<i64>,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        let until = (now_ms + lease_ms).max(lease.until + 1);
        let held = exec_tx!(&mut tx, |c| {
            sqlx::query(
            "UPDATE conversations SET send_lease_until = $3 WHERE id = $1 AND send_lease_until = $2"
        )
        .bind(lease.conversation_id)
        .bind(lease.until)
        .bind(until)
        })?;
        if held != 1 {
            return Ok(false);
        }
        for id in outbox_ids {
            let n = exec_tx!(&mut tx, |c| sqlx::query(
                "UPDATE outbox SET state = 'sending', attempt_via = $2, attempts = attempts + 1
                 WHERE id = $1 AND (state = 'queued' OR $2 = 'push')"
            )
            .bind(id)
            .bind(via.as_str()))?;
            if n != 1 {
                return Ok(false);
            }
        }
        if let Some(mid) = token_message_id {
            let n = exec_tx!(&mut tx, |c| {
                sqlx::query(
                "UPDATE messages SET reply_token_used = TRUE WHERE id = $1 AND NOT reply_token_used"
            )
            .bind(mid)
            })?;
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
        exec_db!(&self.db, |p| sqlx::query(
            "UPDATE messages SET reply_token_used = FALSE WHERE id = $1"
        )
        .bind(token_message_id))?;
        Ok(())
    }

    /// The messages reached LINE: they leave the outbox and lose their Unsent mark (M6).
    pub async fn mark_sent(
        &self,
        conversation_id: i64,
        message_ids: &[i64],
        via: desk_core::Mode,
        now_ms: i64,
    ) -> Result<()> {
        self.finish_outgoing(
            conversation_id,
            message_ids,
            desk_core::Delivery::Sent,
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
        delivery: desk_core::Delivery,
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
        delivery: desk_core::Delivery,
        error: Option<&str>,
        via: Option<desk_core::Mode>,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for id in message_ids {
            exec_tx!(&mut tx, |c| sqlx::query(
                "DELETE FROM outbox WHERE message_id = $1"
            )
            .bind(id))?;
            exec_tx!(&mut tx, |c| sqlx::query(
                "UPDATE messages SET delivery = $2, delivery_error = $3, sent_via = $4,
                        sent_at = CASE WHEN $2 = 'sent' THEN $5 ELSE sent_at END
                 WHERE id = $1"
            )
            .bind(id)
            .bind(delivery.as_str())
            .bind(error)
            .bind(via.map(desk_core::Mode::as_str))
            .bind(now_ms))?;
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
            // Unchanged rows are not announced: a kept message looked at again and again
            // while it waits must not refresh every open chat each time.
            let row: Option<(i64, i64)> = on_tx!(&mut tx, |c| {
                sqlx::query_as(
                "UPDATE outbox SET state = 'queued', next_attempt_at = $2, last_error = COALESCE($3, last_error)
                 WHERE id = $1 AND (state <> 'queued' OR next_attempt_at <> $2
                                    OR ($3 IS NOT NULL AND (last_error IS NULL OR last_error <> $3)))
                 RETURNING conversation_id, message_id")
                .bind(id).bind(next_attempt_at).bind(error).fetch_optional(c).await
            })?;
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
        let row: Option<(String, i64, i64, i64)> = on_db!(&self.db, |p| {
            sqlx::query_as(
            "SELECT state, attempts, next_attempt_at, created_at FROM outbox WHERE message_id = $1")
            .bind(message_id).fetch_optional(p).await
        })?;
        Ok(match row {
            None => true,
            Some((state, attempts, next_at, created_at)) => {
                state == "queued" && (attempts > 0 || next_at > created_at)
            }
        })
    }

    /// After switching to push mode: everything waiting for a reply token goes now (M1/M2).
    pub async fn wake_outbox(&self, now_ms: i64) -> Result<u64> {
        Ok(exec_db!(&self.db, |p| sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE state = 'queued' AND next_attempt_at > $1"
        )
        .bind(now_ms))?)
    }

    /// How many messages of the chat wait (queued, not under way): what 完了/未読 asks about.
    pub async fn waiting_count(&self, conversation_id: i64) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM outbox WHERE conversation_id = $1 AND state = 'queued'"
        )
        .bind(conversation_id)
        .fetch_one(p)
        .await)?)
    }

    /// The newest customer message of the chat whose reply token is still unused and not older
    /// than `since_ms`: when it arrived (the reply window runs from there).
    pub async fn newest_reply_token_at(
        &self,
        conversation_id: i64,
        since_ms: i64,
    ) -> Result<Option<i64>> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT MAX(created_at) FROM messages
             WHERE conversation_id = $1 AND direction = 'in' AND reply_token IS NOT NULL
               AND NOT reply_token_used AND created_at > $2"
        )
        .bind(conversation_id)
        .bind(since_ms)
        .fetch_one(p)
        .await)?)
    }

    /// How many messages wait, and since when (for /metrics).
    pub async fn outbox_depth(&self) -> Result<(i64, Option<i64>)> {
        Ok(on_db!(&self.db, |p| {
            sqlx::query_as::<_, (i64, Option<i64>)>("SELECT COUNT(*), MIN(created_at) FROM outbox")
                .fetch_one(p)
                .await
        })?)
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self.db, Db::Sqlite(_))
    }
}
