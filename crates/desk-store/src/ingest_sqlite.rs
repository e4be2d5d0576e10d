//! The webhook's writer on SQLite: a plain (blocking) rusqlite connection of its own, meant
//! to live on an OS thread of its own (desk-server's `IngestQueue`), with its statements
//! prepared once and kept.
//!
//! Why not sqlx here: every sqlx-sqlite statement is a round trip to the connection's worker
//! thread (two thread wake-ups), and the set-based multi-row statements of
//! `ingest.rs` have a different text for each batch size, so they are prepared anew
//! for nearly every batch. Profiled at 32 concurrent webhook requests that was most of the
//! writer's time (docs/benchmarks.md). Here a batch is `BEGIN IMMEDIATE`, a few cached
//! statements per event (the same per-event SQL as `ingest.rs`'s reference path, so
//! the result is by construction that of storing the events one by one), `COMMIT`: one
//! fsync for the batch, durable (WAL, `synchronous=FULL`) before anyone is answered.
//!
//! rusqlite is the version whose `libsqlite3-sys` is the one sqlx links (0.30): two crates
//! that both link `sqlite3` cannot be in one build, and so both use the same bundled SQLite.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::inbound::{
    InboundAction, InboundEvent, IngestOutcome, JOB_CONTENT, JOB_PASSCODE, JOB_PROFILE,
    passcode_attempt, sql,
};
use crate::{Change, Db, Notifier, Result, Store};

/// See `IngestWriter::checkpoint_if_due` (ingest.rs).
const CHECKPOINT_EVERY_BUSY: Duration = Duration::from_secs(1);
const CHECKPOINT_EVERY_IDLE: Duration = Duration::from_millis(250);
/// How long a batch waits for another connection's write to end: the pool's busy timeout.
const WRITE_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// The webhook's SQLite writer (blocking: call it from a thread of its own, or through
/// `spawn_blocking`).
pub struct SqliteWriter {
    path: PathBuf,
    /// Opened on first use; dropped after a failed batch (closing rolls back), reopened next.
    conn: Option<Connection>,
    notifier: Notifier,
    /// Batches committed since the last checkpoint, and when that was.
    unchecked_batches: usize,
    last_checkpoint: Instant,
    /// Batches committed, ever: what a [`Checkpointer`] watches.
    commits: Arc<AtomicU64>,
}

impl SqliteWriter {
    /// A writer for `store`'s database file; `None` on PostgreSQL and for an in-memory
    /// SQLite database (only shared through the pool's connections).
    pub fn for_store(store: &Store) -> Option<SqliteWriter> {
        let Db::Sqlite(pool) = &store.db else {
            return None;
        };
        let opts = pool.connect_options();
        let path = opts.get_filename();
        let name = path.to_string_lossy();
        if name == ":memory:" || name.starts_with("file:sqlx-in-memory") {
            return None;
        }
        Some(SqliteWriter {
            path: path.to_path_buf(),
            conn: None,
            notifier: store.notifier.clone(),
            unchecked_batches: 0,
            last_checkpoint: Instant::now(),
            commits: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A checkpointer for this writer's database, to run on a thread of its own
    /// ([`Checkpointer::run`]) instead of calling [`SqliteWriter::checkpoint_if_due`]: a
    /// checkpoint then never holds up a batch (WAL lets one connection checkpoint while
    /// another appends).
    pub fn checkpointer(&self) -> Checkpointer {
        Checkpointer {
            path: self.path.clone(),
            commits: self.commits.clone(),
        }
    }

    /// Stores a batch in one transaction and returns once it is committed; then publishes
    /// its changes in this instance (what `Tx::commit` does on SQLite).
    pub fn ingest(&mut self, events: &[InboundEvent], now_ms: i64) -> Result<IngestOutcome> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => open(&self.path)?,
        };
        let mut outcome = IngestOutcome::default();
        let mut changes = Vec::with_capacity(events.len() * 2);
        begin_immediate(&conn)?;
        for ev in events {
            if ingest_one(&conn, ev, now_ms, &mut outcome, &mut changes)? {
                outcome.stored += 1;
            } else {
                outcome.duplicates += 1;
            }
        }
        conn.execute_batch("COMMIT")?;
        // Only a connection that committed goes back: after an error it is dropped above
        // (`?`), which rolls its transaction back.
        self.conn = Some(conn);
        self.unchecked_batches += 1;
        self.commits.fetch_add(1, Relaxed);
        self.notifier.publish(changes);
        Ok(outcome)
    }

    /// A passive checkpoint when one is due (see `IngestWriter::checkpoint_if_due`).
    pub fn checkpoint_if_due(&mut self, waiting: bool) -> Result<()> {
        let every = if waiting {
            CHECKPOINT_EVERY_BUSY
        } else {
            CHECKPOINT_EVERY_IDLE
        };
        if self.unchecked_batches == 0 || self.last_checkpoint.elapsed() < every {
            return Ok(());
        }
        let Some(conn) = &self.conn else {
            return Ok(());
        };
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        self.unchecked_batches = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }
}

/// Copies what the WAL holds back into the database file, from a connection and thread of its
/// own (see [`SqliteWriter::checkpointer`]), at the pace of `checkpoint_if_due`: a second
/// after the last one while batches keep coming, a quarter of a second once they stop.
pub struct Checkpointer {
    path: PathBuf,
    commits: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Runs until its writer is gone.
    pub fn run(self) {
        let mut conn: Option<Connection> = None;
        let mut checkpointed = self.commits.load(Relaxed);
        let mut seen = checkpointed;
        let mut last = Instant::now();
        // The writer holds the other reference; alone, the checkpointer stops.
        while Arc::strong_count(&self.commits) > 1 {
            std::thread::sleep(CHECKPOINT_EVERY_IDLE);
            let now = self.commits.load(Relaxed);
            let quiet = now == seen;
            seen = now;
            if now == checkpointed || (!quiet && last.elapsed() < CHECKPOINT_EVERY_BUSY) {
                continue;
            }
            let c = match conn.take() {
                Some(c) => c,
                None => match open(&self.path) {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(%e, "WAL checkpointer cannot open the database");
                        continue;
                    }
                },
            };
            match c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                Ok(()) => {
                    checkpointed = now;
                    last = Instant::now();
                    conn = Some(c);
                }
                Err(e) => tracing::warn!(%e, "WAL checkpoint failed; will try again"),
            }
        }
    }
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // The pool's settings (lib.rs `open_sqlite`): WAL, every commit durable (FULL), foreign
    // keys checked. SQLite's own checkpoint inside a commit only at 100,000 pages (400 MB):
    // the writer checkpoints between batches instead.
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA cache_size = -65536;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.query_row("PRAGMA wal_autocheckpoint = 100000", [], |_| Ok(()))?;
    // Waiting for the write lock is done in `begin_immediate`, not SQLite's busy handler.
    conn.busy_timeout(Duration::ZERO)?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// `BEGIN IMMEDIATE`, retried every millisecond while another connection writes. SQLite's
