//! Reply mode and push mode (M1–M7) against the emulator, which enforces LINE's rules:
//! single-use reply tokens that expire, at most 5 objects per call, retry keys.

use std::time::Duration;

use crate::common::{Backend, TestDesk, backend_test, eventually, png};
use desk_store::users::Role;
use line_emulator::{Endpoint, Fault};
use serde_json::{Value, json};

fn emu() -> line_emulator::Config {
    line_emulator::Config {
        require_https_media: false,
        ..Default::default()
    }
}

/// Messages of the conversation as (type, text, delivery).
async fn deliveries(d: &TestDesk, conv: i64) -> Vec<(String, String, String)> {
    d.messages(conv)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "out")
        .map(|m| {
            (
                m["type"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap_or("").to_owned(),
                m["delivery_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// What the customer received: (via, type, text), oldest first.
fn received(d: &TestDesk, user: &str) -> Vec<(String, String, String)> {
    d.emulator
        .inbox(user)
        .into_iter()
        .map(|m| {
            (
                m["via"].as_str().unwrap().to_owned(),
                m["type"].as_str().unwrap().to_owned(),
                m["text"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

async fn all_sent(d: &TestDesk, conv: i64) {
    eventually("every agent message sent", || async {
        let m = deliveries(d, conv).await;
        m.iter().all(|(_, _, s)| s == "sent").then_some(())
    })
    .await;
}

backend_test!(the_first_answer_goes_at_once_the_rest_waits_for_the_next_message_in_order);
async fn the_first_answer_goes_at_once_the_rest_waits_for_the_next_message_in_order(b: Backend) {
    let d = TestDesk::start_with(b, emu()).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("山田", "注文した商品が届きません").await;
    sato.set_status(conv, "in_progress").await;
    let (_, a) = sato.send_text(conv, "お調べします。").await;
    assert_eq!(
        a["delivery"], "sent",
        "{b:?}: the first answer uses the token at once"
    );
    assert_eq!(a["sent_via"], "reply");
    for text in ["注文番号を教えてください。", "お手数をおかけします。"] {
        let (_, m) = sato.send_text(conv, text).await;
        assert_eq!(m["delivery"], "unsent", "kept: 未送信 (M4)");
    }
    let (_, img) = sato.send_image(conv, png(60, 40), "label.png").await;
    assert_eq!(img["delivery"], "unsent");
    let (_, last) = sato.send_text(conv, "こちらの伝票の番号です。").await;
    assert_eq!(last["delivery"], "unsent");
    assert_eq!(received(&d, &user).len(), 1);

    d.emulator.send_text(&user, "A-10293 です").await.unwrap();
    all_sent(&d, conv).await;
    let got = received(&d, &user);
    // Consecutive texts joined into one, the image in its place (M5).
    assert_eq!(got.len(), 4, "{b:?}: {got:?}");
    assert_eq!(
        got[0],
        ("reply".into(), "text".into(), "お調べします。".into())
    );
    assert_eq!(
        got[1],
        (
            "reply".into(),
            "text".into(),
            "注文番号を教えてください。\nお手数をおかけします。".into()
        )
    );
    assert_eq!((got[2].0.as_str(), got[2].1.as_str()), ("reply", "image"));
    assert_eq!(
        got[3],
        (
            "reply".into(),
            "text".into(),
            "こちらの伝票の番号です。".into()
        )
    );
    let inbox = d.emulator.inbox(&user);
    assert_eq!(
        inbox[1]["request_id"], inbox[3]["request_id"],
        "one reply call carried them"
    );
    assert_ne!(inbox[0]["request_id"], inbox[1]["request_id"]);
    // Nothing more goes out on later messages: each was delivered once.
    d.emulator.send_text(&user, "ありがとう").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(received(&d, &user).len(), 4);
}

#[tokio::test]
async fn more_than_five_objects_wait_for_the_following_token() {
    let d = TestDesk::start_with(Backend::Sqlite, emu()).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "こんにちは").await;
    sato.set_status(conv, "in_progress").await;
    sato.send_text(conv, "最初の返事").await;
    // text, image, text, image, text, image, text: seven objects.
    for i in 0..3 {
        sato.send_text(conv, &format!("説明{i}")).await;
        sato.send_image(conv, png(10 + i, 10), "x.png").await;
    }
    sato.send_text(conv, "以上です").await;
    d.emulator.send_text(&user, "はい").await.unwrap();
    eventually("five objects delivered", || async {
        (received(&d, &user).len() == 6).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received(&d, &user).len(), 6, "1 + 5: the rest waits");
    let waiting = deliveries(&d, conv)
        .await
        .into_iter()
        .filter(|m| m.2 == "unsent")
        .count();
    assert_eq!(waiting, 2, "image and last text still 未送信");
    d.emulator.send_text(&user, "続きをどうぞ").await.unwrap();
    all_sent(&d, conv).await;
    let got = received(&d, &user);
    let kinds: Vec<&str> = got.iter().map(|g| g.1.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "text", "text", "image", "text", "image", "text", "image", "text"
        ]
    );
    assert_eq!(got[7].2, "以上です");
}

#[tokio::test]
async fn after_the_window_the_answer_waits_for_the_next_customer_message() {
    let d = TestDesk::start_configured(Backend::Sqlite, emu(), |c| c.reply_window_secs = 1).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "質問です").await;
    sato.set_status(conv, "in_progress").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, m) = sato.send_text(conv, "遅くなりました").await;
    assert_eq!(
        m["delivery"], "unsent",
        "the token is past the desk's window (M4)"
    );
    assert!(d.emulator.inbox(&user).is_empty());
    d.emulator.send_text(&user, "まだですか").await.unwrap();
    all_sent(&d, conv).await;
    assert_eq!(
        received(&d, &user),
        [("reply".into(), "text".into(), "遅くなりました".into())]
    );
}

backend_test!(an_invalid_reply_token_keeps_the_message_for_the_next_token);
async fn an_invalid_reply_token_keeps_the_message_for_the_next_token(b: Backend) {
    // LINE expires tokens sooner than the desk's window expects.
    let cfg = line_emulator::Config {
        reply_token_ttl: Duration::from_millis(300),
        ..emu()
    };
    let d = TestDesk::start_with(b, cfg).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "質問です").await;
    sato.set_status(conv, "in_progress").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, m) = sato.send_text(conv, "お待たせしました").await;
    assert_eq!(
        m["delivery"], "unsent",
        "{b:?}: LINE said Invalid reply token; kept"
    );
    assert_eq!(
        d.emulator.stats()["reply"]["rejected"]["reply_token_expired"],
        1,
        "{}",
        d.emulator.stats()
    );
    d.emulator.send_text(&user, "もしもし").await.unwrap();
    all_sent(&d, conv).await;
    assert_eq!(received(&d, &user).len(), 1);
}

backend_test!(an_ambiguous_reply_failure_is_never_resent_blindly);
async fn an_ambiguous_reply_failure_is_never_resent_blindly(b: Backend) {
    let d = TestDesk::start_with(b, emu()).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "質問です").await;
    sato.set_status(conv, "in_progress").await;
    // LINE delivers the reply but answers 500: the desk cannot know.
    d.emulator.add_fault_after_effect(Fault {
        endpoint: Endpoint::Reply,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    let (_, m) = sato.send_text(conv, "届いたかどうか").await;
    assert_eq!(m["delivery"], "failed", "{b:?}: {m}");
    assert_eq!(m["delivery_state"], "uncertain");
    assert!(
        m["delivery_error"]
            .as_str()
            .unwrap()
            .contains("may or may not")
    );
    d.emulator.send_text(&user, "届きました").await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(received(&d, &user).len(), 1, "not resent on the next token");
    // The agent decides to resend: it goes with the new token.
    let id = m["id"].as_i64().unwrap();
    let (s, again) = sato
        .post(&format!("/api/v1/messages/{id}/resend"), json!({}))
        .await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["delivery"], "sent");
    assert_eq!(received(&d, &user).len(), 2);
}

backend_test!(switching_to_push_delivers_what_was_kept_and_back_to_reply_keeps_working);
async fn switching_to_push_delivers_what_was_kept_and_back_to_reply_keeps_working(b: Backend) {
    let d = TestDesk::start_with(b, emu()).await;
    let admin = d.user("boss", "管理者", Role::Admin).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("客", "質問です").await;
    sato.set_status(conv, "in_progress").await;
    sato.send_text(conv, "一通目").await;
    sato.send_text(conv, "二通目").await;
    sato.send_text(conv, "三通目").await;
    assert_eq!(received(&d, &user).len(), 1);
    let (s, v) = put_settings(&d, &admin.token, json!({"mode": "push"})).await;
    assert_eq!((s, v["mode"].as_str()), (200, Some("push")), "{v}");
    all_sent(&d, conv).await;
    let got = received(&d, &user);
    assert_eq!(
        got.iter().map(|g| g.0.as_str()).collect::<Vec<_>>(),
        ["reply", "push", "push"],
        "{b:?}"
    );
    assert_eq!(got[1].2, "二通目");
    assert_eq!(got[2].2, "三通目");
    let (s, _) = put_settings(&d, &admin.token, json!({"mode": "reply"})).await;
    assert_eq!(s, 200);
    d.emulator.send_text(&user, "了解です").await.unwrap();
    let (_, m) = sato.send_text(conv, "またどうぞ").await;
    assert_eq!(m["sent_via"], "reply");
}

async fn put_settings(d: &TestDesk, token: &str, body: Value) -> (u16, Value) {
    let resp = d
        .http
        .put(format!("{}/api/v1/settings/line", d.url))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn line_settings_are_for_admins_and_never_show_the_secrets() {
    let d = TestDesk::start_with(Backend::Sqlite, emu()).await;
    let admin = d.user("boss", "管理者", Role::Admin).await;
    let agent = d.user("sato", "佐藤", Role::Agent).await;
    let get = |token: String| {
        let req = d
            .http
            .get(format!("{}/api/v1/settings/line", d.url))
            .bearer_auth(token);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    assert_eq!(get(agent.token.clone()).await.0, 403);
    assert_eq!(
        put_settings(&d, &agent.token, json!({"mode": "push"}))
            .await
            .0,
        403
    );
    let (s, body) = get(admin.token.clone()).await;
    assert_eq!(s, 200);
    let secret = d.emulator.config().channel_secret.clone();
    let token = d.emulator.config().channel_access_token.clone();
    assert!(
        !body.contains(&secret) && !body.contains(&token),
        "secrets never sent back: {body}"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["mode"], "reply", "Reply is the default (M1)");
    assert_eq!(v["channel_secret_set"], true);
    assert_eq!(v["webhook_url"], format!("{}/line", d.url));
    // Empty fields keep the stored values ("No update").
    let (_, v) = put_settings(
        &d,
        &admin.token,
        json!({"mode": "reply", "channel_secret": "", "channel_access_token": ""}),
    )
    .await;
    assert_eq!(v["channel_secret_set"], true);
    let user = d.emulator.follow("まだ届く", None).await.unwrap();
    assert!(
        d.conversation_of(&user).await.is_some(),
        "the kept secret still verifies webhooks"
    );
    // The connection test checks the token against LINE's bot info API.
    let test = |t: &str| {
        let req = d
            .http
            .post(format!("{}/api/v1/settings/line/test", d.url))
            .bearer_auth(t.to_owned());
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    assert_eq!(test(&admin.token).await["ok"], true);
    put_settings(
        &d,
        &admin.token,
        json!({"channel_access_token": "wrong-token"}),
    )
    .await;
    let r = test(&admin.token).await;
    assert_eq!(r["ok"], false);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("Channel Access Token"),
        "{r}"
    );
    // A wrong secret shows up as refused deliveries with a hint, once they fail
    // consistently (three in a row, issue 9 item 12).
    put_settings(
        &d,
        &admin.token,
        json!({"channel_secret": "not-the-channel-secret"}),
    )
    .await;
    for i in 0..3 {
        let status = d
            .emulator
            .send_text(&user, &format!("届かない {i}"))
            .await
            .unwrap()
            .webhook_status;
        assert_eq!(status, Some(401));
    }
    desk_server::metrics::flush_once(&d.state).await;
    let (_, body) = get(admin.token.clone()).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["signature_failures"]["count"], 3);
    assert_eq!(v["signature_failures"]["signed"], 3);
    assert!(
        v["signature_failures"]["hint"]
            .as_str()
            .unwrap()
            .contains("Channel Secret")
    );
}
