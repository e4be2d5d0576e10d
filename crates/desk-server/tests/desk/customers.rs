//! Customers through the JSON API (docs/interface.md), on SQLite and PostgreSQL, with the LINE
//! emulator playing the customers: search, edit and history, delete, linking by the API
//! (L1) and by a passcode sent from LINE (L2), and the chat list's customer filters (V1).

use std::time::Duration;

use crate::common::{Backend, TestDesk, backend_test, eventually};
use desk_store::on_db;
use serde_json::{Value, json};

/// A JSON call with the admin's token: (status, body).
async fn call(d: &TestDesk, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = d
        .http
        .request(method, format!("{}{path}", d.url))
        .bearer_auth(&d.token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn create(d: &TestDesk, body: Value) -> Value {
    let (status, c) = call(d, "POST", "/api/v1/customers", Some(body)).await;
    assert_eq!(status, 201, "{c}");
    c
}

async fn search(d: &TestDesk, query: &str) -> Vec<String> {
    d.get(&format!("/api/v1/customers?{query}")).await["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The LINE user ids of the chat list with this query.
async fn chats(d: &TestDesk, query: &str) -> Vec<String> {
    d.get(&format!("/api/v1/conversations?{query}")).await["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["line_user_id"].as_str().unwrap().to_owned())
        .collect()
}

fn enc(s: &str) -> String {
    desk_server::auth::percent_encode(s)
}

async fn history(d: &TestDesk, id: i64) -> Vec<Value> {
    d.get(&format!("/api/v1/customers/{id}/history")).await["history"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until the desk has judged the passcode attempt of this LINE user's newest
/// message; returns its outcome (`linked` | `failed` | `throttled`).
async fn judged(d: &TestDesk, line_user: &str, count: i64) -> String {
    let store = d.state.store.clone();
    eventually("the passcode attempt is checked", || {
        let store = store.clone();
        async move {
            let rows: Vec<String> = on_db!(store.db(), |p| sqlx::query_scalar(
                "SELECT a.outcome FROM passcode_attempts a JOIN conversations c ON c.id = a.conversation_id
                 WHERE c.line_user_id = $1 ORDER BY a.at, a.message_id")
                .bind(line_user).fetch_all(p).await)
            .unwrap();
            (rows.len() as i64 >= count).then(|| rows.last().cloned().unwrap())
        }
    })
    .await
}

backend_test!(create_search_edit_and_the_history);
async fn create_search_edit_and_the_history(b: Backend) {
    let d = TestDesk::start(b).await;
    let hanako = create(
        &d,
        json!({"name": " 山田 花子 ", "phone": "090-1234-5678", "email": "hanako@example.jp",
               "notes": "折り返しは夕方", "tags": ["VIP", " VIP ", "要注意"]}),
    )
    .await;
    let id = hanako["id"].as_i64().unwrap();
    assert_eq!(hanako["code"], format!("#C{id}"), "{b:?}");
    assert_eq!(hanako["name"], "山田 花子");
    assert_eq!(hanako["tags"], json!(["VIP", "要注意"]));
    assert_eq!(hanako["line_users"], json!([]));
    assert_eq!(hanako["line_passcode"], Value::Null);
    create(&d, json!({"name": "鈴木 太郎", "phone": "03-1111-2222"})).await;

    // Search by ID (15 and #C15), part of the name, phone digits with or without hyphens.
    assert_eq!(
        search(&d, &format!("id={id}")).await,
        ["山田 花子"],
        "{b:?}"
    );
    assert_eq!(
        search(&d, &format!("id={}", enc(&format!("#C{id}")))).await,
        ["山田 花子"]
    );
    assert_eq!(
        search(&d, &format!("name={}", enc("花子"))).await,
        ["山田 花子"]
    );
    assert_eq!(
        search(&d, &format!("name={}", enc("山田花"))).await,
        ["山田 花子"]
    );
    assert_eq!(search(&d, "phone=09012345678").await, ["山田 花子"]);
    assert_eq!(search(&d, "phone=090-1234-5678").await, ["山田 花子"]);
    assert_eq!(search(&d, "phone=1111").await, ["鈴木 太郎"]);
    assert_eq!(search(&d, "").await, ["鈴木 太郎", "山田 花子"]);
    assert_eq!(
        call(&d, "GET", "/api/v1/customers?id=abc", None).await.0,
        400
    );

    // Refused input names the problem.
    let (status, e) = call(&d, "POST", "/api/v1/customers", Some(json!({"name": " "}))).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    let (status, _) = call(
        &d,
        "POST",
        "/api/v1/customers",
        Some(json!({"name": "x", "phone": "tel"})),
    )
    .await;
    assert_eq!(status, 400);

    // Edit: one history row per changed field, with who and when.
    let (status, c) = call(
        &d,
        "PATCH",
        &format!("/api/v1/customers/{id}"),
        Some(json!({"name": "山田 華子", "phone": "090-1234-5678", "tags": ["VIP"]})),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        (c["name"].as_str(), &c["tags"]),
        (Some("山田 華子"), &json!(["VIP"]))
    );
    let h = history(&d, id).await;
    let changes: Vec<(&str, &str, &str, &str)> = h
        .iter()
        .filter(|h| h["action"] == "updated")
        .map(|h| {
            (
                h["field"].as_str().unwrap(),
                h["old_value"].as_str().unwrap(),
                h["new_value"].as_str().unwrap(),
                h["actor"]["login"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        [
            ("tags", "VIP, 要注意", "VIP", "admin"),
            ("name", "山田 花子", "山田 華子", "admin"),
        ],
        "{b:?}"
    );
    assert!(
        h.iter()
            .all(|h| h["at"].as_str().is_some_and(|t| t.ends_with("+09:00")))
    );
    assert_eq!(h.last().unwrap()["action"], "created");
    assert_eq!(
        call(&d, "GET", "/api/v1/customers/99999", None).await.0,
        404
    );
    let (status, _) = call(
        &d,
        "PATCH",
        "/api/v1/customers/99999",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 404);
}

backend_test!(link_by_the_api_and_find_the_chat_by_every_customer_field);
async fn link_by_the_api_and_find_the_chat_by_every_customer_field(b: Backend) {
    let d = TestDesk::start(b).await;
    let (u1, c1) = d.customer("はなこ", "こんにちは").await;
    let (u2, _c2) = d.customer("たろう", "すみません").await;
    let id = create(&d, json!({"name": "山田 花子", "phone": "090-1234-5678"})).await["id"]
        .as_i64()
        .unwrap();
    let mut sse = Sse::open(&d).await;

    let (status, conv) = call(
        &d,
        "PUT",
        &format!("/api/v1/conversations/{c1}/customer"),
        Some(json!({"customer_id": id})),
    )
    .await;
    assert_eq!(status, 200, "{conv}");
    assert_eq!(conv["customer"]["id"], id, "{b:?}");
    assert_eq!(conv["customer"]["code"], format!("#C{id}"));
    assert_eq!(conv["customer"]["name"], "山田 花子");
    assert_eq!(conv["customer"]["phone"], "090-1234-5678");
    // Live: the chat's change goes out on the event stream.
    sse.until("conversation", |v| v["id"] == c1).await;

    let code = enc(&format!("#C{id}"));
    assert_eq!(
        chats(&d, &format!("customer_id={id}")).await,
        [u1.as_str()],
        "{b:?}"
    );
    assert_eq!(
        chats(&d, &format!("customer_id={code}")).await,
        [u1.as_str()]
    );
    assert_eq!(
        chats(&d, &format!("customer_name={}", enc("花子"))).await,
        [u1.as_str()]
    );
    assert_eq!(chats(&d, "phone=090-1234-5678").await, [u1.as_str()]);
    assert_eq!(chats(&d, "phone=09012345678").await, [u1.as_str()]);
    assert_eq!(chats(&d, "registered=true").await, [u1.as_str()]);
    assert_eq!(chats(&d, "registered=false").await, [u2.as_str()]);
    let c = d.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(c["line_users"], json!([u1]));
    assert_eq!(c["conversations"][0]["id"], c1);

    // Errors: unknown customer or chat, no customer id.
    let put = |conv: i64, body: Value| {
        let d = &d;
        async move {
            call(
                d,
                "PUT",
                &format!("/api/v1/conversations/{conv}/customer"),
                Some(body),
            )
            .await
            .0
        }
    };
    assert_eq!(put(c1, json!({"customer_id": 99999})).await, 404);
    assert_eq!(put(99999, json!({"customer_id": id})).await, 404);
    assert_eq!(put(c1, json!({"customer_id": "abc"})).await, 400);
    assert_eq!(
        put(c1, json!({"customer_id": format!("#C{id}")})).await,
        200
    );

    // Unlink: 未登録 again; the history has both.
    let (status, conv) = call(
        &d,
        "DELETE",
        &format!("/api/v1/conversations/{c1}/customer"),
        None,
    )
    .await;
    assert_eq!((status, &conv["customer"]), (200, &Value::Null), "{b:?}");
    sse.until("conversation", |v| v["id"] == c1).await;
    assert!(chats(&d, "registered=true").await.is_empty());
    let h = history(&d, id).await;
    let links: Vec<(&str, &str, &str)> = h
        .iter()
        .filter(|h| h["line_user_id"].is_string())
        .map(|h| {
            (
                h["action"].as_str().unwrap(),
                h["line_user_id"].as_str().unwrap(),
                h["via"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        links,
        [
            ("unlinked", u1.as_str(), "agent"),
            ("linked", u1.as_str(), "agent")
        ],
        "{b:?}"
    );
    assert_eq!(h[0]["actor"]["login"], "admin");
}

backend_test!(deleting_a_customer_keeps_the_chats_unregistered_with_their_messages);
async fn deleting_a_customer_keeps_the_chats_unregistered_with_their_messages(b: Backend) {
    let d = TestDesk::start(b).await;
    let (u1, c1) = d.customer("はなこ", "こんにちは").await;
    let id = create(&d, json!({"name": "山田 花子"})).await["id"]
        .as_i64()
        .unwrap();
    call(
        &d,
        "PUT",
        &format!("/api/v1/conversations/{c1}/customer"),
        Some(json!({"customer_id": id})),
    )
    .await;
    let (status, _) = call(&d, "DELETE", &format!("/api/v1/customers/{id}"), None).await;
    assert_eq!(status, 204, "{b:?}");
    assert_eq!(
        call(&d, "GET", &format!("/api/v1/customers/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(
        call(&d, "DELETE", &format!("/api/v1/customers/{id}"), None)
            .await
            .0,
        404
    );
    assert_eq!(chats(&d, "registered=false").await, [u1]);
    let msgs = d.messages(c1).await;
    assert_eq!(msgs[0]["text"], "こんにちは");
    // The history is still there, ending with the deletion.
    let h = history(&d, id).await;
    assert_eq!(h[0]["action"], "deleted");
    assert_eq!(h[1]["action"], "unlinked");
    assert_eq!(h[1]["via"], "deleted");
    assert_eq!(
        call(&d, "GET", "/api/v1/customers/99999/history", None)
            .await
            .0,
        404
    );
}

backend_test!(a_passcode_sent_from_line_links_the_chat);
async fn a_passcode_sent_from_line_links_the_chat(b: Backend) {
    let d = TestDesk::start(b).await;
    let id = create(&d, json!({"name": "山田 花子"})).await["id"]
        .as_i64()
        .unwrap();
    let (status, issued) = call(
        &d,
        "POST",
        &format!("/api/v1/customers/{id}/line-passcode"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let code = issued["passcode"].as_str().unwrap().to_owned();
    assert!(
        code.parse::<desk_core::passcode::Passcode>().is_ok(),
        "{code}"
    );
    // Valid for 7 days by default.
    let until = chrono::DateTime::parse_from_rfc3339(issued["valid_until"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    let days = (until - d.state.now_ms()) as f64 / 86_400_000.0;
    assert!((6.99..=7.0).contains(&days), "{days}");
    let c = d.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(c["line_passcode"]["passcode"], code.as_str());
    assert_eq!(c["line_passcode"]["expired"], false);

    let user = d.emulator.follow("はなこ", None).await.unwrap();
    let conv = eventually("the chat", || async { d.conversation_of(&user).await }).await;
    let conv_id = conv["id"].as_i64().unwrap();
    let mut sse = Sse::open(&d).await;
    d.emulator.send_text(&user, &code).await.unwrap();
    sse.until("conversation", |v| v["id"] == conv_id).await;
    let linked = eventually("the chat is linked", || async {
        let c = d.get(&format!("/api/v1/conversations/{conv_id}")).await;
        (c["customer"]["id"] == id).then_some(c)
    })
    .await;
    assert_eq!(linked["customer"]["name"], "山田 花子", "{b:?}");
    // The passcode message stays; a system line follows it, then the desk's confirmation
    // to the customer (LINE設定, on the passcode message's own reply token).
    let msgs = eventually("the system line and the confirmation", || async {
        let m = d.messages(conv_id).await;
        (m.len() == 3 && m[2]["delivery"] == "sent").then_some(m)
    })
    .await;
    assert_eq!(msgs[2]["direction"], "out", "{b:?}");
    assert_eq!(
        msgs[2]["agent"],
        Value::Null,
        "{b:?}: the desk's own answer"
    );
    assert_eq!(
        (msgs[0]["direction"].as_str(), msgs[0]["text"].as_str()),
        (Some("in"), Some(code.as_str()))
    );
    assert_eq!(msgs[1]["direction"], "system", "{b:?}");
    assert_eq!(
        msgs[1]["text"],
        format!("#C{id} 山田 花子 と関連付けました")
    );
    assert_eq!(msgs[1]["details"]["event"], "customer_linked");
    let h = history(&d, id).await;
    assert_eq!(
        (
            &h[0]["action"],
            &h[0]["via"],
            &h[0]["new_value"],
            &h[0]["actor"],
            &h[0]["line_user_id"]
        ),
        (
            &json!("linked"),
            &json!("passcode"),
            &json!(code),
            &Value::Null,
            &json!(user)
        ),
        "{b:?}"
    );
    // Used up.
    let c = d.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(c["line_passcode"], Value::Null);
    assert_eq!(c["line_users"], json!([user]));

    // A second LINE user of the same customer, typing full-width on their phone.
    let (_, issued) = call(
        &d,
        "POST",
        &format!("/api/v1/customers/{id}/line-passcode"),
        Some(json!({"valid_until": "2099-01-01"})),
    )
    .await;
    assert_eq!(issued["error"]["code"], "bad_request", "more than 90 days");
    let (_, issued) = call(
        &d,
        "POST",
        &format!("/api/v1/customers/{id}/line-passcode"),
        Some(json!({})),
    )
    .await;
    let code2 = issued["passcode"].as_str().unwrap().to_owned();
    let wide: String = code2
        .chars()
        .map(|c| match c {
            '-' => 'ー',
            c => char::from_u32(c as u32 + 0xFEE0).unwrap(),
        })
        .collect();
    let (u2, c2) = d.customer("はなこ2", "はじめまして").await;
    d.emulator.send_text(&u2, &wide).await.unwrap();
    assert_eq!(judged(&d, &u2, 1).await, "linked", "{b:?}");
    let c = d.get(&format!("/api/v1/conversations/{c2}")).await;
    assert_eq!(c["customer"]["id"], id);
    assert_eq!(
        chats(&d, &format!("customer_id={id}")).await.len(),
        2,
        "a customer may have several LINE users"
    );
}

backend_test!(expired_replaced_used_and_wrong_passcodes_link_nothing);
async fn expired_replaced_used_and_wrong_passcodes_link_nothing(b: Backend) {
    let d = TestDesk::start(b).await;
    let id = create(&d, json!({"name": "山田 花子"})).await["id"]
        .as_i64()
        .unwrap();
    let issue = |valid_until: Option<String>| {
        let d = &d;
        async move {
            let body = valid_until.map(|v| json!({"valid_until": v}));
            let (status, v) = call(
                d,
                "POST",
                &format!("/api/v1/customers/{id}/line-passcode"),
                body,
            )
            .await;
            assert_eq!(status, 200, "{v}");
            v["passcode"].as_str().unwrap().to_owned()
        }
    };
    let (user, conv) = d.customer("はなこ", "こんにちは").await;
    let mut sent = 0;
    let mut attempt = |text: String| {
        sent += 1;
        let (d, user, n) = (&d, user.clone(), sent);
        async move {
            d.emulator.send_text(&user, &text).await.unwrap();
            judged(d, &user, n).await
        }
    };

    // Expired: valid for two seconds, sent after them.
    let soon = chrono::DateTime::from_timestamp_millis(d.state.now_ms() + 2_000)
        .unwrap()
        .to_rfc3339();
    let expiring = issue(Some(soon)).await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    assert_eq!(attempt(expiring).await, "failed", "{b:?}");
    // Replaced by a newer one.
    let replaced = issue(None).await;
    let current = issue(None).await;
    assert_eq!(attempt(replaced).await, "failed", "{b:?}");
    // Wrong.
    let wrong = desk_core::passcode::generate(
        (current
            .parse::<desk_core::passcode::Passcode>()
            .unwrap()
            .number()
            + 1)
            % 1_000_000,
    );
    assert_eq!(attempt(wrong.to_string()).await, "failed", "{b:?}");
    let c = d.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c["customer"], Value::Null, "{b:?}");

    // Used: linked by another LINE user first.
    let (other, _) = d.customer("たろう", "こんにちは").await;
    d.emulator.send_text(&other, &current).await.unwrap();
    assert_eq!(judged(&d, &other, 1).await, "linked", "{b:?}");
    assert_eq!(attempt(current).await, "failed", "{b:?}");
    let c = d.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c["customer"], Value::Null, "{b:?}");
    // Nothing but the messages themselves in the chat (no system line).
    let msgs = d.messages(conv).await;
    assert!(msgs.iter().all(|m| m["direction"] == "in"), "{msgs:?}");
    assert_eq!(msgs.len(), 5);
}

backend_test!(five_wrong_passcodes_throttle_even_a_right_sixth);
async fn five_wrong_passcodes_throttle_even_a_right_sixth(b: Backend) {
    let d = TestDesk::start(b).await;
    let id = create(&d, json!({"name": "山田 花子"})).await["id"]
        .as_i64()
        .unwrap();
    let (_, issued) = call(
        &d,
        "POST",
        &format!("/api/v1/customers/{id}/line-passcode"),
        None,
    )
    .await;
    let code: desk_core::passcode::Passcode = issued["passcode"].as_str().unwrap().parse().unwrap();
    let (user, conv) = d.customer("はなこ", "こんにちは").await;
    for i in 1..=5 {
        let wrong = desk_core::passcode::generate((code.number() + i) % 1_000_000);
        d.emulator.send_text(&user, wrong.as_str()).await.unwrap();
    }
    d.emulator.send_text(&user, code.as_str()).await.unwrap();
    assert_eq!(judged(&d, &user, 6).await, "throttled", "{b:?}");
    let c = d.get(&format!("/api/v1/conversations/{conv}")).await;
    assert_eq!(c["customer"], Value::Null, "{b:?}");
    // The passcode is still there for its rightful owner.
    let c = d.get(&format!("/api/v1/customers/{id}")).await;
    assert_eq!(c["line_passcode"]["passcode"], code.as_str());
}

/// A minimal reader of `/api/v1/events`.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(d: &TestDesk) -> Sse {
        let resp = d
            .http
            .get(format!("{}/api/v1/events", d.url))
            .bearer_auth(&d.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut sse = Sse {
            resp,
            buf: String::new(),
        };
        sse.until("ready", |_| true).await;
        sse
    }

    /// Reads events until one named `name` whose data satisfies `pred` (10 s at most).
    async fn until(&mut self, name: &str, pred: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let event = block.lines().find_map(|l| l.strip_prefix("event:"));
                let data = block.lines().find_map(|l| l.strip_prefix("data:"));
                if let (Some(e), Some(data)) = (event, data)
                    && e.trim() == name
                    && pred(&serde_json::from_str(data.trim()).unwrap_or(Value::Null))
                {
                    return;
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {name} event within 10 s"))
                .unwrap()
                .expect("the stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn the_openapi_document_describes_the_customer_endpoints() {
    let d = TestDesk::start(crate::common::Backend::Sqlite).await;
    let doc = d.get("/api/v1/openapi.json").await;
    for (path, method) in [
        ("/customers", "get"),
        ("/customers", "post"),
        ("/customers/{id}", "patch"),
        ("/customers/{id}", "delete"),
        ("/customers/{id}/history", "get"),
        ("/customers/{id}/line-passcode", "post"),
        ("/conversations/{id}/customer", "put"),
        ("/conversations/{id}/customer", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(doc["components"]["schemas"]["Customer"]["properties"]["line_users"].is_object());
}
