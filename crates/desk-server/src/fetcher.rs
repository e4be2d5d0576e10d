//! After the webhook answered: fetch each new LINE user's profile (display name) and each
//! image/video/audio/file's content from LINE, and keep them. A failure is retried with
//! backoff; until then the chat shows the user id and the message shows "not yet fetched".
//! The same worker checks the passcode-shaped messages customers send (L2, `passcode` jobs).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use desk_store::ingest::{JOB_CONTENT, JOB_PASSCODE, JOB_PROFILE};
use desk_store::jobs::Job;
use line_api::client::LineError;

use crate::AppState;

/// A claimed job is someone else's again after this long (a crashed worker's job).
const LEASE_MS: i64 = 120_000;
const MAX_BACKOFF_MS: i64 = 15 * 60_000;

pub async fn run(st: AppState) {
    loop {
        let worked = match run_once(&st).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(%e, "fetch worker");
                0
            }
        };
        if worked == 0 {
            // Woken by the webhook writer, or every second for retries that came due.
            let _ = tokio::time::timeout(Duration::from_secs(1), st.fetch_wakeup.notified()).await;
        }
    }
}

/// Claims the due jobs and runs them, a few at a time; returns how many ran. The profiles
/// fetched are written together in one transaction (`Store::finish_profiles`).
pub async fn run_once(st: &AppState) -> anyhow::Result<usize> {
    let jobs = st.store.claim_jobs(st.now_ms(), 32, LEASE_MS).await?;
    let n = jobs.len();
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        let st = st.clone();
        set.spawn(async move { run_job(&st, job).await });
    }
    let mut profiles = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Some(p)) => profiles.push(p),
            Ok(None) => {}
            Err(e) => tracing::error!(%e, "fetch job panicked"),
        }
    }
    if !profiles.is_empty() {
        match st.store.finish_profiles(&profiles, st.now_ms()).await {
            Ok(()) => {
                st.metrics.fetch_ok.increment(profiles.len() as u64);
            }
            // The jobs stay claimed and come due again when their lease ends.
            Err(e) => tracing::error!(%e, "could not record fetched profiles"),
        }
    }
    Ok(n)
}

/// What became of one try.
enum Outcome {
    Done,
    /// A profile to record with the others of this round (which finishes the job).
    Profile(desk_store::jobs::ProfileResult),
    /// Try again later, for this reason.
    Retry(String),
}

/// Runs one job and records its result, except a fetched profile, which it returns.
async fn run_job(st: &AppState, job: Job) -> Option<desk_store::jobs::ProfileResult> {
    let outcome = match job.kind.as_str() {
        JOB_PROFILE => fetch_profile(st, &job).await,
        JOB_CONTENT => fetch_content(st, job.target_id).await,
        JOB_PASSCODE => check_passcode(st, job.target_id).await,
        other => Ok(Outcome::Retry(format!("unknown job kind {other}"))),
    };
    let result = match outcome {
        Ok(Outcome::Profile(p)) => return Some(p),
        Ok(Outcome::Done) => {
            st.metrics.fetch_ok.increment(1);
            st.store.finish_job(job.id).await
        }
        Ok(Outcome::Retry(why)) | Err(why) => {
            st.metrics.fetch_failures.increment(1);
            let backoff = (1000i64 << job.attempts.clamp(0, 20)).min(MAX_BACKOFF_MS);
            tracing::warn!(kind = %job.kind, target = job.target_id, attempts = job.attempts, %why, "fetch failed; will retry");
            st.store
                .retry_job(job.id, st.now_ms() + backoff, &why)
                .await
        }
    };
    if let Err(e) = result {
        tracing::error!(%e, "could not record a fetch job's result");
    }
    None
}

