//! `POST /line`, LINE's webhook (S1, S4, C1, C7): verify the signature over the raw bytes,
//! parse, store durably, answer 200; profiles and content are fetched afterwards by
//! [`crate::fetcher`].
//!
//! Durability without one fsync per request: handlers hand their events to the
//! [`IngestQueue`], whose writer takes everything waiting, stores it in one transaction and
//! only then lets each handler answer (group commit).

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use desk_core::clock::Clock;
use desk_store::Store;
use desk_store::ingest::{InboundAction, InboundEvent, InboundMessage};
use line_api::webhook::{ContentProvider, Event, EventKind, MessageContent, Source};
use serde_json::json;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::AppState;
use crate::metrics::Metrics;

/// LINE's bodies are small; anything bigger is not LINE (413).
pub const MAX_BODY: usize = 1024 * 1024;
/// Events stored per transaction at most.
const MAX_BATCH_EVENTS: usize = 4096;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/line", post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

async fn receive(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let line = st.line.current();
    let signature = headers
        .get("x-line-signature")
        .and_then(|v| v.to_str().ok());
    let verified = match (&line.channel_secret, signature) {
        (Some(secret), Some(sig)) => line_api::signature::verify(secret.as_bytes(), &body, sig),
        _ => false,
    };
    let now = st.now_ms();
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
            st.metrics.webhook_bad_request.fetch_add(1, Relaxed);
            tracing::warn!(%e, "webhook refused: not a webhook body");
            return (StatusCode::BAD_REQUEST, "not a LINE webhook body\n");
        }
    };
    let events: Vec<InboundEvent> = parsed
        .events
        .into_iter()
        .map(|p| to_inbound(&p.event, p.raw.get()))
        .collect();
    if events.is_empty() {
        // The console's "Verify" button sends an empty list.
        st.metrics.webhook_requests_ok.fetch_add(1, Relaxed);
        return (StatusCode::OK, "OK\n");
    }
    match st.ingest.submit(events).await {
        Ok(()) => {
            st.metrics.webhook_requests_ok.fetch_add(1, Relaxed);
            (StatusCode::OK, "OK\n")
        }
        Err(e) => {
            st.metrics.webhook_errors.fetch_add(1, Relaxed);
            tracing::error!(%e, "webhook events not stored; LINE will redeliver");
            (StatusCode::INTERNAL_SERVER_ERROR, "not stored, retry\n")
        }
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
        event_type: event_type(raw),
        line_user_id,
        timestamp: ev.timestamp,
        raw: raw.to_owned(),
        action,
    }
}

/// The event's `type` as LINE wrote it (also for types this desk does not know).
fn event_type(raw: &str) -> String {
    #[derive(serde::Deserialize)]
    struct T {
        #[serde(rename = "type")]
        t: Option<String>,
    }
    serde_json::from_str::<T>(raw)
        .ok()
        .and_then(|t| t.t)
        .unwrap_or_else(|| "unknown".into())
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
        MessageContent::Other { .. } => "other",
        other => other.type_name(),
    };
    InboundMessage {
        line_message_id: m.id().map(str::to_owned),
        kind: kind.to_owned(),
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

/// The group-commit queue between webhook handlers and the database writer(s).
#[derive(Clone)]
pub struct IngestQueue {
    tx: mpsc::Sender<Batch>,
}

impl IngestQueue {
    /// Starts the writer. One on either database: SQLite has one writer anyway, and on
    /// PostgreSQL two or four were measured no faster and with a longer tail
    /// (docs/benchmarks.md): the active users' chats are in nearly every batch, so
    /// concurrent batches queue on those rows' locks, and one writer makes bigger groups.
    pub fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        wakeup: Arc<Notify>,
    ) -> IngestQueue {
        let (tx, rx) = mpsc::channel::<Batch>(16_384);
        tokio::spawn(writer(store, clock, metrics, wakeup, rx));
        IngestQueue { tx }
    }

    /// Returns once the events are committed.
    pub async fn submit(&self, events: Vec<InboundEvent>) -> Result<(), String> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Batch { events, done })
            .await
            .map_err(|_| "ingest writer stopped".to_string())?;
        wait.await
            .map_err(|_| "ingest writer stopped".to_string())?
    }
}

async fn writer(
    store: Store,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    wakeup: Arc<Notify>,
    mut rx: mpsc::Receiver<Batch>,
) {
    // On SQLite a connection of its own (see IngestWriter).
    let mut store = store.ingest_writer();
    loop {
        let first = loop {
            // Idle for a second: time to checkpoint what the last batches wrote.
            match tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                Ok(Some(first)) => break first,
                Ok(None) => return,
                Err(_) => checkpoint(&mut store, false).await,
            }
        };
        // Everything else waiting joins it (group commit).
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
        // One transaction for all of them; the requests' events are moved, not copied.
        let mut events = Vec::with_capacity(batches.iter().map(|b| b.events.len()).sum());
        let mut waiting = Vec::with_capacity(batches.len());
        for b in batches {
            waiting.push((b.events.len(), b.done));
            events.extend(b.events);
        }
        let result = store.ingest(&events, clock.now_ms()).await;
        if result.is_err() && waiting.len() > 1 {
            // One bad request must not fail its neighbours: store each on its own.
            let mut start = 0;
            for (len, done) in waiting {
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
        // Nobody waits for these batches any more; the next ones may wait a little.
        let waiting = !rx.is_empty();
        checkpoint(&mut store, waiting).await;
    }
}

async fn checkpoint(store: &mut desk_store::ingest::IngestWriter, waiting: bool) {
    if let Err(e) = store.checkpoint_if_due(waiting).await {
        tracing::warn!(%e, "WAL checkpoint failed; SQLite will checkpoint later");
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
                .fetch_add(outcome.stored as u64, Relaxed);
            metrics
                .webhook_events_duplicate
                .fetch_add(outcome.duplicates as u64, Relaxed);
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
