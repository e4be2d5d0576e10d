//! `POST /line`, LINE's webhook (S1, S4, C1, C7): verify the signature over the raw bytes,
//! parse, store durably, answer 200; profiles and content are fetched afterwards by
//! [`crate::fetcher`].
//!
//! Durability without one fsync per request: handlers hand their events to the
//! [`IngestQueue`], whose writer takes everything waiting, stores it in one transaction and
//! only then lets each handler answer (group commit). On a SQLite file the writer is an OS
//! thread of its own with a plain SQLite connection (`desk_store::ingest::SqliteWriter`):
//! no async runtime hop per statement, statements prepared once.
//!
//! `/line` is served by a router of its own ([`router`]) with a state of its own
//! ([`WebhookState`]), outside the desk's middleware stack (CSRF, request tracing, the
//! per-request host check and header middlewares): LINE's deliveries are the desk's hot path
//! (docs/benchmarks.md), and what those layers do for `/line` is done here directly — the
//! `Host` check and the security headers every response gets (`security.rs`).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use desk_core::MessageKind;
use desk_core::clock::Clock;
use desk_store::Store;
use desk_store::ingest::{InboundAction, InboundEvent, InboundMessage, SqliteWriter};
use line_api::webhook::{ContentProvider, Event, EventKind, MessageContent, Source};
use serde_json::json;
use tokio::sync::{Notify, oneshot};

use crate::metrics::Metrics;
use crate::{AppState, Config};

/// LINE's bodies are small; anything bigger is not LINE (413).
pub const MAX_BODY: usize = 1024 * 1024;
/// Events stored per transaction at most.
const MAX_BATCH_EVENTS: usize = 4096;

/// What `POST /line` needs, and nothing more (cloned per request: five reference counts).
#[derive(Clone)]
pub struct WebhookState {
    line: crate::line_settings::LineSettings,
    metrics: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    ingest: IngestQueue,
    config: Arc<Config>,
}

/// `/line` with its own state; merged into the desk's router beside (not under) its layers.
pub fn router(st: &AppState) -> Router {
    let state = WebhookState {
        line: st.line.clone(),
        metrics: st.metrics.clone(),
        clock: st.clock.clone(),
        ingest: st.ingest.clone(),
        config: st.config.clone(),
    };
    Router::new().route("/line", any(receive)).with_state(state)
}

async fn receive(State(st): State<WebhookState>, req: Request) -> Response {
    let started = std::time::Instant::now();
    let https = st.config.public_url.starts_with("https://");
    if st.config.check_host
        && let Some(refused) = crate::security::host_refused(&st.config, req.headers(), req.uri())
    {
        return refused;
    }
    let mut resp = handle(&st, req).await.into_response();
    if resp.status() == StatusCode::OK {
        st.metrics
            .webhook_latency
            .record(started.elapsed().as_secs_f64());
    }
    crate::security::add_headers(resp.headers_mut(), https);
    resp
}

async fn handle(st: &WebhookState, req: Request) -> (StatusCode, &'static str) {
    if req.method() != Method::POST {
        return (StatusCode::METHOD_NOT_ALLOWED, "POST only\n");
    }
    let (parts, body) = req.into_parts();
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_BODY)
    {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
    }
    let Ok(body) = axum::body::to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n");
    };
    let line = st.line.current();
    let signature = parts
        .headers
        .get("x-line-signature")
        .and_then(|v| v.to_str().ok());
    let verified = match (&line.channel_secret, signature) {
        (Some(secret), Some(sig)) => line_api::signature::verify(secret.as_bytes(), &body, sig),
        _ => false,
    };
    let now = st.clock.now_ms();
    if !verified {
        // Counted by source: unsigned posts are never LINE (issue 9, item 12).
        st.metrics.signature_failure(now, signature.is_some());
        if let Some(suppressed) = st.metrics.warning_due(now) {
            tracing::warn!(
                secret_set = line.channel_secret.is_some(),
                signature_present = signature.is_some(),
                suppressed,
                "webhook refused: bad signature (is the Channel Secret right?)"
            );
        }
        return (StatusCode::UNAUTHORIZED, "invalid signature\n");
    }
    st.metrics.verified_delivery(now);
    let parsed = match line_api::webhook::parse(&body) {
        Ok(p) => p,
        Err(e) => {
            st.metrics.webhook_bad_request.increment(1);
            tracing::warn!(%e, "webhook refused: not a webhook body");
            return (StatusCode::BAD_REQUEST, "not a LINE webhook body\n");
        }
    };
    let events: Vec<InboundEvent> = parsed
        .events
        .into_iter()
        .map(|p| into_inbound(p.event, p.raw.get()))
        .collect();
    if events.is_empty() {
        // The console's "Verify" button sends an empty list.
        st.metrics.webhook_requests_ok.increment(1);
        return (StatusCode::OK, "OK\n");
    }
    match st.ingest.submit(events).await {
        Ok(()) => {
            st.metrics.webhook_requests_ok.increment(1);
            (StatusCode::OK, "OK\n")
        }
        Err(e) => {
            st.metrics.webhook_errors.increment(1);
            tracing::error!(%e, "webhook events not stored; LINE will redeliver");
            (StatusCode::INTERNAL_SERVER_ERROR, "not stored, retry\n")
        }
    }
}

