//! The change feed: every write announces what it changed ([`crate::Tx::announce`]), and
//! the SSE streams (and the outbox worker) learn of it without polling the database.
//!
//! Each change gets a sequence number in this instance's feed and the last few thousand are
//! kept, so a browser whose connection dropped can ask for what it missed (`Last-Event-ID`);
//! when that is no longer possible it is told to resynchronise instead of silently missing
//! events.
//!
//! Across instances (PostgreSQL) a committing transaction also sends its changes with
//! `pg_notify` (see [`crate::listen`]), tagged with the writing instance's [`Notifier::origin`].
//! An instance publishes its own changes locally right after the commit (no round trip
//! through the database) and its listener skips payloads carrying its own origin, so every
//! change reaches each instance's feed exactly once. When the listener loses its
//! connection, changes of other instances may have been missed: it calls [`Notifier::gap`]
//! once it listens again, which tells every live subscriber to resynchronise and makes
//! catch-up across the gap impossible.
//!
//! Event ids handed to browsers carry the origin (`"<origin>-<seq>"`, see
//! [`Notifier::event_id`]): sequence numbers mean nothing on another instance, so a browser
//! that reconnects through the load balancer to another instance is told to resynchronise.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A conversation appeared or its status, handler, profile or counters changed.
    Conversation { id: i64 },
    /// A message was added to a conversation or its delivery/media state changed.
    Message { conversation_id: i64, id: i64 },
    /// A setting changed (LINE設定): every instance reloads its cached copy. Not sent to
    /// browsers.
    Settings,
    /// A user's access changed (disabled, logged out, password reset, a token revoked):
    /// their open event streams check whether they may still listen. Not sent to browsers.
    Access { user_id: i64 },
    /// Not a change of data: the feed has a gap (this instance may have missed changes
    /// made elsewhere). Whoever keeps a picture of the data must reload it. Published only
    /// by [`Notifier::gap`].
    Resync,
}

/// A change with its place in this instance's feed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Numbered {
    pub seq: u64,
    pub change: Change,
}

const KEEP: usize = 8192;

#[derive(Clone)]
pub struct Notifier {
    tx: broadcast::Sender<Numbered>,
    recent: Arc<Mutex<Recent>>,
    origin: Arc<str>,
}

struct Recent {
    next_seq: u64,
    /// The sequence number of the last gap: nobody can catch up across it.
    floor: u64,
    /// How many gaps there were (listener reconnects), for `/metrics`.
    gaps: u64,
    changes: VecDeque<Numbered>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    pub fn new() -> Notifier {
        // A subscriber that falls this far behind gets `Lagged` and resynchronises.
        let (tx, _) = broadcast::channel(KEEP);
        let origin = crate::random_token(9).replace(['-', '_'], "x");
        Notifier {
            tx,
            recent: Arc::new(Mutex::new(Recent {
                next_seq: 1,
                floor: 0,
                gaps: 0,
                changes: VecDeque::with_capacity(KEEP),
            })),
            origin: origin.into(),
        }
    }

