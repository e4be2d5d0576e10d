//! Storing a batch of webhook events in one go (set-based) must leave the database exactly
//! as storing the same events one by one, in order, does: on SQLite and on PostgreSQL.

use crate::common::backend;
use desk_store::ingest::{InboundAction, InboundEvent, InboundMessage, IngestOutcome};
use desk_store::{Store, exec_db, on_db, testing};

fn message(event_id: Option<&str>, user: Option<&str>, mid: Option<&str>, ts: i64) -> InboundEvent {
    InboundEvent {
        webhook_event_id: event_id.map(Into::into),
        event_type: "message".into(),
        line_user_id: user.map(Into::into),
        timestamp: ts,
        raw: format!(r#"{{"type":"message","webhookEventId":{event_id:?},"ts":{ts}}}"#),
        action: InboundAction::Message(InboundMessage {
            line_message_id: mid.map(Into::into),
            kind: desk_core::MessageKind::from_line_type("text"),
            text: Some(format!("text of {mid:?} at {ts}")),
            payload: None,
            fetch_content: false,
            reply_token: Some(format!("rt-{ts}")),
        }),
    }
}

fn with_text(mut ev: InboundEvent, text: &str) -> InboundEvent {
    if let InboundAction::Message(m) = &mut ev.action {
        m.text = Some(text.into());
    }
    ev
}

fn image(event_id: &str, user: &str, mid: &str, ts: i64) -> InboundEvent {
    let mut ev = message(Some(event_id), Some(user), Some(mid), ts);
    if let InboundAction::Message(m) = &mut ev.action {
        m.kind = desk_core::MessageKind::from_line_type("image");
        m.text = None;
        m.payload = Some(r#"{"provider":"line"}"#.into());
        m.fetch_content = true;
    }
    ev
}

fn other(
    event_id: &str,
    event_type: &str,
    user: &str,
    ts: i64,
    action: InboundAction,
) -> InboundEvent {
    InboundEvent {
        webhook_event_id: Some(event_id.into()),
        event_type: event_type.into(),
        line_user_id: Some(user.into()),
        timestamp: ts,
        raw: format!(r#"{{"type":"{event_type}","webhookEventId":"{event_id}"}}"#),
        action,
    }
}

fn follow(event_id: &str, user: &str, ts: i64) -> InboundEvent {
    other(
        event_id,
        "follow",
        user,
        ts,
        InboundAction::Follow { unblocked: true },
    )
}

fn unfollow(event_id: &str, user: &str, ts: i64) -> InboundEvent {
    other(event_id, "unfollow", user, ts, InboundAction::Unfollow)
}

fn postback(event_id: &str, user: &str, ts: i64) -> InboundEvent {
    other(event_id, "postback", user, ts, InboundAction::Ignore)
}

/// A conversation: user, unread, last message, status, blocked, created, updated, profile.
type ConversationRow = (String, i64, i64, String, bool, i64, i64, String);
/// A message: user, direction, type, text, payload, LINE id, media, delivery, token, time.
type MessageRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    String,
    Option<String>,
    i64,
);
/// A raw event: event id, type, user, timestamp, received, raw.
type EventRow = (Option<String>, String, Option<String>, i64, i64, String);

/// Everything ingest writes, by natural keys (ids differ: PostgreSQL spends identity
/// values on conflicting inserts).
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    conversations: Vec<ConversationRow>,
    messages: Vec<MessageRow>,
    events: Vec<EventRow>,
    profile_jobs: Vec<(String, i64, i64)>,
    content_jobs: Vec<(Option<String>, i64, i64)>,
    passcode_jobs: Vec<(Option<String>, i64, i64)>,
    jobs: i64,
}

async fn snapshot(s: &Store) -> Snapshot {
    on_db!(s.db(), |p| async {
        Snapshot {
            conversations: sqlx::query_as(
                "SELECT line_user_id, unread_count, last_message_at, status,
                        blocked, created_at, updated_at, profile_state
                 FROM conversations ORDER BY line_user_id",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            messages: sqlx::query_as(
                "SELECT c.line_user_id, m.direction, m.type, m.text, m.payload, m.line_message_id,
                        m.media_state, m.delivery, m.reply_token, m.created_at
                 FROM messages m JOIN conversations c ON c.id = m.conversation_id ORDER BY m.id",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            events: sqlx::query_as(
                "SELECT webhook_event_id, event_type, line_user_id, timestamp, received_at, raw
                 FROM webhook_events ORDER BY id",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            profile_jobs: sqlx::query_as(
                "SELECT c.line_user_id, j.next_at, j.attempts FROM jobs j
                 JOIN conversations c ON c.id = j.target_id WHERE j.kind = 'profile'
                 ORDER BY c.line_user_id",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            content_jobs: sqlx::query_as(
                "SELECT m.line_message_id, j.next_at, j.attempts FROM jobs j
                 JOIN messages m ON m.id = j.target_id WHERE j.kind = 'content'
                 ORDER BY COALESCE(m.line_message_id, '')",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            passcode_jobs: sqlx::query_as(
                "SELECT m.line_message_id, j.next_at, j.attempts FROM jobs j
                 JOIN messages m ON m.id = j.target_id WHERE j.kind = 'passcode'
                 ORDER BY COALESCE(m.line_message_id, '')",
            )
            .fetch_all(p)
            .await
            .unwrap(),
            jobs: sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
                .fetch_one(p)
                .await
                .unwrap(),
        }
    }
    .await)
}

/// Pairs of fresh stores on each backend: (batched, one by one).
async fn store_pairs() -> (Vec<tempfile::TempDir>, Vec<(Store, Store)>) {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let batched = testing::stores(a.path()).await;
    let single = testing::stores(b.path()).await;
    (vec![a, b], batched.into_iter().zip(single).collect())
}

/// The reference: each event in its own transaction, by the per-event statements.
async fn one_by_one(s: &Store, events: &[InboundEvent], now: i64) -> IngestOutcome {
    let mut total = IngestOutcome::default();
    for ev in events {
        let o = s.ingest_each(std::slice::from_ref(ev), now).await.unwrap();
        total.stored += o.stored;
        total.duplicates += o.duplicates;
        total.scheduled_jobs |= o.scheduled_jobs;
    }
    total
}

async fn mark_done(s: &Store, user: &str) {
    exec_db!(s.db(), |p| sqlx::query(
        "UPDATE conversations SET status = 'done' WHERE line_user_id = $1"
    )
    .bind(user))
    .unwrap();
}

#[tokio::test]
async fn a_mixed_batch_is_stored_as_its_events_one_by_one() {
    let (_dirs, pairs) = store_pairs().await;
    for (batched, single) in pairs {
        let b = backend(&batched);
        // Before: Ub wrote m0 and their chat was closed; Uc follows and has blocked.
        let before = [
            message(Some("E0"), Some("Ub"), Some("m0"), 500),
            follow("F0", "Uc", 600),
            unfollow("U0", "Uc", 700),
        ];
        for s in [&batched, &single] {
            one_by_one(s, &before, 1_000).await;
            mark_done(s, "Ub").await;
        }
        let batch = vec![
            // Ua: message, postback, block, unblock, message: ends unblocked, 2 unread.
            message(Some("E1"), Some("Ua"), Some("m1"), 2_000),
            postback("P1", "Ua", 2_001),
            unfollow("U1", "Ua", 2_002),
            follow("F1", "Ua", 2_003),
            message(Some("E2"), Some("Ua"), Some("m2"), 2_004),
            // Ub: a redelivery from before, the same event twice, an image, a message id
            // already in this batch and one stored before: 2 new messages, done → unread.
            message(Some("E0"), Some("Ub"), Some("m0"), 500),
            message(Some("E3"), Some("Ub"), Some("m3"), 1_900),
            message(Some("E3"), Some("Ub"), Some("m3"), 1_900),
            image("E4", "Ub", "m4", 2_100),
            message(Some("E5"), Some("Ub"), Some("m3"), 2_200),
            message(Some("E6"), Some("Ub"), Some("m0"), 2_300),
            // A group message: kept raw only.
            message(Some("G1"), None, Some("m5"), 2_350),
            // Old shape (no event id), twice: unblocks Uc once.
            message(None, Some("Uc"), Some("m7"), 2_400),
            message(None, Some("Uc"), Some("m7"), 2_400),
            // A new user: a passcode, a text with an at sign that is none, and a full-width
            // passcode without a LINE message id.
            with_text(
                message(Some("E7"), Some("Ud"), Some("m8"), 2_500),
                " @123-456 ",
            ),
            with_text(
                message(Some("E7b"), Some("Ud"), Some("m8b"), 2_500),
                "mail @ home",
            ),
            with_text(
                message(Some("E8"), Some("Ud"), None, 2_501),
                "＠１２３４５６",
            ),
            // Ub blocks last, after its messages.
            unfollow("U2", "Ub", 2_600),
            message(Some("E9"), Some("Ua"), Some("m9"), 2_700),
            // The same event again after the block: a duplicate, no unblock.
            message(Some("E5"), Some("Ub"), Some("m3"), 2_200),
        ];
        let got = batched.ingest(&batch, 5_000).await.unwrap();
        let want = one_by_one(&single, &batch, 5_000).await;
        assert_eq!(got, want, "{b}");
        assert_eq!((got.stored, got.duplicates), (16, 4), "{b}");
        let (x, y) = (snapshot(&batched).await, snapshot(&single).await);
        assert_eq!(x, y, "{b}");

        // The figures themselves, in case both ways were wrong alike.
        let conv = |u: &str| x.conversations.iter().find(|c| c.0 == u).unwrap().clone();
        let (ua, ub, uc, ud) = (conv("Ua"), conv("Ub"), conv("Uc"), conv("Ud"));
        assert_eq!(
            (ua.1, ua.2, ua.3.as_str(), ua.4),
            (3, 2_700, "unread", false),
            "{b}: Ua"
        );
        assert_eq!(
            (ub.1, ub.2, ub.3.as_str(), ub.4),
            (3, 2_300, "unread", true),
            "{b}: Ub"
        );
        assert_eq!((uc.1, uc.4), (1, false), "{b}: Uc");
        assert_eq!((ud.1, ud.2, ud.5), (3, 2_501, 5_000), "{b}: Ud");
        assert_eq!(x.messages.len(), 10, "{b}");
        assert_eq!(x.events.len(), 19, "{b}");
        assert_eq!(x.content_jobs.len(), 1, "{b}");
        let passcodes: Vec<Option<&str>> = x.passcode_jobs.iter().map(|j| j.0.as_deref()).collect();
        assert_eq!(passcodes, [None, Some("m8")], "{b}");
        let profiles: Vec<&str> = x.profile_jobs.iter().map(|j| j.0.as_str()).collect();
        assert_eq!(profiles, ["Ua", "Ub", "Uc", "Ud"], "{b}");
    }
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test]
async fn random_batches_are_stored_as_their_events_one_by_one() {
    let (_dirs, pairs) = store_pairs().await;
    for (batched, single) in pairs {
        let b = backend(&batched);
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut sent: Vec<InboundEvent> = Vec::new();
        // Through the webhook's writer (its own connection on SQLite), batch after batch.
        let mut writer = batched.ingest_writer();
        for round in 0..16 {
            let now = 10_000 + round * 1_000;
            let n = 1 + rng.below(60) as usize;
            let mut batch: Vec<InboundEvent> = Vec::with_capacity(n);
            for i in 0..n {
                let user = format!("U{}", rng.below(4 + round as u64 * 2));
                let ts = now - 500 + rng.below(1_000) as i64;
                let id = format!("R{round}-{i}");
                let ev = match rng.below(20) {
                    // Redeliveries: of an earlier batch's event, or of this batch's.
                    0 | 1 if !sent.is_empty() => {
                        sent[rng.below(sent.len() as u64) as usize].clone()
                    }
                    2 if !batch.is_empty() => batch[rng.below(batch.len() as u64) as usize].clone(),
                    3 => follow(&id, &user, ts),
                    4 => unfollow(&id, &user, ts),
                    5 => postback(&id, &user, ts),
                    6 => image(&id, &user, &format!("m{round}-{i}"), ts),
                    // A message id seen before, under a new event id.
                    7 => message(
                        Some(&id),
                        Some(&user),
                        Some(&format!(
                            "m{}-{}",
                            rng.below(round as u64 + 1),
                            rng.below(8)
                        )),
                        ts,
                    ),
                    8 => message(Some(&id), None, Some(&format!("g{round}-{i}")), ts),
                    9 => message(
                        None,
                        Some(&user),
                        Some(&format!("m{round}-{}", rng.below(n as u64))),
                        ts,
                    ),
                    10 => message(Some(&id), Some(&user), None, ts),
                    _ => message(Some(&id), Some(&user), Some(&format!("m{round}-{i}")), ts),
                };
                batch.push(ev);
            }
            let got = writer.ingest(&batch, now).await.unwrap();
            let want = one_by_one(&single, &batch, now).await;
            assert_eq!(got, want, "{b}: round {round}");
            assert_eq!(
                snapshot(&batched).await,
                snapshot(&single).await,
                "{b}: round {round}"
            );
            // Agents close some chats between batches.
            let closed = format!("U{}", rng.below(4 + round as u64 * 2));
            mark_done(&batched, &closed).await;
            mark_done(&single, &closed).await;
            sent.extend(batch);
        }
    }
}

#[tokio::test]
async fn a_failed_batch_leaves_nothing_and_the_writer_goes_on() {
    let (_dirs, pairs) = store_pairs().await;
    for (s, _) in pairs {
        let b = backend(&s);
        let mut writer = s.ingest_writer();
        writer
            .ingest(&[message(Some("E1"), Some("Ua"), Some("m1"), 1_000)], 1_000)
            .await
            .unwrap();
        // The batch fails half-way: its messages are stored before the follow's job cannot be.
        exec_db!(s.db(), |p| sqlx::query(
            "ALTER TABLE jobs RENAME TO jobs_away"
        ))
        .unwrap();
        let failing = [
            message(Some("E2"), Some("Ua"), Some("m2"), 2_000),
            follow("F1", "Ub", 2_001),
        ];
        assert!(writer.ingest(&failing, 2_000).await.is_err(), "{b}");
        exec_db!(s.db(), |p| sqlx::query(
            "ALTER TABLE jobs_away RENAME TO jobs"
        ))
        .unwrap();
        let before = snapshot(&s).await;
        assert_eq!(before.events.len(), 1, "{b}: rolled back");
        assert_eq!(before.messages.len(), 1, "{b}: rolled back");
        // LINE redelivers; now it goes through.
        let again = writer.ingest(&failing, 3_000).await.unwrap();
        assert_eq!((again.stored, again.duplicates), (2, 0), "{b}");
        let after = snapshot(&s).await;
        assert_eq!(after.messages.len(), 2, "{b}");
        assert_eq!(after.conversations.len(), 2, "{b}");
    }
}

#[tokio::test]
async fn the_writer_waits_for_another_connections_write_and_checkpoints_when_due() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(None, dir.path()).await.unwrap();
    let desk_store::Db::Sqlite(pool) = s.db() else {
        unreachable!("the default store is SQLite")
    };
    let mut writer = s.ingest_writer();
    writer
        .ingest(&[message(Some("E1"), Some("Ua"), Some("m1"), 1_000)], 1_000)
        .await
        .unwrap();
    // Another connection holds the write lock for a moment: the batch waits, then goes in.
    let mut other = pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *other)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        sqlx::query("COMMIT").execute(&mut *other).await.unwrap();
    });
    let started = std::time::Instant::now();
    let out = writer
        .ingest(&[message(Some("E2"), Some("Ua"), Some("m2"), 2_000)], 2_000)
        .await
        .unwrap();
    assert_eq!(out.stored, 1);
    assert!(started.elapsed() >= std::time::Duration::from_millis(45));
    release.await.unwrap();

    // Checkpoints: the pages the writer wrote reach the database file once one is due.
    let db_file = dir.path().join("linedesk.db");
    let size = || std::fs::metadata(&db_file).unwrap().len();
    let before = size();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    writer.checkpoint_if_due(false).await.unwrap();
    assert!(size() > before, "checkpointed: {before} -> {}", size());
    assert_eq!(s.count_messages().await.unwrap(), 2);
}

#[tokio::test]
async fn concurrent_batches_for_the_same_users_do_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    for s in testing::stores(dir.path()).await {
        let b = backend(&s);
        // Two instances' writers, each sending the same ten users' messages, in opposite orders.
        let mut tasks = Vec::new();
        for w in 0..2 {
            let s = s.clone();
            tasks.push(tokio::spawn(async move {
                for round in 0..20 {
                    let mut batch: Vec<InboundEvent> = (0..10)
                        .map(|u| {
                            let id = format!("W{w}-{round}-{u}");
                            message(Some(&id), Some(&format!("U{u}")), Some(&id), 1_000 + round)
                        })
                        .collect();
                    if w == 1 {
                        batch.reverse();
                    }
                    s.ingest(&batch, 1_000 + round).await?;
                }
                Ok::<(), desk_store::StoreError>(())
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap_or_else(|e| panic!("{b}: {e}"));
        }
        assert_eq!(s.count_messages().await.unwrap(), 400, "{b}");
    }
}
