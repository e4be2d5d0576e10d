//! The store on both backends: every test runs on SQLite and on a fresh PostgreSQL database.

use crate::common::{backend, text_event};
use desk_store::backend_test;
use desk_store::conversations::ConversationFilter;
use desk_store::exec_db;
use desk_store::ingest::{InboundAction, InboundEvent};
use desk_store::testing::{Backend, store};
use desk_store::users::Role;

fn follow_event(event_id: &str, user: &str, ts: i64, unblocked: bool) -> InboundEvent {
    InboundEvent {
        webhook_event_id: Some(event_id.into()),
        event_type: "follow".into(),
        line_user_id: Some(user.into()),
        timestamp: ts,
        raw: "{}".into(),
        action: InboundAction::Follow { unblocked },
    }
}

fn unfollow_event(event_id: &str, user: &str, ts: i64) -> InboundEvent {
    InboundEvent {
        webhook_event_id: Some(event_id.into()),
        event_type: "unfollow".into(),
        line_user_id: Some(user.into()),
        timestamp: ts,
        raw: "{}".into(),
        action: InboundAction::Unfollow,
    }
}

backend_test!(a_redelivered_event_is_stored_once);
async fn a_redelivered_event_is_stored_once(b: Backend) {
    let (_dir, s) = store(b).await;
    let ev = text_event("E1", "Ua", "m1", "こんにちは", 1_000);
    let first = s.ingest(std::slice::from_ref(&ev), 5_000).await.unwrap();
    assert_eq!((first.stored, first.duplicates), (1, 0), "{}", backend(&s));
    // Twice in one batch and once more later: still one message.
    let again = s.ingest(&[ev.clone(), ev.clone()], 6_000).await.unwrap();
    assert_eq!((again.stored, again.duplicates), (0, 2), "{}", backend(&s));
    assert_eq!(s.count_messages().await.unwrap(), 1, "{}", backend(&s));
    let conv = s.conversation_by_line_user("Ua").await.unwrap().unwrap();
    assert_eq!(conv.unread_count, 1, "{}", backend(&s));
    let msgs = s.messages_between(conv.id, 0, 10_000).await.unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].text.as_deref(), Some("こんにちは"));
    // The event's timestamp is the message's time, not when the desk received it.
    assert_eq!(msgs[0].created_at, 1_000);
    assert_eq!(msgs[0].delivery, desk_core::Delivery::Received);
}

backend_test!(old_shape_events_without_an_event_id_dedupe_on_the_message_id);
async fn old_shape_events_without_an_event_id_dedupe_on_the_message_id(b: Backend) {
    let (_dir, s) = store(b).await;
    let mut ev = text_event("x", "Ub", "m-old", "hi", 1_000);
    ev.webhook_event_id = None;
    s.ingest(std::slice::from_ref(&ev), 2_000).await.unwrap();
    let again = s.ingest(std::slice::from_ref(&ev), 3_000).await.unwrap();
    assert_eq!(again.duplicates, 1, "{}", backend(&s));
    assert_eq!(s.count_messages().await.unwrap(), 1);
}

backend_test!(a_done_chat_turns_unread_on_a_new_customer_message);
async fn a_done_chat_turns_unread_on_a_new_customer_message(b: Backend) {
    let (_dir, s) = store(b).await;
    s.ingest(&[text_event("E1", "Uc", "m1", "one", 1_000)], 1_000)
        .await
        .unwrap();
    let conv = s.conversation_by_line_user("Uc").await.unwrap().unwrap();
    assert_eq!(conv.status, desk_core::ConversationStatus::Unread);
    exec_db!(s.db(), |p| sqlx::query(
        "UPDATE conversations SET status = 'done' WHERE id = $1"
    )
    .bind(conv.id))
    .unwrap();
    s.ingest(&[text_event("E2", "Uc", "m2", "two", 2_000)], 2_000)
        .await
        .unwrap();
    let conv = s.conversation(conv.id).await.unwrap().unwrap();
    assert_eq!(
        conv.status,
        desk_core::ConversationStatus::Unread,
        "{}",
        backend(&s)
    );
    // An in-progress chat stays with its agent.
    exec_db!(s.db(), |p| sqlx::query(
        "UPDATE conversations SET status = 'in_progress' WHERE id = $1"
    )
    .bind(conv.id))
    .unwrap();
    s.ingest(&[text_event("E3", "Uc", "m3", "three", 3_000)], 3_000)
        .await
        .unwrap();
    assert_eq!(
        s.conversation(conv.id).await.unwrap().unwrap().status,
        desk_core::ConversationStatus::InProgress
    );
}