/// busy handler would sleep 1, 2, 5, 10, 15… ms between tries, so a batch queued behind a
/// background job's write of a millisecond waited 8 or 18 ms.
fn begin_immediate(conn: &Connection) -> Result<()> {
    let start = Instant::now();
    loop {
        match conn.execute_batch("BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && start.elapsed() < WRITE_LOCK_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// `ingest.rs`'s per-event path on this connection; false when already stored.
fn ingest_one(
    c: &Connection,
    ev: &InboundEvent,
    now: i64,
    outcome: &mut IngestOutcome,
    changes: &mut Vec<Change>,
) -> Result<bool> {
    if ev.webhook_event_id.is_none()
        && let InboundAction::Message(m) = &ev.action
        && let Some(mid) = &m.line_message_id
    {
        let seen: Option<i64> = c
            .prepare_cached(sql::MESSAGE_SEEN)?
            .query_row([mid], |r| r.get(0))
            .optional()?;
        if seen.is_some() {
            return Ok(false);
        }
    }
    let inserted = c.prepare_cached(sql::INSERT_EVENT)?.execute(params![
        ev.webhook_event_id,
        ev.event_type,
        ev.line_user_id,
        ev.timestamp,
        now,
        ev.raw
    ])?;
    if inserted == 0 {
        return Ok(false);
    }
    let Some(user) = ev.line_user_id.as_deref() else {
        return Ok(true);
    };
    match &ev.action {
        InboundAction::Message(m) => {
            let (conv_id, created_at): (i64, i64) = c
                .prepare_cached(sql::UPSERT_CHAT_FOR_MESSAGE)?
                .query_row(params![user, ev.timestamp, now], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })?;
            if created_at == now {
                schedule_job(c, JOB_PROFILE, conv_id, now)?;
                outcome.scheduled_jobs = true;
            }
            let media_state = crate::inbound::media_state(m.fetch_content).as_str();
            let msg_id: Option<i64> = c
                .prepare_cached(sql::INSERT_MESSAGE)?
                .query_row(
                    params![
                        conv_id,
                        m.kind.as_str(),
                        m.text,
                        m.payload,
                        m.line_message_id,
                        media_state,
                        m.reply_token,
                        ev.timestamp
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            let Some(msg_id) = msg_id else {
                c.prepare_cached(sql::UNREAD_MINUS_ONE)?
                    .execute([conv_id])?;
                return Ok(true);
            };
            if m.fetch_content {
                schedule_job(c, JOB_CONTENT, msg_id, now)?;
                outcome.scheduled_jobs = true;
            }
            if passcode_attempt(m.kind, m.text.as_deref()) {
                schedule_job(c, JOB_PASSCODE, msg_id, now)?;
                outcome.scheduled_jobs = true;
            }
            changes.push(Change::Message {
                conversation_id: conv_id,
                id: msg_id,
            });
            changes.push(Change::Conversation { id: conv_id });
        }
        InboundAction::Follow { .. } => {
            let conv_id: i64 = c
                .prepare_cached(sql::UPSERT_CHAT_FOR_FOLLOW)?
                .query_row(params![user, ev.timestamp, now], |r| r.get(0))?;
            schedule_job(c, JOB_PROFILE, conv_id, now)?;
            outcome.scheduled_jobs = true;
            changes.push(Change::Conversation { id: conv_id });
        }
        InboundAction::Unfollow => {
            let conv_id: Option<i64> = c
                .prepare_cached(sql::BLOCK_CHAT)?
                .query_row(params![now, user], |r| r.get(0))
                .optional()?;
            if let Some(id) = conv_id {
                changes.push(Change::Conversation { id });
            }
        }
        InboundAction::Ignore => {}
    }
    Ok(true)
}

fn schedule_job(c: &Connection, kind: &str, target_id: i64, at: i64) -> Result<()> {
    c.prepare_cached(sql::SCHEDULE_JOB)?
        .execute(params![kind, target_id, at])?;
    Ok(())
}
