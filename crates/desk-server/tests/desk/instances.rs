//! Several instances on one PostgreSQL (spec B5): two desks, each with its own change
//! listener and workers, share one fresh database and one LINE emulator. Live updates cross
//! instances, the handling lock and sending hold across them, and a lost listener makes
//! the browsers resynchronise instead of silently missing changes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use desk_server::{App, AppState, Config};
use desk_store::users::Role;
use line_emulator::Emulator;
use serde_json::{Value, json};

struct Instance {
    url: String,
    state: AppState,
    _dir: tempfile::TempDir,
}

struct Cluster {
    emulator: Emulator,
    a: Instance,
    b: Instance,
    db_url: String,
    http: reqwest::Client,
    /// An admin's API token (valid on both instances: tokens live in the database).
    admin: String,
}

async fn instance(db_url: &str, emulator_url: &str, emu: &line_emulator::Config) -> Instance {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let mut config = Config::new(dir.path().to_path_buf(), &addr);
    config.database_url = Some(db_url.to_owned());
    config.line_api_base = emulator_url.to_owned();
    config.line_data_api_base = emulator_url.to_owned();
    config.line_channel_secret = Some(emu.channel_secret.clone());
    config.line_channel_access_token = Some(emu.channel_access_token.clone());
    config.line_mode = Some("push".into());
    // Every instance on one database needs the same secret key (docs/operations.md).
    config.secret_key = desk_store::testing::test_keys().key;
    let app = App::build(config).await.unwrap();
    let state = app.state.clone();
    tokio::spawn(app.serve(listener));
    Instance {
        url: format!("http://{addr}"),
        state,
        _dir: dir,
    }
}

impl Cluster {
    async fn start() -> Cluster {
        let emu = line_emulator::Config {
            require_https_media: false,
            ..Default::default()
        };
        let (emulator, emulator_url) = Emulator::start(emu.clone()).await.unwrap();
        let db_url = desk_store::testing::fresh_pg_database().await.unwrap();
        let a = instance(&db_url, &emulator_url, &emu).await;
        let b = instance(&db_url, &emulator_url, &emu).await;
        // LINE delivers webhooks to A; agents' browsers may be on either.
        emulator.set_webhook_url(&format!("{}/line", a.url));
        let store = &a.state.store;
        let id = store
            .create_user("admin", "管理者", Role::Admin, "unused-hash", 0)
            .await
            .unwrap();
        let admin = store.create_api_token(id, 0).await.unwrap();
        Cluster {
            emulator,
            a,
            b,
            db_url,
            http: reqwest::Client::new(),
            admin,
        }
    }

    /// A new agent and their API token.
    async fn agent(&self, login: &str) -> (i64, String) {
        let store = &self.a.state.store;
        let id = store
            .create_user(login, login, Role::Agent, "unused-hash", 0)
            .await
            .unwrap();
        (id, store.create_api_token(id, 0).await.unwrap())
    }

    /// A LINE user who follows and writes; returns (user id, conversation id).
    async fn customer(&self, name: &str) -> (String, i64) {
        let user = self.emulator.follow(name, None).await.unwrap();
        let sent = self.emulator.send_text(&user, "こんにちは").await.unwrap();
        assert_eq!(sent.webhook_status, Some(200));
        let conv = self
            .a
            .state
            .store
            .conversation_by_line_user(&user)
            .await
            .unwrap()
            .unwrap();
        (user, conv.id)
    }

