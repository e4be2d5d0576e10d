//! Several instances (spec B5) as real processes: two `linedesk serve` on one PostgreSQL,
//! the LINE emulator in this test. Agents write through both while LINE is slow; one
//! instance is killed with SIGKILL in the middle. Nothing is lost: every message the desk
//! accepted (201) reaches the customer exactly once, in the order written, every message
//! whose request died with the instance is delivered once or was never taken, and every
//! webhook answered 200 is stored.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::Desk;
use desk_store::Store;
use desk_store::users::Role;
use line_emulator::{Emulator, Endpoint, Fault};
use serde_json::json;

async fn start_desk(
    dir: &std::path::Path,
    db_url: &str,
    emulator_url: &str,
    emu: &line_emulator::Config,
) -> Desk {
    let port = common::free_port();
    let mut cmd = common::serve(port, dir);
    cmd.env("LINEDESK_DATABASE_URL", db_url)
        .env("LINEDESK_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("LINEDESK_LINE_API_BASE", emulator_url)
        .env("LINEDESK_LINE_DATA_API_BASE", emulator_url)
        .env("LINEDESK_LINE_CHANNEL_SECRET", &emu.channel_secret)
        .env(
            "LINEDESK_LINE_CHANNEL_ACCESS_TOKEN",
            &emu.channel_access_token,
        )
        .env("LINEDESK_LINE_MODE", "push")
        // Every instance on one database needs the same secret key (docs/operations.md).
        .env(
            desk_store::secrets::KEY_ENV,
            desk_store::testing::test_keys().key.unwrap(),
        );
    common::start(cmd, port, Duration::from_secs(30)).await
}

/// What became of one agent message's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Accepted,
    /// The instance died during the request: taken or not, unknown to the agent.
    Unknown,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_way_loses_nothing_and_sends_nothing_twice() {
    const CHATS: usize = 4;
    const PER_CHAT: usize = 60;
    let emu = line_emulator::Config {
        require_https_media: false,
        ..Default::default()
    };
    let (emulator, emulator_url) = Emulator::start(emu.clone()).await.unwrap();
    let db_url = desk_store::testing::fresh_pg_database().await.unwrap();
    let store = Store::open_with_keys(
        Some(&db_url),
        std::path::Path::new("."),
        &desk_store::testing::test_keys(),
    )
    .await
    .unwrap();
    let agent = store
        .create_user("sato", "佐藤", Role::Agent, "unused", 0)
        .await
        .unwrap();
    let token = store.create_api_token(agent, 0).await.unwrap();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = start_desk(dir_a.path(), &db_url, &emulator_url, &emu).await;
    let b = start_desk(dir_b.path(), &db_url, &emulator_url, &emu).await;
    emulator.set_webhook_url(&format!("{}/line", a.url));
    let http = reqwest::Client::new();

    let mut chats = Vec::new();
    for i in 0..CHATS {
        let user = emulator.follow(&format!("客{i}"), None).await.unwrap();
        emulator.send_text(&user, "こんにちは").await.unwrap();
        let conv = store
            .conversation_by_line_user(&user)
            .await
            .unwrap()
            .unwrap()
            .id;
        let r = http
            .post(format!("{}/api/v1/conversations/{conv}/status", b.url))
            .bearer_auth(&token)
            .json(&json!({"status": "in_progress"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        chats.push((user, conv));
    }
    // LINE is slow, so requests are in flight when the instance dies.
    emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 0,
        count: 100_000,
        delay_ms: 150,
    });

    let a_url = a.url.clone();
    let b_url = b.url.clone();
    let accepted_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writers = chats.iter().map(|(_, conv)| {
        let (http, token, a_url, b_url) =
            (http.clone(), token.clone(), a_url.clone(), b_url.clone());
        let accepted_so_far = accepted_so_far.clone();
        let conv = *conv;
        tokio::spawn(async move {
            let mut fates = Vec::new();
            let mut a_alive = true;
            for k in 0..PER_CHAT {
                let text = format!("{conv}-{k}");
                // Alternate between the instances, as a balancer would; once A is gone,
                // the balancer sends everything to B.
                let on = if k % 2 == 0 && a_alive {
                    &a_url
                } else {
                    &b_url
                };
                let r = http
                    .post(format!("{on}/api/v1/conversations/{conv}/messages"))
                    .bearer_auth(&token)
                    .json(&json!({"text": text}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => {
                        fates.push((text, Fate::Accepted));
                        accepted_so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(r) => panic!(
                        "{on}: {} {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    ),
                    Err(e) => {
                        assert!(on == &a_url, "B failed: {e}");
                        a_alive = false;
                        fates.push((text, Fate::Unknown));
                    }
                }
            }
            (conv, fates)
        })
    });
    let writers: Vec<_> = writers.collect();

    // Customers keep writing to A until it dies, then to B.
    let mut webhooks_ok = Vec::new();
    while accepted_so_far.load(std::sync::atomic::Ordering::Relaxed) < CHATS * PER_CHAT / 3 {
        let (user, _) = &chats[webhooks_ok.len() % CHATS];
        let sent = emulator
            .send_text(user, &format!("客の声 {}", webhooks_ok.len()))
            .await
            .unwrap();
        if sent.webhook_status == Some(200) {
            webhooks_ok.push(sent.message_id);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kill while a push is under way (most likely A's: it sends half the messages itself).
    let in_flight = async || -> i64 {
        match store.db() {
            desk_store::Db::Postgres(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state = 'sending'")
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
            _ => unreachable!(),
        }
    };
    while in_flight().await == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    common::kill9(&mut a);
    let killed_at = Instant::now();
    emulator.set_webhook_url(&format!("{}/line", b.url));
    for i in 0..10 {
        let (user, _) = &chats[i % CHATS];
        let sent = emulator
            .send_text(user, &format!("その後 {i}"))
            .await
            .unwrap();
        assert_eq!(sent.webhook_status, Some(200));
        webhooks_ok.push(sent.message_id);
    }

    let mut fates = Vec::new();
    for w in writers {
        fates.push(w.await.unwrap());
    }
    let unknown: usize = fates
        .iter()
        .map(|(_, f)| f.iter().filter(|x| x.1 == Fate::Unknown).count())
        .sum();
    // Everything the desk took goes out — after A's sending leases ran out, B resumes its chats.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let waiting = store.outbox_depth().await.unwrap().0;
        if waiting == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{waiting} messages still wait");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drained = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut delivered_total = 0;
    for ((user, conv), (conv2, written)) in chats.iter().zip(&fates) {
        assert_eq!(conv, conv2);
        let inbox: Vec<String> = emulator
            .inbox(user)
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_owned())
            .collect();
        let unique: HashSet<&String> = inbox.iter().collect();
        assert_eq!(
            unique.len(),
            inbox.len(),
            "a message arrived twice: {inbox:?}"
        );
        // The order written, with at most the unknown ones missing.
        let expected: Vec<&String> = written
            .iter()
            .filter(|(t, f)| *f == Fate::Accepted || inbox.contains(t))
            .map(|(t, _)| t)
            .collect();
        assert_eq!(inbox.iter().collect::<Vec<_>>(), expected, "chat {conv}");
        // What the desk holds as sent is exactly what the customer got.
        let rows = store.messages_between(*conv, 0, i64::MAX).await.unwrap();
        let sent: Vec<String> = rows
            .iter()
            .filter(|m| m.direction == desk_core::Direction::Out)
            .map(|m| {
                assert_eq!(m.delivery, desk_core::Delivery::Sent, "{m:?}");
                m.text.clone().unwrap()
            })
            .collect();
        assert_eq!(sent, inbox, "chat {conv}");
        delivered_total += inbox.len();
    }
    // Every webhook the desk answered 200 is stored.
    for id in &webhooks_ok {
        let n: i64 = match store.db() {
            desk_store::Db::Postgres(p) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE line_message_id = $1")
                    .bind(id)
                    .fetch_one(p)
                    .await
                    .unwrap()
            }
            _ => unreachable!(),
        };
        assert_eq!(n, 1, "customer message {id}");
    }
    eprintln!(
        "{delivered_total} of {} messages delivered once ({unknown} requests died with A); \
         {} customer messages stored; queue drained {drained:?} after the kill; emulator: {}",
        CHATS * PER_CHAT,
        webhooks_ok.len(),
        emulator.stats()["push"]
    );
}
