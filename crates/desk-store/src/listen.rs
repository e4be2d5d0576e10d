//! Changes across instances on PostgreSQL: LISTEN/NOTIFY on one channel.
//!
//! Writers send their changes with `pg_notify` inside the writing transaction
//! ([`notify_in`], called by [`crate::Tx::commit`]); PostgreSQL delivers a notification at
//! the commit and only if the transaction commits. Each instance runs one listener
//! ([`Store::start_listener`]) on a connection of its own that feeds the instance's
//! [`Notifier`] with the changes of *other* instances: a payload carries the writer's
//! origin, and an instance skips its own (it already published them after its commit).
//!
//! Payload: `<origin> <change> <change> …`, where a change is `c<id>` (conversation) or
//! `m<conversation id>.<id>` (message), or `s` (settings); at most [`MAX_PAYLOAD`] bytes, a long list is split
//! over several notifications of the same transaction. `<origin> ping` is the heartbeat.
//!
//! A lost listener connection loses notifications. So the listener treats an error, a
//! closed connection, or silence longer than [`DEAD_AFTER`] (a heartbeat goes through the
//! channel every [`HEARTBEAT`]) as a gap: it connects and LISTENs again (with backoff), and
//! only then calls [`Notifier::gap`], so the browsers' reload happens after the instance
//! hears changes again and nothing falls between the two.

use std::fmt::Write as _;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool, PgPoolOptions};

use crate::{Change, Db, Notifier, Result, Store};

/// The one channel every instance listens on.
pub const CHANNEL: &str = "linedesk_changes";
/// PostgreSQL refuses payloads of 8000 bytes or more.
pub const MAX_PAYLOAD: usize = 7000;
/// How often each instance sends a heartbeat through the channel.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A listener that heard nothing (not even a heartbeat) for this long is presumed dead.
pub const DEAD_AFTER: Duration = Duration::from_secs(16);

/// Sends `changes` to the other instances inside the open transaction `t`.
pub async fn notify_in(
    t: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    origin: &str,
    changes: &[Change],
) -> Result<()> {
    let payloads = payloads(origin, changes);
    if payloads.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
        .bind(CHANNEL)
        .bind(&payloads)
        .execute(&mut **t)
        .await?;
    Ok(())
}

/// The notification payloads for `changes` (duplicates sent once; [`Change::Resync`] never).
pub fn payloads(origin: &str, changes: &[Change]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in changes {
        if !seen.insert(ch) {
            continue;
        }
        let mut item = String::new();
        match ch {
            Change::Conversation { id } => write!(item, "c{id}"),
            Change::Message {
                conversation_id,
                id,
            } => write!(item, "m{conversation_id}.{id}"),
            Change::Settings => write!(item, "s"),
            Change::Access { user_id } => write!(item, "a{user_id}"),
            Change::Resync => continue,
        }
        .expect("writing to a String");
        if !cur.is_empty() && cur.len() + 1 + item.len() > MAX_PAYLOAD {
            out.push(std::mem::take(&mut cur));
        }
        if cur.is_empty() {
            cur.push_str(origin);
        }
        cur.push(' ');
        cur.push_str(&item);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A received payload: its origin and changes. Unknown items (from a newer version of the
/// desk during a rolling upgrade) are skipped.
pub fn parse_payload(payload: &str) -> Option<(&str, Vec<Change>)> {
    let mut parts = payload.split(' ');
    let origin = parts.next().filter(|o| !o.is_empty())?;
    let changes = parts.filter_map(parse_item).collect();
    Some((origin, changes))
}

fn parse_item(item: &str) -> Option<Change> {
    if item == "s" {
        return Some(Change::Settings);
    }
    if let Some(id) = item.strip_prefix('a') {
        return Some(Change::Access {
            user_id: id.parse().ok()?,
        });
    }
    if let Some(id) = item.strip_prefix('c') {
        return Some(Change::Conversation {
            id: id.parse().ok()?,
        });
    }
    let (conv, id) = item.strip_prefix('m')?.split_once('.')?;
    Some(Change::Message {
        conversation_id: conv.parse().ok()?,
        id: id.parse().ok()?,
    })
}

impl Store {
    /// On PostgreSQL: LISTENs on [`CHANNEL`] (returning once that is in place, or the error
    /// when it cannot be) and keeps feeding this instance's notifier with other instances'
    /// changes in a background task, plus a heartbeat task. Nothing to do on SQLite, where
    /// one process is the only writer.
    pub async fn start_listener(&self) -> Result<()> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(());
        };
        let listener = connect(pool).await?;
        let notifier = self.notifier.clone();
        tokio::spawn(run(pool.clone(), listener, notifier.clone()));
        tokio::spawn(heartbeat(pool.clone(), notifier));
        Ok(())
    }
}

/// A listener on a connection (and a one-connection pool) of its own, so a reconnect never
/// takes a connection from the pool the requests use.
async fn connect(pool: &PgPool) -> Result<(PgListener, PgPool)> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with((*pool.connect_options()).clone())
        .await?;
    let mut listener = PgListener::connect_with(&own).await?;
    listener.listen(CHANNEL).await?;
    Ok((listener, own))
}