backend_test!(follow_unfollow_and_unblock_keep_the_history);
async fn follow_unfollow_and_unblock_keep_the_history(b: Backend) {
    let (_dir, s) = store(b).await;
    s.ingest(&[follow_event("F1", "Ud", 1_000, false)], 1_000)
        .await
        .unwrap();
    let conv = s
        .conversation_by_line_user("Ud")
        .await
        .unwrap()
        .expect("follow opens a chat");
    assert!(!conv.blocked);
    assert_eq!(conv.profile_state, "pending");
    s.ingest(&[text_event("E1", "Ud", "m1", "hello", 2_000)], 2_000)
        .await
        .unwrap();
    s.ingest(&[unfollow_event("U1", "Ud", 3_000)], 3_000)
        .await
        .unwrap();
    let blocked = s.conversation(conv.id).await.unwrap().unwrap();
    assert!(blocked.blocked, "{}", backend(&s));
    assert_eq!(
        s.messages_between(conv.id, 0, 10_000).await.unwrap().len(),
        1
    );
    s.ingest(&[follow_event("F2", "Ud", 4_000, true)], 4_000)
        .await
        .unwrap();
    let back = s.conversation(conv.id).await.unwrap().unwrap();
    assert!(!back.blocked);
    assert_eq!(
        back.last_message_at, 4_000,
        "the chat comes back to the top"
    );
    assert_eq!(s.count_conversations().await.unwrap(), 1);
    // Each follow asks for the profile again (display names change).
    let jobs = s.claim_jobs(10_000, 10, 1_000).await.unwrap();
    assert_eq!(jobs.iter().filter(|j| j.kind == "profile").count(), 1);
}

