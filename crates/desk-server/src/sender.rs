//! The outbox worker: delivers what agents wrote, by push or with reply tokens (M1–M7),
//! following the plans of `desk_core::planner`.
//!
//! The rules that make it lose nothing and send nothing twice:
//! - Before any request, the messages are marked `sending` (and a reply token used) in a
//!   committed transaction. After a crash, a push found `sending` is simply sent again with
//!   the same `X-Line-Retry-Key` (LINE answers 409 if it already took it); a reply found
//!   `sending` is *uncertain* — the reply API has no retry key — and is shown so, for the
//!   agent to resend if needed.
//! - Push: retried with backoff on 5xx, timeouts and 429; 409 counts as sent; any other 4xx
//!   fails the message with LINE's message.
//! - Reply: "Invalid reply token" puts the messages back for the next token; an ambiguous
//!   failure (5xx, a timeout after the request went out) marks them uncertain, never resent
//!   blindly.
//! - One worker sends for a conversation at a time (a lease), in the order written: a
//!   message waiting for a retry holds back the ones after it.
//! - Reply mode follows `desk_core::planner::plan_next`: one press of 送信 goes whole; the
//!   desk's own answer (the passcode confirmation) rides its message's token; the current
//!   handler's messages go before those kept from an earlier handling, which wait for the
//!   handler's first answer.
//! - Why a message failed or waits is stored as a `desk_core::delivery::Problem` (a code, and
//!   LINE's own words apart), which the UI words in the agent's language.

use std::time::Duration;

use desk_core::delivery::{Problem, ProblemCode};
use desk_core::planner::{self, OutContent, Outgoing, PlanError, ReplyToken};
use desk_core::{Delivery, MessageKind, Mode, OutboxState};
use desk_store::outbox::{Lease, OutboxItem, SendContext};
use line_api::client::LineError;
use line_api::message::OutMessage;

use crate::AppState;

/// A conversation's sending lease: longer than one request may take (line-api's timeout
/// is 20 s), short enough that a crashed instance's chats resume soon on the others.
const LEASE_MS: i64 = 45_000;
/// Reply-mode messages with no usable token wait for the next customer message.
const UNTIL_NEXT_TOKEN: i64 = i64::MAX / 4;
const MAX_BACKOFF_MS: i64 = 5 * 60_000;

pub async fn run(st: AppState) {
    if st.store.is_sqlite() {
        match st.store.clear_send_leases().await {
            Ok(n) if n > 0 => {
                tracing::info!(n, "sending resumes for chats a stopped desk left mid-send")
            }
            Ok(_) => {}
            Err(e) => tracing::error!(%e, "could not clear old sending leases"),
        }
    }
    loop {
        let worked = match run_once(&st).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(%e, "outbox worker");
                0
            }
        };
        if worked == 0 {
            let _ =
                tokio::time::timeout(Duration::from_millis(250), st.outbox_wakeup.notified()).await;
        }
    }
}

/// Works every conversation that has something to send now; returns how many.
pub async fn run_once(st: &AppState) -> anyhow::Result<usize> {
    let now = st.now_ms();
    let window = st.reply_window_ms();
    let conversations = st
        .store
        .conversations_to_send(now, now - window, 64)
        .await?;
    let n = conversations.len();
    let mut set = tokio::task::JoinSet::new();
    for id in conversations {
        let st = st.clone();
        set.spawn(send_now(st, id));
    }
    while set.join_next().await.is_some() {}
    Ok(n)
}

/// One attempt for one conversation now (the API calls this right after queueing).
/// False when another worker was already sending for it.
pub async fn send_now(st: AppState, conversation_id: i64) -> bool {
    match send_conversation(&st, conversation_id).await {
        Ok(worked) => worked,
        Err(e) => {
            tracing::error!(conversation = conversation_id, %e, "sending failed; will retry");
            true
        }
    }
}

