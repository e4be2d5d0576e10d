//! Restart-safety of sending (issue 4): the real `linedesk serve` process is killed with
//! SIGKILL while messages wait or are in flight; after a restart each is delivered exactly
//! once (push, thanks to its retry key) or shown as uncertain (a reply in flight: the reply
//! API has no retry key, so it is never resent blindly).

mod common;

use std::time::{Duration, Instant};

use common::{Desk, free_port, kill9};
use desk_store::Store;
use desk_store::users::Role;
use line_emulator::{Emulator, Endpoint, Fault};
use serde_json::{Value, json};

async fn start_desk(dir: &std::path::Path, port: u16, emulator_url: &str, mode: &str) -> Desk {
    let mut cmd = common::serve(port, dir);
    cmd.env("LINEDESK_LINE_API_BASE", emulator_url)
        .env("LINEDESK_LINE_DATA_API_BASE", emulator_url)
        .env("LINEDESK_LINE_CHANNEL_SECRET", "restart-secret")
        .env("LINEDESK_LINE_CHANNEL_ACCESS_TOKEN", "restart-token")
        .env("LINEDESK_LINE_MODE", mode);
    common::start(cmd, port, Duration::from_secs(20)).await
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    emulator: Emulator,
    emulator_url: String,
    token: String,
    http: reqwest::Client,
}

async fn setup() -> Setup {
    let (emulator, emulator_url) = Emulator::start(line_emulator::Config {
        channel_secret: "restart-secret".into(),
        channel_access_token: "restart-token".into(),
        require_https_media: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The agent and their token, written straight into the desk's database.
    let store = Store::open(None, dir.path()).await.unwrap();
    let id = store
        .create_user("sato", "佐藤", Role::Agent, "unused", 0)
        .await
        .unwrap();
    let token = store.create_api_token(id, 0).await.unwrap();
    drop(store);
    Setup {
        dir,
        port: free_port(),
        emulator,
        emulator_url,
        token,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    async fn post(&self, desk: &Desk, path: &str, body: Value, timeout: Duration) -> Option<Value> {
        let r = self
            .http
            .post(format!("{}{path}", desk.url))
            .bearer_auth(&self.token)
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    async fn messages(&self, desk: &Desk, conv: i64) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/api/v1/conversations/{conv}/messages", desk.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["messages"].as_array().unwrap().clone()
    }

    /// A customer who wrote in, and the agent holding their chat.
    async fn customer_in_progress(&self, desk: &Desk) -> (String, i64) {
        self.emulator.set_webhook_url(&format!("{}/line", desk.url));
        let user = self.emulator.follow("客", None).await.unwrap();
        self.emulator.send_text(&user, "こんにちは").await.unwrap();
        let list: Value = self
            .http
            .get(format!("{}/api/v1/conversations", desk.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let conv = list["conversations"][0]["id"].as_i64().unwrap();
        let taken = self
            .post(
                desk,
                &format!("/api/v1/conversations/{conv}/status"),
                json!({"status": "in_progress"}),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!(taken["status"], "in_progress");
        (user, conv)
    }
}

#[tokio::test]
async fn push_messages_waiting_or_in_flight_at_a_kill_are_delivered_exactly_once() {
    let s = setup().await;
    let mut desk = start_desk(s.dir.path(), s.port, &s.emulator_url, "push").await;
    let (user, conv) = s.customer_in_progress(&desk).await;
    // LINE is slow: the first push hangs, yet LINE takes it even if the desk dies meanwhile.
    s.emulator.add_fault_after_effect(Fault {
        endpoint: Endpoint::Push,
        status: 0,
        count: 1,
        delay_ms: 1500,
    });
    let texts: Vec<String> = (1..=5).map(|i| format!("メッセージ{i}")).collect();
    for t in &texts {
        // The API answers once the message is stored; we do not wait for LINE.
        let _ = s
            .post(
                &desk,
                &format!("/api/v1/conversations/{conv}/messages"),
                json!({"text": t}),
                Duration::from_millis(300),
            )
            .await;
    }
    eventually("a push is in flight", async || {
        (s.emulator.stats()["push"]["calls"].as_i64() >= Some(1)).then_some(())
    })
    .await;
    kill9(&mut desk);
    let desk = start_desk(s.dir.path(), s.port, &s.emulator_url, "push").await;
    let msgs = eventually("all sent after the restart", async || {
        let m = s.messages(&desk, conv).await;
        let out: Vec<Value> = m.into_iter().filter(|m| m["direction"] == "out").collect();
        (out.len() == 5 && out.iter().all(|m| m["delivery"] == "sent")).then_some(out)
    })
    .await;
    assert_eq!(msgs.len(), 5);
    // Let the slow first request finish on LINE's side too, then count.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let got: Vec<String> = s
        .emulator
        .inbox(&user)
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(got, texts, "each exactly once, in order");
}

#[tokio::test]
async fn a_reply_in_flight_at_a_kill_is_shown_uncertain_and_never_resent() {
    let s = setup().await;
    let mut desk = start_desk(s.dir.path(), s.port, &s.emulator_url, "reply").await;
    let (user, conv) = s.customer_in_progress(&desk).await;
    s.emulator.add_fault_after_effect(Fault {
        endpoint: Endpoint::Reply,
        status: 0,
        count: 1,
        delay_ms: 1500,
    });
    let _ = s
        .post(
            &desk,
            &format!("/api/v1/conversations/{conv}/messages"),
            json!({"text": "届くかどうか"}),
            Duration::from_millis(300),
        )
        .await;
    eventually("the reply is in flight", async || {
        (s.emulator.stats()["reply"]["calls"].as_i64() >= Some(1)).then_some(())
    })
    .await;
    kill9(&mut desk);
    let desk = start_desk(s.dir.path(), s.port, &s.emulator_url, "reply").await;
    let m = eventually("shown uncertain after the restart", async || {
        s.messages(&desk, conv)
            .await
            .into_iter()
            .find(|m| m["direction"] == "out" && m["delivery_state"] == "uncertain")
    })
    .await;
    assert_eq!(m["delivery"], "failed");
    tokio::time::sleep(Duration::from_millis(1800)).await;
    // The customer's next message brings a token: the uncertain reply is not resent.
    s.emulator.send_text(&user, "もしもし").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        s.emulator.inbox(&user).len(),
        1,
        "delivered once (LINE took it), never twice"
    );
}
