//! The handling lock and sending (C3–C7, M2), end to end against the emulator, on SQLite
//! and PostgreSQL.

use crate::common::{Backend, TestDesk, backend_test, eventually, png};
use desk_store::users::Role;
use line_emulator::{Endpoint, Fault};

backend_test!(the_handler_sends_text_by_push_and_the_customer_gets_it_once);
async fn the_handler_sends_text_by_push_and_the_customer_gets_it_once(b: Backend) {
    let d = TestDesk::start(b).await;
    d.set_mode("push").await;
    let sato = d.user("sato", "佐藤 美咲", Role::Agent).await;
    let (user, conv) = d.customer("山田 花子", "荷物が届きません").await;
    let (s, c) = sato.set_status(conv, "in_progress").await;
    assert_eq!(s, 200, "{c}");
    assert_eq!(c["status"], "in_progress");
    assert_eq!(c["agent"]["login"], "sato");
    assert!(c["started_at"].is_string(), "対応開始日時 recorded");
    let (s, m) = sato
        .send_text(conv, "確認いたします。少々お待ちください。")
        .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["delivery"], "sent", "{b:?}: {m}");
    assert_eq!(m["sent_via"], "push");
    assert_eq!(m["agent"]["login"], "sato");
    let inbox = d.emulator.inbox(&user);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["text"], "確認いたします。少々お待ちください。");
    assert_eq!(inbox[0]["via"], "push");
    assert_eq!(d.metric("linedesk_deliveries_total").await, 1.0);
    assert_eq!(d.metric("linedesk_outbox_messages").await, 0.0);
}

backend_test!(nobody_else_can_take_or_send_until_done_and_who_holds_it_is_said);
async fn nobody_else_can_take_or_send_until_done_and_who_holds_it_is_said(b: Backend) {
    let d = TestDesk::start(b).await;
    d.set_mode("push").await;
    let sato = d.user("sato", "佐藤 美咲", Role::Agent).await;
    let tanaka = d.user("tanaka", "田中 健太", Role::Agent).await;
    let (user, conv) = d.customer("鈴木", "こんにちは").await;
    let (s, e) = tanaka.send_text(conv, "未対応のまま送信").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (409, Some("not_in_progress")),
        "{b:?}"
    );
    assert_eq!(sato.set_status(conv, "in_progress").await.0, 200);
    for status in ["in_progress", "done", "unread"] {
        let (s, e) = tanaka.set_status(conv, status).await;
        assert_eq!(s, 409, "{status}");
        assert!(
            e["error"]["message"]
                .as_str()
                .unwrap()
                .contains("佐藤 美咲"),
            "{e}"
        );
    }
    let (s, e) = tanaka.send_text(conv, "割り込み").await;
    assert_eq!(s, 409);
    assert_eq!(e["error"]["code"], "held_by_other");
    assert!(
        d.emulator.inbox(&user).is_empty(),
        "nothing reached the customer"
    );
    assert_eq!(sato.set_status(conv, "done").await.0, 200);
    let (s, c) = tanaka.set_status(conv, "in_progress").await;
    assert_eq!(s, 200);
    assert_eq!(c["agent"]["login"], "tanaka");
    assert_eq!(tanaka.send_text(conv, "引き継ぎました").await.0, 201);
    assert_eq!(sato.send_text(conv, "もう送れない").await.0, 409);
}

backend_test!(simultaneous_presses_of_in_progress_have_exactly_one_winner);
async fn simultaneous_presses_of_in_progress_have_exactly_one_winner(b: Backend) {
    let d = TestDesk::start(b).await;
    let agents = [
        d.user("a1", "A1", Role::Agent).await,
        d.user("a2", "A2", Role::Agent).await,
        d.user("a3", "A3", Role::Agent).await,
    ];
    for round in 0..10 {
        let (_, conv) = d.customer(&format!("客{round}"), "急ぎです").await;
        let results = futures_util::future::join_all(
            agents.iter().map(|a| a.set_status(conv, "in_progress")),
        )
        .await;
        let winners: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.0 == 200)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(winners.len(), 1, "{b:?} round {round}: {results:?}");
        assert!(results.iter().all(|r| r.0 == 200 || r.0 == 409));
        let conv_now = d.get(&format!("/api/v1/conversations/{conv}")).await;
        assert_eq!(conv_now["agent"]["id"], agents[winners[0]].user_id);
    }
}

backend_test!(a_done_chat_returns_to_unread_on_a_new_customer_message);
async fn a_done_chat_returns_to_unread_on_a_new_customer_message(b: Backend) {
    let d = TestDesk::start(b).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "一件目").await;
    sato.set_status(conv, "in_progress").await;
    assert_eq!(sato.set_status(conv, "done").await.1["status"], "done");
    d.emulator
        .send_text(&user, "もう一つ質問です")
        .await
        .unwrap();
    let c = d.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c["status"], "unread", "{b:?}");
    assert_eq!(c["unread_count"], 1);
}