    async fn post(&self, on: &Instance, token: &str, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}{path}", on.url))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
struct Ev {
    name: String,
    id: Option<String>,
    data: String,
}

/// An `/api/v1/events` stream, read with reqwest's streaming body.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(
        http: &reqwest::Client,
        on: &Instance,
        token: &str,
        last_id: Option<&str>,
    ) -> Sse {
        let mut req = http
            .get(format!("{}/api/v1/events", on.url))
            .bearer_auth(token);
        if let Some(id) = last_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        Sse {
            resp,
            buf: String::new(),
        }
    }

    /// The next event, or `None` when none came within `within`.
    async fn next(&mut self, within: Duration) -> Option<Ev> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = Ev {
                    name: "message".into(),
                    id: None,
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        ev.name = v.trim().into();
                        any = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        ev.data.push_str(v.trim());
                        any = true;
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().into());
                    }
                }
                if any {
                    return Some(ev);
                }
                continue; // a keep-alive comment
            }
            let chunk = tokio::time::timeout_at(deadline, self.resp.chunk())
                .await
                .ok()?;
            let chunk = chunk.unwrap().expect("the stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Skips events until one named `name` (whose data satisfies `pred`) arrives.
    async fn until(
        &mut self,
        within: Duration,
        name: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Ev> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let ev = self.next(left).await?;
            if ev.name == name && pred(&serde_json::from_str(&ev.data).unwrap_or(Value::Null)) {
                return Some(ev);
            }
        }
    }
}

#[tokio::test]
async fn an_event_posted_to_one_instance_appears_on_the_other_within_a_second() {
    let c = Cluster::start().await;
    let mut on_b = Sse::open(&c.http, &c.b, &c.admin, None).await;
    let ready = on_b.next(Duration::from_secs(5)).await.expect("ready");
    assert_eq!(ready.name, "ready");
    let user = c.emulator.follow("山田 花子", None).await.unwrap();
    let conv = on_b
        .until(Duration::from_secs(1), "conversation", |_| true)
        .await
        .expect("the new chat reached B");
    let conv_id = serde_json::from_str::<Value>(&conv.data).unwrap()["id"]
        .as_i64()
        .unwrap();
    for i in 0..5 {
        let started = Instant::now();
        let sent = c
            .emulator
            .send_text(&user, &format!("荷物が届きません {i}"))
            .await
            .unwrap();
        assert_eq!(sent.webhook_status, Some(200));
        let ev = on_b
            .until(Duration::from_secs(1), "message", |d| {
                d["conversation_id"] == conv_id
            })
            .await
            .unwrap_or_else(|| panic!("message {i} did not reach B within 1 s"));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "{took:?}");
        let id = serde_json::from_str::<Value>(&ev.data).unwrap()["id"]
            .as_i64()
            .unwrap();
        let row = c.b.state.store.message(id).await.unwrap().unwrap();
        assert_eq!(
            row.text.as_deref(),
            Some(format!("荷物が届きません {i}").as_str())
        );
        eprintln!("webhook on A → SSE on B: {took:?}");
    }
    // And the other way: a status change made through B reaches a stream on A.
    let mut on_a = Sse::open(&c.http, &c.a, &c.admin, None).await;
    assert_eq!(
        on_a.next(Duration::from_secs(5)).await.unwrap().name,
        "ready"
    );
    let (agent, token) = c.agent("sato").await;
    let (s, _) = c
        .post(
            &c.b,
            &token,
            &format!("/api/v1/conversations/{conv_id}/status"),
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(s, 200);
    on_a.until(Duration::from_secs(1), "conversation", |d| {
        d["id"] == conv_id
    })
    .await
    .expect("B's status change reached A");
    let row =
        c.a.state
            .store
            .conversation(conv_id)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(row.agent_id, Some(agent));
    // Each change arrives once on each instance: no echo of an instance's own changes.
    assert!(
        on_a.next(Duration::from_millis(300))
            .await
            .is_none_or(|e| e.name != "conversation"),
        "a change came twice"
    );
}