backend_test!(group_events_are_kept_raw_but_open_no_chat);
async fn group_events_are_kept_raw_but_open_no_chat(b: Backend) {
    let (_dir, s) = store(b).await;
    let mut ev = text_event("G1", "Ue", "m1", "in a group", 1_000);
    ev.line_user_id = None;
    let out = s.ingest(&[ev], 1_000).await.unwrap();
    assert_eq!(out.stored, 1);
    assert_eq!(s.count_conversations().await.unwrap(), 0);
    let raw: i64 = desk_store::on_db!(s.db(), |p| sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_events"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert_eq!(raw, 1);
}

backend_test!(the_list_is_newest_first_filters_and_pages);
async fn the_list_is_newest_first_filters_and_pages(b: Backend) {
    let (_dir, s) = store(b).await;
    let agent = s
        .create_user("sato", "佐藤 美咲", Role::Agent, "x", 0)
        .await
        .unwrap();
    let mut events = Vec::new();
    for i in 0..25 {
        events.push(text_event(
            &format!("E{i}"),
            &format!("U{i:02}"),
            &format!("m{i}"),
            "hi",
            1_000 + i,
        ));
    }
    s.ingest(&events, 5_000).await.unwrap();
    let first = s.conversation_by_line_user("U03").await.unwrap().unwrap();
    exec_db!(s.db(), |p| sqlx::query(
        "UPDATE conversations SET status = 'in_progress', agent_id = $1 WHERE id = $2"
    )
    .bind(agent)
    .bind(first.id))
    .unwrap();

    let mut f = ConversationFilter {
        limit: 10,
        ..Default::default()
    };
    let page1 = s.list_conversations(&f).await.unwrap();
    assert_eq!(page1.len(), 10);
    assert_eq!(page1[0].line_user_id, "U24", "newest activity first");
    let last = page1.last().unwrap();
    f.after = Some((last.last_message_at, last.id));
    let page2 = s.list_conversations(&f).await.unwrap();
    assert_eq!(page2[0].line_user_id, "U14");
    f.after = Some((
        page2.last().unwrap().last_message_at,
        page2.last().unwrap().id,
    ));
    let page3 = s.list_conversations(&f).await.unwrap();
    assert_eq!(page3.len(), 5, "{}", backend(&s));

    let by_status = ConversationFilter {
        status: Some(desk_core::ConversationStatus::InProgress),
        limit: 50,
        ..Default::default()
    };
    assert_eq!(s.list_conversations(&by_status).await.unwrap().len(), 1);
    let by_agent_name = ConversationFilter {
        agent: Some("美咲".into()),
        limit: 50,
        ..Default::default()
    };
    let rows = s.list_conversations(&by_agent_name).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].agent_login.as_deref(), Some("sato"));
    let by_login = ConversationFilter {
        agent: Some("sato".into()),
        limit: 50,
        ..Default::default()
    };
    assert_eq!(s.list_conversations(&by_login).await.unwrap().len(), 1);
    let unregistered = ConversationFilter {
        registered: Some(false),
        limit: 50,
        ..Default::default()
    };
    assert_eq!(s.list_conversations(&unregistered).await.unwrap().len(), 25);
    let registered = ConversationFilter {
        registered: Some(true),
        limit: 50,
        ..Default::default()
    };
    assert!(s.list_conversations(&registered).await.unwrap().is_empty());
    // A `%` typed into a filter is a character, not a wildcard.
    let pct = ConversationFilter {
        agent: Some("%".into()),
        limit: 50,
        ..Default::default()
    };
    assert!(s.list_conversations(&pct).await.unwrap().is_empty());
}

backend_test!(api_tokens_are_stored_hashed_and_disabled_users_are_refused);
async fn api_tokens_are_stored_hashed_and_disabled_users_are_refused(b: Backend) {
    let (_dir, s) = store(b).await;
    let id = s
        .create_user("admin", "管理者", Role::Admin, "hash", 0)
        .await
        .unwrap();
    assert!(
        s.create_user("admin", "again", Role::Agent, "hash", 0)
            .await
            .is_err()
    );
    let token = s.create_api_token(id, 0).await.unwrap();
    assert_eq!(
        s.user_by_api_token(&token, 1).await.unwrap().unwrap().login,
        "admin"
    );
    assert!(s.user_by_api_token("ld_wrong", 1).await.unwrap().is_none());
    let stored: String = desk_store::on_db!(s.db(), |p| sqlx::query_scalar(
        "SELECT token_hash FROM api_tokens"
    )
    .fetch_one(p)
    .await)
    .unwrap();
    assert_ne!(stored, token);
    exec_db!(s.db(), |p| sqlx::query(
        "UPDATE users SET disabled = TRUE WHERE id = $1"
    )
    .bind(id))
    .unwrap();
    assert!(s.user_by_api_token(&token, 1).await.unwrap().is_none());
}

