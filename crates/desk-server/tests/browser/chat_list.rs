//! The agent desk in a real Chromium (headless, Japanese): LINEチャット一覧 and LINEチャット詳細
//! (V1, V2) with the chat flow of the manual (C1–C8), Reply mode's Unsent mark (M4–M6) and
//! live updates (B2). The desk and the LINE emulator run on loopback as in the other tests;
//! customers write through the emulator, agents click in the browser.
//!
//! Every test runs on SQLite; the main flows run on PostgreSQL too. The screenshot test
//! takes `chat-list.png` and `chat-detail.png` (into `docs/screenshots/` with
//! `UPDATE_SCREENSHOTS=1`: `crate::common::browser::screenshots_dir`).

use crate::common::browser::Browser;
use crate::common::{Backend, TestDesk, eventually, png};
use desk_store::users::Role;
use line_emulator::{Endpoint, Fault, UserMessage};
use serde_json::json;
use thirtyfour::prelude::*;

const PASSWORD: &str = "desk-password-1";

async fn desk(b: Backend) -> TestDesk {
    let d = TestDesk::start(b).await;
    d.agent_with_password("sato", "佐藤 美咲", Role::Agent, PASSWORD)
        .await;
    d
}

/// Outgoing messages of a chat as (text, delivery_state), from the API.
async fn outgoing(d: &TestDesk, conv: i64) -> Vec<(String, String)> {
    d.messages(conv)
        .await
        .into_iter()
        .filter(|m| m["direction"] == "out")
        .map(|m| {
            (
                m["text"].as_str().unwrap_or("").to_owned(),
                m["delivery_state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Presses a status button on the open detail and waits until the header shows it.
async fn press_status(br: &Browser, status: &str) {
    br.click(
        &format!("the {status} button"),
        &format!("#chat-header [data-set-status='{status}']"),
    )
    .await;
    br.wait_for(
        &format!("status {status} shown"),
        &format!(
            "#chat-header[data-status='{status}'] [data-set-status='{status}'][aria-pressed='true']"
        ),
    )
    .await;
}

/// Waits until the image matching `css` has loaded (the browser fetched it).
async fn image_loaded(br: &Browser, css: &str) {
    br.until("the image loaded", || async {
        let w = br
            .js(
                "const i = document.querySelector(arguments[0]); return i ? i.naturalWidth : 0;",
                vec![json!(css)],
            )
            .await;
        (w.as_i64().unwrap_or(0) > 0).then_some(())
    })
    .await;
}

/// Types into the message field and presses 送信.
async fn send_text(br: &Browser, text: &str) {
    let area = br.driver.find(By::Id("chat-text")).await.unwrap();
    area.send_keys(text).await.unwrap();
    br.driver
        .find(By::Id("chat-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

// ---- C1, C2, B2: a customer's messages appear without a reload ----------------------------

async fn customer_messages_appear_live(b: Backend) {
    let d = desk(b).await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.wait_live().await;
    br.mark_document().await;

    // C1: a LINE user follows and writes; the list shows them, 未読 with an unread count.
    let user = d.emulator.follow("山田 花子", None).await.unwrap();
    d.emulator
        .send_text(&user, "注文した商品がまだ届きません")
        .await
        .unwrap();
    let row_text = br
        .wait_text(
            "the new chat in the list",
            "#chat-list tr.chat-row",
            "山田 花子",
        )
        .await;
    assert!(row_text.contains("未読"), "{row_text}");
    let conv = d.conversation_of(&user).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let row = format!("#chat-list tr.chat-row[data-id='{conv}']");
    assert_eq!(br.text(&format!("{row} .unread-count")).await, "1");
    assert!(br.same_document().await, "the list was not reloaded");

    // C2: the folder icon opens the detail; the message shows with its time.
    br.click("the folder icon", &format!("{row} a.folder"))
        .await;
    br.wait_text(
        "the message in the chat",
        "#chat-history .msg-in",
        "注文した商品がまだ届きません",
    )
    .await;
    let time = br.text("#chat-history .msg-in time").await;
    assert!(
        time.len() == 16 && time.as_bytes()[4] == b'-' && time.as_bytes()[10] == b' ',
        "time like 2017-07-20 04:06: {time:?}"
    );
    assert_eq!(br.text("#chat-display-name").await, "山田 花子");
    // Opening the chat read it.
    eventually("the unread count cleared", || async {
        (d.conversation_of(&user).await?["unread_count"] == 0).then_some(())
    })
    .await;

    br.wait_live().await;
    br.mark_document().await;
    d.emulator
        .send_text(&user, "至急確認をお願いします")
        .await
        .unwrap();
    br.wait_text(
        "the new message in the open chat",
        "#chat-history .msg-in",
        "至急確認をお願いします",
    )
    .await;
    // Other kinds show as what they are (C7).
    d.emulator.send_sticker(&user, "446", "1988").await.unwrap();
    br.wait_text("the sticker", "#chat-history .msg-sticker", "スタンプ")
        .await;
    d.emulator
        .send(
            &user,
            UserMessage::Location {
                title: "東京駅".into(),
                address: "東京都千代田区丸の内1丁目".into(),
                latitude: 35.681236,
                longitude: 139.767125,
            },
        )
        .await
        .unwrap();
    let loc_text = br
        .wait_text("the location", "#chat-history .msg-location", "東京駅")
        .await;
    assert!(
        loc_text.contains("丸の内") && loc_text.contains("35.681236, 139.767125"),
        "{loc_text}"
    );
    d.emulator.send_image(&user, png(120, 80)).await.unwrap();
    br.wait_for(
        "the customer's image, fetched",
        "#chat-history .msg-in .msg-image img",
    )
    .await;
    image_loaded(&br, "#chat-history .msg-in .msg-image img").await;
    assert!(br.same_document().await, "the chat was not reloaded");
    // The user blocks the account: the chat says so, live; the history stays.
    d.emulator.block(&user).await.unwrap();
    br.wait_text(
        "the blocked mark",
        "#chat-header .badge-blocked",
        "ブロック中",
    )
    .await;
    assert!(br.same_document().await);
    assert!(br.count("#chat-history .msg-in").await >= 5);
    br.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_messages_appear_in_the_list_and_the_open_chat_without_reload() {
    customer_messages_appear_live(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_messages_appear_in_the_list_and_the_open_chat_without_reload_on_postgres() {
    customer_messages_appear_live(Backend::Postgres).await;
}

// ---- C3, C4, C6, C7: take the chat, send text and an image -------------------------------

async fn take_and_send_text_and_image(b: Backend) {
    let d = desk(b).await;
    d.set_mode("push").await;
    let (user, conv) = d
        .customer("鈴木 一郎", "商品の写真を送ってもらえますか")
        .await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open(&format!("/chats/{conv}")).await;
    br.wait_live().await;

    // Nobody handles it yet: the send controls wait for 対応中, and say so.
    assert!(!br.enabled("#chat-send").await);
    assert!(!br.enabled("#chat-text").await);
    assert!(!br.enabled("#chat-file").await);
    assert!(br.text("#chat-send-hint").await.contains("対応中"));

    press_status(&br, "in_progress").await;
    br.wait_text("the manual's message", "#chat-flash", "対応を開始しました")
        .await;
    br.wait_text("the handling agent", "#chat-agent", "佐藤 美咲")
        .await;
    br.until("the send button enabled", || async {
        br.enabled("#chat-send").await.then_some(())
    })
    .await;

    send_text(&br, "確認いたします。少々お待ちください。").await;
    br.wait_text(
        "the sent text",
        "#chat-history .msg-out",
        "確認いたします。少々お待ちください。",
    )
    .await;
    assert_eq!(
        br.text("#chat-history .msg-out .msg-who").await,
        "佐藤 美咲"
    );
    assert_eq!(
        br.driver
            .find(By::Id("chat-text"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(""),
        "the field is cleared after sending"
    );

    // ファイルを選択 an image, then 送信.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("商品写真.png");
    std::fs::write(&path, png(400, 300)).unwrap();
    br.driver
        .find(By::Id("chat-file"))
        .await
        .unwrap()
        .send_keys(path.to_str().unwrap())
        .await
        .unwrap();
    br.driver
        .find(By::Id("chat-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    br.wait_for(
        "the sent image in the history",
        "#chat-history .msg-out .msg-image img",
    )
    .await;
    image_loaded(&br, "#chat-history .msg-out .msg-image img").await;

    let inbox = eventually(
        "the customer got the text and LINE fetched the image",
        || async {
            let inbox = d.emulator.inbox(&user);
            (inbox.len() == 2 && inbox[1]["fetched"].is_object()).then_some(inbox)
        },
    )
    .await;
    assert_eq!(inbox[0]["type"], "text");
    assert_eq!(inbox[0]["text"], "確認いたします。少々お待ちください。");
    assert_eq!(inbox[0]["via"], "push");
    assert_eq!(inbox[1]["type"], "image");
    assert_eq!(
        inbox[1]["fetched"]["original"]["status"], 200,
        "{}",
        inbox[1]
    );
    assert_eq!(
        outgoing(&d, conv)
            .await
            .iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>(),
        ["sent", "sent"]
    );
    assert_eq!(br.count(".mark-unsent").await, 0);
    br.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_sends_text_and_an_image_and_the_customer_gets_both() {
    take_and_send_text_and_image(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_sends_text_and_an_image_and_the_customer_gets_both_on_postgres() {
    take_and_send_text_and_image(Backend::Postgres).await;
}

// ---- M4–M6: Reply mode's 未送信 mark, gone live once delivered --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_reply_mode_a_second_answer_is_unsent_until_the_customer_writes_again() {
    let d = desk(Backend::Sqlite).await;
    let (user, conv) = d.customer("高橋 陽子", "営業時間を教えてください").await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open(&format!("/chats/{conv}")).await;
    br.wait_live().await;
    press_status(&br, "in_progress").await;

    send_text(&br, "平日は9時から18時までです。").await;
    br.wait_text(
        "the first answer",
        "#chat-history .msg-out",
        "平日は9時から18時までです。",
    )
    .await;
    send_text(&br, "土日祝日はお休みをいただいております。").await;
    let kept = br
        .wait_text(
            "the second answer, 未送信 (M4)",
            "#chat-history .msg-out[data-delivery='unsent']",
            "土日祝日はお休み",
        )
        .await;
    assert!(kept.contains("未送信"), "{kept}");
    assert_eq!(
        br.count(".mark-unsent").await,
        1,
        "the first answer went out with the reply token"
    );
    assert_eq!(d.emulator.inbox(&user).len(), 1);

    br.mark_document().await;
    d.emulator.send_text(&user, "わかりました").await.unwrap();
    br.wait_gone("the Unsent mark gone (M6)", ".mark-unsent")
        .await;
    assert!(br.same_document().await, "without a reload");
    br.wait_text(
        "the customer's new message",
        "#chat-history .msg-in",
        "わかりました",
    )
    .await;
    let texts: Vec<String> = d
        .emulator
        .inbox(&user)
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        texts,
        [
            "平日は9時から18時までです。",
            "土日祝日はお休みをいただいております。"
        ]
    );
    br.quit().await;
}

// ---- C4: a second agent sees who holds the chat and cannot send ------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_sees_who_holds_the_chat_and_cannot_send() {
    let d = desk(Backend::Sqlite).await;
    d.set_mode("push").await;
    d.agent_with_password("tanaka", "田中 健太", Role::Agent, PASSWORD)
        .await;
    let (user, conv) = d
        .customer("伊藤 さくら", "解約について相談したいです")
        .await;
    let sato = Browser::start(&d).await;
    let tanaka = Browser::start(&d).await;
    sato.login("sato", PASSWORD).await;
    tanaka.login("tanaka", PASSWORD).await;
    sato.open(&format!("/chats/{conv}")).await;
    press_status(&sato, "in_progress").await;

    // Tanaka's list shows it held by Sato, live.
    let row = tanaka
        .wait_text(
            "Sato in Tanaka's list",
            "#chat-list tr.chat-row",
            "佐藤 美咲",
        )
        .await;
    assert!(row.contains("対応中"), "{row}");

    tanaka.open(&format!("/chats/{conv}")).await;
    tanaka.wait_live().await;
    assert!(tanaka.text("#chat-agent").await.contains("佐藤 美咲"));
    assert!(!tanaka.enabled("#chat-send").await, "send disabled");
    assert!(
        !tanaka.enabled("#chat-text").await,
        "message field disabled"
    );
    assert!(!tanaka.enabled("#chat-file").await, "file picker disabled");
    let hint = tanaka.text("#chat-send-hint").await;
    assert!(
        hint.contains("佐藤 美咲") && hint.contains("対応中"),
        "{hint}"
    );

    // Issue 10, item 8: who holds it is said up front, and the status buttons are plainly
    // not pressable (no click needed to learn it).
    let notice = tanaka.text("#lock-notice").await;
    assert!(
        notice.contains("佐藤 美咲 さんが対応中です") && notice.contains("から"),
        "{notice}"
    );
    for status in ["unread", "in_progress", "done"] {
        assert!(
            !tanaka
                .enabled(&format!("#chat-header [data-set-status='{status}']"))
                .await,
            "{status} must not be pressable"
        );
    }
    // A forced call from Tanaka's session is refused by the server.
    let forced = tanaka
        .js(
            "return fetch(arguments[0], {method: 'POST', headers: {'Content-Type': 'application/json',
               'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content},
               body: JSON.stringify({text: '割り込み'})})
             .then(async r => ({status: r.status, body: await r.json()}));",
            vec![json!(format!("/api/v1/conversations/{conv}/messages"))],
        )
        .await;
    assert_eq!(forced["status"], 409, "{forced}");
    assert_eq!(forced["body"]["error"]["code"], "held_by_other");
    assert!(d.emulator.inbox(&user).is_empty());

    // Sato presses 完了: Tanaka sees it live, takes over and can send.
    press_status(&sato, "done").await;
    tanaka
        .wait_for("完了 shown to Tanaka", "#chat-header[data-status='done']")
        .await;
    press_status(&tanaka, "in_progress").await;
    tanaka
        .until("Tanaka can send", || async {
            tanaka.enabled("#chat-send").await.then_some(())
        })
        .await;
    sato.wait_text("Tanaka shown to Sato", "#chat-agent", "田中 健太")
        .await;
    assert!(!sato.enabled("#chat-send").await);
    sato.quit().await;
    tanaka.quit().await;
}

// ---- C5: a done chat is 未読 again, live, when the customer writes --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_done_chat_shows_unread_again_in_the_list_live() {
    let d = desk(Backend::Sqlite).await;
    let (user, conv) = d.customer("渡辺 翔太", "配送先を変更したいです").await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open(&format!("/chats/{conv}")).await;
    br.wait_live().await;
    press_status(&br, "in_progress").await;
    press_status(&br, "done").await;
    br.wait_text("the manual's message", "#chat-flash", "対応を完了しました")
        .await;

    br.open("/chats").await;
    let row_css = format!("#chat-list tr.chat-row[data-id='{conv}']");
    br.wait_for("the row 完了", &format!("{row_css}[data-status='done']"))
        .await;
    assert!(br.text(&row_css).await.contains("完了"));
    br.wait_live().await;
    br.mark_document().await;
    d.emulator
        .send_text(&user, "すみません、もう一つ質問があります")
        .await
        .unwrap();
    br.wait_for(
        "the row 未読 again",
        &format!("{row_css}[data-status='unread']"),
    )
    .await;
    assert!(br.text(&row_css).await.contains("未読"));
    assert_eq!(br.text(&format!("{row_css} .unread-count")).await, "1");
    assert!(br.same_document().await, "without a reload");
    br.quit().await;
}

// ---- display names are data, never markup ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_display_name_with_markup_shows_as_text() {
    let d = desk(Backend::Sqlite).await;
    let evil = "<img src=x onerror=alert(1)>";
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.wait_live().await;
    let user = d.emulator.follow(evil, None).await.unwrap();
    d.emulator
        .send_text(&user, "<b>太字</b><script>alert(2)</script>")
        .await
        .unwrap();
    // Arrives live (a fragment refresh), so both the first render and refreshes are checked.
    let name = br
        .wait_text(
            "the name as text in the list",
            "#chat-list .chat-name",
            evil,
        )
        .await;
    assert_eq!(name, evil);
    let xss = "return document.querySelectorAll('img[src=\"x\"], b, script:not([src])').length";
    assert_eq!(br.js(xss, vec![]).await, json!(0));

    br.click("the name", "#chat-list .chat-name").await;
    br.wait_text("the name as text in the detail", "#chat-display-name", evil)
        .await;
    br.wait_text(
        "the message as text",
        "#chat-history .msg-text",
        "<b>太字</b><script>alert(2)</script>",
    )
    .await;
    br.wait_live().await;
    d.emulator.send_text(&user, "<i>追伸</i>").await.unwrap();
    br.wait_text(
        "a live message as text",
        "#chat-history .msg-text",
        "<i>追伸</i>",
    )
    .await;
    assert_eq!(br.js(xss, vec![]).await, json!(0));
    assert_eq!(
        br.js("return document.querySelectorAll('i').length", vec![])
            .await,
        json!(0)
    );
    // The page reload renders it the same way.
    br.driver.refresh().await.unwrap();
    br.wait_text("the name after a reload", "#chat-display-name", evil)
        .await;
    assert_eq!(br.js(xss, vec![]).await, json!(0));
    br.quit().await;
}

// ---- Japanese input: Enter while the IME composes never sends --------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_during_ime_composition_does_not_send_and_plain_enter_does() {
    let d = desk(Backend::Sqlite).await;
    d.set_mode("push").await;
    let (_user, conv) = d.customer("小林 真一", "資料を送ってください").await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open(&format!("/chats/{conv}")).await;
    br.wait_live().await;
    press_status(&br, "in_progress").await;
    br.until("the field enabled", || async {
        br.enabled("#chat-text").await.then_some(())
    })
    .await;

    // Enter that confirms a conversion: `isComposing`, and Safari-style keyCode 229. The
    // script reports synchronously whether the page took the key as a send (it would have
    // prevented the default and disabled the button at once).
    let area = br.driver.find(By::Id("chat-text")).await.unwrap();
    area.send_keys("変換中").await.unwrap();
    let composing = br
        .js(
            "const t = document.getElementById('chat-text');
             const send = document.getElementById('chat-send');
             const a = new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', isComposing: true,
                                                     bubbles: true, cancelable: true});
             t.dispatchEvent(a);
             const b = new KeyboardEvent('keydown', {key: 'Enter', code: 'Enter', bubbles: true, cancelable: true});
             Object.defineProperty(b, 'keyCode', {get: () => 229});
             t.dispatchEvent(b);
             return {a: a.defaultPrevented, b: b.defaultPrevented, sending: send.disabled, value: t.value};",
            vec![],
        )
        .await;
    assert_eq!(
        composing,
        json!({"a": false, "b": false, "sending": false, "value": "変換中"}),
        "an IME Enter is not a send"
    );
    // The agent keeps typing and presses a real Enter: one message with everything.
    area.send_keys("の資料です").await.unwrap();
    area.send_keys(Key::Enter).await.unwrap();
    br.wait_text(
        "the sent text",
        "#chat-history .msg-out",
        "変換中の資料です",
    )
    .await;
    // Shift+Enter is a newline, not a send.
    br.until("the field cleared", || async {
        area.prop("value").await.ok()??.is_empty().then_some(())
    })
    .await;
    area.send_keys("一行目").await.unwrap();
    area.send_keys(Key::Shift + Key::Enter).await.unwrap();
    area.send_keys("二行目").await.unwrap();
    assert_eq!(
        area.prop("value").await.unwrap().as_deref(),
        Some("一行目\n二行目")
    );
    area.send_keys(Key::Enter).await.unwrap();
    br.wait_text("the two-line text", "#chat-history .msg-out", "二行目")
        .await;
    let sent = eventually("both messages stored", || async {
        let out = outgoing(&d, conv).await;
        (out.len() >= 2).then_some(out)
    })
    .await;
    let texts: Vec<&str> = sent.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(texts, ["変換中の資料です", "一行目\n二行目"]);
    br.quit().await;
}

// ---- screenshots for docs/ ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshots_of_the_list_and_the_detail() {
    let d = desk(Backend::Sqlite).await;
    let tanaka_id = d
        .agent_with_password("tanaka", "田中 健太", Role::Agent, PASSWORD)
        .await;
    let tanaka = crate::common::As {
        desk: &d,
        token: d.state.store.create_api_token(tanaka_id, 0).await.unwrap(),
        user_id: tanaka_id,
    };
    // A few customers in every state.
    let (u1, c1) = d
        .customer("中村 由美", "ポイントの有効期限を教えてください")
        .await;
    let (_, c2) = d
        .customer("加藤 大輔", "領収書を発行してもらえますか？")
        .await;
    tanaka.set_status(c2, "in_progress").await;
    tanaka
        .send_text(c2, "発行いたします。宛名をお知らせください。")
        .await;
    let (_, c3) = d.customer("吉田 恵", "ありがとうございました。").await;
    tanaka.set_status(c3, "in_progress").await;
    tanaka.set_status(c3, "done").await;
    let (u4, _) = d.customer("山本 健一", "明日の予約を変更したいです").await;
    d.emulator
        .send_text(&u4, "15時以降でお願いします")
        .await
        .unwrap();
    let (u5, _) = d.customer("松本 彩", "こんにちは").await;
    d.emulator.send_sticker(&u5, "446", "1988").await.unwrap();

    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    // The detail (Reply mode): the first answer goes with the customer's reply token, the
    // second waits and goes with the photo's; the photo's caption carries the third; the
    // fourth waits, 未送信.
    br.open(&format!("/chats/{c1}")).await;
    br.wait_live().await;
    press_status(&br, "in_progress").await;
    send_text(&br, "お問い合わせありがとうございます。確認いたします。").await;
    br.wait_text(
        "the first answer",
        "#chat-history .msg-out[data-delivery='sent']",
        "確認いたします",
    )
    .await;
    send_text(
        &br,
        "お手数ですが、会員カードの写真を送っていただけますか？",
    )
    .await;
    br.wait_for("the second answer waiting", "#chat-history .mark-unsent")
        .await;
    d.emulator.send_image(&u1, photo()).await.unwrap();
    br.wait_gone("the second answer delivered", "#chat-history .mark-unsent")
        .await;
    d.emulator
        .send_text(&u1, "カードの写真です。")
        .await
        .unwrap();
    br.wait_for("the photo", "#chat-history .msg-in .msg-image img")
        .await;
    image_loaded(&br, "#chat-history .msg-in .msg-image img").await;
    send_text(
        &br,
        "ありがとうございます。ポイントの有効期限は2025年3月31日です。",
    )
    .await;
    br.wait_text(
        "the third answer",
        "#chat-history .msg-out[data-delivery='sent']",
        "有効期限",
    )
    .await;
    send_text(&br, "ほかにご不明な点はございますか？").await;
    br.wait_for("the Unsent mark", "#chat-history .mark-unsent")
        .await;
    br.wait_text(
        "why it waits",
        "#chat-history .wait-reason",
        "次のお客様メッセージで送信されます",
    )
    .await;
    let shot = br.screenshot("chat-detail.png", 1280, 800).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    // 完了 with a message still waiting asks first (issue 10).
    br.click("完了", "#chat-header [data-set-status='done']")
        .await;
    br.wait_for("the question", "#unsent-dialog[open]").await;
    br.screenshot("chat-done-unsent.png", 1280, 800).await;
    br.click("戻る", "#unsent-back").await;

    br.open("/chats").await;
    br.wait_for("the list", "#chat-list tr.chat-row").await;
    assert_eq!(br.count("#chat-list tr.chat-row").await, 5);
    let shot = br.screenshot("chat-list.png", 1280, 800).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // A phone-sized window still works (no sideways page scroll in the detail).
    br.open(&format!("/chats/{c1}")).await;
    br.wait_for("the history", "#chat-history .msg-out").await;
    br.screenshot("chat-detail-narrow.png", 390, 844).await;
    let overflow = br
        .js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            vec![],
        )
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "no horizontal scroll: {overflow}"
    );
    br.quit().await;
}

/// A photo-like PNG (a soft gradient with a card shape) for the screenshot.
fn photo() -> Vec<u8> {
    let (w, h) = (480u32, 320u32);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let card = (60..420).contains(&x) && (60..260).contains(&y);
        if card {
            let stripe = (110..140).contains(&y);
            if stripe {
                image::Rgb([40, 60, 90])
            } else {
                image::Rgb([240, 200, 90])
            }
        } else {
            image::Rgb([(150 + x / 8) as u8, (170 + y / 8) as u8, 210])
        }
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

// ---- M7: a refused message stays visible with LINE's answer, and 再送 delivers it -----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_message_shows_lines_answer_and_resend_delivers_it() {
    let d = desk(Backend::Sqlite).await;
    d.set_mode("push").await;
    let (user, conv) = d.customer("井上 直樹", "見積書をお願いします").await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open(&format!("/chats/{conv}")).await;
    br.wait_live().await;
    press_status(&br, "in_progress").await;

    // A file that is not an image: the API's reason, and the file stays chosen.
    let dir = tempfile::tempdir().unwrap();
    let memo = dir.path().join("メモ.txt");
    std::fs::write(&memo, "これは画像ではありません").unwrap();
    br.driver
        .find(By::Id("chat-file"))
        .await
        .unwrap()
        .send_keys(memo.to_str().unwrap())
        .await
        .unwrap();
    br.click("送信", "#chat-send").await;
    let error = br
        .wait_text("the refusal", "#chat-error", "送信できませんでした")
        .await;
    assert!(error.contains("画像ではありません"), "{error}");
    assert_eq!(br.text("#chat-file-name").await, "メモ.txt");
    br.click("選択を解除", "#chat-file-clear").await;
    assert_eq!(br.text("#chat-file-name").await, "選択されていません");

    // LINE refuses the push: 送信失敗 with LINE's answer and a 再送 button.
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 400,
        count: 1,
        delay_ms: 0,
    });
    send_text(&br, "お見積書を作成いたします。").await;
    let failed = br
        .wait_text(
            "the failed mark",
            "#chat-history .msg-out[data-delivery='failed']",
            "送信失敗",
        )
        .await;
    assert!(failed.contains("LINEからの応答"), "{failed}");
    assert!(d.emulator.inbox(&user).is_empty());
    br.mark_document().await;
    br.click("再送", "#chat-history [data-resend]").await;
    br.wait_gone("the failed mark gone", "#chat-history .mark-failed")
        .await;
    br.wait_for(
        "the message sent",
        "#chat-history .msg-out[data-delivery='sent']",
    )
    .await;
    assert!(br.same_document().await);
    let inbox = d.emulator.inbox(&user);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["text"], "お見積書を作成いたします。");
    br.quit().await;
}

// ---- C7: a customer's image not yet fetched says so, then shows up live -------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_image_shows_not_yet_fetched_until_it_arrives() {
    let d = desk(Backend::Sqlite).await;
    let (user, conv) = d.customer("木村 愛", "壊れた部品の写真です").await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open(&format!("/chats/{conv}")).await;
    br.wait_live().await;
    // LINE's content API fails once: the desk retries after a backoff.
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Content,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    d.emulator.send_image(&user, png(200, 150)).await.unwrap();
    br.wait_text(
        "not yet fetched",
        "#chat-history .msg-in .msg-pending",
        "まだ取得していません",
    )
    .await;
    br.mark_document().await;
    br.wait_for(
        "the image, once fetched",
        "#chat-history .msg-in .msg-image img",
    )
    .await;
    image_loaded(&br, "#chat-history .msg-in .msg-image img").await;
    assert_eq!(br.count("#chat-history .msg-pending").await, 0);
    assert!(br.same_document().await, "arrived live");
    // Full size in a new tab.
    let link = br
        .js(
            "const a = document.querySelector('#chat-history .msg-image');
             return [a.getAttribute('target'), a.getAttribute('href')];",
            vec![],
        )
        .await;
    assert_eq!(link[0], "_blank");
    assert!(link[1].as_str().unwrap().starts_with("/api/v1/media/"));
    br.quit().await;
}

