//! `GET /metrics` in Prometheus text format, and the durable record of signature failures
//! that admins see on the LINE設定 screen (S3: a wrong Channel Secret must be diagnosable).

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

/// The counter in the `counters` table that holds refused webhook deliveries.
pub const SIGNATURE_FAILURES: &str = "webhook_signature_failures";

#[derive(Default)]
pub struct Metrics {
    pub webhook_requests_ok: AtomicU64,
    pub webhook_bad_signature: AtomicU64,
    pub webhook_bad_request: AtomicU64,
    pub webhook_errors: AtomicU64,
    pub webhook_events_stored: AtomicU64,
    pub webhook_events_duplicate: AtomicU64,
    pub fetch_ok: AtomicU64,
    pub fetch_failures: AtomicU64,
    /// Agent messages LINE accepted, and those that failed (or are uncertain).
    pub deliveries_sent: AtomicU64,
    pub deliveries_failed: AtomicU64,
    /// Signature failures not yet added to the database counter.
    unflushed_signature_failures: AtomicU64,
    last_signature_failure_ms: AtomicI64,
}

impl Metrics {
    pub fn signature_failure(&self, now_ms: i64) {
        self.webhook_bad_signature.fetch_add(1, Relaxed);
        self.unflushed_signature_failures.fetch_add(1, Relaxed);
        self.last_signature_failure_ms.store(now_ms, Relaxed);
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    let m = &st.metrics;
    let mut out = String::new();
    let counter = |out: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
        );
    };
    let _ = writeln!(
        out,
        "# HELP linedesk_webhook_requests_total Webhook requests by result.\n# TYPE linedesk_webhook_requests_total counter"
    );
    for (result, v) in [
        ("ok", &m.webhook_requests_ok),
        ("bad_signature", &m.webhook_bad_signature),
        ("bad_request", &m.webhook_bad_request),
        ("error", &m.webhook_errors),
    ] {
        let _ = writeln!(
            out,
            "linedesk_webhook_requests_total{{result=\"{result}\"}} {}",
            v.load(Relaxed)
        );
    }
    counter(
        &mut out,
        "linedesk_webhook_events_total",
        "Webhook events accepted and stored (new to the desk).",
        m.webhook_events_stored.load(Relaxed),
    );
    counter(
        &mut out,
        "linedesk_webhook_duplicate_events_total",
        "Redelivered webhook events that were already stored.",
        m.webhook_events_duplicate.load(Relaxed),
    );
    counter(
        &mut out,
        "linedesk_webhook_signature_failures_total",
        "Webhook requests refused for a missing or wrong X-Line-Signature (this instance).",
        m.webhook_bad_signature.load(Relaxed),
    );
    counter(
        &mut out,
        "linedesk_line_fetch_total",
        "Profile and content fetches from LINE that succeeded.",
        m.fetch_ok.load(Relaxed),
    );
    counter(
        &mut out,
        "linedesk_line_fetch_failures_total",
        "Profile and content fetches from LINE that failed (they are retried).",
        m.fetch_failures.load(Relaxed),
    );
    counter(
        &mut out,
        "linedesk_deliveries_total",
        "Agent messages delivered to LINE (reply or push).",
        m.deliveries_sent.load(Relaxed),
    );
    counter(
        &mut out,
        "linedesk_delivery_failures_total",
        "Agent messages that failed or whose delivery is uncertain (shown to the agent with a resend button).",
        m.deliveries_failed.load(Relaxed),
    );
    if let Ok((n, oldest)) = st.store.outbox_depth().await {
        let age = oldest.map_or(0.0, |t| (st.now_ms() - t).max(0) as f64 / 1000.0);
        let _ = writeln!(
            out,
            "# HELP linedesk_outbox_messages Agent messages waiting to be sent (未送信 included).
# TYPE linedesk_outbox_messages gauge
linedesk_outbox_messages {n}
# HELP linedesk_outbox_oldest_age_seconds Age of the oldest waiting message.
# TYPE linedesk_outbox_oldest_age_seconds gauge
linedesk_outbox_oldest_age_seconds {age:.3}"
        );
    }
    if let Ok(n) = st.store.count_jobs().await {
        let _ = writeln!(
            out,
            "# HELP linedesk_fetch_jobs_pending Profiles and contents still to fetch from LINE.\n# TYPE linedesk_fetch_jobs_pending gauge\nlinedesk_fetch_jobs_pending {n}"
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
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
    let n = st.metrics.unflushed_signature_failures.swap(0, Relaxed);
    if n == 0 {
        return;
    }
    let at = st.metrics.last_signature_failure_ms.load(Relaxed);
    if let Err(e) = st
        .store
        .add_to_counter(SIGNATURE_FAILURES, n as i64, at)
        .await
    {
        tracing::warn!(%e, "could not record signature failures; will retry");
        st.metrics
            .unflushed_signature_failures
            .fetch_add(n, Relaxed);
    }
}
