//! `GET /metrics` in Prometheus text format, and the durable record of signature failures
//! that admins see on the LINE設定 screen (S3: a wrong Channel Secret must be diagnosable).
//!
//! The desk records through the `metrics` facade and renders with
//! `metrics-exporter-prometheus` (no HTTP listener, no push gateway: `/metrics` is one of
//! the desk's own routes, behind its host check). What is recorded, and the names operators
//! alert on, are listed in docs/operations.md.
//!
//! **A recorder per desk, not the global one.** The facade's global recorder is one per
//! process, but tests run several desks in one process (and must each see their own
//! numbers). So each [`Metrics`] builds its own `PrometheusRecorder`, registers every
//! metric on it once — the facade's macros inside `metrics::with_local_recorder` — and
//! keeps the handles (`Counter`, `Gauge`, `Histogram`: an atomic each) and the recorder's
//! `PrometheusHandle` for rendering. Recording is then an atomic add on a handle held in
//! [`crate::AppState`], with no registry lookup on the webhook's hot path; a `counter!`
//! elsewhere in the process (a library's) would go to the global recorder, which the desk
//! does not install.
//!
//! Histograms are rendered as Prometheus histograms (fixed buckets, so instances can be
//! summed), not the exporter's default summaries. The exporter buffers histogram samples
//! until a render or an upkeep: [`upkeep`] runs one every few seconds so an unscraped desk's
//! memory stays bounded.
//!
//! Numbers that live in the database — the outbox, the fetch jobs, the passcode budget and
//! its refusals (the `counters` table, shared by all instances) — are read from the store at
//! each scrape and set on their gauges and counters just before rendering, so every
//! instance shows the same, durable values, as before.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// The counter in the `counters` table that holds refused webhook deliveries (all of them).
pub const SIGNATURE_FAILURES: &str = "webhook_signature_failures";
/// … of which signed, with a signature that did not match (LINE with another secret, or a
/// forger): counted, with the time of the last one.
pub const SIGNED_FAILURES: &str = "webhook_signed_failures";
/// … of which without any `X-Line-Signature`: never LINE (LINE signs every delivery).
pub const UNSIGNED_REQUESTS: &str = "webhook_unsigned_requests";
/// Deliveries whose signature matched, with the time of the last one.
pub const VERIFIED_DELIVERIES: &str = "webhook_verified_deliveries";
/// Signed failures since the last verified delivery (reset by one).
pub const SIGNED_FAILURE_STREAK: &str = "webhook_signed_failure_streak";
/// Signed failures in a row (and none verified since) before admins are told the Channel
/// Secret is probably wrong.
pub const SECRET_HINT_AFTER: i64 = 3;

/// Whether LINE設定 says the Channel Secret is probably wrong (issue 9, item 12): signed
/// deliveries fail consistently — at least [`SECRET_HINT_AFTER`] in a row, the last one
/// after the last verified delivery. Unsigned posts (never LINE) do not count, and a forger
/// posting wrong signatures between LINE's good deliveries keeps resetting the streak.
pub fn secret_probably_wrong(
    streak: i64,
    last_signed_failure_ms: Option<i64>,
    last_verified_ms: Option<i64>,
) -> bool {
    match last_signed_failure_ms {
        Some(failed) => {
            streak >= SECRET_HINT_AFTER && last_verified_ms.is_none_or(|ok| failed > ok)
        }
        None => false,
    }
}

/// The refused deliveries as LINE設定 and its API show them.
pub struct SignatureReport {
    pub total: i64,
    pub signed: i64,
    pub unsigned: i64,
    pub last_signed_at: Option<i64>,
    pub last_unsigned_at: Option<i64>,
    pub last_at: Option<i64>,
    pub secret_probably_wrong: bool,
}

/// The LINE passcode guessing budget as `/metrics` and LINE設定 show it (issue 9, item 6).
pub struct PasscodeReport {
    pub failures_last_hour: i64,
    pub budget: i64,
    pub exhausted: bool,
    /// Attempts left unchecked because the budget was used up, and the last one's time.
    pub refused: i64,
    pub last_refused_at: Option<i64>,
}