/// Returns false when another worker holds the conversation.
async fn send_conversation(st: &AppState, conversation_id: i64) -> anyhow::Result<bool> {
    let Some(mut lease) = st
        .store
        .lease_conversation(conversation_id, st.now_ms(), LEASE_MS)
        .await?
    else {
        return Ok(false);
    };
    let mode = st.line.current().mode;
    let result = deliver(st, &mut lease).await;
    st.store.release_conversation(&lease).await?;
    if st.line.current().mode != mode {
        // The mode changed while this chat was worked: what this worker parked for the next
        // token (Reply) may have been parked after the settings' own wake-up, and must go now.
        st.store.wake_outbox(st.now_ms()).await?;
        st.outbox_wakeup.notify_one();
    }
    result.map(|_| true)
}

fn to_outgoing(st: &AppState, item: &OutboxItem, ctx: &SendContext) -> Outgoing {
    let content = match item.kind {
        MessageKind::Image => {
            let p: serde_json::Value = item
                .payload
                .as_deref()
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or_default();
            let url = |k: &str| {
                format!(
                    "{}/media/{}",
                    st.config.public_url,
                    p[k].as_str().unwrap_or_default()
                )
            };
            OutContent::Image {
                original_url: url("original_key"),
                preview_url: url("preview_key"),
            }
        }
        // Agents send texts and images; anything else queued is sent as its text.
        _ => OutContent::Text(item.text.clone().unwrap_or_default()),
    };
    Outgoing {
        id: item.message_id,
        group: item.send_group,
        origin: desk_core::status::origin_of(item.agent_id, &ctx.state),
        reply_to: item.reply_to_token.clone(),
        content,
    }
}

/// What the agent is told about a failed call: LINE's status and its own words (for a
/// refusal), never our English.
fn problem_of(e: &LineError) -> Problem {
    let (code, status, line_message) = match e {
        LineError::BadRequest { status, message } => (
            ProblemCode::LineRefused,
            Some(*status),
            Some(message.clone()),
        ),
        LineError::NotFound => (ProblemCode::LineRefused, Some(404), None),
        LineError::Server { status } => (ProblemCode::LineServerError, Some(*status), None),
        LineError::Timeout { .. } => (ProblemCode::LineTimeout, None, None),
        LineError::Network(_) => (ProblemCode::Network, None, None),
        LineError::RateLimited { .. } => (ProblemCode::RateLimited, Some(429), None),
        LineError::InvalidReplyToken => (ProblemCode::InvalidReplyToken, Some(400), None),
        LineError::Unauthorized => (ProblemCode::Unauthorized, Some(401), None),
        LineError::AlreadyAccepted { .. } => (ProblemCode::LineRefused, Some(409), None),
    };
    Problem {
        code,
        status,
        line_message,
    }
}

fn stored(code: ProblemCode) -> String {
    Problem::new(code).to_stored()
}

fn to_line(objects: &[planner::PlannedObject]) -> Vec<OutMessage> {
    objects
        .iter()
        .map(|o| match &o.content {
            OutContent::Text(text) => OutMessage::Text { text: text.clone() },
            OutContent::Image {
                original_url,
                preview_url,
            } => OutMessage::Image {
                original_content_url: original_url.clone(),
                preview_image_url: preview_url.clone(),
            },
        })
        .collect()
}

fn backoff(attempts: i64, err: &LineError) -> i64 {
    if let LineError::RateLimited {
        retry_after: Some(d),
    } = err
    {
        return d.as_millis() as i64;
    }
    (1000i64 << attempts.clamp(0, 16)).min(MAX_BACKOFF_MS)
}