#[tokio::test]
async fn agents_on_two_instances_race_for_one_chat_and_exactly_one_wins() {
    let c = Cluster::start().await;
    let (id1, t1) = c.agent("a1").await;
    let (id2, t2) = c.agent("a2").await;
    let mut wins = [0, 0];
    for round in 0..20 {
        let (user, conv) = c.customer(&format!("客{round}")).await;
        let path = format!("/api/v1/conversations/{conv}/status");
        let body = json!({"status": "in_progress"});
        let (r1, r2) = tokio::join!(
            c.post(&c.a, &t1, &path, body.clone()),
            c.post(&c.b, &t2, &path, body.clone())
        );
        let statuses = [r1.0, r2.0];
        assert!(
            statuses.contains(&200) && statuses.contains(&409),
            "round {round}: {r1:?} {r2:?}"
        );
        let (winner, loser, winner_on, loser_on, winner_id) = if r1.0 == 200 {
            wins[0] += 1;
            (&t1, &t2, &c.a, &c.b, id1)
        } else {
            wins[1] += 1;
            (&t2, &t1, &c.b, &c.a, id2)
        };
        let row = c.a.state.store.conversation(conv).await.unwrap().unwrap();
        assert_eq!(row.agent_id, Some(winner_id));
        // Only the winner can send, through either instance.
        let msg = format!("/api/v1/conversations/{conv}/messages");
        assert_eq!(
            c.post(loser_on, loser, &msg, json!({"text": "割り込み"}))
                .await
                .0,
            409
        );
        assert_eq!(
            c.post(winner_on, loser, &msg, json!({"text": "割り込み"}))
                .await
                .0,
            409
        );
        assert_eq!(
            c.post(loser_on, winner, &msg, json!({"text": "承ります"}))
                .await
                .0,
            201
        );
        let inbox = c.emulator.inbox(&user);
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert_eq!(inbox[0]["text"], "承ります");
    }
    eprintln!("wins: A {} B {}", wins[0], wins[1]);
}

#[tokio::test]
async fn a_thousand_messages_through_both_instances_are_each_delivered_exactly_once() {
    const CHATS: usize = 10;
    const PER_CHAT: usize = 100;
    let c = Cluster::start().await;
    let mut chats = Vec::new();
    for i in 0..CHATS {
        let (agent_id, token) = c.agent(&format!("agent{i}")).await;
        let (user, conv) = c.customer(&format!("客{i}")).await;
        let path = format!("/api/v1/conversations/{conv}/status");
        assert_eq!(
            c.post(&c.a, &token, &path, json!({"status": "in_progress"}))
                .await
                .0,
            200
        );
        let _ = agent_id;
        chats.push((user, conv, token));
    }
    let started = Instant::now();
    // Each agent writes their chat's messages in order, alternating between the instances;
    // the chats are written concurrently. Both instances' outbox workers run throughout.
    let writers = chats.iter().map(|(_, conv, token)| {
        let c = &c;
        async move {
            let path = format!("/api/v1/conversations/{conv}/messages");
            for k in 0..PER_CHAT {
                let on = if k % 2 == 0 { &c.a } else { &c.b };
                let (s, m) = c
                    .post(on, token, &path, json!({"text": format!("{conv}-{k}")}))
                    .await;
                assert_eq!(s, 201, "{m}");
            }
        }
    });
    futures_util::future::join_all(writers).await;
    let written = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: usize = chats
            .iter()
            .map(|(u, _, _)| c.emulator.inbox(u).len())
            .sum();
        if delivered >= CHATS * PER_CHAT {
            break;
        }
        assert!(Instant::now() < deadline, "only {delivered} delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let any stray second attempt show itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (user, conv, _) in &chats {
        let texts: Vec<String> = c
            .emulator
            .inbox(user)
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..PER_CHAT).map(|k| format!("{conv}-{k}")).collect();
        assert_eq!(texts, expected, "each message once, in the order written");
    }
    let stats = c.emulator.stats();
    assert_eq!(
        stats["push"]["accepted"],
        (CHATS * PER_CHAT) as u64,
        "{stats}"
    );
    assert!(
        stats["push"]["rejected"]
            .as_object()
            .is_none_or(|r| r.is_empty()),
        "no message was even attempted twice: {stats}"
    );
    let pending = c.a.state.store.outbox_depth().await.unwrap().0;
    assert_eq!(pending, 0);
    // Who sent what: both instances' workers took part (the lease, not luck, kept them apart).
    let mut by_via: HashMap<String, usize> = HashMap::new();
    for (_, conv, _) in &chats {
        for m in
            c.a.state
                .store
                .messages_between(*conv, 0, i64::MAX)
                .await
                .unwrap()
        {
            if m.direction == desk_core::Direction::Out {
                assert_eq!(m.delivery, desk_core::Delivery::Sent);
                *by_via
                    .entry(m.sent_via.clone().unwrap_or_default())
                    .or_default() += 1;
            }
        }
    }
    assert_eq!(by_via.get("push"), Some(&(CHATS * PER_CHAT)));
    eprintln!(
        "{} messages written through two instances in {written:?}, all delivered after {:?}",
        CHATS * PER_CHAT,
        started.elapsed()
    );
}

