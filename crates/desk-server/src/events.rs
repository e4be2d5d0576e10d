//! `GET /api/v1/events`: Server-Sent Events that keep every agent's list and open chat
//! current (B2): `conversation` and `message` changes as they happen, each with an id.
//! A browser that reconnects sends `Last-Event-ID` and gets what it missed; when that is
//! no longer kept, or the id is another instance's (ids are `<instance>-<seq>`), or this
//! instance's change listener was disconnected meanwhile, it gets `resync` and reloads its
//! data — never a silent gap. A listener gap also sends `resync` to every open stream.
//!
//! A stream lasts only as long as the access it was opened with (issue 9, item 10): when
//! its user is disabled, logs out, has their password reset or the token revoked
//! ([`desk_store::Change::Access`], from any instance), and every [`RECHECK`] anyway (a
//! session that expired, an instance that does not announce access changes), the stream
//! checks its session or token again and ends if it is no longer valid.

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
use crate::session::{bearer_token, cookie_token};

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

/// How often an open stream checks its session or token even without an access change.
pub const RECHECK: Duration = Duration::from_secs(30);

/// What a stream was opened with, to check again later.
enum Credential {
    Token(String),
    Session(String),
}

/// The SSE event for a change; `None` for changes browsers never see.
fn to_event(notifier: &Notifier, n: &Numbered) -> Option<Event> {
    let (name, data) = match &n.change {
        desk_store::Change::Access { .. } => return None,
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
    Some(
        Event::default()
            .id(notifier.event_id(n.seq))
            .event(name)
            .data(data.to_string()),
    )
}

fn resync() -> Event {
    Event::default().event("resync").data("{}")
}

/// Live changes, as Server-Sent Events
///
/// Events: `ready` (first connection: the current position), `conversation` (`{id}`),
/// `message` (`{conversation_id, id}`), `settings` (`{}`) and `resync` (`{}`: reload
/// everything — what was missed is unknown). Each has an id; a client that reconnects sends
/// `Last-Event-ID` and gets what it missed, or `resync`. A stream ends when its session or
/// token is no longer valid.
#[utoipa::path(get, path = "/events", tag = "events",
    params(("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received, to resume")),
    responses(
        (status = 200, description = "An event stream (never ends by itself)", content_type = "text/event-stream", body = String),
        (status = 401, description = "Not logged in", body = crate::error::ErrorBody),
    ))]
pub(crate) async fn events(
    State(st): State<AppState>,
    AuthUser(user): AuthUser,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let credential = match bearer_token(&headers) {
        Some(t) => Credential::Token(t.to_owned()),
        None => Credential::Session(cookie_token(&headers).unwrap_or_default().to_owned()),
    };
    let last = headers.get("last-event-id").map(|v| {
        v.to_str()
            .ok()
            .and_then(|v| st.store.notifier.parse_event_id(v))
    });
    let notifier = st.store.notifier.clone();
    let (rx, first): (_, Vec<Event>) = match last {
        Some(Some(seq)) => match notifier.subscribe_since(seq) {
            (rx, Some(missed)) => (
                rx,
                missed
                    .iter()
                    .filter_map(|n| to_event(&notifier, n))
                    .collect(),
            ),
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
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.reset();
    let live = Live {
        _counted: st.metrics.sse_client(),
        rx,
        notifier,
        st,
        user_id: user.id,
        credential,
        recheck,
    };
    let live = stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((event, live))
    });
    let stream = stream::iter(first).chain(live).map(Ok);
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

/// The live part of one stream.
struct Live {
    /// On `linedesk_sse_clients` while the stream lives (dropped with it when the client goes).
    _counted: crate::metrics::SseClient,
    rx: tokio::sync::broadcast::Receiver<Numbered>,
    notifier: Notifier,
    st: AppState,
    user_id: i64,
    credential: Credential,
    recheck: tokio::time::Interval,
}

impl Live {
    /// The next event to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(n) => {
                        if let desk_store::Change::Access { user_id } = n.change {
                            if user_id == self.user_id && !self.still_allowed().await {
                                return None;
                            }
                            continue;
                        }
                        if let Some(event) = to_event(&self.notifier, &n) {
                            return Some(event);
                        }
                    }
                    // Too slow to keep up: tell the browser to reload rather than skip
                    // changes (an access change may be among the skipped: check).
                    Err(RecvError::Lagged(_)) => {
                        if !self.still_allowed().await {
                            return None;
                        }
                        return Some(resync());
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.recheck.tick() => {
                    if !self.still_allowed().await {
                        return None;
                    }
                }
            }
        }
    }

    /// Whether the stream's session or token still belongs to its (enabled) user. A
    /// database error ends the stream too: the browser reconnects and is checked afresh.
    async fn still_allowed(&self) -> bool {
        let now = self.st.now_ms();
        let store = &self.st.store;
        let user = match &self.credential {
            Credential::Token(t) => store
                .user_by_api_token(t, now)
                .await
                .map(|u| u.map(|u| u.id)),
            Credential::Session(t) => store
                .session_by_token(t, now)
                .await
                .map(|s| s.map(|s| s.user.id)),
        };
        let allowed = matches!(user, Ok(Some(id)) if id == self.user_id);
        if !allowed {
            tracing::info!(user = self.user_id, "event stream ended: access withdrawn");
        }
        allowed
    }
}