async fn run(pool: PgPool, first: (PgListener, PgPool), notifier: Notifier) {
    let (mut listener, mut own) = first;
    loop {
        let lost = match tokio::time::timeout(DEAD_AFTER, listener.try_recv()).await {
            Ok(Ok(Some(n))) => {
                if let Some((origin, changes)) = parse_payload(n.payload())
                    && origin != notifier.origin()
                    && !changes.is_empty()
                {
                    notifier.publish(changes);
                }
                continue;
            }
            Ok(Ok(None)) => "connection closed".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no notification, not even a heartbeat, for {DEAD_AFTER:?}"),
        };
        tracing::warn!(reason = %lost, "change listener lost; reconnecting");
        // The old connection is dropped, never reused: it may be half dead.
        drop(listener);
        let old = own;
        tokio::spawn(async move { old.close().await });
        let mut wait = Duration::from_millis(100);
        (listener, own) = loop {
            match connect(&pool).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::warn!(%e, "change listener: cannot listen yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        };
        // Listening again: whatever happened meanwhile elsewhere was not heard.
        tracing::info!("change listener back; clients resynchronise");
        notifier.gap();
    }
}

async fn heartbeat(pool: PgPool, notifier: Notifier) {
    let payload = format!("{} ping", notifier.origin());
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(&payload)
            .execute(&pool)
            .await
        {
            tracing::warn!(%e, "change listener heartbeat");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_split_and_skip_duplicates() {
        let mut changes = vec![Change::Conversation { id: 7 }, Change::Resync];
        for i in 0..3000 {
            changes.push(Change::Message {
                conversation_id: 7,
                id: i,
            });
            changes.push(Change::Conversation { id: 7 });
        }
        let ps = payloads("abc", &changes);
        assert!(ps.len() > 1);
        let mut back = Vec::new();
        for p in &ps {
            assert!(p.len() <= MAX_PAYLOAD, "{}", p.len());
            let (origin, ch) = parse_payload(p).unwrap();
            assert_eq!(origin, "abc");
            back.extend(ch);
        }
        assert_eq!(back.len(), 3001);
        assert_eq!(back[0], Change::Conversation { id: 7 });
        assert_eq!(
            back[3000],
            Change::Message {
                conversation_id: 7,
                id: 2999
            }
        );
        assert!(payloads("abc", &[]).is_empty());
        let (_, access) =
            parse_payload(&payloads("abc", &[Change::Access { user_id: 42 }])[0]).unwrap();
        assert_eq!(access, vec![Change::Access { user_id: 42 }]);
        assert_eq!(parse_payload("abc ping").unwrap().1, vec![]);
        assert_eq!(parse_payload("abc c1 x9 m2.3").unwrap().1.len(), 2);
    }
}
