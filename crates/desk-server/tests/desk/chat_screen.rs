//! Issue 10 (the chat screen, tried as a Japanese agent would) through the JSON API and the
//! rendered pages, against the LINE emulator, on SQLite and PostgreSQL: one press of 送信 is
//! one group in one reply call; 完了 with waiting messages (そのまま送る / 取り消す) and the
//! next handler's answer first; 取消 racing the sender; the history in the order the customer
//! saw it; every error path worded in Japanese; why a message waits; the 対応中エージェント
//! filter agreeing with its column; the passcode confirmation on the passcode's own token;
//! the customer search's range. The browser side is in `browser_chat_screen.rs`.

use std::time::Duration;

use crate::common::{Backend, TestDesk, backend_test, eventually, png};
use desk_server::i18n::{I18n, Locale};
use desk_store::users::Role;
use line_emulator::{Endpoint, Fault};
use serde_json::{Value, json};

/// What the customer received: (via, type, text, request id, reply token), oldest first.
fn received(d: &TestDesk, user: &str) -> Vec<(String, String, String, String, String)> {
    d.emulator
        .inbox(user)
        .into_iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_owned();
            (
                s("via"),
                s("type"),
                s("text"),
                s("request_id"),
                s("reply_token"),
            )
        })
        .collect()
}

/// One press of 送信 through the API: multipart `text` / `image` parts in this order.
async fn press(d: &TestDesk, token: &str, conv: i64, parts: Vec<(&str, Vec<u8>)>) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in parts {
        form = match name {
            "text" => form.text("text", String::from_utf8(bytes).unwrap()),
            _ => form.part(
                name.to_owned(),
                reqwest::multipart::Part::bytes(bytes).file_name("x.png"),
            ),
        };
    }
    let resp = d
        .http
        .post(format!("{}/api/v1/conversations/{conv}/messages", d.url))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn text(t: &str) -> (&'static str, Vec<u8>) {
    ("text", t.as_bytes().to_vec())
}

fn image(w: u32) -> (&'static str, Vec<u8>) {
    ("image", png(w, 20))
}

async fn out_messages(d: &TestDesk, conv: i64) -> Vec<Value> {
    d.messages(conv)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "out")
        .collect()
}

// ---- 1. one press of 送信 is one group ---------------------------------------------------