async fn deliver(st: &AppState, lease: &mut Lease) -> anyhow::Result<()> {
    let conversation_id = lease.conversation_id;
    let store = &st.store;
    let mut items = store.outbox_items(conversation_id).await?;
    let Some(ctx) = store.send_context(conversation_id).await? else {
        return Ok(());
    };
    // A reply that was under way when the desk stopped may or may not have arrived.
    let interrupted: Vec<i64> = items
        .iter()
        .filter(|i| i.sending_by(Mode::Reply))
        .map(|i| i.message_id)
        .collect();
    if !interrupted.is_empty() {
        store
            .mark_failed(
                conversation_id,
                &interrupted,
                Delivery::Uncertain,
                &stored(ProblemCode::DeskStopped),
                st.now_ms(),
            )
            .await?;
        st.metrics
            .deliveries_failed
            .increment(interrupted.len() as u64);
        items.retain(|i| !interrupted.contains(&i.message_id));
    }
    if items.is_empty() {
        return Ok(());
    }
    let line = st.line.current();
    let Some(client) = line.client.clone() else {
        let ids: Vec<i64> = items.iter().map(|i| i.outbox_id).collect();
        store
            .requeue(
                &ids,
                st.now_ms() + 30_000,
                Some(&stored(ProblemCode::NoAccessToken)),
            )
            .await?;
        return Ok(());
    };
    let Some(user) = store.conversation_line_user(conversation_id).await? else {
        return Ok(());
    };
    match line.mode {
        Mode::Push => deliver_push(st, &client, lease, &user, items, &ctx).await,
        Mode::Reply => {
            // A push under way when the mode changed finishes as a push, with its retry key,
            // so it can never arrive twice.
            let (pushing, rest): (Vec<_>, Vec<_>) =
                items.into_iter().partition(|i| i.sending_by(Mode::Push));
            if !pushing.is_empty() {
                deliver_push(st, &client, lease, &user, pushing, &ctx).await?;
            }
            deliver_reply(st, &client, lease, rest, &ctx).await
        }
    }
}

async fn deliver_push(
    st: &AppState,
    client: &line_api::Client,
    lease: &mut Lease,
    user: &str,
    items: Vec<OutboxItem>,
    ctx: &SendContext,
) -> anyhow::Result<()> {
    let conversation_id = lease.conversation_id;
    let store = &st.store;
    for item in items {
        let now = st.now_ms();
        if item.next_attempt_at > now
            && item.state == OutboxState::Queued
            && item.next_attempt_at < UNTIL_NEXT_TOKEN
        {
            break; // waiting for its retry: the later ones wait too, to keep the order
        }
        let plan = match planner::plan_push(std::slice::from_ref(&to_outgoing(st, &item, ctx))) {
            Ok(mut p) => p.remove(0),
            Err(e) => {
                fail_unplannable(st, conversation_id, &e).await?;
                continue;
            }
        };
        let key = uuid::Uuid::parse_str(&item.retry_key).unwrap_or_else(|_| uuid::Uuid::new_v4());
        if !store
            .mark_sending(
                lease,
                st.now_ms(),
                LEASE_MS,
                &[item.outbox_id],
                Mode::Push,
                None,
            )
            .await?
        {
            return Ok(()); // another worker took over: it sends
        }
        match client.push(user, &to_line(&plan.objects), key).await {
            Ok(_) | Err(LineError::AlreadyAccepted { .. }) => {
                store
                    .mark_sent(conversation_id, &[item.message_id], Mode::Push, st.now_ms())
                    .await?;
                delivered(st, [item.queued_at]);
            }
            Err(LineError::Unauthorized) => {
                // The token is wrong: nothing this message can fix. It waits, visibly, until
                // an admin corrects LINE設定.
                store
                    .requeue(
                        &[item.outbox_id],
                        st.now_ms() + 60_000,
                        Some(&stored(ProblemCode::Unauthorized)),
                    )
                    .await?;
                break;
            }
            Err(e) if e.is_retryable() => {
                tracing::warn!(conversation = conversation_id, %e, "push failed; will retry");
                let at = st.now_ms() + backoff(item.attempts, &e);
                store
                    .requeue(&[item.outbox_id], at, Some(&problem_of(&e).to_stored()))
                    .await?;
                break;
            }
            Err(e) => {
                tracing::warn!(conversation = conversation_id, %e, "LINE refused a push");
                store
                    .mark_failed(
                        conversation_id,
                        &[item.message_id],
                        Delivery::Failed,
                        &problem_of(&e).to_stored(),
                        st.now_ms(),
                    )
                    .await?;
                st.metrics.deliveries_failed.increment(1);
            }
        }
    }
    Ok(())
}