async fn fetch_profile(st: &AppState, job: &Job) -> Result<Outcome, String> {
    let conversation_id = job.target_id;
    let Some(user_id) = st
        .store
        .conversation_line_user(conversation_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Outcome::Done);
    };
    let Some(client) = st.line.current().client.clone() else {
        return Ok(Outcome::Retry("no Channel Access Token set".into()));
    };
    let result = |display_name, picture_url, state| {
        Outcome::Profile(desk_store::jobs::ProfileResult {
            job_id: job.id,
            conversation_id,
            display_name,
            picture_url,
            state,
        })
    };
    match client.profile(&user_id).await {
        Ok(p) => Ok(result(Some(p.display_name), p.picture_url, "ok")),
        // Blocked, or not a friend: LINE has no profile for us. A later follow asks again.
        Err(LineError::NotFound) => Ok(result(None, None, "unavailable")),
        Err(e) => Ok(Outcome::Retry(e.to_string())),
    }
}

async fn fetch_content(st: &AppState, message_id: i64) -> Result<Outcome, String> {
    let Some(target) = st
        .store
        .content_target(message_id)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Outcome::Done);
    };
    let Some(line_id) = target.line_message_id else {
        return Ok(Outcome::Done);
    };
    let Some(client) = st.line.current().client.clone() else {
        return Ok(Outcome::Retry("no Channel Access Token set".into()));
    };
    match client.content(&line_id).await {
        Ok(content) => {
            let content_type = content
                .content_type
                .clone()
                .or_else(|| infer::get(&content.bytes).map(|t| t.mime_type().to_owned()))
                .unwrap_or_else(|| "application/octet-stream".into());
            let (media_id, _key) = st
                .media
                .save(&st.store, &content.bytes, &content_type, false, st.now_ms())
                .await
                .map_err(|e| e.to_string())?;
            st.store
                .set_message_media(message_id, Some(media_id), "ok")
                .await
                .map_err(|e| e.to_string())?;
            Ok(Outcome::Done)
        }
        // LINE no longer has it (content is deleted after a while): nothing more to try.
        Err(LineError::NotFound) => {
            st.store
                .set_message_media(message_id, None, "failed")
                .await
                .map_err(|e| e.to_string())?;
            Ok(Outcome::Done)
        }
        Err(e) => Ok(Outcome::Retry(e.to_string())),
    }
}

/// A customer sent something shaped like a LINE passcode (L2): check it (and any earlier
/// attempt of the same chat still pending), linking the LINE user when it is right, and
/// queueing the confirmation of LINE設定 for the customer (Reply mode: on the passcode
/// message's own reply token; Push mode: only when enabled). Needs nothing from LINE.
async fn check_passcode(st: &AppState, message_id: i64) -> Result<Outcome, String> {
    let line = st.line.current();
    let retry_key = uuid::Uuid::new_v4().to_string();
    let confirmation =
        line.passcode_confirmation()
            .map(|(text, ride)| desk_store::outbox::Confirmation {
                text,
                retry_key: &retry_key,
                ride_reply_token: ride,
            });
    let attempts = st
        .store
        .check_passcodes_with(message_id, st.now_ms(), confirmation)
        .await
        .map_err(|e| e.to_string())?;
    for a in attempts {
        tracing::info!(message = a.message_id, outcome = a.outcome.as_str(), customer = ?a.customer_id, "passcode attempt");
        if a.budget_exhausted {
            budget_warning(st.now_ms());
        }
    }
    Ok(Outcome::Done)
}

/// Warns (at most once a minute) that passcode checks pause: someone is guessing.
fn budget_warning(now_ms: i64) {
    use std::sync::atomic::AtomicI64;
    static LAST: AtomicI64 = AtomicI64::new(0);
    let last = LAST.load(Relaxed);
    if now_ms - last >= 60_000
        && LAST
            .compare_exchange(last, now_ms, Relaxed, Relaxed)
            .is_ok()
    {
        tracing::warn!(
            budget = desk_core::passcode::GLOBAL_FAILURE_BUDGET,
            "LINE passcode checks paused: the desk-wide guessing budget is used up (someone may be guessing passcodes)"
        );
    }
}
