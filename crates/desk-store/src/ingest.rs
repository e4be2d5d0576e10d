//! Storing what LINE's webhook delivers (spec S4, C1, C5, C7), many events in one
//! transaction so that one fsync makes a whole batch durable.
//!
//! Idempotency is by constraint: `webhook_events.webhook_event_id` is unique, so a
//! redelivered event inserts nothing and changes nothing. Old-shape events without a
//! `webhookEventId` fall back to the unique LINE message id.

use std::collections::{HashMap, HashSet};

pub use crate::inbound::{
    InboundAction, InboundEvent, InboundMessage, IngestOutcome, JOB_CONTENT, JOB_PASSCODE,
    JOB_PROFILE,
};
use crate::inbound::{media_state, passcode_attempt, sql};
pub use crate::ingest_sqlite::SqliteWriter;
use desk_core::{MediaState, MessageKind};

use crate::{Change, Result, Store, StoreError, Tx};

impl Store {
    /// Stores a batch of events in one transaction; returns once it is committed (durable).
    ///
    /// The result is the same as storing the events one by one in their order, but the
    /// common case costs a handful of statements per batch instead of several per event:
    /// consecutive runs of events that at most add messages are stored set-based
    /// ([`ingest_run`]); follow, unfollow and old-shape events (no `webhookEventId`) go one
    /// by one between the runs, so their order against the same user's messages is kept.
    pub async fn ingest(&self, events: &[InboundEvent], now_ms: i64) -> Result<IngestOutcome> {
        let mut tx = self.begin().await?;
        let mut outcome = IngestOutcome::default();
        let mut changes = Vec::new();
        ingest_events(&mut tx, events, now_ms, &mut outcome, &mut changes).await?;
        tx.announce(changes);
        tx.commit().await?;
        Ok(outcome)
    }

    /// A writer for the webhook's batches (see [`IngestWriter`]).
    pub fn ingest_writer(&self) -> IngestWriter {
        IngestWriter {
            store: self.clone(),
            sqlite: crate::ingest_sqlite::SqliteWriter::for_store(self),
        }
    }