/// [`to_inbound`] for an event the caller owns: its strings are moved, not copied.
fn into_inbound(ev: Event, raw: &str) -> InboundEvent {
    let action = match &ev.kind {
        EventKind::Message(m) => InboundAction::Message(to_inbound_message(m, &ev)),
        EventKind::Follow { is_unblocked } => InboundAction::Follow {
            unblocked: *is_unblocked,
        },
        EventKind::Unfollow => InboundAction::Unfollow,
        _ => InboundAction::Ignore,
    };
    let event_type = event_type(&ev.kind);
    let line_user_id = match ev.source {
        Some(Source::User { user_id }) => Some(user_id),
        _ => None,
    };
    InboundEvent {
        webhook_event_id: ev.webhook_event_id,
        event_type,
        line_user_id,
        timestamp: ev.timestamp,
        raw: raw.to_owned(),
        action,
    }
}

/// What the desk keeps of one event. Only 1:1 chats with a user become conversations;
/// everything is kept raw.
pub fn to_inbound(ev: &Event, raw: &str) -> InboundEvent {
    let line_user_id = match &ev.source {
        Some(Source::User { user_id }) => Some(user_id.clone()),
        _ => None,
    };
    let action = match &ev.kind {
        EventKind::Message(m) => InboundAction::Message(to_inbound_message(m, ev)),
        EventKind::Follow { is_unblocked } => InboundAction::Follow {
            unblocked: *is_unblocked,
        },
        EventKind::Unfollow => InboundAction::Unfollow,
        _ => InboundAction::Ignore,
    };
    InboundEvent {
        webhook_event_id: ev.webhook_event_id.clone(),
        event_type: event_type(&ev.kind),
        line_user_id,
        timestamp: ev.timestamp,
        raw: raw.to_owned(),
        action,
    }
}

/// The event's `type` as LINE wrote it (also for types this desk does not know), as the
/// parser read it: no second pass over the event's JSON. `unknown` when it has none.
fn event_type(kind: &EventKind) -> String {
    match kind.type_name() {
        "" => "unknown".to_owned(),
        t => t.to_owned(),
    }
}

fn to_inbound_message(m: &MessageContent, ev: &Event) -> InboundMessage {
    let mut text = None;
    let mut fetch_content = false;
    let provider_payload = |p: &ContentProvider| json!({"provider": p.kind, "original_url": p.original_content_url, "preview_url": p.preview_image_url});
    let payload = match m {
        MessageContent::Text { text: t, .. } => {
            text = Some(t.clone());
            None
        }
        MessageContent::Image {
            content_provider, ..
        }
        | MessageContent::Video {
            content_provider, ..
        }
        | MessageContent::Audio {
            content_provider, ..
        } => {
            // External content is at the sender's URL; LINE keeps only its own.
            fetch_content = content_provider.kind == "line";
            let mut p = provider_payload(content_provider);
            if let MessageContent::Video { duration, .. } | MessageContent::Audio { duration, .. } =
                m
            {
                p["duration_ms"] = json!(duration);
            }
            Some(p)
        }
        MessageContent::File {
            file_name,
            file_size,
            ..
        } => {
            fetch_content = true;
            Some(json!({"file_name": file_name, "file_size": file_size}))
        }
        MessageContent::Location {
            title,
            address,
            latitude,
            longitude,
            ..
        } => Some(
            json!({"title": title, "address": address, "latitude": latitude, "longitude": longitude}),
        ),
        MessageContent::Sticker {
            package_id,
            sticker_id,
            keywords,
            text: sticker_text,
            ..
        } => Some(json!({"package_id": package_id, "sticker_id": sticker_id,
                          "keywords": keywords, "text": sticker_text})),
        MessageContent::Other { message_type, .. } => Some(json!({"message_type": message_type})),
    };
    let kind = match m {
        MessageContent::Other { .. } => MessageKind::Other,
        known => MessageKind::from_line_type(known.type_name()),
    };
    InboundMessage {
        line_message_id: m.id().map(str::to_owned),
        kind,
        text,
        payload: payload.map(|p| p.to_string()),
        fetch_content,
        reply_token: ev.reply_token.clone(),
    }
}

