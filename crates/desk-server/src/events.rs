//! `GET /api/v1/events`: Server-Sent Events that keep every agent's list and open chat
//! current (B2): `conversation` and `message` changes as they happen, each with an id.
//! A browser that reconnects sends `Last-Event-ID` and gets what it missed; when that is
//! no longer kept (or this is another instance) it gets `resync` and reloads its data —
//! never a silent gap.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use desk_store::notify::Numbered;
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::AuthUser;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

fn to_event(n: &Numbered) -> Event {
    let (name, data) = match &n.change {
        desk_store::Change::Conversation { id } => ("conversation", serde_json::json!({ "id": id })),
        desk_store::Change::Message { conversation_id, id } => (
            "message",
            serde_json::json!({ "conversation_id": conversation_id, "id": id }),
        ),
    };
    Event::default().id(n.seq.to_string()).event(name).data(data.to_string())
}

fn resync() -> Event {
    Event::default().event("resync").data("{}")
}

async fn events(
    State(st): State<AppState>,
    _user: AuthUser,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let notifier = &st.store.notifier;
    let (rx, first): (_, Vec<Event>) = match last {
        Some(seq) => match notifier.subscribe_since(seq) {
            (rx, Some(missed)) => (rx, missed.iter().map(to_event).collect()),
            (rx, None) => (rx, vec![resync()]),
        },
        // A first connection: a `ready` event carries the current position.
        None => {
            let (rx, _) = notifier.subscribe_since(u64::MAX - 1);
            let ready = Event::default()
                .id((notifier.next_seq() - 1).to_string())
                .event("ready")
                .data("{}");
            (rx, vec![ready])
        }
    };
    let live = stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(n) => Some((to_event(&n), rx)),
            // Too slow to keep up: tell the browser to reload rather than skip changes.
            Err(RecvError::Lagged(_)) => Some((resync(), rx)),
            Err(RecvError::Closed) => None,
        }
    });
    let stream = stream::iter(first).chain(live).map(Ok);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
