//! 顧客管理 and linking in a real Chromium (headless, Japanese), on SQLite and PostgreSQL:
//! the 顧客 button of LINEチャット詳細 (search, pick, 実行; 戻る), finding the chat by the
//! customer's ID and name in LINEチャット一覧 (L1, L3, V1), and a passcode issued on the
//! customer page, sent from the emulator, linking the open chat live (L2, B2).
//!
//! The SQLite run of the passcode test takes `customer-detail.png` and `customer-link.png`
//! (into `docs/screenshots/` with `UPDATE_SCREENSHOTS=1`).

use crate::common::browser::Browser;
use crate::common::{Backend, TestDesk};
use desk_store::users::Role;
use serde_json::{Value, json};
use thirtyfour::prelude::*;

const PASSWORD: &str = "desk-password-1";

async fn desk(b: Backend) -> TestDesk {
    let d = TestDesk::start(b).await;
    d.agent_with_password("sato", "佐藤 美咲", Role::Agent, PASSWORD)
        .await;
    d
}

/// A customer made through the API; returns its id.
async fn customer(d: &TestDesk, body: Value) -> i64 {
    let resp = d
        .http
        .post(format!("{}/api/v1/customers", d.url))
        .bearer_auth(&d.token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
}

/// Replaces an input's value (typing, as an agent would).
async fn fill(br: &Browser, css: &str, text: &str) {
    let el = br.wait_for(css, css).await;
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// The chat rows the list shows now (their conversation ids).
async fn listed(br: &Browser) -> Vec<i64> {
    br.js(
        "return [...document.querySelectorAll('#chat-list tr.chat-row')].map(r => Number(r.dataset.id));",
        vec![],
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|v| v.as_i64().unwrap())
    .collect()
}

/// Waits until the list shows exactly `ids`.
async fn wait_listed(br: &Browser, what: &str, ids: &[i64]) {
    br.until(what, || async { (listed(br).await == ids).then_some(()) })
        .await;
}

async fn link_by_the_customer_button(b: Backend) {
    let d = desk(b).await;
    let hanako = customer(&d, json!({"name": "山田 花子", "phone": "090-1234-5678"})).await;
    customer(&d, json!({"name": "山本 太郎", "phone": "03-1111-2222"})).await;
    let (_, conv) = d.customer("はなこ", "住所を変更したいです").await;
    let (_, other) = d.customer("だれか", "こんにちは").await;

    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open(&format!("/chats/{conv}")).await;
    let label = br.text("#customer-button").await;
    assert_eq!(label, "未登録", "{b:?}");

    // 戻る: back to the chat, nothing linked.
    br.click("the 顧客 button", "#customer-button").await;
    br.wait_for("the customer search", "#link-results").await;
    br.click("戻る", "#link-back").await;
    br.wait_for("the chat again", "#chat-header").await;
    assert_eq!(br.text("#customer-button").await, "未登録");

    // Search by name, pick the customer, 実行.
    br.click("the 顧客 button", "#customer-button").await;
    fill(&br, "#s-name", "山田").await;
    br.click("検索", "#customer-search").await;
    br.until("only 山田 花子 listed", || async {
        let ids = br
            .js(
                "return [...document.querySelectorAll('#link-results tr[data-id]')].map(r => Number(r.dataset.id));",
                vec![],
            )
            .await;
        (ids == json!([hanako])).then_some(())
    })
    .await;
    // ID and phone search find the same customer (#C15 as 15, phone without hyphens).
    fill(&br, "#s-name", "").await;
    fill(&br, "#s-phone", "09012345678").await;
    br.click("検索", "#customer-search").await;
    br.wait_text("found by phone", "#link-results", "山田 花子")
        .await;
    fill(&br, "#s-phone", "").await;
    fill(&br, "#s-id", &format!("#C{hanako}")).await;
    br.click("検索", "#customer-search").await;
    br.wait_text("found by ID", "#link-results", &format!("#C{hanako}"))
        .await;
    br.click("the customer's radio", &format!("#pick-{hanako}"))
        .await;
    br.click("実行", "#link-execute").await;
    let label = br
        .wait_text(
            "the chat shows its customer",
            "#customer-button",
            "山田 花子",
        )
        .await;
    assert_eq!(label, format!("#C{hanako} 山田 花子"), "{b:?}");
    let c = d.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c["customer"]["id"], hanako);

    // LINEチャット一覧 finds the chat by the customer's ID (typed 15) and name.
    br.open("/chats").await;
    wait_listed(&br, "both chats", &[other, conv]).await;
    fill(&br, "#f-customer-id", &hanako.to_string()).await;
    br.click("検索", "#search").await;
    wait_listed(&br, "the chat found by customer ID", &[conv]).await;
    let row = br
        .text(&format!("#chat-list tr.chat-row[data-id='{conv}']"))
        .await;
    assert!(
        row.contains(&format!("#C{hanako}")) && row.contains("山田 花子"),
        "{row}"
    );
    fill(&br, "#f-customer-id", "").await;
    fill(&br, "#f-customer-name", "花子").await;
    br.click("検索", "#search").await;
    // The list already shows [conv] from the ID search: wait for the new page itself, or
    // its navigation could land after the next `open`.
    br.until("the name search page", || async {
        let url = br.driver.current_url().await.ok()?.to_string();
        url.contains("customer_name=%E8%8A%B1%E5%AD%90")
            .then_some(())
    })
    .await;
    wait_listed(&br, "the chat found by customer name", &[conv]).await;
    br.open("/chats?registered=false").await;
    wait_listed(&br, "unregistered chats", &[other]).await;

    // Unlink from the 顧客 page (the form asks first).
    br.open(&format!("/chats/{conv}/customer")).await;
    assert!(
        br.text("#link-current").await.contains("山田 花子"),
        "the page names the linked customer"
    );
    br.js("window.confirm = () => true; return true;", vec![])
        .await;
    br.click("関連付けを解除", "#link-unlink").await;
    br.wait_text("unlinked", "#customer-button", "未登録").await;
    br.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_by_the_customer_button_sqlite() {
    link_by_the_customer_button(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_by_the_customer_button_postgres() {
    link_by_the_customer_button(Backend::Postgres).await;
}

async fn passcode_links_the_open_chat_live(b: Backend) {
    let d = desk(b).await;
    let id = customer(
        &d,
        json!({"name": "山田 花子", "phone": "090-1234-5678", "email": "hanako@example.jp",
               "tags": ["VIP", "定期便"], "notes": "平日の夕方は不在"}),
    )
    .await;
    let (user, conv) = d.customer("はなこ", "LINEで問い合わせできますか？").await;

    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    // Nav: 顧客管理 → the list → the customer.
    br.click("顧客管理", "nav a[href='/customers']").await;
    br.wait_text("the customer in the list", "#customer-list", "山田 花子")
        .await;
    br.click(
        "the customer",
        &format!("#customer-list tr[data-id='{id}'] a.customer-name"),
    )
    .await;
    br.wait_for("the customer page", "#customer-code").await;
    assert_eq!(br.text("#passcode-none").await, "未発行");
    // パスコード登録: the default expiry is a week ahead.
    br.click("登録", "#passcode-issue").await;
    let code = br.text("#passcode-value").await;
    assert!(
        code.parse::<desk_core::passcode::Passcode>().is_ok(),
        "{code}"
    );
    assert!(
        br.text("#customer-history")
            .await
            .contains("パスコード発行")
    );

    // The agent watches the chat; the customer sends the passcode from LINE.
    br.open(&format!("/chats/{conv}")).await;
    br.wait_live().await;
    br.mark_document().await;
    d.emulator.send_text(&user, &code).await.unwrap();
    let label = br
        .wait_text(
            "the chat linked live",
            "#customer-button",
            &format!("#C{id}"),
        )
        .await;
    assert_eq!(label, format!("#C{id} 山田 花子"), "{b:?}");
    br.wait_text("the passcode message", "#chat-history .msg-in", &code)
        .await;
    br.wait_text(
        "the system line",
        "#chat-history .msg-system",
        &format!("#C{id} 山田 花子 と関連付けました"),
    )
    .await;
    assert!(br.same_document().await, "no reload");

    // The customer page shows the LINE account, the used passcode is gone, the history
    // says who linked it and how.
    br.open(&format!("/customers/{id}")).await;
    br.wait_for(
        "the linked LINE account",
        &format!("#customer-chats tr[data-conversation='{conv}']"),
    )
    .await;
    assert_eq!(br.text("#passcode-none").await, "未発行");
    let history = br.text("#customer-history").await;
    assert!(
        history.contains("LINE関連付け")
            && history.contains("LINEユーザー（パスコード）")
            && history.contains(&code),
        "{history}"
    );
    if b == Backend::Sqlite {
        br.click(
            "更新 (a new passcode for the screenshot)",
            "#passcode-issue",
        )
        .await;
        br.wait_for("the new passcode", "#passcode-value").await;
        br.screenshot("customer-detail.png", 1280, 1400).await;
        br.open(&format!(
            "/chats/{conv}/customer?name={}",
            "%E5%B1%B1%E7%94%B0"
        ))
        .await;
        br.wait_for("the results", "#link-results").await;
        br.screenshot("customer-link.png", 1280, 800).await;
    }

    // Editing on the page records the change.
    br.open(&format!("/customers/{id}")).await;
    fill(&br, "#c-phone", "080-9999-0000").await;
    br.click("変更を保存", "#customer-save").await;
    br.wait_text("saved", ".flash-ok", "変更を保存しました")
        .await;
    let history = br.text("#customer-history").await;
    assert!(
        history.contains("090-1234-5678") && history.contains("080-9999-0000"),
        "{history}"
    );
    let el = br.driver.find(By::Id("c-phone")).await.unwrap();
    assert_eq!(el.value().await.unwrap().as_deref(), Some("080-9999-0000"));
    br.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passcode_links_the_open_chat_live_sqlite() {
    passcode_links_the_open_chat_live(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passcode_links_the_open_chat_live_postgres() {
    passcode_links_the_open_chat_live(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_search_and_delete_on_the_customer_pages() {
    let d = desk(Backend::Sqlite).await;
    let (_, conv) = d.customer("はなこ", "こんにちは").await;
    let br = Browser::start(&d).await;
    br.login("sato", PASSWORD).await;
    br.open("/customers").await;
    // A refused form keeps what was typed and says why.
    fill(&br, "#c-name", "鈴木 一郎").await;
    fill(&br, "#c-phone", "電話なし").await;
    br.click("登録", "#customer-create").await;
    br.wait_text("the phone error", ".flash-error", "電話番号")
        .await;
    assert_eq!(
        br.driver
            .find(By::Id("c-name"))
            .await
            .unwrap()
            .value()
            .await
            .unwrap()
            .as_deref(),
        Some("鈴木 一郎")
    );
    fill(&br, "#c-phone", "０９０－１１１１－２２２２").await;
    fill(&br, "#c-tags", "VIP、法人").await;
    br.click("登録", "#customer-create").await;
    let ok = br
        .wait_text("registered", ".flash-ok", "登録しました")
        .await;
    let id: i64 = ok
        .split("#C")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{ok}"));
    assert!(br.text(".tags").await.contains("法人"));
    // Full-width digits typed on the register form are found by half-width digits.
    br.open("/customers?phone=09011112222").await;
    br.wait_text("found by phone", "#customer-list", "鈴木 一郎")
        .await;
    br.open("/customers?id=abc").await;
    br.wait_text("a bad ID", ".flash-error", "15").await;

    // Delete: the linked chat becomes 未登録, its messages stay.
    let resp = d
        .http
        .put(format!("{}/api/v1/conversations/{conv}/customer", d.url))
        .bearer_auth(&d.token)
        .json(&json!({"customer_id": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    br.open(&format!("/customers/{id}")).await;
    br.js("window.confirm = () => true; return true;", vec![])
        .await;
    br.click("削除する", "#customer-delete").await;
    br.wait_text("deleted", ".flash-ok", "削除しました").await;
    let c = d.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c["customer"], Value::Null);
    assert_eq!(d.messages(conv).await.len(), 1);
    br.quit().await;
}
