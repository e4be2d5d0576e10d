//! `GET /api/v1/events`: Server-Sent Events that keep every agent's list and open chat
//! current (B2): `conversation` and `message` changes as they happen, each with an id.
//! A browser that reconnects sends `Last-Event-ID` and gets what it missed; when that is
//! no longer kept, or the id is another instance's (ids are `<instance>-<seq>`), or this
//! instance's change listener was disconnected meanwhile, it gets `resync` and reloads its
//! data — never a silent gap. A listener gap also sends `resync` to every open stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::routing::get;
use desk_store::notify::{Notifier, Numbered};
use futures_util::stream::{self, Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use crate::AppState;
use crate::auth::AuthUser;

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

fn to_event(notifier: &Notifier, n: &Numbered) -> Event {
    let (name, data) = match &n.change {
        desk_store::Change::Resync => ("resync", serde_json::json!({})),
        desk_store::Change::Settings => ("settings", serde_json::json!({})),
        desk_store::Change::Conversation { id } => {
            ("conversation", serde_json::json!({ "id": id }))
        }
        desk_store::Change::Message {
            conversation_id,
            id,
        } => (
            "message",
            serde_json::json!({ "conversation_id": conversation_id, "id": id }),
        ),
    };
    Event::default()
        .id(notifier.event_id(n.seq))
        .event(name)
        .data(data.to_string())
}

fn resync() -> Event {
    Event::default().event("resync").data("{}")
}

async fn events(
    State(st): State<AppState>,
    _user: AuthUser,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let last = headers.get("last-event-id").map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| st.store.notifier.parse_event_id(v))
    });
    let notifier = st.store.notifier.clone();
    let (rx, first): (_, Vec<Event>) = match last {
        Some(Some(seq)) => match notifier.subscribe_since(seq) {
            (rx, Some(missed)) => (rx, missed.iter().map(|n| to_event(&notifier, n)).collect()),
            (rx, None) => (rx, vec![resync()]),
        },
        // Another instance's id, or not one of ours: what was missed is unknown here.
        Some(None) => (notifier.subscribe(), vec![resync()]),
        // A first connection: a `ready` event carries the current position.
        None => {
            let (rx, at) = notifier.subscribe_now();
            let ready = Event::default()
                .id(notifier.event_id(at))
                .event("ready")
                .data("{}");
            (rx, vec![ready])
        }
    };
    let live = stream::unfold((rx, notifier), |(mut rx, notifier)| async move {
        match rx.recv().await {
            Ok(n) => Some((to_event(&notifier, &n), (rx, notifier))),
            // Too slow to keep up: tell the browser to reload rather than skip changes.
            Err(RecvError::Lagged(_)) => Some((resync(), (rx, notifier))),
            Err(RecvError::Closed) => None,
        }
    });
    let stream = stream::iter(first).chain(live).map(Ok);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
