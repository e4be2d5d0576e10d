//! LINE passcodes: issued by an agent, checked when a LINE user sends one (linking them),
//! with the per-user and desk-wide guessing limits.

use desk_core::customer_code::format_code;
use desk_core::passcode::{self, AttemptOutcome, Passcode};
use desk_core::{HistoryAction, LinkVia};
use serde_json::json;

use super::history::{History, write_history};
use super::links::{LinkOutcome, link_in_tx};
use crate::{Change, Result, Store, StoreError, Tx, TxInner, secrets};

/// The customer's passcode that is neither used nor replaced (it may have expired).
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ActivePasscode {
    pub code: String,
    pub issued_at: i64,
    pub valid_until: i64,
}

/// What came of one checked passcode attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub message_id: i64,
    pub code: String,
    pub outcome: AttemptOutcome,
    pub customer_id: Option<i64>,
    /// For `throttled`: the desk-wide guessing budget was exhausted (else the LINE user's
    /// own limit).
    pub budget_exhausted: bool,
}

/// The counter of passcode attempts left unchecked because the desk-wide guessing budget
/// was exhausted (its time: the last such attempt).
pub const PASSCODE_BUDGET_REFUSED: &str = "passcode_budget_refused";

/// The advisory lock serializing passcode checks across instances ("ldpass"), so the
/// desk-wide budget is never overdrawn.
const PASSCODE_LOCK_KEY: i64 = 0x6c64_7061_7373;