    /// This instance's random name: tags its `pg_notify` payloads and its SSE event ids.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.tx.subscribe()
    }

    /// Publishes changes to this instance's subscribers. Writers do not call this: they
    /// announce on their transaction ([`crate::Tx::announce`]), which publishes after the
    /// commit (and tells other instances); the listener calls it for other instances' changes.
    pub fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for change in changes {
            Self::push(&mut recent, &self.tx, change);
        }
    }

    fn push(recent: &mut Recent, tx: &broadcast::Sender<Numbered>, change: Change) -> u64 {
        let n = Numbered {
            seq: recent.next_seq,
            change,
        };
        recent.next_seq += 1;
        if recent.changes.len() == KEEP {
            recent.changes.pop_front();
        }
        recent.changes.push_back(n.clone());
        // Sent under the lock, so subscribers see sequence numbers in order.
        let _ = tx.send(n.clone());
        n.seq
    }

    /// The feed may have missed changes (the listener was disconnected): live subscribers
    /// get [`Change::Resync`], and a reconnecting client whose last event came before this
    /// point is told to resynchronise rather than given a catch-up with a hole in it.
    pub fn gap(&self) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let seq = Self::push(&mut recent, &self.tx, Change::Resync);
        recent.floor = seq;
        recent.gaps += 1;
    }

    /// How many times the feed had a gap: on PostgreSQL, how often the listener lost its
    /// connection and listened again (desk-server shows it on `/metrics`).
    pub fn gap_count(&self) -> u64 {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).gaps
    }

    /// The sequence number the next change will get.
    pub fn next_seq(&self) -> u64 {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_seq
    }

    /// Subscribes and returns the current position (the last sequence number given out),
    /// atomically: the receiver gets exactly the changes after that position.
    pub fn subscribe_now(&self) -> (broadcast::Receiver<Numbered>, u64) {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        (self.tx.subscribe(), recent.next_seq - 1)
    }

    /// Subscribes and returns the kept changes after `seq`, atomically (nothing is missed
    /// or seen twice between the two); `None` when changes after `seq` are no longer kept,
    /// or a gap lies after `seq`.
    pub fn subscribe_since(
        &self,
        seq: u64,
    ) -> (broadcast::Receiver<Numbered>, Option<Vec<Numbered>>) {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        if seq >= recent.next_seq {
            // A position this feed never gave out (e.g. from before a restart).
            return (rx, None);
        }
        if seq < recent.floor {
            return (rx, None);
        }
        if seq + 1 == recent.next_seq {
            return (rx, Some(Vec::new()));
        }
        let oldest = recent.changes.front().map_or(recent.next_seq, |c| c.seq);
        if seq + 1 < oldest {
            return (rx, None);
        }
        let missed = recent
            .changes
            .iter()
            .filter(|c| c.seq > seq)
            .cloned()
            .collect();
        (rx, Some(missed))
    }

    /// The id of an SSE event for position `seq` of this feed.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{seq}", self.origin)
    }

    /// The position in this feed that an SSE `Last-Event-ID` names; `None` when the id
    /// comes from another instance (or an earlier run of this one) or is not one of ours.
    pub fn parse_event_id(&self, id: &str) -> Option<u64> {
        let (origin, seq) = id.rsplit_once('-')?;
        if origin != &*self.origin {
            return None;
        }
        seq.parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnecting_client_gets_what_it_missed_or_is_told_to_resync() {
        let n = Notifier::new();
        n.publish([
            Change::Conversation { id: 1 },
            Change::Conversation { id: 2 },
        ]);
        let (_rx, missed) = n.subscribe_since(1);
        let missed = missed.unwrap();
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].change, Change::Conversation { id: 2 });
        assert_eq!(n.subscribe_since(2).1.unwrap().len(), 0);
        assert!(
            n.subscribe_since(3).1.is_none(),
            "a position never given out: resync"
        );
        for i in 0..(KEEP as i64 + 10) {
            n.publish([Change::Conversation { id: i }]);
        }
        assert!(n.subscribe_since(1).1.is_none(), "too old: resync");
    }

    #[test]
    fn a_gap_resyncs_live_subscribers_and_forbids_catch_up_across_it() {
        let n = Notifier::new();
        n.publish([Change::Conversation { id: 1 }]);
        let (mut rx, at) = n.subscribe_now();
        assert_eq!(at, 1);
        n.gap();
        let got = rx.try_recv().unwrap();
        assert_eq!(got.change, Change::Resync);
        assert_eq!(got.seq, 2);
        assert!(n.subscribe_since(1).1.is_none(), "across the gap: resync");
        n.publish([Change::Conversation { id: 3 }]);
        let after = n.subscribe_since(2).1.unwrap();
        assert_eq!(after.len(), 1, "after the gap catch-up works again");
    }

    #[test]
    fn event_ids_of_another_instance_are_not_positions_here() {
        let a = Notifier::new();
        let b = Notifier::new();
        assert_eq!(a.parse_event_id(&a.event_id(42)), Some(42));
        assert_eq!(b.parse_event_id(&a.event_id(42)), None);
        assert_eq!(a.parse_event_id("42"), None);
    }
}