    /// [`Store::ingest`] the slow way, each event by its own statements: the reference the
    /// set-based path is tested against (`tests/ingest_batch.rs`).
    #[doc(hidden)]
    pub async fn ingest_each(&self, events: &[InboundEvent], now_ms: i64) -> Result<IngestOutcome> {
        let mut tx = self.begin().await?;
        let mut outcome = IngestOutcome::default();
        let mut changes = Vec::new();
        for ev in events {
            if ingest_one(&mut tx, ev, now_ms, &mut outcome, &mut changes).await? {
                outcome.stored += 1;
            } else {
                outcome.duplicates += 1;
            }
        }
        tx.announce(changes);
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Stores batches like [`Store::ingest`], for the webhook's writer, from async code.
///
/// On a SQLite file it is the [`SqliteWriter`] (a connection of its own, statements kept
/// prepared; `ingest_sqlite.rs`), run through `spawn_blocking`; desk-server's webhook runs
/// that writer on a thread of its own instead. On PostgreSQL (and in-memory SQLite) it uses
/// the pool and the set-based statements.
pub struct IngestWriter {
    store: Store,
    /// Taken out while a batch is written on the blocking pool.
    sqlite: Option<SqliteWriter>,
}

impl IngestWriter {
    pub async fn ingest(&mut self, events: &[InboundEvent], now_ms: i64) -> Result<IngestOutcome> {
        let Some(mut w) = self.sqlite.take() else {
            return self.store.ingest(events, now_ms).await;
        };
        let events = events.to_vec();
        let (w, r) = tokio::task::spawn_blocking(move || {
            let r = w.ingest(&events, now_ms);
            (w, r)
        })
        .await
        .map_err(|e| StoreError::Invalid(format!("ingest writer: {e}")))?;
        self.sqlite = Some(w);
        r
    }

    /// On SQLite, copies what the WAL holds back into the database file (a passive
    /// checkpoint, which waits for no reader) if batches were written since the last one
    /// and that was a second ago, or a quarter of a second when no request `waiting`;
    /// otherwise does nothing. The writer calls it after answering a batch and when idle.
    /// SQLite's own checkpoint every 1,000 pages would run inside a commit, that batch's
    /// requests waiting for it, many times a second under load, each time writing the same
    /// hot index pages again; less often, the WAL of a quiet desk stays small.
    pub async fn checkpoint_if_due(&mut self, waiting: bool) -> Result<()> {
        match &mut self.sqlite {
            Some(w) => w.checkpoint_if_due(waiting),
            None => Ok(()),
        }
    }
}

/// Stores `events` in order on `c`, inside the caller's transaction.
async fn ingest_events(
    c: &mut Tx,
    events: &[InboundEvent],
    now_ms: i64,
    outcome: &mut IngestOutcome,
    changes: &mut Vec<Change>,
) -> Result<()> {
    let mut rest = events;
    while let Some(first) = rest.first() {
        let run = rest.iter().take_while(|e| set_based(e)).count();
        if run > 0 {
            let stored = ingest_run(c, &rest[..run], now_ms, outcome, changes).await?;
            outcome.stored += stored;
            outcome.duplicates += run - stored;
            rest = &rest[run..];
        } else {
            if ingest_one(c, first, now_ms, outcome, changes).await? {
                outcome.stored += 1;
            } else {
                outcome.duplicates += 1;
            }
            rest = &rest[1..];
        }
    }
    Ok(())
}

/// Whether an event may be stored in a set-based run: it has an event id to dedupe on and
/// at most adds a message to its user's chat (not a follow or block, whose order against
/// the user's messages matters).
fn set_based(ev: &InboundEvent) -> bool {
    ev.webhook_event_id.is_some()
        && (ev.line_user_id.is_none()
            || matches!(ev.action, InboundAction::Message(_) | InboundAction::Ignore))
}

/// Binds per statement stay below this (SQLite allows 32,766, PostgreSQL 65,535).
const MAX_BINDS: usize = 30_000;

/// One user's messages in a run.
struct UserRun<'a> {
    user: &'a str,
    /// Message events newly stored; each counts as unread unless its message was known.
    events: i64,
    last_at: i64,
    conversation_id: i64,
    /// Messages actually inserted.
    inserted: i64,
}

/// Stores a run of [`set_based`] events with a few multi-row statements; returns how many
/// were new. The effect is that of [`ingest_one`] on each event in order.
async fn ingest_run(
    c: &mut Tx,
    run: &[InboundEvent],
    now: i64,
    outcome: &mut IngestOutcome,
    changes: &mut Vec<Change>,
) -> Result<usize> {
    // 1. The raw events; the unique event id tells which are new. An id twice in the run:
    // the first counts, as one by one.
    let mut seen: HashSet<&str> = HashSet::with_capacity(run.len());
    let firsts: Vec<&InboundEvent> = run
        .iter()
        .filter(|e| seen.insert(e.webhook_event_id.as_deref().unwrap_or_default()))
        .collect();
    let mut new_ids: Vec<String> = Vec::with_capacity(firsts.len());
    for chunk in firsts.chunks(MAX_BINDS / 6) {
        let ids: Vec<String> = on_tx!(c, |c| {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO webhook_events (webhook_event_id, event_type, line_user_id, timestamp, received_at, raw) ",
            );
            qb.push_values(chunk, |mut b, ev| {
                b.push_bind(ev.webhook_event_id.as_deref())
                    .push_bind(ev.event_type.as_str())
                    .push_bind(ev.line_user_id.as_deref())
                    .push_bind(ev.timestamp)
                    .push_bind(now)
                    .push_bind(ev.raw.as_str());
            });
            qb.push(" ON CONFLICT (webhook_event_id) DO NOTHING RETURNING webhook_event_id");
            qb.build_query_scalar().fetch_all(c).await
        })?;
        new_ids.extend(ids);
    }
    let stored_count = new_ids.len();
    let stored: Vec<&InboundEvent> = if stored_count == firsts.len() {
        firsts
    } else {
        let new: HashSet<&str> = new_ids.iter().map(String::as_str).collect();
        firsts
            .into_iter()
            .filter(|e| new.contains(e.webhook_event_id.as_deref().unwrap_or_default()))
            .collect()
    };