struct Batch {
    events: Vec<InboundEvent>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The group-commit queue between webhook handlers and the database writer.
#[derive(Clone)]
pub struct IngestQueue {
    tx: flume::Sender<Batch>,
}

impl IngestQueue {
    /// Starts the writer. One on either database: SQLite has one writer anyway, and on
    /// PostgreSQL two or four were measured no faster and with a longer tail
    /// (docs/benchmarks.md): the active users' chats are in nearly every batch, so
    /// concurrent batches queue on those rows' locks, and one writer makes bigger groups.
    ///
    /// On a SQLite file the writer is an OS thread: it sleeps in the channel until a batch
    /// comes, takes whatever else has arrived meanwhile, and commits — the requests that
    /// come during that commit make the next group. On PostgreSQL it is a task.
    pub fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        wakeup: Arc<Notify>,
    ) -> IngestQueue {
        let (tx, rx) = flume::bounded::<Batch>(16_384);
        match SqliteWriter::for_store(&store) {
            Some(w) => {
                let checkpointer = w.checkpointer();
                std::thread::Builder::new()
                    .name("ingest-writer".into())
                    .spawn(move || sqlite_writer(w, clock, metrics, wakeup, rx))
                    .expect("the ingest writer thread starts");
                std::thread::Builder::new()
                    .name("wal-checkpoint".into())
                    .spawn(move || checkpointer.run())
                    .expect("the checkpoint thread starts");
            }
            None => {
                tokio::spawn(writer(store, clock, metrics, wakeup, rx));
            }
        }
        IngestQueue { tx }
    }

    /// Returns once the events are committed.
    pub async fn submit(&self, events: Vec<InboundEvent>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send_async(Batch { events, done })
            .await
            .map_err(|_| "ingest writer stopped".to_string())?;
        wait.await
            .map_err(|_| "ingest writer stopped".to_string())?
    }
}

/// The first batch and everything else waiting, up to [`MAX_BATCH_EVENTS`]: the events
/// moved into one list, and who waits for how many of them.
type Group = (
    Vec<InboundEvent>,
    Vec<(usize, oneshot::Sender<Result<(), String>>)>,
);

fn gather(first: Batch, rx: &flume::Receiver<Batch>) -> Group {
    let mut n = first.events.len();
    let mut batches = vec![first];
    while n < MAX_BATCH_EVENTS {
        match rx.try_recv() {
            Ok(b) => {
                n += b.events.len();
                batches.push(b);
            }
            Err(_) => break,
        }
    }
    let mut events = Vec::with_capacity(n);
    let mut waiting = Vec::with_capacity(batches.len());
    for b in batches {
        waiting.push((b.events.len(), b.done));
        events.extend(b.events);
    }
    (events, waiting)
}

/// The SQLite writer thread's loop; ends when every [`IngestQueue`] is gone. Checkpoints are
/// not its business: the `wal-checkpoint` thread does them beside it.
fn sqlite_writer(
    mut w: SqliteWriter,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    wakeup: Arc<Notify>,
    rx: flume::Receiver<Batch>,
) {
    while let Ok(first) = rx.recv() {
        let (events, waiting) = gather(first, &rx);
        metrics.commit_batch.record(events.len() as f64);
        let result = w.ingest(&events, clock.now_ms());
        if result.is_err() && waiting.len() > 1 {
            // One bad request must not fail its neighbours: store each on its own.
            let mut start = 0;
            for (len, done) in waiting {
                metrics.commit_batch.record(len as f64);
                let r = w.ingest(&events[start..start + len], clock.now_ms());
                start += len;
                let _ = done.send(account(&metrics, &wakeup, r));
            }
            continue;
        }
        let reply = account(&metrics, &wakeup, result);
        for (_, done) in waiting {
            let _ = done.send(reply.clone());
        }
    }
}

/// The writer task on PostgreSQL (and in-memory SQLite): the same loop through the pool.
async fn writer(
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    wakeup: Arc<Notify>,
    rx: flume::Receiver<Batch>,
) {
    let mut store = store.ingest_writer();
    loop {
        let first = match rx.recv_async().await {
            Ok(first) => first,
            Err(_) => return,
        };
        let (events, waiting) = gather(first, &rx);
        metrics.commit_batch.record(events.len() as f64);
        let result = store.ingest(&events, clock.now_ms()).await;
        if result.is_err() && waiting.len() > 1 {
            let mut start = 0;
            for (len, done) in waiting {
                metrics.commit_batch.record(len as f64);
                let r = store
                    .ingest(&events[start..start + len], clock.now_ms())
                    .await;
                start += len;
                let _ = done.send(account(&metrics, &wakeup, r));
            }
            continue;
        }
        let reply = account(&metrics, &wakeup, result);
        for (_, done) in waiting {
            let _ = done.send(reply.clone());
        }
    }
}

fn account(
    metrics: &Metrics,
    wakeup: &Notify,
    result: desk_store::Result<desk_store::ingest::IngestOutcome>,
) -> Result<(), String> {
    match result {
        Ok(outcome) => {
            metrics
                .webhook_events_stored
                .increment(outcome.stored as u64);
            metrics
                .webhook_events_duplicate
                .increment(outcome.duplicates as u64);
            // Only new work wakes the fetcher: its claim is a write, which would otherwise
            // contend with this writer after every batch.
            if outcome.scheduled_jobs {
                wakeup.notify_one();
            }
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}
