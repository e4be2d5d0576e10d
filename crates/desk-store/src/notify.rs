//! The change feed: after a write commits, the writer announces what changed, and the SSE
//! streams (and anything else interested) learn of it without polling the database.
//! In-process today; across instances it will ride on PostgreSQL's LISTEN/NOTIFY.

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

#[derive(Clone)]
pub struct Notifier {
    tx: broadcast::Sender<Change>,
}

impl Default for Notifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier {
    pub fn new() -> Notifier {
        // A slow subscriber that falls this far behind gets `Lagged` and resynchronises.
        let (tx, _) = broadcast::channel(8192);
        Notifier { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.tx.subscribe()
    }

    /// Call only after the transaction that made these changes committed.
    pub fn publish(&self, changes: impl IntoIterator<Item = Change>) {
        for c in changes {
            // No subscriber is fine: nobody is watching.
            let _ = self.tx.send(c);
        }
    }
}