backend_test!(one_press_with_text_and_image_goes_in_one_reply_call_in_the_order_composed);
async fn one_press_with_text_and_image_goes_in_one_reply_call_in_the_order_composed(b: Backend) {
    let d = TestDesk::start(b).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("山田", "見積書をください").await;
    sato.set_status(conv, "in_progress").await;
    let (status, group) = press(
        &d,
        &sato.token,
        conv,
        vec![text("見積書を添付します。"), image(40)],
    )
    .await;
    assert_eq!(status, 201, "{b:?}: {group}");
    let ids: Vec<i64> = group["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect();
    assert_eq!(group["group_id"], ids[0]);
    assert_eq!(group["messages"][0]["delivery"], "sent", "{b:?}");
    assert_eq!(group["messages"][1]["delivery"], "sent", "{b:?}");
    let got = received(&d, &user);
    assert_eq!(got.len(), 2, "{b:?}: {got:?}");
    assert_eq!(
        (got[0].1.as_str(), got[0].2.as_str()),
        ("text", "見積書を添付します。"),
        "the explanation first"
    );
    assert_eq!(got[1].1, "image");
    assert_eq!(got[0].3, got[1].3, "{b:?}: one reply call");
    assert_eq!(got[0].0, "reply");
}

backend_test!(a_press_that_fits_a_call_is_never_split_across_reply_tokens);
async fn a_press_that_fits_a_call_is_never_split_across_reply_tokens(b: Backend) {
    let d = TestDesk::start(b).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("山田", "写真を送ってください").await;
    sato.set_status(conv, "in_progress").await;
    sato.send_text(conv, "お送りします。").await;
    // The token is used: four photos wait (one press), then a text with one more photo.
    let (s, _) = press(
        &d,
        &sato.token,
        conv,
        (1..=4).map(|i| image(10 + i)).collect(),
    )
    .await;
    assert_eq!(s, 201);
    let (s, _) = press(
        &d,
        &sato.token,
        conv,
        vec![text("最後の1枚です。"), image(30)],
    )
    .await;
    assert_eq!(s, 201);
    d.emulator.send_text(&user, "はい").await.unwrap();
    eventually("the four photos", || async {
        (received(&d, &user).len() == 5).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        received(&d, &user).len(),
        5,
        "{b:?}: the last press waits whole"
    );
    d.emulator.send_text(&user, "続きをどうぞ").await.unwrap();
    let got = eventually("the last press", || async {
        let got = received(&d, &user);
        (got.len() == 7).then_some(got)
    })
    .await;
    assert_eq!(
        (got[5].1.as_str(), got[5].2.as_str()),
        ("text", "最後の1枚です。")
    );
    assert_eq!(got[6].1, "image");
    assert_eq!(got[5].3, got[6].3, "{b:?}: text and its photo in one call");
}

#[tokio::test]
async fn a_press_with_a_bad_part_writes_nothing_and_says_why_in_japanese() {
    let d = TestDesk::start(Backend::Sqlite).await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let (_user, conv) = d.customer("山田", "こんにちは").await;
    sato.set_status(conv, "in_progress").await;
    let (status, e) = press(
        &d,
        &sato.token,
        conv,
        vec![text("こちらです"), ("image", b"not an image".to_vec())],
    )
    .await;
    assert_eq!(status, 415, "{e}");
    assert_eq!(e["error"]["key"], "send-error-not_an_image");
    assert!(
        out_messages(&d, conv).await.is_empty(),
        "the text was not written alone"
    );
    let (status, e) = press(
        &d,
        &sato.token,
        conv,
        (0..6).map(|i| image(10 + i)).collect(),
    )
    .await;
    assert_eq!(
        (status, e["error"]["key"].as_str()),
        (400, Some("send-error-too_many"))
    );
}

// ---- 3. unsent messages, 完了 and a hand-over --------------------------------------------

backend_test!(completing_keeps_waiting_messages_for_the_next_handler_whose_answer_goes_first);
async fn completing_keeps_waiting_messages_for_the_next_handler_whose_answer_goes_first(
    b: Backend,
) {
    let d = TestDesk::start(b).await;
    let a = d.user("sato", "佐藤", Role::Agent).await;
    let bb = d.user("tanaka", "田中", Role::Agent).await;
    let (user, conv) = d.customer("山田", "配送状況を教えてください").await;
    a.set_status(conv, "in_progress").await;
    a.send_text(conv, "お調べします。").await;
    a.send_text(conv, "Aの追記1").await;
    a.send_text(conv, "Aの追記2").await;
    let c = d.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c["waiting"], 2, "{b:?}");
    // An API client that does not say keeps them (そのまま送る).
    let (s, _) = a.set_status(conv, "done").await;
    assert_eq!(s, 200);
    let sent = d.emulator.send_text(&user, "まだですか？").await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        received(&d, &user).len(),
        1,
        "{b:?}: nobody handles the chat: nothing goes"
    );
    let waiting = out_messages(&d, conv).await;
    assert_eq!(
        waiting[1]["waiting_reason"], "kept_for_next_handler",
        "{b:?}"
    );
    // B takes the chat and answers within seconds: B's answer goes first, on that token.
    assert_eq!(bb.set_status(conv, "in_progress").await.0, 200);
    let (_, m) = bb.send_text(conv, "田中が承ります。").await;
    assert_eq!(m["delivery"], "sent", "{b:?}: B is not starved");
    let got = eventually("A's kept texts after B's answer", || async {
        let got = received(&d, &user);
        (got.len() == 3).then_some(got)
    })
    .await;
    assert_eq!(got[1].2, "田中が承ります。");
    assert_eq!(got[2].2, "Aの追記1\nAの追記2");
    assert_eq!(got[1].3, got[2].3, "{b:?}: one call");
    assert_eq!(
        got[1].4, sent.reply_token,
        "{b:?}: the customer's new message's token"
    );
}