    // 2. The new events' messages in 1:1 chats, and per user how many and how recent.
    let mut users: Vec<UserRun> = Vec::new();
    let mut user_index: HashMap<&str, usize> = HashMap::new();
    let mut messages: Vec<(usize, &InboundEvent, &InboundMessage)> = Vec::new();
    for ev in stored {
        let (InboundAction::Message(m), Some(user)) = (&ev.action, ev.line_user_id.as_deref())
        else {
            continue;
        };
        let i = *user_index.entry(user).or_insert_with(|| {
            users.push(UserRun {
                user,
                events: 0,
                last_at: ev.timestamp,
                conversation_id: 0,
                inserted: 0,
            });
            users.len() - 1
        });
        let u = &mut users[i];
        u.events += 1;
        u.last_at = u.last_at.max(ev.timestamp);
        messages.push((i, ev, m));
    }
    if messages.is_empty() {
        return Ok(stored_count);
    }

    // 3. One row per chat creates it or brings it up to date, with the SQL of `ingest_one`
    // summed over the user's messages (PostgreSQL cannot update a row twice in one
    // statement). The status CASE keeps a 完了 chat's turn to 未読 atomic against agents.
    let mut jobs: Vec<(&'static str, i64)> = Vec::new();
    let mut chats: Vec<(i64, String, i64)> = Vec::with_capacity(users.len());
    // In the users' order: concurrent writers (PostgreSQL) then lock the rows they share in
    // the same order, and wait for each other instead of deadlocking.
    let mut sorted: Vec<&UserRun> = users.iter().collect();
    sorted.sort_unstable_by_key(|u| u.user);
    for chunk in sorted.chunks(MAX_BINDS / 5) {
        let rows: Vec<(i64, String, i64)> = on_tx!(c, |c| {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO conversations (line_user_id, unread_count, last_message_at, created_at, updated_at) ",
            );
            qb.push_values(chunk, |mut b, u| {
                b.push_bind(u.user)
                    .push_bind(u.events)
                    .push_bind(u.last_at)
                    .push_bind(now)
                    .push_bind(now);
            });
            qb.push(
                " ON CONFLICT (line_user_id) DO UPDATE SET
                   unread_count = conversations.unread_count + excluded.unread_count,
                   last_message_at = CASE WHEN excluded.last_message_at > conversations.last_message_at
                                          THEN excluded.last_message_at ELSE conversations.last_message_at END,
                   status = CASE WHEN conversations.status = 'done' THEN 'unread' ELSE conversations.status END,
                   blocked = FALSE,
                   updated_at = excluded.updated_at
                 RETURNING id, line_user_id, created_at",
            );
            qb.build_query_as().fetch_all(c).await
        })?;
        chats.extend(rows);
    }
    for (id, user, created_at) in chats {
        users[user_index[user.as_str()]].conversation_id = id;
        // As one by one: a chat created in this batch asks for the profile.
        if created_at == now {
            jobs.push((JOB_PROFILE, id));
        }
    }

