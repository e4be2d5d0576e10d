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
    /// Refused requests without a signature, and with a wrong one (this instance).
    pub webhook_unsigned: AtomicU64,
    pub webhook_signed_bad: AtomicU64,
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

/// The refusal warning is logged at most this often (a flood of forged posts must not
/// flood the log).
const WARN_EVERY_MS: i64 = 60_000;

impl Metrics {
    /// A webhook refused for its signature: `signed` when it carried one that did not match.
    pub fn signature_failure(&self, now_ms: i64, signed: bool) {
        self.webhook_bad_signature.fetch_add(1, Relaxed);
        if signed {
            self.webhook_signed_bad.fetch_add(1, Relaxed);
            self.unflushed_signed.fetch_add(1, Relaxed);
            self.signed_since_verified.fetch_add(1, Relaxed);
            self.last_signed_ms.store(now_ms, Relaxed);
        } else {
            self.webhook_unsigned.fetch_add(1, Relaxed);
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
        "linedesk_webhook_signed_failures_total",
        "Webhook requests refused whose X-Line-Signature did not match (a wrong Channel Secret, or a forger).",
        m.webhook_signed_bad.load(Relaxed),
    );
    counter(
        &mut out,
        "linedesk_webhook_unsigned_requests_total",
        "Webhook requests refused without any X-Line-Signature (never LINE).",
        m.webhook_unsigned.load(Relaxed),
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
    if let Ok(p) = passcode_report(&st).await {
        let _ = writeln!(
            out,
            "# HELP linedesk_passcode_failures_last_hour Wrong LINE passcodes checked in the last hour, desk-wide.
# TYPE linedesk_passcode_failures_last_hour gauge
linedesk_passcode_failures_last_hour {}
# HELP linedesk_passcode_guess_budget_exhausted 1 while the desk-wide passcode guessing budget is used up (checks pause).
# TYPE linedesk_passcode_guess_budget_exhausted gauge
linedesk_passcode_guess_budget_exhausted {}
# HELP linedesk_passcode_attempts_refused_total Passcode attempts left unchecked because the guessing budget was used up.
# TYPE linedesk_passcode_attempts_refused_total counter
linedesk_passcode_attempts_refused_total {}",
            p.failures_last_hour,
            u8::from(p.exhausted),
            p.refused
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