backend_test!(completing_with_cancel_takes_back_what_waits);
async fn completing_with_cancel_takes_back_what_waits(b: Backend) {
    let d = TestDesk::start(b).await;
    let a = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("山田", "質問です").await;
    a.set_status(conv, "in_progress").await;
    a.send_text(conv, "回答です。").await;
    a.send_text(conv, "不要になった追記").await;
    let (s, _) = a
        .post(
            &format!("/api/v1/conversations/{conv}/status"),
            json!({"status": "done", "unsent": "cancel"}),
        )
        .await;
    assert_eq!(s, 200);
    d.emulator.send_text(&user, "ありがとう").await.unwrap();
    a.set_status(conv, "in_progress").await;
    a.send_text(conv, "どういたしまして。").await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let texts: Vec<String> = received(&d, &user).into_iter().map(|r| r.2).collect();
    assert_eq!(texts, ["回答です。", "どういたしまして。"], "{b:?}");
    let out = out_messages(&d, conv).await;
    let cancelled = out
        .iter()
        .find(|m| m["text"] == "不要になった追記")
        .unwrap();
    assert_eq!(
        cancelled["delivery"], "cancelled",
        "{b:?}: still shown, as 取消"
    );
    assert_eq!(cancelled["cancelled_by"], "佐藤");
    let (s, e) = a
        .post(
            &format!("/api/v1/conversations/{conv}/status"),
            json!({"status": "done", "unsent": "later"}),
        )
        .await;
    assert_eq!(
        (s, e["error"]["key"].as_str()),
        (400, Some("status-error-unsent"))
    );
}