#[tokio::test]
async fn an_admin_can_release_a_held_chat_and_it_is_recorded() {
    let d = TestDesk::start(crate::common::Backend::Sqlite).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let boss = d.user("boss", "上長", Role::Admin).await;
    let (_, conv) = d.customer("客", "こんにちは").await;
    sato.set_status(conv, "in_progress").await;
    assert_eq!(
        boss.set_status(conv, "in_progress").await.0,
        409,
        "no takeover in one step"
    );
    let (s, c) = boss.set_status(conv, "unread").await;
    assert_eq!(s, 200);
    assert_eq!(c["agent"], serde_json::Value::Null);
    let log = d.state.store.conversation_log(conv).await.unwrap();
    assert!(
        log.iter()
            .any(|(who, action, _, to, _)| who.as_deref() == Some("boss")
                && action == "release"
                && to.as_deref() == Some("unread")),
        "{log:?}"
    );
}

backend_test!(an_image_goes_to_line_at_a_public_url_and_a_non_image_is_refused);
async fn an_image_goes_to_line_at_a_public_url_and_a_non_image_is_refused(b: Backend) {
    let d = TestDesk::start(b).await;
    d.set_mode("push").await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "写真を送ってください").await;
    sato.set_status(conv, "in_progress").await;
    let (s, e) = sato
        .send_image(
            conv,
            b"%PDF-1.4 this is not a picture".to_vec(),
            "photo.jpg",
        )
        .await;
    assert_eq!(s, 415, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not an image")
    );
    let (s, m) = sato.send_image(conv, png(300, 200), "map.png").await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["type"], "image");
    assert_eq!(m["delivery"], "sent", "{b:?}");
    let entry = eventually("LINE fetched the image", || async {
        d.emulator
            .inbox(&user)
            .into_iter()
            .find(|e| e["fetched"].is_object())
    })
    .await;
    assert_eq!(entry["type"], "image");
    assert!(
        entry["originalContentUrl"]
            .as_str()
            .unwrap()
            .starts_with(&d.url)
    );
    assert_eq!(entry["fetched"]["original"]["status"], 200, "{entry}");
    assert_eq!(entry["fetched"]["original"]["content_type"], "image/png");
    assert_eq!(entry["fetched"]["preview"]["status"], 200);
    assert_eq!(
        d.emulator.inbox(&user).len(),
        1,
        "the refused file sent nothing"
    );
}

backend_test!(push_is_retried_with_its_key_and_never_arrives_twice);
async fn push_is_retried_with_its_key_and_never_arrives_twice(b: Backend) {
    let d = TestDesk::start(b).await;
    d.set_mode("push").await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "もしもし").await;
    sato.set_status(conv, "in_progress").await;
    // LINE takes the message but answers 500: the retry with the same key gets 409.
    d.emulator.add_fault_after_effect(Fault {
        endpoint: Endpoint::Push,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    let (_, m) = sato.send_text(conv, "一度だけ届くはず").await;
    let id = m["id"].as_i64().unwrap();
    eventually("sent after the retry", || async {
        d.messages(conv)
            .await
            .into_iter()
            .find(|x| x["id"] == id && x["delivery"] == "sent")
    })
    .await;
    assert_eq!(d.emulator.inbox(&user).len(), 1, "{b:?}: exactly once");
    // LINE fails without taking it (429, then 503): retried until delivered, once.
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 429,
        count: 1,
        delay_ms: 0,
    });
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 503,
        count: 1,
        delay_ms: 0,
    });
    let (_, m) = sato.send_text(conv, "二通目").await;
    assert_eq!(m["delivery"], "unsent", "visibly waiting");
    let id = m["id"].as_i64().unwrap();
    eventually("sent after the faults", || async {
        d.messages(conv)
            .await
            .into_iter()
            .find(|x| x["id"] == id && x["delivery"] == "sent")
    })
    .await;
    let texts: Vec<String> = d
        .emulator
        .inbox(&user)
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["一度だけ届くはず", "二通目"]);
}

#[tokio::test]
async fn a_push_line_refuses_fails_visibly_and_can_be_resent() {
    let d = TestDesk::start(crate::common::Backend::Sqlite).await;
    d.set_mode("push").await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "もしもし").await;
    sato.set_status(conv, "in_progress").await;
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 400,
        count: 1,
        delay_ms: 0,
    });
    let (_, m) = sato.send_text(conv, "再送テスト").await;
    assert_eq!(m["delivery"], "failed", "{m}");
    assert!(m["delivery_error"].is_string());
    assert_eq!(d.metric("linedesk_delivery_failures_total").await, 1.0);
    assert!(d.emulator.inbox(&user).is_empty());
    let id = m["id"].as_i64().unwrap();
    let (s, m) = sato
        .post(
            &format!("/api/v1/messages/{id}/resend"),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["delivery"], "sent");
    assert_eq!(d.emulator.inbox(&user).len(), 1);
}

#[tokio::test]
async fn a_blank_or_too_long_text_is_refused_with_a_reason() {
    let d = TestDesk::start(crate::common::Backend::Sqlite).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (_, conv) = d.customer("客", "もしもし").await;
    sato.set_status(conv, "in_progress").await;
    assert_eq!(sato.send_text(conv, "   ").await.0, 400);
    let (s, e) = sato.send_text(conv, &"あ".repeat(5001)).await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(sato.send_text(conv, &"あ".repeat(5000)).await.0, 201);
}