backend_test!(api_tokens_expire_and_are_revoked_by_revocation_reset_and_disabling);
/// Issue 9, item 11: tokens expire, can be listed and revoked, and a password reset or
/// disabling the user revokes them all (enabling again does not bring them back).
async fn api_tokens_expire_and_are_revoked_by_revocation_reset_and_disabling(b: Backend) {
    let (_dir, s) = store(b).await;
    let b = if s.is_postgres() { "pg" } else { "sqlite" };
    let sato = s
        .create_user("sato", "佐藤", Role::Agent, "hash", 0)
        .await
        .unwrap();
    let t0 = 1_000_000;
    let day = 86_400_000;
    let forever = s.create_api_token(sato, t0).await.unwrap();
    let monthly = s
        .create_api_token_until(sato, t0, Some(t0 + 30 * day))
        .await
        .unwrap();
    let spare = s.create_api_token(sato, t0).await.unwrap();
    let live = |t: &str, at: i64| {
        let s = s.clone();
        let t = t.to_owned();
        async move { s.user_by_api_token(&t, at).await.unwrap().is_some() }
    };
    assert!(live(&monthly, t0 + 30 * day - 1).await, "{b}");
    assert!(!live(&monthly, t0 + 30 * day).await, "{b}: expired");
    assert!(live(&forever, t0 + 3650 * day).await);

    let list = s.list_api_tokens(Some(sato)).await.unwrap();
    assert_eq!(list.len(), 3, "{b}");
    assert!(list.iter().all(|t| t.login == "sato"));
    assert_eq!(list[1].expires_at, Some(t0 + 30 * day), "newest first");
    assert_eq!(list[0].last_used_at, None, "the spare was never used");
    assert_eq!(list[2].last_used_at, Some(t0 + 3650 * day));

    // Revoking one token ends only that one.
    let spare_id = list[0].id;
    let revoked = s.revoke_api_token(spare_id, t0 + 1).await.unwrap();
    assert_eq!(revoked.revoked_at, Some(t0 + 1));
    assert!(!live(&spare, t0 + 2).await, "{b}: revoked");
    assert!(live(&forever, t0 + 2).await);
    assert!(matches!(
        s.revoke_api_token(9_999, t0).await,
        Err(desk_store::StoreError::NotFound)
    ));

    // A password reset revokes the rest and ends the other sessions.
    let session = s.create_session(sato, t0, t0 + day).await.unwrap();
    s.reset_password(sato, "new-hash", None, t0 + 5)
        .await
        .unwrap();
    assert!(!live(&forever, t0 + 6).await, "{b}: revoked by the reset");
    assert!(
        s.session_by_token(&session.token, t0 + 6)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        s.user_by_id(sato).await.unwrap().unwrap().password_hash,
        "new-hash"
    );
    assert!(
        s.list_api_tokens(Some(sato))
            .await
            .unwrap()
            .iter()
            .all(|t| !t.is_live(t0 + 6))
    );

    // Disabling revokes a newer token too; enabling again does not revive it.
    let newer = s.create_api_token(sato, t0 + 10).await.unwrap();
    s.set_user_disabled_at(sato, true, t0 + 11).await.unwrap();
    s.set_user_disabled_at(sato, false, t0 + 12).await.unwrap();
    assert!(!live(&newer, t0 + 13).await, "{b}: revoked by disabling");
    assert_eq!(s.list_api_tokens(None).await.unwrap().len(), 4);
}

backend_test!(jobs_are_claimed_once_until_their_lease_ends);
async fn jobs_are_claimed_once_until_their_lease_ends(b: Backend) {
    let (_dir, s) = store(b).await;
    s.ingest(&[follow_event("F1", "Uf", 1_000, false)], 1_000)
        .await
        .unwrap();
    let claimed = s.claim_jobs(1_000, 10, 60_000).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        s.claim_jobs(2_000, 10, 60_000).await.unwrap().is_empty(),
        "leased"
    );
    let again = s.claim_jobs(61_000, 10, 60_000).await.unwrap();
    assert_eq!(again.len(), 1, "a crashed worker's job comes back");
    assert_eq!(again[0].attempts, 2);
    s.finish_job(again[0].id).await.unwrap();
    assert_eq!(s.count_jobs().await.unwrap(), 0);
}