backend_test!(an_agent_cancels_their_own_waiting_message_but_not_one_already_sending);
async fn an_agent_cancels_their_own_waiting_message_but_not_one_already_sending(b: Backend) {
    let d = TestDesk::start(b).await;
    let a = d.user("sato", "佐藤", Role::Agent).await;
    let other = d.user("suzuki", "鈴木", Role::Agent).await;
    let (user, conv) = d.customer("山田", "質問です").await;
    a.set_status(conv, "in_progress").await;
    a.send_text(conv, "回答です。").await;
    let (_, m) = a.send_text(conv, "やっぱり取り消したい").await;
    assert_eq!(m["delivery"], "unsent");
    let id = m["id"].as_i64().unwrap();
    let (s, e) = other
        .post(&format!("/api/v1/messages/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["key"].as_str()),
        (403, Some("send-error-cancel_not_allowed"))
    );
    let (s, c) = a
        .post(&format!("/api/v1/messages/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, c["delivery"].as_str()),
        (200, Some("cancelled")),
        "{b:?}: {c}"
    );
    d.emulator.send_text(&user, "はい").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(received(&d, &user).len(), 1, "{b:?}: never sent afterwards");
    let (s, e) = a
        .post(&format!("/api/v1/messages/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["key"].as_str()),
        (409, Some("send-error-not_waiting"))
    );

    // A reply under way (LINE is slow): its message is `sending` and cannot be cancelled.
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Reply,
        status: 0,
        count: 1,
        delay_ms: 1_500,
    });
    let token = a.token.clone();
    let (url, http) = (d.url.clone(), d.http.clone());
    let sending = tokio::spawn(async move {
        http.post(format!("{url}/api/v1/conversations/{conv}/messages"))
            .bearer_auth(token)
            .json(&json!({"text": "いま送っています"}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    let id = eventually("the message under way", || async {
        let out = out_messages(&d, conv).await;
        out.into_iter()
            .find(|m| m["text"] == "いま送っています" && m["waiting_reason"] == "sending")
            .map(|m| m["id"].as_i64().unwrap())
    })
    .await;
    let (s, e) = a
        .post(&format!("/api/v1/messages/{id}/cancel"), json!({}))
        .await;
    assert_eq!(
        (s, e["error"]["key"].as_str()),
        (409, Some("send-error-already_sending")),
        "{b:?}"
    );
    let m = sending.await.unwrap();
    assert_eq!(m["delivery"], "sent", "{b:?}: it went, once");
    assert_eq!(received(&d, &user).len(), 2);
}

// ---- 4. the order the customer saw ------------------------------------------------------------

backend_test!(history_is_in_the_order_the_customer_saw_it_with_both_times);
async fn history_is_in_the_order_the_customer_saw_it_with_both_times(b: Backend) {
    let d = TestDesk::start(b).await;
    let a = d.user("sato", "佐藤", Role::Agent).await;
    let (user, conv) = d.customer("山田", "Q1").await;
    a.set_status(conv, "in_progress").await;
    a.send_text(conv, "A1").await;
    a.send_text(conv, "A2").await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    d.emulator.send_text(&user, "Q2").await.unwrap();
    eventually("A2 delivered", || async {
        (received(&d, &user).len() == 2).then_some(())
    })
    .await;
    let msgs = eventually("A2 marked sent", || async {
        let msgs = d.messages(conv).await;
        msgs.iter()
            .all(|m| m["delivery"] != "unsent")
            .then_some(msgs)
    })
    .await;
    let order: Vec<&str> = msgs.iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        ["Q1", "A1", "Q2", "A2"],
        "{b:?}: as on the customer's phone"
    );
    let a2 = &msgs[3];
    assert_ne!(
        a2["created_at"], a2["delivered_at"],
        "{b:?}: written and delivered"
    );
    assert!(a2["delivered_at"].as_str().unwrap() > a2["created_at"].as_str().unwrap());
}

// ---- 5. every error path worded in Japanese -----------------------------------------------

/// Whether a visible text is an English sentence: only ASCII, with at least two words of
/// letters (dates, times, ids, "TOP", "REPLY", "HTTP 400" pass).
fn english_sentence(s: &str) -> bool {
    let s = s.trim();
    if !s.is_ascii() {
        return false;
    }
    let words = s
        .split_whitespace()
        .filter(|w| w.chars().filter(char::is_ascii_alphabetic).count() >= 2)
        .count();
    words >= 2
}

/// The text an agent can see on an HTML page: text runs (tags stripped) and the tooltips and
/// labels of attributes (`title`, `aria-label`, `placeholder`, `alt`), without what is quoted
/// as LINE's own words (`<q class="line-quote">`), scripts and styles.
fn visible_runs(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if skip_until.is_none() && !text.trim().is_empty() {
            out.push(text.trim().replace("&amp;", "&"));
        }
        let gt = rest[lt..]
            .find('>')
            .map(|g| lt + g)
            .unwrap_or(rest.len() - 1);
        let tag = &rest[lt..=gt];
        match skip_until {
            Some(end) if tag.starts_with(end) => skip_until = None,
            Some(_) => {}
            None if tag.starts_with("<q class=\"line-quote\"") => skip_until = Some("</q"),
            None if tag.starts_with("<script") => skip_until = Some("</script"),
            None if tag.starts_with("<style") => skip_until = Some("</style"),
            None => {}
        }
        rest = &rest[gt + 1..];
    }
    out
}

#[tokio::test]
async fn every_error_path_is_worded_in_japanese() {
    let d = TestDesk::start(Backend::Sqlite).await;
    d.set_mode("push").await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let other = d.user("tanaka", "田中", Role::Agent).await;
    let (user, conv) = d.customer("山田", "こんにちは").await;
    let mut keys: Vec<(String, Value)> = Vec::new();
    let mut take = |what: &str, status: u16, e: &Value, want: u16| {
        assert_eq!(status, want, "{what}: {e}");
        let key = e["error"]["key"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no key in {e}"));
        keys.push((key.to_owned(), e["error"]["args"].clone()));
    };
    let url = format!("/api/v1/conversations/{conv}/messages");
    let (s, e) = sato
        .post(&url, json!({"text": "まだ対応していません"}))
        .await;
    take("not in progress", s, &e, 409);
    sato.set_status(conv, "in_progress").await;
    let (s, e) = other.post(&url, json!({"text": "割り込み"})).await;
    take("held by another", s, &e, 409);
    let (s, e) = other.set_status(conv, "done").await;
    take("status held by another", s, &e, 409);
    let (s, e) = sato.post(&url, json!({"text": " \n "})).await;
    take("blank", s, &e, 400);
    let (s, e) = sato.post(&url, json!({"text": "あ".repeat(5_001)})).await;
    take("too long", s, &e, 400);
    let (s, e) = sato.post(&url, json!({"words": "x"})).await;
    take("not our JSON", s, &e, 400);
    let (s, e) = press(&d, &sato.token, conv, vec![]).await;
    take("empty press", s, &e, 400);
    let (s, e) = press(&d, &sato.token, conv, vec![("image", b"%PDF-1.4".to_vec())]).await;
    take("not an image", s, &e, 415);
    let mut broken = png(10, 10);
    broken.truncate(40);
    let (s, e) = press(&d, &sato.token, conv, vec![("image", broken)]).await;
    take("unreadable", s, &e, 400);
    let (s, e) = press(
        &d,
        &sato.token,
        conv,
        vec![("image", vec![0x89; 21 * 1024 * 1024])],
    )
    .await;
    take("too large", s, &e, 413);
    let (s, e) = press(
        &d,
        &sato.token,
        conv,
        (0..6).map(|i| image(10 + i)).collect(),
    )
    .await;
    take("too many", s, &e, 400);
    let (s, e) = sato
        .post(
            "/api/v1/conversations/999999/messages",
            json!({"text": "x"}),
        )
        .await;
    take("no such chat", s, &e, 404);
    let (s, e) = sato
        .post(
            &format!("/api/v1/conversations/{conv}/status"),
            json!({"status": "closed"}),
        )
        .await;
    take("bad status", s, &e, 400);
    let (s, e) = sato.post("/api/v1/messages/999999/cancel", json!({})).await;
    take("cancel nothing", s, &e, 404);
    let (s, e) = sato.post("/api/v1/messages/999999/resend", json!({})).await;
    take("resend nothing", s, &e, 404);
    for (key, args) in &keys {
        let pairs: Vec<(String, String)> = args
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let refs: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let ja = I18n::tf(Locale::Ja, key, &refs);
        assert!(!ja.starts_with(key.as_str()), "{key} has no Japanese text");
        assert!(!english_sentence(&ja), "{key}: {ja}");
    }

    // Delivery failures, shown in the chat: LINE refuses a push (400), and a reply fails
    // (500: uncertain). The desk's own sentence is Japanese; LINE's words are quoted as LINE's.
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 400,
        count: 1,
        delay_ms: 0,
    });
    let (_, m) = sato.send_text(conv, "見積書です").await;
    assert_eq!(m["delivery"], "failed", "{m}");
    assert_eq!(m["delivery_problem"]["code"], "line_refused");
    d.set_mode("reply").await;
    d.emulator
        .send_text(&user, "もう一度お願いします")
        .await
        .unwrap();
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Reply,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    let (_, m) = sato.send_text(conv, "承知しました").await;
    assert_eq!(m["delivery_state"], "uncertain", "{m}");
    sato.send_text(conv, "追記です").await; // waits: 次のお客様メッセージで送信されます
    let html = page(&d, &format!("/chats/{conv}")).await;
    assert!(html.contains("line-quote"), "LINE's words are quoted");
    assert!(
        html.contains("次のお客様メッセージで送信されます"),
        "why it waits"
    );
    let english: Vec<String> = visible_runs(&html)
        .into_iter()
        .filter(|t| english_sentence(t))
        .collect();
    assert!(
        english.is_empty(),
        "English on the Japanese chat screen: {english:?}"
    );
}

/// A page as a logged-in agent sees it: a new agent with a password logs in through the
/// login form (as a browser: same origin), and fetches `path` with the session cookie.
async fn page(d: &TestDesk, path: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let login = format!(
        "viewer{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let password = "chat-screen-password";
    d.agent_with_password(&login, "閲覧 太郎", Role::Agent, password)
        .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = http
        .post(format!("{}/login", d.url))
        .header("origin", &d.url)
        .header("sec-fetch-site", "same-origin")
        .form(&[("login", login.as_str()), ("password", password)])
        .send()
        .await
        .unwrap();
    let cookie = resp
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.split(';').next().filter(|c| c.contains("session")))
        .unwrap_or_else(|| panic!("no session cookie: {}", resp.status()))
        .to_owned();
    let resp = http
        .get(format!("{}{path}", d.url))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "GET {path}");
    resp.text().await.unwrap()
}

// ---- 6. why a message waits ----------------------------------------------------------------

#[tokio::test]
async fn a_waiting_message_says_why_and_the_chat_says_its_mode() {
    let d = TestDesk::start(Backend::Sqlite).await;
    let a = d.user("sato", "佐藤", Role::Agent).await;
    let (_user, conv) = d.customer("山田", "質問です").await;
    a.set_status(conv, "in_progress").await;
    a.send_text(conv, "回答です。").await;
    let (_, m) = a.send_text(conv, "追記です。").await;
    assert_eq!(m["waiting_reason"], "next_customer_message");
    let html = page(&d, &format!("/chats/{conv}")).await;
    assert!(
        html.contains("次のお客様メッセージで送信されます"),
        "under the message"
    );
    assert!(
        html.contains("送信モード") && html.contains("REPLY"),
        "the mode is shown"
    );
}

// ---- 7. the 対応中エージェント column and filter agree -----------------------------------------

backend_test!(the_agent_filter_finds_the_chats_the_column_names);
async fn the_agent_filter_finds_the_chats_the_column_names(b: Backend) {
    let d = TestDesk::start(b).await;
    let a = d.user("sato", "佐藤 美咲", Role::Agent).await;
    let (_, done) = d.customer("山田", "ありがとう").await;
    let (_, held) = d.customer("鈴木", "質問です").await;
    let (_, other) = d.customer("高橋", "こんにちは").await;
    a.set_status(done, "in_progress").await;
    a.set_status(done, "done").await;
    a.set_status(held, "in_progress").await;
    let ids = |v: Value| -> Vec<i64> {
        let mut ids: Vec<i64> = v["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect();
        ids.sort();
        ids
    };
    let mut want = vec![done, held];
    want.sort();
    assert_eq!(
        ids(d.get("/api/v1/conversations?agent=sato").await),
        want,
        "{b:?}"
    );
    assert_eq!(
        ids(d
            .get("/api/v1/conversations?agent=sato&status=in_progress")
            .await),
        [held]
    );
    assert!(
        !ids(d
            .get("/api/v1/conversations?agent=%E4%BD%90%E8%97%A4")
            .await)
        .contains(&other)
    );
    let html = page(&d, "/chats?agent=sato").await;
    assert!(
        html.contains("前回の対応"),
        "{b:?}: the last handler is labelled as such"
    );
}

// ---- 11. the passcode confirmation ------------------------------------------------------------

async fn passcode_for(d: &TestDesk, name: &str) -> String {
    let admin = reqwest::Client::new();
    let c: Value = admin
        .post(format!("{}/api/v1/customers", d.url))
        .bearer_auth(&d.token)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = c["id"].as_i64().unwrap();
    let p: Value = admin
        .post(format!("{}/api/v1/customers/{id}/line-passcode", d.url))
        .bearer_auth(&d.token)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    p["passcode"].as_str().unwrap().to_owned()
}

backend_test!(a_passcode_link_is_confirmed_on_the_passcodes_own_reply_token);
async fn a_passcode_link_is_confirmed_on_the_passcodes_own_reply_token(b: Backend) {
    let d = TestDesk::start(b).await;
    let code = passcode_for(&d, "山田 花子").await;
    let user = d.emulator.follow("山田", None).await.unwrap();
    let sent = d.emulator.send_text(&user, &code).await.unwrap();
    let got = eventually("the confirmation", || async {
        let got = received(&d, &user);
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "reply", "{b:?}");
    assert_eq!(
        got[0].2,
        I18n::t(Locale::Ja, "line_settings-passcode_reply_default")
    );
    assert_eq!(
        got[0].4, sent.reply_token,
        "{b:?}: the passcode message's own token"
    );
    let conv = d.conversation_of(&user).await.unwrap();
    assert!(conv["customer"].is_object());
    let msgs = d.messages(conv["id"].as_i64().unwrap()).await;
    assert_eq!(msgs[0]["passcode"], "linked");
    let desk = msgs.iter().find(|m| m["direction"] == "out").unwrap();
    assert_eq!(desk["agent"], Value::Null, "the desk's own answer");
    // A wrong one is shown to agents as such, and not answered.
    d.emulator.send_text(&user, "@000-001").await.unwrap();
    let id = conv["id"].as_i64().unwrap();
    eventually("the wrong passcode marked", || async {
        d.messages(id)
            .await
            .iter()
            .any(|m| m["text"] == "@000-001" && m["passcode"] == "failed")
            .then_some(())
    })
    .await;
    assert_eq!(received(&d, &user).len(), 1);
}

#[tokio::test]
async fn in_push_mode_the_confirmation_is_off_unless_enabled() {
    let d = TestDesk::start(Backend::Sqlite).await;
    d.set_mode("push").await;
    let code = passcode_for(&d, "佐藤 一郎").await;
    let user = d.emulator.follow("佐藤", None).await.unwrap();
    d.emulator.send_text(&user, &code).await.unwrap();
    eventually("linked", || async {
        d.conversation_of(&user)
            .await
            .filter(|c| c["customer"].is_object())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(received(&d, &user).is_empty(), "no push unless enabled");

    let resp = d
        .http
        .put(format!("{}/api/v1/settings/line", d.url))
        .bearer_auth(&d.token)
        .json(&json!({"passcode_reply": "連携しました。", "passcode_reply_push": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let settings: Value = resp.json().await.unwrap();
    assert_eq!(settings["passcode_reply_push"], true);
    let code = passcode_for(&d, "鈴木 次郎").await;
    let user2 = d.emulator.follow("鈴木", None).await.unwrap();
    d.emulator.send_text(&user2, &code).await.unwrap();
    let got = eventually("the pushed confirmation", || async {
        let got = received(&d, &user2);
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(
        (got[0].0.as_str(), got[0].2.as_str()),
        ("push", "連携しました。")
    );
}

// ---- 12. the customer search's range -----------------------------------------------------------

#[tokio::test]
async fn the_customer_search_numbers_its_pages() {
    let d = TestDesk::start(Backend::Sqlite).await;
    for i in 0..3 {
        d.http
            .post(format!("{}/api/v1/customers", d.url))
            .bearer_auth(&d.token)
            .json(&json!({"name": format!("山田 {i}")}))
            .send()
            .await
            .unwrap();
    }
    let first = d
        .get("/api/v1/customers?name=%E5%B1%B1%E7%94%B0&limit=2")
        .await;
    assert_eq!(
        (
            first["from"].as_i64(),
            first["to"].as_i64(),
            first["total"].as_i64()
        ),
        (Some(1), Some(2), Some(3))
    );
    let next = first["next"].as_str().unwrap();
    let second = d
        .get(&format!(
            "/api/v1/customers?name=%E5%B1%B1%E7%94%B0&limit=2&before={next}"
        ))
        .await;
    assert_eq!(
        (second["from"].as_i64(), second["to"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(second["next"], Value::Null);
    let prev = second["prev"].as_str().unwrap();
    let back = d
        .get(&format!(
            "/api/v1/customers?name=%E5%B1%B1%E7%94%B0&limit=2&after={prev}"
        ))
        .await;
    assert_eq!(back["customers"], first["customers"]);
}

#[tokio::test]
async fn the_openapi_document_describes_groups_cancel_and_the_unsent_choice() {
    let d = TestDesk::start(Backend::Sqlite).await;
    let doc = d.get("/api/v1/openapi.json").await;
    let post = &doc["paths"]["/conversations/{id}/messages"]["post"];
    assert!(post["requestBody"]["content"]["multipart/form-data"].is_object());
    assert!(doc["paths"]["/messages/{id}/cancel"]["post"].is_object());
    let status = &doc["paths"]["/conversations/{id}/status"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"]["properties"]["unsent"];
    assert_eq!(status["default"], "keep");
    let message = &doc["components"]["schemas"]["Message"]["properties"];
    for field in [
        "delivered_at",
        "group_id",
        "waiting_reason",
        "delivery_problem",
        "passcode",
    ] {
        assert!(message[field].is_object(), "{field}");
    }
}