#[tokio::test]
async fn a_killed_listener_connection_makes_streams_resync_and_live_updates_resume() {
    let c = Cluster::start().await;
    let user = c.emulator.follow("佐々木", None).await.unwrap();
    let conv =
        c.a.state
            .store
            .conversation_by_line_user(&user)
            .await
            .unwrap()
            .unwrap()
            .id;
    let mut on_a = Sse::open(&c.http, &c.a, &c.admin, None).await;
    let mut on_b = Sse::open(&c.http, &c.b, &c.admin, None).await;
    assert_eq!(
        on_a.next(Duration::from_secs(5)).await.unwrap().name,
        "ready"
    );
    let before_gap = on_b.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(before_gap.name, "ready");
    let before_gap = before_gap.id.unwrap();

    let killed: Vec<i32> = {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&c.db_url).await.unwrap();
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity
             WHERE datname = current_database() AND query LIKE 'LISTEN%' AND pg_terminate_backend(pid)",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap()
    };
    assert_eq!(killed.len(), 2, "one listener per instance");
    for (name, sse) in [("A", &mut on_a), ("B", &mut on_b)] {
        let ev = sse
            .until(Duration::from_secs(10), "resync", |_| true)
            .await
            .unwrap_or_else(|| panic!("{name} did not tell its clients to resync"));
        assert!(ev.id.is_some(), "a resync carries the new position");
    }
    // Each instance counts its reconnect on `/metrics`.
    for (name, instance) in [("A", &c.a), ("B", &c.b)] {
        let url = format!("{}/metrics", instance.url);
        let text = c.http.get(url).send().await.unwrap().text().await.unwrap();
        assert!(
            text.lines()
                .any(|l| l == "linedesk_listener_reconnects_total 1"),
            "{name}: {text}"
        );
    }
    // Live updates resume: a customer message through A reaches B's stream.
    let sent = c.emulator.send_text(&user, "まだですか").await.unwrap();
    assert_eq!(sent.webhook_status, Some(200));
    on_b.until(Duration::from_secs(2), "message", |d| {
        d["conversation_id"] == conv
    })
    .await
    .expect("B hears A again");
    on_a.until(Duration::from_secs(2), "message", |d| {
        d["conversation_id"] == conv
    })
    .await
    .expect("A's own stream");
    // A browser reconnecting with an id from before the gap cannot catch up: resync.
    let mut again = Sse::open(&c.http, &c.b, &c.admin, Some(&before_gap)).await;
    assert_eq!(
        again.next(Duration::from_secs(5)).await.unwrap().name,
        "resync"
    );
    // Nor with an id from the other instance (the balancer moved it).
    let mut moved = Sse::open(&c.http, &c.a, &c.admin, Some(&before_gap)).await;
    assert_eq!(
        moved.next(Duration::from_secs(5)).await.unwrap().name,
        "resync"
    );
}

#[tokio::test]
async fn line_settings_saved_through_one_instance_take_effect_on_the_other() {
    let c = Cluster::start().await;
    assert_eq!(c.b.state.line.current().mode.as_str(), "push");
    let resp = c
        .http
        .put(format!("{}/api/v1/settings/line", c.a.url))
        .bearer_auth(&c.admin)
        .json(&json!({"mode": "reply"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(1);
    while c.b.state.line.current().mode.as_str() != "reply" {
        assert!(Instant::now() < deadline, "B still sends in push mode");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