// ---- V1: filters, paging, and the English UI ----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_filters_and_pages() {
    let d = desk(Backend::Sqlite).await;
    let sato_id = d
        .state
        .store
        .user_by_login("sato")
        .await
        .unwrap()
        .unwrap()
        .id;
    let sato = crate::common::As {
        desk: &d,
        token: d.state.store.create_api_token(sato_id, 0).await.unwrap(),
        user_id: sato_id,
    };
    let mut convs = Vec::new();
    for i in 0..52 {
        let user = d
            .emulator
            .follow(&format!("顧客{i:02}"), None)
            .await
            .unwrap();
        d.emulator.send_text(&user, "こんにちは").await.unwrap();
        convs.push(user);
    }
    let list = d.conversations().await;
    let taken: Vec<i64> = list
        .iter()
        .take(2)
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    for id in &taken {
        assert_eq!(sato.set_status(*id, "in_progress").await.0, 200);
    }

    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    // All filters empty lists everyone, newest first, 50 to a page.
    assert_eq!(br.count("#chat-list tr.chat-row").await, 50);
    br.click("次のページ", "#next-page").await;
    br.until("the second page", || async {
        (br.count("#chat-list tr.chat-row").await == 2).then_some(())
    })
    .await;
    assert!(br.text(".pager").await.contains("最初のページへ"));
    assert!(
        br.text("#chat-list").await.contains("顧客00"),
        "the oldest last"
    );

    // ステータス 対応中, 対応中エージェント.
    br.open("/chats").await;
    let select = br.driver.find(By::Id("f-status")).await.unwrap();
    select.send_keys("対応中").await.unwrap();
    br.click("検索", "#search").await;
    br.until("only the chats in progress", || async {
        (br.count("#chat-list tr.chat-row").await == 2).then_some(())
    })
    .await;
    assert!(
        br.driver
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains("status=in_progress")
    );
    br.open("/chats?agent=%E4%BD%90%E8%97%A4").await; // 佐藤
    assert_eq!(br.count("#chat-list tr.chat-row").await, 2);
    assert_eq!(
        br.driver
            .find(By::Id("f-agent"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("佐藤"),
        "the form shows the search"
    );
    // 顧客登録状態 登録済: nobody is linked yet.
    br.open("/chats?registered=true").await;
    assert_eq!(br.count("#chat-list tr.chat-row").await, 0);
    assert!(
        br.text("#chat-list")
            .await
            .contains("条件に合うLINEチャットはありません")
    );
    // A customer ID that is not one.
    br.open("/chats?customer_id=abc").await;
    assert!(br.text("#chat-results .flash-error").await.contains("#C15"));

    // English (B3): the same screens, no missing strings.
    br.open("/chats").await;
    br.click("English", "form[action='/me/locale'] button")
        .await;
    br.wait_text("English headers", "#chat-list thead", "Display name")
        .await;
    let body = br.js("return document.body.innerText", vec![]).await;
    let body = body.as_str().unwrap();
    assert!(
        body.contains("LINE chat list") && body.contains("Handling agent"),
        "{body}"
    );
    assert!(!body.contains("chats-"), "a missing string: {body}");
    br.open(&format!("/chats/{}", taken[0])).await;
    br.wait_text("English detail", "#chat-header", "Display name")
        .await;
    let body = br.js("return document.body.innerText", vec![]).await;
    let body = body.as_str().unwrap();
    assert!(
        body.contains("In progress") && body.contains("Send"),
        "{body}"
    );
    assert!(!body.contains("chats-"), "a missing string: {body}");
    br.quit().await;
}

// ---- B2: the optional sound / desktop notification -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_can_be_allowed_and_a_new_customer_message_alerts() {
    let d = desk(Backend::Sqlite).await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.wait_live().await;
    assert_eq!(br.text("#notify-toggle").await, "通知を許可");
    br.click("通知を許可", "#notify-toggle").await;
    br.wait_for("the switch on", "#notify-toggle[aria-pressed='true']")
        .await;
    // Remembered in this browser.
    br.driver.refresh().await.unwrap();
    br.wait_for(
        "still on after a reload",
        "#notify-toggle[aria-pressed='true']",
    )
    .await;
    br.wait_live().await;
    let user = d.emulator.follow("清水 花", None).await.unwrap();
    d.emulator
        .send_text(&user, "至急ご連絡ください")
        .await
        .unwrap();
    br.wait_for("an alert for the new message", "body[data-alerts='1']")
        .await;
    // And off again.
    br.click("off", "#notify-toggle").await;
    br.wait_for("the switch off", "#notify-toggle[aria-pressed='false']")
        .await;
    br.quit().await;
}