pub async fn passcode_report(st: &AppState) -> desk_store::Result<PasscodeReport> {
    use desk_core::passcode::{GLOBAL_FAILURE_BUDGET, THROTTLE_WINDOW_MS, budget_allows};
    let failures = st
        .store
        .passcode_failures_since(st.now_ms() - THROTTLE_WINDOW_MS)
        .await?;
    let refused = st
        .store
        .counter(desk_store::customers::PASSCODE_BUDGET_REFUSED)
        .await?;
    Ok(PasscodeReport {
        failures_last_hour: failures,
        budget: GLOBAL_FAILURE_BUDGET as i64,
        exhausted: !budget_allows(usize::try_from(failures).unwrap_or(usize::MAX)),
        refused: refused.map_or(0, |(n, _)| n),
        last_refused_at: refused.map(|(_, at)| at),
    })
}

/// Reads the counters behind [`SignatureReport`].
pub async fn signature_report(st: &AppState) -> desk_store::Result<SignatureReport> {
    let get = |name: &'static str| st.store.counter(name);
    let total = get(SIGNATURE_FAILURES).await?;
    let signed = get(SIGNED_FAILURES).await?;
    let unsigned = get(UNSIGNED_REQUESTS).await?;
    let verified = get(VERIFIED_DELIVERIES).await?;
    let streak = get(SIGNED_FAILURE_STREAK).await?;
    Ok(SignatureReport {
        total: total.map_or(0, |(n, _)| n),
        signed: signed.map_or(0, |(n, _)| n),
        unsigned: unsigned.map_or(0, |(n, _)| n),
        last_signed_at: signed.map(|(_, at)| at),
        last_unsigned_at: unsigned.map(|(_, at)| at),
        last_at: total.map(|(_, at)| at),
        secret_probably_wrong: secret_probably_wrong(
            streak.map_or(0, |(n, _)| n),
            signed.map(|(_, at)| at),
            verified.map(|(_, at)| at),
        ),
    })
}

/// Buckets of [`WEBHOOK_LATENCY`], in seconds: LINE waits a few seconds at most.
const WEBHOOK_LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of [`COMMIT_BATCH`], in events: powers of two up to the writer's largest group.
const COMMIT_BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
/// Buckets of [`DELIVERY_LATENCY`], in seconds: a push takes well under a second, a reply
/// in reply mode may wait for the customer's next message (minutes to a day).
const DELIVERY_LATENCY_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
];

/// From a request to `POST /line` arriving to its 200 (events durably stored).
pub const WEBHOOK_LATENCY: &str = "linedesk_webhook_latency_seconds";
/// Events stored per transaction by the webhook's writer (its group commit).
pub const COMMIT_BATCH: &str = "linedesk_webhook_commit_batch_events";
/// From an agent's message being queued to LINE accepting it.
pub const DELIVERY_LATENCY: &str = "linedesk_delivery_latency_seconds";

