//! The store side of issue 10 (the chat screen), on SQLite and on a fresh PostgreSQL database:
//! one press of 送信 written as one group, 取消 racing the sender, 完了 with 取り消す /
//! そのまま送る, the history in the order the customer saw it, the customer search's range
//! counts and paging back, and the passcode confirmation riding the passcode's own token.

use crate::common::{backend, text_event};
use desk_core::ConversationStatus;
use desk_core::passcode::DEFAULT_VALIDITY_MS;
use desk_store::Store;
use desk_store::backend_test;
use desk_store::customers::{CustomerFields, CustomerFilter};
use desk_store::outbox::{CancelOutcome, Confirmation, NewOutgoing, UnsentChoice};
use desk_store::testing::{Backend, store};
use desk_store::users::Role;

fn text(t: &str) -> NewOutgoing<'_> {
    NewOutgoing {
        kind: desk_core::MessageKind::Text,
        text: Some(t),
        payload: None,
        media_id: None,
    }
}

/// A chat whose customer wrote at `at`, held by a new agent; returns (chat, agent).
async fn held_chat(s: &Store, user: &str, at: i64) -> (i64, i64) {
    s.ingest(
        &[text_event(
            &format!("E-{user}"),
            user,
            &format!("m-{user}"),
            "質問です",
            at,
        )],
        at,
    )
    .await
    .unwrap();
    let conv = s.conversation_by_line_user(user).await.unwrap().unwrap().id;
    let agent = s
        .create_user(&format!("a-{user}"), "佐藤", Role::Agent, "x", 0)
        .await
        .unwrap();
    s.change_status(conv, agent, false, ConversationStatus::InProgress, at + 1)
        .await
        .unwrap();
    (conv, agent)
}

backend_test!(one_press_is_written_as_one_group_in_the_order_composed_or_not_at_all);
async fn one_press_is_written_as_one_group_in_the_order_composed_or_not_at_all(b: Backend) {
    let (_dir, s) = store(b).await;
    let b = backend(&s);
    let (conv, agent) = held_chat(&s, "U1", 1_000).await;
    let payload = r#"{"original_key":"k1","preview_key":"k2"}"#;
    let image = NewOutgoing {
        kind: desk_core::MessageKind::Image,
        text: None,
        payload: Some(payload),
        media_id: None,
    };
    let ids = s
        .queue_group(
            conv,
            agent,
            &[(text("見積書を添付します。"), "key-1"), (image, "key-2")],
            2_000,
        )
        .await
        .unwrap()
        .queued()
        .expect("queued");
    assert_eq!(ids.len(), 2);
    let items = s.outbox_items(conv).await.unwrap();
    assert_eq!(
        items
            .iter()
            .map(|i| (i.message_id, i.send_group, i.kind.as_str()))
            .collect::<Vec<_>>(),
        [(ids[0], ids[0], "text"), (ids[1], ids[0], "image")],
        "{b}"
    );
    // Another agent's press writes nothing at all.
    let other = s
        .create_user("other", "田中", Role::Agent, "x", 0)
        .await
        .unwrap();
    let refused = s
        .queue_group(conv, other, &[(text("a"), "k3"), (text("b"), "k4")], 2_100)
        .await
        .unwrap();
    assert!(
        matches!(refused, desk_store::outbox::HandlerWrite::NotHandler(_)),
        "{b}"
    );
    assert_eq!(s.outbox_items(conv).await.unwrap().len(), 2, "{b}");
}