/// Judges one attempt: throttle, desk-wide budget, look-up (by the code's keyed hash),
/// link or failure; records it.
async fn check_one(
    tx: &mut Tx,
    conversation_id: i64,
    message_id: i64,
    code: &Passcode,
    code_hash: &str,
    sent_at: i64,
    now_ms: i64,
) -> Result<Attempt> {
    let failures: Vec<i64> = on_tx!(tx, |c| {
        sqlx::query_scalar(
        "SELECT at FROM passcode_attempts WHERE conversation_id = $1 AND outcome = 'failed' AND at > $2")
        .bind(conversation_id).bind(sent_at - passcode::THROTTLE_WINDOW_MS).fetch_all(c).await
    })?;
    let mut attempt = Attempt {
        message_id,
        code: code.to_string(),
        outcome: AttemptOutcome::Failed,
        customer_id: None,
        budget_exhausted: false,
    };
    let desk_failures: i64 = on_tx!(tx, |c| sqlx::query_scalar(
        "SELECT COUNT(*) FROM passcode_attempts WHERE outcome = 'failed' AND at > $1"
    )
    .bind(sent_at - passcode::THROTTLE_WINDOW_MS)
    .fetch_one(c)
    .await)?;
    if !passcode::attempt_allowed(&failures, sent_at) {
        attempt.outcome = AttemptOutcome::Throttled;
    } else if !passcode::budget_allows(usize::try_from(desk_failures).unwrap_or(usize::MAX)) {
        attempt.outcome = AttemptOutcome::Throttled;
        attempt.budget_exhausted = true;
        exec_tx!(tx, |c| {
            sqlx::query(
            "INSERT INTO counters (name, value, updated_at) VALUES ($1, 1, $2)
             ON CONFLICT (name) DO UPDATE SET value = counters.value + 1, updated_at = excluded.updated_at")
            .bind(PASSCODE_BUDGET_REFUSED).bind(now_ms)
        })?;
    } else {
        // Judged at the time the LINE user sent it: a passcode issued later does not count.
        let candidates: Vec<(i64, i64, i64, i64)> = on_tx!(tx, |c| sqlx::query_as(
            "SELECT id, customer_id, issued_at, valid_until FROM customer_passcodes
             WHERE code_hash = $1 AND used_at IS NULL AND replaced_at IS NULL"
        )
        .bind(code_hash)
        .fetch_all(c)
        .await)?;
        let valid = candidates.into_iter().find(|(_, _, issued, until)| {
            passcode::is_valid(*issued, *until, false, false, sent_at)
        });
        if let Some((passcode_id, customer_id, _, _)) = valid {
            let used = exec_tx!(tx, |c| sqlx::query(
                "UPDATE customer_passcodes SET used_at = $2, used_by_conversation_id = $3
                 WHERE id = $1 AND used_at IS NULL AND replaced_at IS NULL"
            )
            .bind(passcode_id)
            .bind(now_ms)
            .bind(conversation_id))?;
            if used == 1 {
                let out = link_in_tx(
                    tx,
                    conversation_id,
                    customer_id,
                    None,
                    LinkVia::Passcode,
                    Some(code.as_str()),
                    now_ms,
                )
                .await?;
                if !matches!(out, LinkOutcome::NoConversation | LinkOutcome::NoCustomer) {
                    system_line(tx, conversation_id, customer_id, now_ms).await?;
                    attempt.outcome = AttemptOutcome::Linked;
                    attempt.customer_id = Some(customer_id);
                }
            }
        }
    }
    exec_tx!(tx, |c| {
        sqlx::query(
        "INSERT INTO passcode_attempts (message_id, conversation_id, code, outcome, customer_id, at, checked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(message_id).bind(conversation_id).bind(code.as_str()).bind(attempt.outcome.as_str())
        .bind(attempt.customer_id).bind(sent_at).bind(now_ms)
    })?;
    Ok(attempt)
}

/// The desk's confirmation to the customer whose passcode linked them: an outgoing message
/// without an agent, riding the passcode message's reply token in Reply mode.
async fn queue_confirmation(
    tx: &mut Tx,
    conversation_id: i64,
    passcode_message_id: i64,
    c: &crate::outbox::Confirmation<'_>,
    now_ms: i64,
) -> Result<()> {
    let payload = json!({"event": "passcode_confirmation"}).to_string();
    let id: i64 = on_tx!(tx, |t| {
        sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, direction, type, text, payload, media_state, delivery, created_at)
         VALUES ($1, 'out', 'text', $2, $3, 'none', 'unsent', $4) RETURNING id")
        .bind(conversation_id).bind(c.text).bind(&payload).bind(now_ms).fetch_one(t).await
    })?;
    let reply_to = c.ride_reply_token.then_some(passcode_message_id);
    exec_tx!(tx, |t| {
        sqlx::query(
        "INSERT INTO outbox (message_id, conversation_id, state, retry_key, next_attempt_at, created_at, reply_to)
         VALUES ($1, $2, 'queued', $3, $4, $4, $5)")
        .bind(id).bind(conversation_id).bind(c.retry_key).bind(now_ms).bind(reply_to)
    })?;
    tx.announce([Change::Message {
        conversation_id,
        id,
    }]);
    Ok(())
}

/// `customer_linked`: the system line a passcode link adds to the chat. The stored text is
/// Japanese (for API readers); the UI renders it from `payload` in the viewer's language.
async fn system_line(
    tx: &mut Tx,
    conversation_id: i64,
    customer_id: i64,
    now_ms: i64,
) -> Result<()> {
    let name: String = on_tx!(tx, |c| sqlx::query_scalar(
        "SELECT name FROM customers WHERE id = $1"
    )
    .bind(customer_id)
    .fetch_one(c)
    .await)?;
    let code = format_code(customer_id);
    let text = format!("{code} {name} と関連付けました");
    let payload = json!({
        "event": "customer_linked",
        "via": "passcode",
        "customer_id": customer_id,
        "customer_code": code,
        "customer_name": name,
    })
    .to_string();
    let id: i64 = on_tx!(tx, |c| {
        sqlx::query_scalar(
        "INSERT INTO messages (conversation_id, direction, type, text, payload, media_state, delivery, created_at)
         VALUES ($1, 'system', 'text', $2, $3, 'none', 'received', $4) RETURNING id")
        .bind(conversation_id).bind(&text).bind(&payload).bind(now_ms).fetch_one(c).await
    })?;
    tx.announce([Change::Message {
        conversation_id,
        id,
    }]);
    Ok(())
}

impl Store {
    /// Wrong passcodes sent since `since_ms` on the whole desk (the guessing budget's count).
    pub async fn passcode_failures_since(&self, since_ms: i64) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM passcode_attempts WHERE outcome = 'failed' AND at > $1"
        )
        .bind(since_ms)
        .fetch_one(p)
        .await)?)
    }

    /// The customer's passcode that is neither used nor replaced (it may have expired).
    /// The code is stored encrypted (secrets.rs) and decrypted here, for agents to read out.
    pub async fn active_passcode(&self, customer_id: i64) -> Result<Option<ActivePasscode>> {
        let row: Option<ActivePasscode> = on_db!(&self.db, |p| {
            sqlx::query_as::<_, ActivePasscode>(
            "SELECT COALESCE(code_enc, code) AS code, issued_at, valid_until FROM customer_passcodes
             WHERE customer_id = $1 AND used_at IS NULL AND replaced_at IS NULL")
            .bind(customer_id).fetch_optional(p).await
        })?;
        row.map(|mut a| {
            a.code = self
                .secrets()?
                .open(secrets::PASSCODE_PURPOSE, &a.code)?
                .into_inner();
            Ok(a)
        })
        .transpose()
    }

    /// Issues a LINE passcode valid until `valid_until_ms` (checked by the caller with
    /// desk_core::passcode::valid_until), replacing the customer's active one.
    /// [`StoreError::NotFound`] without the customer.
    pub async fn issue_passcode(
        &self,
        customer_id: i64,
        actor_id: Option<i64>,
        valid_until_ms: i64,
        now_ms: i64,
    ) -> Result<Passcode> {
        use rand::Rng;
        let secrets = self.secrets()?;
        let mut tx = self.begin().await?;
        let sql = format!("SELECT id FROM customers WHERE id = $1{}", tx.for_update());
        let found: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
            .bind(customer_id)
            .fetch_optional(c)
            .await)?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        exec_tx!(&mut tx, |c| sqlx::query(
            "UPDATE customer_passcodes SET replaced_at = $2
             WHERE customer_id = $1 AND used_at IS NULL AND replaced_at IS NULL"
        )
        .bind(customer_id)
        .bind(now_ms))?;
        let mut issued = None;
        // A code held by another customer's valid passcode is drawn again (at most a few
        // thousand of the million codes are ever active at once). Codes are found by their
        // keyed hash; the database never holds a live code in plain text.
        for _ in 0..50 {
            let code = passcode::generate(rand::thread_rng().gen_range(0..passcode::CODE_SPACE));
            let hash = secrets.passcode_hash(code.as_str());
            // An expired passcode still holding this code gives it up.
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                "UPDATE customer_passcodes SET replaced_at = $2
                 WHERE code_hash = $1 AND used_at IS NULL AND replaced_at IS NULL AND valid_until <= $2")
                .bind(&hash).bind(now_ms)
            })?;
            let inserted: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(
                "INSERT INTO customer_passcodes
                     (customer_id, code, code_hash, code_enc, issued_at, valid_until, issued_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING RETURNING id"
            )
            .bind(customer_id)
            .bind(secrets::MASKED_CODE)
            .bind(&hash)
            .bind(secrets.seal(secrets::PASSCODE_PURPOSE, code.as_str()))
            .bind(now_ms)
            .bind(valid_until_ms)
            .bind(actor_id)
            .fetch_optional(c)
            .await)?;
            if inserted.is_some() {
                issued = Some(code);
                break;
            }
        }
        let Some(code) = issued else {
            return Err(StoreError::Conflict("no free passcode; try again".into()));
        };
        // The history says that a passcode was issued and until when, not which: a live
        // code is a secret.
        let h = History {
            customer_id,
            actor_id,
            action: HistoryAction::PasscodeIssued,
            valid_until: Some(valid_until_ms),
            ..Default::default()
        };
        write_history(&mut tx, h, now_ms).await?;
        tx.commit().await?;
        Ok(code)
    }

    /// Runs a `passcode` job: checks the passcode attempts of `message_id`'s chat that are
    /// still pending, up to and including that message, in the order the LINE user sent
    /// them. Returns what came of each (empty when another job already checked them).
    pub async fn check_passcodes(&self, message_id: i64, now_ms: i64) -> Result<Vec<Attempt>> {
        self.check_passcodes_with(message_id, now_ms, None).await
    }

    /// [`Store::check_passcodes`], queueing `confirmation` — the desk's answer to the customer
    /// (LINE設定) — for each attempt that linked, in the same transaction (never lost, never
    /// twice). A passcode-shaped message's reply token waits until its attempt is recorded
    /// here (outbox), so the confirmation can ride it.
    pub async fn check_passcodes_with(
        &self,
        message_id: i64,
        now_ms: i64,
        confirmation: Option<crate::outbox::Confirmation<'_>>,
    ) -> Result<Vec<Attempt>> {
        let secrets = self.secrets()?;
        let mut tx = self.begin().await?;
        if let TxInner::Postgres(t) = &mut tx.inner {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PASSCODE_LOCK_KEY)
                .execute(&mut **t)
                .await?;
        }
        let target: Option<(i64, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
            "SELECT conversation_id, created_at FROM messages WHERE id = $1"
        )
        .bind(message_id)
        .fetch_optional(c)
        .await)?;
        let Some((conversation_id, target_at)) = target else {
            return Ok(Vec::new());
        };
        // One checker per chat at a time, so attempts are judged in order.
        let sql = format!(
            "SELECT id FROM conversations WHERE id = $1{}",
            tx.for_update()
        );
        on_tx!(&mut tx, |c| sqlx::query_scalar::<_, i64>(&sql)
            .bind(conversation_id)
            .fetch_optional(c)
            .await)?;
        let pending: Vec<(i64, Option<String>, i64)> = on_tx!(&mut tx, |c| sqlx::query_as(
            "SELECT m.id, m.text, m.created_at FROM messages m
             WHERE m.conversation_id = $1 AND m.direction = 'in'
               AND (m.created_at < $2 OR (m.created_at = $2 AND m.id <= $3))
               AND EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'passcode' AND j.target_id = m.id)
               AND NOT EXISTS (SELECT 1 FROM passcode_attempts a WHERE a.message_id = m.id)
             ORDER BY m.created_at, m.id"
        )
        .bind(conversation_id)
        .bind(target_at)
        .bind(message_id)
        .fetch_all(c)
        .await)?;
        let mut attempts = Vec::new();
        for (id, text, sent_at) in pending {
            let Some(code) = text.as_deref().and_then(passcode::parse_candidate) else {
                continue;
            };
            let hash = secrets.passcode_hash(code.as_str());
            let attempt =
                check_one(&mut tx, conversation_id, id, &code, &hash, sent_at, now_ms).await?;
            if attempt.outcome == AttemptOutcome::Linked
                && let Some(c) = &confirmation
            {
                queue_confirmation(&mut tx, conversation_id, id, c, now_ms).await?;
            }
            attempts.push(attempt);
        }
        tx.commit().await?;
        Ok(attempts)
    }
}