async fn deliver_reply(
    st: &AppState,
    client: &line_api::Client,
    lease: &mut Lease,
    mut items: Vec<OutboxItem>,
    ctx: &SendContext,
) -> anyhow::Result<()> {
    let conversation_id = lease.conversation_id;
    let store = &st.store;
    let window = st.reply_window_ms();
    loop {
        let now = st.now_ms();
        // A push that was under way before a switch to reply mode still goes by push.
        let queue: Vec<Outgoing> = items.iter().map(|i| to_outgoing(st, i, ctx)).collect();
        if queue.is_empty() {
            return Ok(());
        }
        let tokens: Vec<(i64, ReplyToken)> = store
            .unused_reply_tokens(conversation_id, now - window)
            .await?
            .into_iter()
            .map(|t| {
                (
                    t.message_id,
                    ReplyToken {
                        token: t.reply_token,
                        received_at_ms: t.created_at,
                        used: false,
                    },
                )
            })
            .collect();
        let candidates: Vec<ReplyToken> = tokens.iter().map(|(_, t)| t.clone()).collect();
        let plan = match planner::plan_next(&queue, &candidates, now, window, ctx.handler_answered)
        {
            Ok(p) => p,
            Err(e) => {
                fail_unplannable(st, conversation_id, &e).await?;
                let bad = plan_error_message(&e);
                items.retain(|i| i.message_id != bad);
                continue;
            }
        };
        let Some(plan) = plan else {
            // No usable token (or only kept messages, waiting for the handler's answer):
            // everything waits (未送信) for the customer's next message.
            let ids: Vec<i64> = items.iter().map(|i| i.outbox_id).collect();
            store.requeue(&ids, UNTIL_NEXT_TOKEN, None).await?;
            return Ok(());
        };
        let token_message = tokens
            .iter()
            .find(|(_, t)| t.token == plan.token)
            .map(|(id, _)| *id)
            .expect("the plan's token is one of ours");
        let outbox_ids: Vec<i64> = items
            .iter()
            .filter(|i| plan.message_ids.contains(&i.message_id))
            .map(|i| i.outbox_id)
            .collect();
        if !store
            .mark_sending(
                lease,
                st.now_ms(),
                LEASE_MS,
                &outbox_ids,
                Mode::Reply,
                Some(token_message),
            )
            .await?
        {
            // Another worker used the token or took the messages: nothing goes out here.
            return Ok(());
        }
        let result = client.reply(&plan.token, &to_line(&plan.objects)).await;
        let queued_at: Vec<i64> = items
            .iter()
            .filter(|i| plan.message_ids.contains(&i.message_id))
            .map(|i| i.queued_at)
            .collect();
        items.retain(|i| !plan.message_ids.contains(&i.message_id));
        match result {
            Ok(_) => {
                store
                    .mark_sent(conversation_id, &plan.message_ids, Mode::Reply, st.now_ms())
                    .await?;
                delivered(st, queued_at);
            }
            Err(LineError::InvalidReplyToken) => {
                // LINE says the token is spent or expired: the messages wait for the next.
                store
                    .requeue(
                        &outbox_ids,
                        UNTIL_NEXT_TOKEN,
                        Some(&stored(ProblemCode::InvalidReplyToken)),
                    )
                    .await?;
                return Ok(());
            }
            Err(e) if e.may_have_been_delivered() => {
                tracing::warn!(conversation = conversation_id, %e, "a reply may or may not have arrived");
                store
                    .mark_failed(
                        conversation_id,
                        &plan.message_ids,
                        Delivery::Uncertain,
                        &problem_of(&e).to_stored(),
                        st.now_ms(),
                    )
                    .await?;
                st.metrics
                    .deliveries_failed
                    .increment(plan.message_ids.len() as u64);
            }
            Err(
                e @ (LineError::RateLimited { .. }
                | LineError::Network(_)
                | LineError::Timeout { maybe_sent: false }),
            ) => {
                // LINE never took this request: the token is still good.
                tracing::warn!(conversation = conversation_id, %e, "reply not sent; will retry");
                store.restore_reply_token(token_message).await?;
                store
                    .requeue(
                        &outbox_ids,
                        st.now_ms() + backoff(0, &e),
                        Some(&problem_of(&e).to_stored()),
                    )
                    .await?;
                return Ok(());
            }
            Err(LineError::Unauthorized) => {
                store
                    .requeue(
                        &outbox_ids,
                        UNTIL_NEXT_TOKEN,
                        Some(&stored(ProblemCode::Unauthorized)),
                    )
                    .await?;
                return Ok(());
            }
            Err(e) => {
                tracing::warn!(conversation = conversation_id, %e, "LINE refused a reply");
                store
                    .mark_failed(
                        conversation_id,
                        &plan.message_ids,
                        Delivery::Failed,
                        &problem_of(&e).to_stored(),
                        st.now_ms(),
                    )
                    .await?;
                st.metrics
                    .deliveries_failed
                    .increment(plan.message_ids.len() as u64);
            }
        }
    }
}