    // 4. The messages. A LINE message id already stored (or twice in the run) inserts
    // nothing and is not unread; the first of the run is the one kept, as one by one.
    let mut seen_messages: HashSet<&str> = HashSet::new();
    messages.retain(|(_, _, m)| match m.line_message_id.as_deref() {
        Some(mid) => seen_messages.insert(mid),
        None => true,
    });
    let mut inserted: Vec<(i64, i64, String, Option<String>)> = Vec::with_capacity(messages.len());
    for chunk in messages.chunks(MAX_BINDS / 8) {
        let rows: Vec<(i64, i64, String, Option<String>)> = on_tx!(c, |c| {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO messages (conversation_id, direction, type, text, payload, line_message_id,
                                       media_state, delivery, reply_token, created_at) ",
            );
            qb.push_values(chunk, |mut b, (i, ev, m)| {
                b.push_bind(users[*i].conversation_id)
                    .push("'in'")
                    .push_bind(m.kind.as_str())
                    .push_bind(m.text.as_deref())
                    .push_bind(m.payload.as_deref())
                    .push_bind(m.line_message_id.as_deref())
                    .push_bind(media_state(m.fetch_content).as_str())
                    .push("'received'")
                    .push_bind(m.reply_token.as_deref())
                    .push_bind(ev.timestamp);
            });
            // Only texts that may be passcodes come back: every passcode has an at sign
            // ('@', full-width '＠' or small '﹫'; desk_core::passcode::parse_candidate).
            qb.push(" ON CONFLICT (line_message_id) DO NOTHING
                      RETURNING id, conversation_id, media_state,
                                CASE WHEN type = 'text' AND (text LIKE '%@%' OR text LIKE '%＠%' OR text LIKE '%﹫%')
                                     THEN text END");
            qb.build_query_as().fetch_all(c).await
        })?;
        inserted.extend(rows);
    }
    // In insertion order, which is the events' order.
    inserted.sort_unstable_by_key(|(id, _, _, _)| *id);
    let mut conv_user: HashMap<i64, usize> = HashMap::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        conv_user.insert(u.conversation_id, i);
    }
    for (id, conversation_id, media_state, text) in &inserted {
        users[conv_user[conversation_id]].inserted += 1;
        if media_state == MediaState::Pending.as_str() {
            jobs.push((JOB_CONTENT, *id));
        }
        // Only text messages carry `text`.
        if passcode_attempt(MessageKind::Text, text.as_deref()) {
            jobs.push((JOB_PASSCODE, *id));
        }
        changes.push(Change::Message {
            conversation_id: *conversation_id,
            id: *id,
        });
        changes.push(Change::Conversation {
            id: *conversation_id,
        });
    }
    for u in users.iter().filter(|u| u.inserted < u.events) {
        // Another event carried the same LINE message (never seen from LINE itself, but
        // SDK fixtures do it): keep the event raw, count the message once.
        exec_tx!(c, |c| sqlx::query(
            "UPDATE conversations SET unread_count = unread_count - $2 WHERE id = $1"
        )
        .bind(u.conversation_id)
        .bind(u.events - u.inserted))?;
    }

    // 5. Profiles of new chats and content of media messages, fetched after the 200.
    outcome.scheduled_jobs |= !jobs.is_empty();
    jobs.sort_unstable();
    for chunk in jobs.chunks(MAX_BINDS / 3) {
        on_tx!(c, |c| {
            let mut qb = sqlx::QueryBuilder::new("INSERT INTO jobs (kind, target_id, next_at) ");
            qb.push_values(chunk, |mut b, (kind, target)| {
                b.push_bind(*kind).push_bind(*target).push_bind(now);
            });
            qb.push(" ON CONFLICT (kind, target_id) DO UPDATE SET next_at = excluded.next_at, attempts = 0");
            qb.build().execute(c).await.map(|r| r.rows_affected())
        })?;
    }
    Ok(stored_count)
}