/// This desk's metrics: the handles it records on, and the recorder's handle that renders
/// them (see the module docs for why each desk has its own recorder).
pub struct Metrics {
    handle: PrometheusHandle,
    pub webhook_requests_ok: Counter,
    webhook_bad_signature: Counter,
    pub webhook_bad_request: Counter,
    pub webhook_errors: Counter,
    pub webhook_events_stored: Counter,
    pub webhook_events_duplicate: Counter,
    webhook_signature_failures: Counter,
    /// Refused requests with a wrong signature, and without one (this instance).
    webhook_signed_bad: Counter,
    webhook_unsigned: Counter,
    pub fetch_ok: Counter,
    pub fetch_failures: Counter,
    /// Agent messages LINE accepted, and those that failed (or are uncertain).
    pub deliveries_sent: Counter,
    pub deliveries_failed: Counter,
    /// Seconds from a `/line` request to its 200.
    pub webhook_latency: Histogram,
    /// Events per commit of the webhook's writer.
    pub commit_batch: Histogram,
    /// Seconds from an agent's message being queued to LINE accepting it.
    pub delivery_latency: Histogram,
    /// Open live-update streams (`/api/v1/events`); see [`Metrics::sse_client`].
    sse_clients: Gauge,
    /// Read from the store at each scrape ([`Metrics::read_store`]).
    outbox_messages: Gauge,
    outbox_oldest_age: Gauge,
    passcode_failures_last_hour: Gauge,
    passcode_budget_exhausted: Gauge,
    passcode_attempts_refused: Counter,
    fetch_jobs_pending: Gauge,
    listener_reconnects: Counter,
    store_up: Gauge,
    /// Not yet added to the database counters: signed failures and their last time,
    /// unsigned requests and their last time, verified deliveries and their last time,
    /// and the signed failures since this instance's last verified delivery.
    unflushed_signed: AtomicU64,
    last_signed_ms: AtomicI64,
    unflushed_unsigned: AtomicU64,
    last_unsigned_ms: AtomicI64,
    unflushed_verified: AtomicU64,
    last_verified_ms: AtomicI64,
    signed_since_verified: AtomicU64,
    /// The refusal warning in the log: when it was last written, and how many were not.
    last_warning_ms: AtomicI64,
    warnings_suppressed: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A recorder of this desk's own, with every metric registered and described.
    pub fn new() -> Metrics {
        use metrics::{
            counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
        };
        let buckets = [
            (WEBHOOK_LATENCY, WEBHOOK_LATENCY_BUCKETS),
            (COMMIT_BATCH, COMMIT_BATCH_BUCKETS),
            (DELIVERY_LATENCY, DELIVERY_LATENCY_BUCKETS),
        ];
        let mut builder = PrometheusBuilder::new();
        for (name, b) in buckets {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), b)
                .expect("buckets are not empty");
        }
        let recorder = builder.build_recorder();
        metrics::with_local_recorder(&recorder, || {
            describe_counter!(
                "linedesk_webhook_requests_total",
                "Webhook requests by result."
            );
            describe_counter!(
                "linedesk_webhook_events_total",
                "Webhook events accepted and stored (new to the desk)."
            );
            describe_counter!(
                "linedesk_webhook_duplicate_events_total",
                "Redelivered webhook events that were already stored."
            );
            describe_counter!(
                "linedesk_webhook_signature_failures_total",
                "Webhook requests refused for a missing or wrong X-Line-Signature (this instance)."
            );
            describe_counter!(
                "linedesk_webhook_signed_failures_total",
                "Webhook requests refused whose X-Line-Signature did not match (a wrong Channel Secret, or a forger)."
            );
            describe_counter!(
                "linedesk_webhook_unsigned_requests_total",
                "Webhook requests refused without any X-Line-Signature (never LINE)."
            );
            describe_counter!(
                "linedesk_line_fetch_total",
                "Profile and content fetches from LINE that succeeded."
            );
            describe_counter!(
                "linedesk_line_fetch_failures_total",
                "Profile and content fetches from LINE that failed (they are retried)."
            );
            describe_counter!(
                "linedesk_deliveries_total",
                "Agent messages delivered to LINE (reply or push)."
            );
            describe_counter!(
                "linedesk_delivery_failures_total",
                "Agent messages that failed or whose delivery is uncertain (shown to the agent with a resend button)."
            );
            describe_histogram!(
                WEBHOOK_LATENCY,
                metrics::Unit::Seconds,
                "From a POST /line arriving to its 200 (events durably stored)."
            );
            describe_histogram!(
                COMMIT_BATCH,
                metrics::Unit::Count,
                "Events stored per transaction by the webhook's writer (its group commit)."
            );
            describe_histogram!(
                DELIVERY_LATENCY,
                metrics::Unit::Seconds,
                "From an agent's message being queued to LINE accepting it (in reply mode, waiting for the customer's next message included)."
            );
            describe_gauge!(
                "linedesk_sse_clients",
                "Open live-update streams (chat screens and API clients on /api/v1/events)."
            );
            describe_gauge!(
                "linedesk_outbox_messages",
                "Agent messages waiting to be sent (未送信 included)."
            );
            describe_gauge!(
                "linedesk_outbox_oldest_age_seconds",
                "Age of the oldest waiting message."
            );
            describe_gauge!(
                "linedesk_passcode_failures_last_hour",
                "Wrong LINE passcodes checked in the last hour, desk-wide."
            );
            describe_gauge!(
                "linedesk_passcode_guess_budget_exhausted",
                "1 while the desk-wide passcode guessing budget is used up (checks pause)."
            );
            describe_counter!(
                "linedesk_passcode_attempts_refused_total",
                "Passcode attempts left unchecked because the guessing budget was used up."
            );
            describe_gauge!(
                "linedesk_fetch_jobs_pending",
                "Profiles and contents still to fetch from LINE."
            );
            describe_counter!(
                "linedesk_listener_reconnects_total",
                "Times this instance's PostgreSQL LISTEN connection was lost and listening again (0 on SQLite)."
            );
            describe_gauge!(
                "linedesk_store_up",
                "1 when the database answered this scrape's reads; 0: the gauges read from it keep their last value."
            );
            let requests = |result: &'static str| counter!("linedesk_webhook_requests_total", "result" => result);
            Metrics {
                webhook_requests_ok: requests("ok"),
                webhook_bad_signature: requests("bad_signature"),
                webhook_bad_request: requests("bad_request"),
                webhook_errors: requests("error"),
                webhook_events_stored: counter!("linedesk_webhook_events_total"),
                webhook_events_duplicate: counter!("linedesk_webhook_duplicate_events_total"),
                webhook_signature_failures: counter!("linedesk_webhook_signature_failures_total"),
                webhook_signed_bad: counter!("linedesk_webhook_signed_failures_total"),
                webhook_unsigned: counter!("linedesk_webhook_unsigned_requests_total"),
                fetch_ok: counter!("linedesk_line_fetch_total"),
                fetch_failures: counter!("linedesk_line_fetch_failures_total"),
                deliveries_sent: counter!("linedesk_deliveries_total"),
                deliveries_failed: counter!("linedesk_delivery_failures_total"),
                webhook_latency: histogram!(WEBHOOK_LATENCY),
                commit_batch: histogram!(COMMIT_BATCH),
                delivery_latency: histogram!(DELIVERY_LATENCY),
                sse_clients: gauge!("linedesk_sse_clients"),
                outbox_messages: gauge!("linedesk_outbox_messages"),
                outbox_oldest_age: gauge!("linedesk_outbox_oldest_age_seconds"),
                passcode_failures_last_hour: gauge!("linedesk_passcode_failures_last_hour"),
                passcode_budget_exhausted: gauge!("linedesk_passcode_guess_budget_exhausted"),
                passcode_attempts_refused: counter!("linedesk_passcode_attempts_refused_total"),
                fetch_jobs_pending: gauge!("linedesk_fetch_jobs_pending"),
                listener_reconnects: counter!("linedesk_listener_reconnects_total"),
                store_up: gauge!("linedesk_store_up"),
                handle: recorder.handle(),
                unflushed_signed: AtomicU64::new(0),
                last_signed_ms: AtomicI64::new(0),
                unflushed_unsigned: AtomicU64::new(0),
                last_unsigned_ms: AtomicI64::new(0),
                unflushed_verified: AtomicU64::new(0),
                last_verified_ms: AtomicI64::new(0),
                signed_since_verified: AtomicU64::new(0),
                last_warning_ms: AtomicI64::new(0),
                warnings_suppressed: AtomicU64::new(0),
            }
        })
    }

    /// A webhook refused for its signature: `signed` when it carried one that did not match.
    pub fn signature_failure(&self, now_ms: i64, signed: bool) {
        self.webhook_bad_signature.increment(1);
        self.webhook_signature_failures.increment(1);
        if signed {
            self.webhook_signed_bad.increment(1);
            self.unflushed_signed.fetch_add(1, Relaxed);
            self.signed_since_verified.fetch_add(1, Relaxed);
            self.last_signed_ms.store(now_ms, Relaxed);
        } else {
            self.webhook_unsigned.increment(1);
            self.unflushed_unsigned.fetch_add(1, Relaxed);
            self.last_unsigned_ms.store(now_ms, Relaxed);
        }
    }

    /// A webhook whose signature matched.
    pub fn verified_delivery(&self, now_ms: i64) {
        self.unflushed_verified.fetch_add(1, Relaxed);
        self.last_verified_ms.store(now_ms, Relaxed);
        self.signed_since_verified.store(0, Relaxed);
    }

    /// Whether to write the refusal warning now; `Some(n)`: yes, and `n` were not written
    /// since the last one.
    pub fn warning_due(&self, now_ms: i64) -> Option<u64> {
        let last = self.last_warning_ms.load(Relaxed);
        if now_ms - last >= WARN_EVERY_MS
            && self
                .last_warning_ms
                .compare_exchange(last, now_ms, Relaxed, Relaxed)
                .is_ok()
        {
            Some(self.warnings_suppressed.swap(0, Relaxed))
        } else {
            self.warnings_suppressed.fetch_add(1, Relaxed);
            None
        }
    }

    /// Counts an open live-update stream until the returned guard is dropped (the stream
    /// ends, or the client goes away).
    pub fn sse_client(&self) -> SseClient {
        self.sse_clients.increment(1.0);
        SseClient(self.sse_clients.clone())
    }

    /// Sets what the database holds on its gauges and counters (see the module docs).
    async fn read_store(&self, st: &AppState) {
        let mut ok = true;
        match st.store.outbox_depth().await {
            Ok((n, oldest)) => {
                let age = oldest.map_or(0.0, |t| (st.now_ms() - t).max(0) as f64 / 1000.0);
                self.outbox_messages.set(n as f64);
                self.outbox_oldest_age.set(age);
            }
            Err(e) => ok = store_failed(&e),
        }
        match passcode_report(st).await {
            Ok(p) => {
                self.passcode_failures_last_hour
                    .set(p.failures_last_hour as f64);
                self.passcode_budget_exhausted
                    .set(f64::from(u8::from(p.exhausted)));
                self.passcode_attempts_refused
                    .absolute(p.refused.max(0) as u64);
            }
            Err(e) => ok = store_failed(&e),
        }
        match st.store.count_jobs().await {
            Ok(n) => self.fetch_jobs_pending.set(n as f64),
            Err(e) => ok = store_failed(&e),
        }
        self.listener_reconnects
            .absolute(st.store.notifier.gap_count());
        self.store_up.set(if ok { 1.0 } else { 0.0 });
    }

    /// Prometheus's text format of everything recorded.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

