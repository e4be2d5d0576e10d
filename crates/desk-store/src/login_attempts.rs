//! The login throttle's memory (issue 9, items 3–5), in the database so that every
//! instance shares it. The rules are desk_core::login_throttle's; this module counts.
//!
//! [`Store::reserve_login`] judges an attempt and, if it may go ahead, records it as
//! `pending` in the same transaction — before the password is verified, so concurrent
//! attempts see each other. Reservations are serialized (SQLite's write lock; a PostgreSQL
//! advisory lock across instances), so no two attempts can both take the last place.
//! [`Store::finish_login`] records the outcome. Rows are deleted only once older than the
//! longest window (they can lock nothing any more).

use desk_core::login_throttle::{self, Limits, Scope, Seen, Verdict};

use crate::{Result, Store, TxInner};

/// The advisory lock key that serializes reservations on PostgreSQL ("ldlogin").
const PG_LOCK_KEY: i64 = 0x006c_646c_6f67_696e;

/// A reserved attempt: check the password, then [`Store::finish_login`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    pub id: i64,
}

/// What [`Store::reserve_login`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginReservation {
    /// The attempt may go ahead and is counted: check the password, then finish it.
    Reserved(Reservation),
    /// Refused without checking the password: `scope`'s limit is reached until `until_ms`.
    Locked { scope: Scope, until_ms: i64 },
}

impl LoginReservation {
    /// The reservation, if the attempt may go ahead.
    pub fn reserved(self) -> Option<Reservation> {
        match self {
            LoginReservation::Reserved(r) => Some(r),
            LoginReservation::Locked { .. } => None,
        }
    }
}

impl Store {
    /// Judges an attempt of `login` from `client` at `now_ms`; when allowed, reserves it.
    pub async fn reserve_login(
        &self,
        login: &str,
        client: &str,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<LoginReservation> {
        let key = login_throttle::login_key(login);
        let mut tx = self.begin().await?;
        if let TxInner::Postgres(t) = &mut tx.inner {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PG_LOCK_KEY)
                .execute(&mut **t)
                .await?;
        }
        exec_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM login_attempts WHERE at <= $1"
        )
        .bind(now_ms - limits.keep_ms()))?;
        let known: Option<i64> = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "SELECT last_ok_at FROM login_known_clients WHERE login_key = $1 AND client = $2 AND last_ok_at > $3")
            .bind(&key).bind(client).bind(now_ms - limits.known_for_ms).fetch_optional(c).await
        })?;
        let mut seen = Vec::with_capacity(4);
        for (scope, limit) in limits.scopes() {
            if known.is_some() && !scope.applies_to_known_client() {
                continue;
            }
            let filter = match scope {
                Scope::Pair => "login_key = $3 AND client = $4",
                Scope::Login => "login_key = $3",
                Scope::Client => "client = $4",
                // Every attempt (the binds are still used, so all scopes share one query).
                Scope::Global => "$3 = $3 AND $4 = $4",
            };
            // The max-th newest counted attempt of the window, if there are that many.
            let sql = format!(
                "SELECT at FROM login_attempts
                 WHERE outcome IN ('pending', 'failed') AND at > $1 AND {filter}
                 ORDER BY at DESC LIMIT 1 OFFSET $2"
            );
            let at: Option<i64> = on_tx!(&mut tx, |c| sqlx::query_scalar(&sql)
                .bind(now_ms - limit.window_ms)
                .bind(i64::from(limit.max.max(1) - 1))
                .bind(&key)
                .bind(client)
                .fetch_optional(c)
                .await)?;
            seen.push(Seen {
                scope,
                max_th_newest_ms: at,
            });
        }
        let verdict = login_throttle::judge(limits, &seen, known.is_some(), now_ms);
        if let Verdict::Locked { scope, until_ms } = verdict {
            return Ok(LoginReservation::Locked { scope, until_ms });
        }
        let id: i64 = on_tx!(&mut tx, |c| {
            sqlx::query_scalar(
            "INSERT INTO login_attempts (login_key, client, at, outcome) VALUES ($1, $2, $3, 'pending')
             RETURNING id")
            .bind(&key).bind(client).bind(now_ms).fetch_one(c).await
        })?;
        tx.commit().await?;
        Ok(LoginReservation::Reserved(Reservation { id }))
    }

    /// Records the outcome of a reserved attempt. A success forgets the failures of its
    /// login ID from its address and remembers the address as the login ID's own.
    pub async fn finish_login(
        &self,
        reservation: Reservation,
        succeeded: bool,
        now_ms: i64,
    ) -> Result<()> {
        self.finish_login_with(reservation, succeeded, &Limits::default(), now_ms)
            .await
    }

    /// [`Store::finish_login`] with the limits in force (how long an address stays known).
    pub async fn finish_login_with(
        &self,
        reservation: Reservation,
        succeeded: bool,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let outcome = if succeeded { "ok" } else { "failed" };
        let row: Option<(String, String)> = on_tx!(&mut tx, |c| sqlx::query_as(
            "UPDATE login_attempts SET outcome = $2 WHERE id = $1 RETURNING login_key, client"
        )
        .bind(reservation.id)
        .bind(outcome)
        .fetch_optional(c)
        .await)?;
        if succeeded && let Some((key, client)) = row {
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                "DELETE FROM login_attempts WHERE login_key = $1 AND client = $2 AND outcome = 'failed'")
                .bind(&key).bind(&client)
            })?;
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                "INSERT INTO login_known_clients (login_key, client, last_ok_at) VALUES ($1, $2, $3)
                 ON CONFLICT (login_key, client) DO UPDATE SET last_ok_at = excluded.last_ok_at")
                .bind(&key).bind(&client).bind(now_ms)
            })?;
            exec_tx!(&mut tx, |c| sqlx::query(
                "DELETE FROM login_known_clients WHERE last_ok_at <= $1"
            )
            .bind(now_ms - limits.known_for_ms))?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many attempt rows are kept (tests, and to see the table stays bounded).
    pub async fn count_login_attempts(&self) -> Result<i64> {
        Ok(on_db!(&self.db, |p| sqlx::query_scalar(
            "SELECT COUNT(*) FROM login_attempts"
        )
        .fetch_one(p)
        .await)?)
    }
}