/// Returns false when the event was already stored.
async fn ingest_one(
    c: &mut Tx,
    ev: &InboundEvent,
    now: i64,
    outcome: &mut IngestOutcome,
    changes: &mut Vec<Change>,
) -> Result<bool> {
    if ev.webhook_event_id.is_none()
        && let InboundAction::Message(m) = &ev.action
        && let Some(mid) = &m.line_message_id
    {
        let seen: Option<i64> = on_tx!(c, |c| sqlx::query_scalar(sql::MESSAGE_SEEN)
            .bind(mid)
            .fetch_optional(c)
            .await)?;
        if seen.is_some() {
            return Ok(false);
        }
    }
    let inserted = exec_tx!(c, |c| sqlx::query(sql::INSERT_EVENT)
        .bind(&ev.webhook_event_id)
        .bind(&ev.event_type)
        .bind(&ev.line_user_id)
        .bind(ev.timestamp)
        .bind(now)
        .bind(&ev.raw))?;
    if inserted == 0 {
        return Ok(false);
    }
    let Some(user) = ev.line_user_id.as_deref() else {
        return Ok(true);
    };
    match &ev.action {
        InboundAction::Message(m) => {
            let (conv_id, created_at): (i64, i64) =
                on_tx!(c, |c| sqlx::query_as(sql::UPSERT_CHAT_FOR_MESSAGE)
                    .bind(user)
                    .bind(ev.timestamp)
                    .bind(now)
                    .fetch_one(c)
                    .await)?;
            if created_at == now {
                schedule_job(c, JOB_PROFILE, conv_id, now).await?;
                outcome.scheduled_jobs = true;
            }
            let media_state = media_state(m.fetch_content).as_str();
            let msg_id: Option<i64> = on_tx!(c, |c| sqlx::query_scalar(sql::INSERT_MESSAGE)
                .bind(conv_id)
                .bind(m.kind.as_str())
                .bind(&m.text)
                .bind(&m.payload)
                .bind(&m.line_message_id)
                .bind(media_state)
                .bind(&m.reply_token)
                .bind(ev.timestamp)
                .fetch_optional(c)
                .await)?;
            let Some(msg_id) = msg_id else {
                exec_tx!(c, |c| sqlx::query(sql::UNREAD_MINUS_ONE).bind(conv_id))?;
                return Ok(true);
            };
            if m.fetch_content {
                schedule_job(c, JOB_CONTENT, msg_id, now).await?;
                outcome.scheduled_jobs = true;
            }
            if passcode_attempt(m.kind, m.text.as_deref()) {
                schedule_job(c, JOB_PASSCODE, msg_id, now).await?;
                outcome.scheduled_jobs = true;
            }
            changes.push(Change::Message {
                conversation_id: conv_id,
                id: msg_id,
            });
            changes.push(Change::Conversation { id: conv_id });
        }
        InboundAction::Follow { .. } => {
            let conv_id: i64 = on_tx!(c, |c| sqlx::query_scalar(sql::UPSERT_CHAT_FOR_FOLLOW)
                .bind(user)
                .bind(ev.timestamp)
                .bind(now)
                .fetch_one(c)
                .await)?;
            schedule_job(c, JOB_PROFILE, conv_id, now).await?;
            outcome.scheduled_jobs = true;
            changes.push(Change::Conversation { id: conv_id });
        }
        InboundAction::Unfollow => {
            let conv_id: Option<i64> = on_tx!(c, |c| sqlx::query_scalar(sql::BLOCK_CHAT)
                .bind(now)
                .bind(user)
                .fetch_optional(c)
                .await)?;
            if let Some(id) = conv_id {
                changes.push(Change::Conversation { id });
            }
        }
        InboundAction::Ignore => {}
    }
    Ok(true)
}

/// Schedules (or reschedules at once) a background job; one per kind and target.
async fn schedule_job(c: &mut Tx, kind: &str, target_id: i64, at: i64) -> Result<()> {
    exec_tx!(c, |c| sqlx::query(sql::SCHEDULE_JOB)
        .bind(kind)
        .bind(target_id)
        .bind(at))?;
    Ok(())
}