backend_test!(cancel_and_the_sender_exclude_each_other);
async fn cancel_and_the_sender_exclude_each_other(b: Backend) {
    let (_dir, s) = store(b).await;
    let b = backend(&s);
    let (conv, agent) = held_chat(&s, "U2", 1_000).await;
    let first = s
        .queue_outgoing(conv, agent, text("一通目"), "k1", 2_000)
        .await
        .unwrap()
        .queued()
        .expect("queued");
    let second = s
        .queue_outgoing(conv, agent, text("二通目"), "k2", 2_001)
        .await
        .unwrap()
        .queued()
        .expect("queued");
    let items = s.outbox_items(conv).await.unwrap();
    // The sender marks the first `sending` (a request is under way): too late to cancel.
    let mut lease = s
        .lease_conversation(conv, 3_000, 45_000)
        .await
        .unwrap()
        .unwrap();
    assert!(
        s.mark_sending(
            &mut lease,
            3_000,
            45_000,
            &[items[0].outbox_id],
            desk_core::Mode::Push,
            None
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.cancel_message(first, agent, false, 3_100).await.unwrap(),
        CancelOutcome::AlreadySending,
        "{b}"
    );
    // The second still waits: cancelled, and then the sender can no longer take it.
    assert_eq!(
        s.cancel_message(second, agent, false, 3_200).await.unwrap(),
        CancelOutcome::Cancelled {
            conversation_id: conv
        },
        "{b}"
    );
    assert!(
        !s.mark_sending(
            &mut lease,
            3_300,
            45_000,
            &[items[1].outbox_id],
            desk_core::Mode::Reply,
            None
        )
        .await
        .unwrap(),
        "{b}"
    );
    let m = s.message(second).await.unwrap().unwrap();
    assert_eq!(
        (
            m.delivery.as_str(),
            m.cancelled_at,
            m.cancelled_by_name.as_deref()
        ),
        ("cancelled", Some(3_200), Some("佐藤")),
        "{b}"
    );
    assert_eq!(
        s.cancel_message(second, agent, false, 3_300).await.unwrap(),
        CancelOutcome::NotWaiting,
        "{b}"
    );
    s.release_conversation(&lease).await.unwrap();

    // Who may: the author, the handler now, an admin; nobody else.
    let third = s
        .queue_outgoing(conv, agent, text("三通目"), "k3", 4_000)
        .await
        .unwrap()
        .queued()
        .expect("queued");
    let stranger = s
        .create_user("stranger", "鈴木", Role::Agent, "x", 0)
        .await
        .unwrap();
    assert_eq!(
        s.cancel_message(third, stranger, false, 4_100)
            .await
            .unwrap(),
        CancelOutcome::NotAllowed,
        "{b}"
    );
    s.change_status(conv, agent, false, ConversationStatus::Done, 4_200)
        .await
        .unwrap();
    s.change_status(conv, stranger, false, ConversationStatus::InProgress, 4_300)
        .await
        .unwrap();
    assert_eq!(
        s.cancel_message(third, stranger, false, 4_400)
            .await
            .unwrap(),
        CancelOutcome::Cancelled {
            conversation_id: conv
        },
        "{b}: the next handler may cancel what was kept for them"
    );
    assert_eq!(
        s.cancel_message(first + 1000, agent, false, 4_500)
            .await
            .unwrap(),
        CancelOutcome::NotFound
    );
}

backend_test!(done_with_cancel_takes_back_what_waits_and_keep_leaves_it_for_the_next_handler);
async fn done_with_cancel_takes_back_what_waits_and_keep_leaves_it_for_the_next_handler(
    b: Backend,
) {
    let (_dir, s) = store(b).await;
    let b = backend(&s);
    let (conv, agent) = held_chat(&s, "U3", 1_000).await;
    for (i, t) in ["a", "b"].iter().enumerate() {
        s.queue_outgoing(conv, agent, text(t), &format!("k{i}"), 2_000 + i as i64)
            .await
            .unwrap()
            .queued()
            .expect("queued");
    }
    assert_eq!(s.waiting_count(conv).await.unwrap(), 2, "{b}");
    s.change_status_with(
        conv,
        agent,
        false,
        ConversationStatus::Done,
        UnsentChoice::Keep,
        3_000,
    )
    .await
    .unwrap();
    assert_eq!(s.waiting_count(conv).await.unwrap(), 2, "{b}: kept");
    let ctx = s.send_context(conv).await.unwrap().unwrap();
    assert_eq!(
        desk_core::status::origin_of(Some(agent), &ctx.state),
        desk_core::planner::Origin::Kept
    );
    s.change_status(conv, agent, false, ConversationStatus::InProgress, 4_000)
        .await
        .unwrap();
    s.change_status_with(
        conv,
        agent,
        false,
        ConversationStatus::Unread,
        UnsentChoice::Cancel,
        5_000,
    )
    .await
    .unwrap();
    assert_eq!(s.waiting_count(conv).await.unwrap(), 0, "{b}");
    let all = s.history(conv, 0, i64::MAX, true).await.unwrap();
    let marks: Vec<&str> = all
        .iter()
        .filter(|m| m.direction == desk_core::Direction::Out)
        .map(|m| m.delivery.as_str())
        .collect();
    assert_eq!(
        marks,
        ["cancelled", "cancelled"],
        "{b}: still shown, as 取消"
    );
}

backend_test!(history_is_in_the_order_the_customer_saw_it_with_what_waits_last);
async fn history_is_in_the_order_the_customer_saw_it_with_what_waits_last(b: Backend) {
    let (_dir, s) = store(b).await;
    let b = backend(&s);
    let (conv, agent) = held_chat(&s, "U4", 1_000).await;
    // Written at 2,000, but it waited for the customer's next message (3,000) and
    // reached them at 3,100: below that message, as on their phone.
    let kept = s
        .queue_outgoing(conv, agent, text("回答"), "k1", 2_000)
        .await
        .unwrap()
        .queued()
        .expect("queued");
    s.ingest(&[text_event("E2", "U4", "m2", "まだですか", 3_000)], 3_000)
        .await
        .unwrap();
    s.mark_sent(conv, &[kept], desk_core::Mode::Reply, 3_100)
        .await
        .unwrap();
    let waiting = s
        .queue_outgoing(conv, agent, text("追記"), "k2", 2_500)
        .await
        .unwrap()
        .queued()
        .expect("queued");
    let h = s.history(conv, 0, 10_000, true).await.unwrap();
    let order: Vec<(&str, Option<&str>)> = h
        .iter()
        .map(|m| (m.direction.as_str(), m.text.as_deref()))
        .collect();
    assert_eq!(
        order,
        [
            ("in", Some("質問です")),
            ("in", Some("まだですか")),
            ("out", Some("回答")),
            ("out", Some("追記"))
        ],
        "{b}"
    );
    assert_eq!((h[2].created_at, h[2].sent_at), (2_000, Some(3_100)));
    assert_eq!(h[3].id, waiting);
    assert_eq!(h[3].outbox_state.as_deref(), Some("queued"));
    // A range of the past shows no waiting message; one that reaches now does.
    let past = s.history(conv, 0, 3_050, false).await.unwrap();
    assert_eq!(
        past.iter().map(|m| m.text.as_deref()).collect::<Vec<_>>(),
        [Some("質問です"), Some("まだですか")],
        "{b}"
    );
}

backend_test!(the_customer_search_counts_its_range_and_pages_back);
async fn the_customer_search_counts_its_range_and_pages_back(b: Backend) {
    let (_dir, s) = store(b).await;
    let b = backend(&s);
    let mut ids = Vec::new();
    for i in 0..7 {
        let f = CustomerFields {
            name: format!("山田 {i}"),
            ..Default::default()
        };
        ids.push(s.create_customer(&f, None, i).await.unwrap());
    }
    s.create_customer(
        &CustomerFields {
            name: "佐藤".into(),
            ..Default::default()
        },
        None,
        9,
    )
    .await
    .unwrap();
    let f = CustomerFilter {
        name: Some("山田".into()),
        limit: 3,
        ..Default::default()
    };
    let first = s.list_customers(&f).await.unwrap();
    assert_eq!(
        first.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[6], ids[5], ids[4]],
        "{b}"
    );
    assert_eq!(
        s.count_customers(&f, Some(ids[6])).await.unwrap(),
        (7, 0),
        "{b}"
    );
    let next = CustomerFilter {
        before_id: Some(ids[4]),
        ..f.clone()
    };
    let second = s.list_customers(&next).await.unwrap();
    assert_eq!(
        second.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[3], ids[2], ids[1]]
    );
    assert_eq!(
        s.count_customers(&f, Some(ids[3])).await.unwrap(),
        (7, 3),
        "{b}: 4 - 6 / 7"
    );
    let back = CustomerFilter {
        after_id: Some(ids[3]),
        ..f.clone()
    };
    let again = s.list_customers(&back).await.unwrap();
    assert_eq!(
        again.iter().map(|c| c.id).collect::<Vec<_>>(),
        [ids[6], ids[5], ids[4]],
        "{b}"
    );
}