backend_test!(login_attempts_are_reserved_and_only_forgotten_once_harmless);
/// Issue 9, items 3–5 at the store: attempts are reserved before the check (a reservation
/// counts at once), a success clears its own failures, a known address is spared the wide
/// limits, and only attempts older than the longest window are ever forgotten — a burst
/// of made-up login IDs never clears a live lock.
async fn login_attempts_are_reserved_and_only_forgotten_once_harmless(b: Backend) {
    use desk_core::login_throttle::{Limit, Limits, Scope};
    use desk_store::login_attempts::LoginReservation;
    let (_dir, s) = store(b).await;
    let b = backend(&s);
    let t0 = 1_700_000_000_000;
    let limits = Limits::default();
    // Five reservations, none finished yet: the sixth is refused already.
    let mut pending = Vec::new();
    for i in 0..5 {
        pending.push(
            s.reserve_login("Sato", "10.0.0.1", &limits, t0 + i)
                .await
                .unwrap()
                .reserved()
                .expect("allowed"),
        );
    }
    assert_eq!(
        s.reserve_login("sato", "10.0.0.1", &limits, t0 + 10)
            .await
            .unwrap(),
        LoginReservation::Locked {
            scope: Scope::Pair,
            until_ms: t0 + 5 * 60_000
        },
        "{b}"
    );
    // Another address is not locked by them.
    let ok = s
        .reserve_login("sato", "10.0.0.2", &limits, t0 + 11)
        .await
        .unwrap()
        .reserved()
        .expect("another address");
    s.finish_login(ok, true, t0 + 12).await.unwrap();
    for r in pending {
        s.finish_login(r, false, t0 + 20).await.unwrap();
    }

    // A burst of made-up login IDs (with wide limits out of the way) is all kept while
    // it can matter, and the live lock stays.
    let loose = Limits {
        client: Limit {
            max: 1_000_000,
            window_ms: 15 * 60_000,
        },
        global: Limit {
            max: 1_000_000,
            window_ms: 60_000,
        },
        ..limits
    };
    for i in 0..1_001 {
        let r = s
            .reserve_login(&format!("made-up-{i}"), "10.0.0.9", &loose, t0 + 1_000 + i)
            .await
            .unwrap()
            .reserved()
            .expect("allowed");
        s.finish_login(r, false, t0 + 1_000 + i).await.unwrap();
    }
    assert_eq!(
        s.count_login_attempts().await.unwrap(),
        1 + 5 + 1_001,
        "{b}"
    );
    assert!(
        matches!(
            s.reserve_login("sato", "10.0.0.1", &loose, t0 + 120_000)
                .await
                .unwrap(),
            LoginReservation::Locked { .. }
        ),
        "{b}: the lock survives the burst"
    );
    // Once the longest window has passed, they are forgotten and the lock is over.
    let later = t0 + 1_000 + 1_001 + limits.keep_ms();
    let r = s
        .reserve_login("sato", "10.0.0.1", &loose, later)
        .await
        .unwrap()
        .reserved()
        .expect("the lock ended");
    assert_eq!(s.count_login_attempts().await.unwrap(), 1, "{b}");
    s.finish_login(r, true, later).await.unwrap();

    // 10.0.0.2 is sato's own now: a login-wide lock spares it, not a stranger.
    for host in 0..4 {
        for i in 0..5 {
            let r = s
                .reserve_login("sato", &format!("192.0.2.{host}"), &limits, later + 10 + i)
                .await
                .unwrap()
                .reserved()
                .expect("allowed");
            s.finish_login(r, false, later + 10 + i).await.unwrap();
        }
    }
    assert!(matches!(
        s.reserve_login("sato", "198.51.100.1", &limits, later + 100)
            .await
            .unwrap(),
        LoginReservation::Locked {
            scope: Scope::Login,
            ..
        }
    ));
    assert!(
        s.reserve_login("sato", "10.0.0.2", &limits, later + 100)
            .await
            .unwrap()
            .reserved()
            .is_some(),
        "{b}: the known address gets in"
    );
}
