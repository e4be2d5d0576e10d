//! The change feed: after a write commits, the writer announces what changed, and the SSE
//! streams (and the outbox worker) learn of it without polling the database.
//!
//! Each change gets a sequence number and the last few thousand are kept, so a browser
//! whose connection dropped can ask for what it missed (`Last-Event-ID`); when that is no
//! longer possible it is told to resynchronise instead of silently missing events.
//! In-process today; across instances it will ride on PostgreSQL's LISTEN/NOTIFY.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::broadcast;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A conversation appeared or its status, handler, profile or counters changed.
    Conversation { id: i64 },
    /// A message was added to a conversation or its delivery/media state changed.
    Message { conversation_id: i64, id: i64 },
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
}

struct Recent {
    next_seq: u64,
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
        Notifier {
            tx,
            recent: Arc::new(Mutex::new(Recent {
                next_seq: 1,
                changes: VecDeque::with_capacity(KEEP),
            })),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Numbered> {
        self.tx.subscribe()
    }

    /// Call only after the transaction that made these changes committed.
    pub fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        for change in changes {
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
            let _ = self.tx.send(n);
        }
    }

    /// The sequence number the next change will get.
    pub fn next_seq(&self) -> u64 {
        self.recent.lock().unwrap_or_else(|e| e.into_inner()).next_seq
    }

    /// Subscribes and returns the kept changes after `seq`, atomically (nothing is missed
    /// or seen twice between the two); `None` when changes after `seq` are no longer kept.
    pub fn subscribe_since(&self, seq: u64) -> (broadcast::Receiver<Numbered>, Option<Vec<Numbered>>) {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let rx = self.tx.subscribe();
        if seq + 1 >= recent.next_seq {
            return (rx, Some(Vec::new()));
        }
        let oldest = recent.changes.front().map_or(recent.next_seq, |c| c.seq);
        if seq + 1 < oldest {
            return (rx, None);
        }
        let missed = recent.changes.iter().filter(|c| c.seq > seq).cloned().collect();
        (rx, Some(missed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reconnecting_client_gets_what_it_missed_or_is_told_to_resync() {
        let n = Notifier::new();
        n.publish([Change::Conversation { id: 1 }, Change::Conversation { id: 2 }]);
        let (_rx, missed) = n.subscribe_since(1);
        let missed = missed.unwrap();
        assert_eq!(missed.len(), 1);
        assert_eq!(missed[0].change, Change::Conversation { id: 2 });
        assert_eq!(n.subscribe_since(2).1.unwrap().len(), 0);
        for i in 0..(KEEP as i64 + 10) {
            n.publish([Change::Conversation { id: i }]);
        }
        assert!(n.subscribe_since(1).1.is_none(), "too old: resync");
    }
}