backend_test!(a_passcode_token_waits_for_its_check_and_the_confirmation_rides_it);
async fn a_passcode_token_waits_for_its_check_and_the_confirmation_rides_it(b: Backend) {
    let (_dir, s) = store(b).await;
    let b = backend(&s);
    let customer = s
        .create_customer(
            &CustomerFields {
                name: "山田 花子".into(),
                ..Default::default()
            },
            None,
            1,
        )
        .await
        .unwrap();
    let now = 1_000_000;
    let code = s
        .issue_passcode(customer, None, now + DEFAULT_VALIDITY_MS, now)
        .await
        .unwrap();
    s.ingest(
        &[text_event("E1", "U5", "m1", code.as_str(), now + 10)],
        now + 10,
    )
    .await
    .unwrap();
    let conv = s.conversation_by_line_user("U5").await.unwrap().unwrap().id;
    assert!(
        s.unused_reply_tokens(conv, 0).await.unwrap().is_empty(),
        "{b}: held until checked"
    );
    let m1 = s.history(conv, 0, i64::MAX, false).await.unwrap()[0].id;
    let attempts = s
        .check_passcodes_with(
            m1,
            now + 20,
            Some(Confirmation {
                text: "連携が完了しました。",
                retry_key: "rk",
                ride_reply_token: true,
            }),
        )
        .await
        .unwrap();
    assert_eq!(attempts[0].outcome, desk_core::AttemptOutcome::Linked);
    let tokens = s.unused_reply_tokens(conv, 0).await.unwrap();
    assert_eq!(tokens.len(), 1, "{b}: free once checked");
    let items = s.outbox_items(conv).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].text.as_deref(), Some("連携が完了しました。"));
    assert_eq!(items[0].agent_id, None, "the desk's own answer");
    assert_eq!(
        items[0].reply_to_token.as_deref(),
        Some(tokens[0].reply_token.as_str()),
        "{b}"
    );
    // A wrong one is shown as such.
    s.ingest(
        &[text_event("E2", "U5", "m2", "@000-000", now + 30)],
        now + 30,
    )
    .await
    .unwrap();
    let m2 = s
        .history(conv, 0, i64::MAX, false)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.text.as_deref() == Some("@000-000"))
        .unwrap();
    s.check_passcodes_with(m2.id, now + 40, None).await.unwrap();
    let m2 = s.message(m2.id).await.unwrap().unwrap();
    assert_eq!(m2.passcode_outcome.as_deref(), Some("failed"), "{b}");
}