fn store_failed(e: &desk_store::StoreError) -> bool {
    tracing::warn!(%e, "/metrics could not read the database");
    false
}

/// An open live-update stream, counted on `linedesk_sse_clients` while it lives.
pub struct SseClient(Gauge);

impl Drop for SseClient {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The refusal warning is logged at most this often (a flood of forged posts must not
/// flood the log).
const WARN_EVERY_MS: i64 = 60_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    st.metrics.read_store(&st).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render(),
    )
}

/// Drains the histograms' buffered samples every few seconds: without a scrape they would
/// otherwise grow without bound (the exporter's upkeep, which `build_recorder` leaves to us).
pub async fn upkeep(st: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        st.metrics.handle.run_upkeep();
    }
}

/// Adds this instance's signature failures to the database counter every few seconds, so
/// a flood of forged requests costs one write per interval, not one per request.
pub async fn flush_signature_failures(st: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tick.tick().await;
        flush_once(&st).await;
    }
}

pub async fn flush_once(st: &AppState) {
    let m = &st.metrics;
    let signed = m.unflushed_signed.swap(0, Relaxed);
    let unsigned = m.unflushed_unsigned.swap(0, Relaxed);
    let verified = m.unflushed_verified.swap(0, Relaxed);
    let signed_at = m.last_signed_ms.load(Relaxed);
    let unsigned_at = m.last_unsigned_ms.load(Relaxed);
    let verified_at = m.last_verified_ms.load(Relaxed);
    let store = &st.store;
    let result = async {
        if signed + unsigned > 0 {
            let at = signed_at.max(unsigned_at);
            store
                .add_to_counter(SIGNATURE_FAILURES, (signed + unsigned) as i64, at)
                .await?;
        }
        if unsigned > 0 {
            store
                .add_to_counter(UNSIGNED_REQUESTS, unsigned as i64, unsigned_at)
                .await?;
        }
        if signed > 0 {
            store
                .add_to_counter(SIGNED_FAILURES, signed as i64, signed_at)
                .await?;
        }
        if verified > 0 {
            store
                .add_to_counter(VERIFIED_DELIVERIES, verified as i64, verified_at)
                .await?;
            // A verified delivery ends the streak: what is left are the failures after it.
            let after = m.signed_since_verified.load(Relaxed) as i64;
            store
                .set_counter(SIGNED_FAILURE_STREAK, after.min(signed as i64), verified_at)
                .await?;
        } else if signed > 0 {
            store
                .add_to_counter(SIGNED_FAILURE_STREAK, signed as i64, signed_at)
                .await?;
        }
        Ok::<_, desk_store::StoreError>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(%e, "could not record webhook signature counts; will retry");
        m.unflushed_signed.fetch_add(signed, Relaxed);
        m.unflushed_unsigned.fetch_add(unsigned, Relaxed);
        m.unflushed_verified.fetch_add(verified, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_hint_needs_consistent_signed_failures() {
        assert!(!secret_probably_wrong(0, None, None));
        assert!(
            !secret_probably_wrong(2, Some(10), None),
            "two are not yet a pattern"
        );
        assert!(secret_probably_wrong(3, Some(10), None));
        assert!(secret_probably_wrong(3, Some(10), Some(5)));
        assert!(
            !secret_probably_wrong(3, Some(10), Some(11)),
            "LINE's deliveries verify: the failures were someone else's"
        );
    }

    #[test]
    fn the_refusal_warning_is_logged_once_a_minute_with_what_was_left_out() {
        let m = Metrics::default();
        let t = 1_700_000_000_000;
        assert_eq!(m.warning_due(t), Some(0));
        for i in 1..=500 {
            assert_eq!(m.warning_due(t + i * 100), None);
        }
        assert_eq!(m.warning_due(t + 60_000), Some(500));
        assert_eq!(m.warning_due(t + 60_001), None);
    }
}