/// Counts messages LINE accepted, and how long each waited since it was queued.
fn delivered(st: &AppState, queued_at: impl IntoIterator<Item = i64>) {
    let now = st.now_ms();
    for at in queued_at {
        st.metrics.deliveries_sent.increment(1);
        st.metrics
            .delivery_latency
            .record((now - at).max(0) as f64 / 1000.0);
    }
}

fn plan_error_message(e: &PlanError) -> i64 {
    match e {
        PlanError::EmptyText { message_id } | PlanError::TooLong { message_id, .. } => *message_id,
    }
}

async fn fail_unplannable(
    st: &AppState,
    conversation_id: i64,
    e: &PlanError,
) -> anyhow::Result<()> {
    let code = match e {
        PlanError::EmptyText { .. } => ProblemCode::EmptyText,
        PlanError::TooLong { .. } => ProblemCode::TooLong,
    };
    st.store
        .mark_failed(
            conversation_id,
            &[plan_error_message(e)],
            Delivery::Failed,
            &stored(code),
            st.now_ms(),
        )
        .await?;
    st.metrics.deliveries_failed.increment(1);
    Ok(())
}

/// A customer message may bring the reply token that queued messages wait for (M5), and an
/// agent's new message wants to go out at once (M2, M3): wake the worker on every message.
/// See [`wake_on_customer_messages`].
const WAKE_COALESCE: Duration = Duration::from_millis(5);

pub async fn wake_on_customer_messages(st: AppState) {
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = st.store.notifier.subscribe();
    loop {
        match rx.recv().await {
            // After a gap, a customer message from another instance may have gone unheard.
            Ok(n)
                if matches!(
                    n.change,
                    desk_store::Change::Message { .. } | desk_store::Change::Resync
                ) =>
            {
                st.outbox_wakeup.notify_one();
                // One look at the outbox covers every message committed before it, so under
                // a stream of customer messages (thousands a second) it looks at most every
                // few milliseconds instead of once per webhook batch; the changes that come
                // meanwhile wait in the feed and wake it again after the pause.
                tokio::time::sleep(WAKE_COALESCE).await;
            }
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => st.outbox_wakeup.notify_one(),
            Err(RecvError::Closed) => return,
        }
    }
}
