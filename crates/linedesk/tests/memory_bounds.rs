//! Issue 9, items 2 and 8, measured on the real `linedesk serve` process (its resident
//! memory, `VmRSS` in /proc/PID/status, sampled while the attack runs):
//!
//! - 500 concurrent anonymous logins with made-up login IDs, from 500 addresses, in waves:
//!   the desk stays under [`RSS_BOUND_MB`] and LINE's webhook is answered 200 throughout
//!   (each argon2 check takes 19 MiB; unbounded, 300 such posts took it to 5.6 GB);
//! - three agents uploading a 16384×8192 PNG at once (each cost ~1 GB to decode before):
//!   refused from its header, the desk stays under the bound.
//!
//! No timing is asserted: the bound is on memory, and `/line` must answer, however slowly
//! the shared machine runs. Each test runs on SQLite and on PostgreSQL.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{Desk, free_port};
use desk_store::Store;
use desk_store::users::Role;
use line_emulator::Emulator;
use serde_json::{Value, json};

/// The resident memory the desk must stay under during the attacks.
const RSS_BOUND_MB: u64 = 300;

/// `VmRSS` of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Samples a process's RSS every 20 ms until stopped; the highest value seen.
struct RssWatch {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatch {
    fn start(pid: u32) -> RssWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_kb(pid)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(rss_kb(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        RssWatch {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the peak in MB.
    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.peak.load(Ordering::Relaxed) / 1024
    }
}

struct Setup {
    desk: Desk,
    emulator: Emulator,
    /// An agent's API token.
    token: String,
    _dir: tempfile::TempDir,
}

async fn setup(postgres: bool) -> Setup {
    let (emulator, emulator_url) = Emulator::start(line_emulator::Config {
        channel_secret: "memory-secret".into(),
        channel_access_token: "memory-token".into(),
        require_https_media: false,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let database_url = if postgres {
        Some(desk_store::testing::fresh_pg_database().await.unwrap())
    } else {
        None
    };
    let store = Store::open(database_url.as_deref(), dir.path())
        .await
        .unwrap();
    let agent = store
        .create_user("sato", "佐藤", Role::Agent, "unused", 0)
        .await
        .unwrap();
    let token = store.create_api_token(agent, 0).await.unwrap();
    drop(store);
    let port = free_port();
    let mut cmd = common::serve(port, dir.path());
    cmd.env("LINEDESK_LINE_API_BASE", &emulator_url)
        .env("LINEDESK_LINE_DATA_API_BASE", &emulator_url)
        .env("LINEDESK_LINE_CHANNEL_SECRET", "memory-secret")
        .env("LINEDESK_LINE_CHANNEL_ACCESS_TOKEN", "memory-token")
        .env("RUST_LOG", "error");
    if let Some(u) = &database_url {
        cmd.env("LINEDESK_DATABASE_URL", u);
    }
    let desk = common::start(cmd, port, Duration::from_secs(30)).await;
    emulator.set_webhook_url(&format!("{}/line", desk.url));
    Setup {
        desk,
        emulator,
        token,
        _dir: dir,
    }
}

/// LINE keeps delivering while the attack runs: every delivery must be answered 200.
/// Returns how many were delivered.
fn deliver_meanwhile(emulator: Emulator, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let user = emulator.follow("お客様", None).await.unwrap();
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) || n < 3 {
            let sent = emulator
                .send_text(&user, &format!("待っています {n}"))
                .await
                .unwrap();
            assert_eq!(
                sent.webhook_status,
                Some(200),
                "LINE's delivery {n} was not accepted during the attack"
            );
            n += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        n
    })
}

async fn logins_keep_memory_bounded(postgres: bool) {
    let s = setup(postgres).await;
    let pid = s.desk.child.id();
    let before = rss_kb(pid) / 1024;
    let watch = RssWatch::start(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let line = deliver_meanwhile(s.emulator.clone(), stop.clone());

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for wave in 0..4u32 {
        let mut tries = tokio::task::JoinSet::new();
        for i in 0..500u32 {
            // 500 addresses (127.0.x.y), so the per-address limit does not stop them first.
            let ip = format!("127.0.{}.{}", 1 + i / 250, 1 + i % 250);
            let base = s.desk.url.clone();
            tries.spawn(async move {
                let http = reqwest::Client::builder()
                    .local_address(ip.parse::<std::net::IpAddr>().unwrap())
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let login = format!("nobody-{wave}-{i}-{}", uuid::Uuid::new_v4());
                http.post(format!("{base}/login"))
                    .header("origin", &base)
                    .form(&[("login", login.as_str()), ("password", "guess-password")])
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            });
        }
        while let Some(status) = tries.join_next().await {
            *statuses.entry(status.unwrap()).or_default() += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let delivered = line.await.unwrap();
    let peak = watch.finish();
    println!(
        "{}: 4 waves of 500 concurrent anonymous logins: RSS {before} MB before, peak {peak} MB \
         (bound {RSS_BOUND_MB} MB); answers {statuses:?}; {delivered} LINE deliveries meanwhile, all 200",
        if postgres { "PostgreSQL" } else { "SQLite" }
    );
    assert!(
        peak < RSS_BOUND_MB,
        "peak RSS {peak} MB (bound {RSS_BOUND_MB} MB)"
    );
    assert_eq!(statuses.get(&0), None, "every login post was answered");
    assert!(
        statuses.keys().all(|s| [401, 429, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains_key(&401),
        "some were checked: {statuses:?}"
    );
}

#[tokio::test]
async fn concurrent_anonymous_logins_keep_memory_bounded_sqlite() {
    logins_keep_memory_bounded(false).await;
}

#[tokio::test]
async fn concurrent_anonymous_logins_keep_memory_bounded_postgres() {
    logins_keep_memory_bounded(true).await;
}

async fn image_bombs_keep_memory_bounded(postgres: bool) {
    let s = setup(postgres).await;
    let http = reqwest::Client::new();
    let user = s.emulator.follow("お客様", None).await.unwrap();
    s.emulator.send_text(&user, "写真をどうぞ").await.unwrap();
    let list: Value = http
        .get(format!("{}/api/v1/conversations", s.desk.url))
        .bearer_auth(&s.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let conv = list["conversations"][0]["id"].as_i64().unwrap();
    let taken = http
        .post(format!("{}/api/v1/conversations/{conv}/status", s.desk.url))
        .bearer_auth(&s.token)
        .json(&json!({"status": "in_progress"}))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 200);

    let bomb = desk_server::images::huge_bilevel_png(16_384, 8_192);
    let pid = s.desk.child.id();
    let before = rss_kb(pid) / 1024;
    let watch = RssWatch::start(pid);
    let mut uploads = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (http, url, token, bomb) = (
            http.clone(),
            format!("{}/api/v1/conversations/{conv}/messages", s.desk.url),
            s.token.clone(),
            bomb.clone(),
        );
        uploads.spawn(async move {
            let part = reqwest::multipart::Part::bytes(bomb).file_name("bomb.png");
            let resp = http
                .post(url)
                .bearer_auth(token)
                .multipart(reqwest::multipart::Form::new().part("image", part))
                .send()
                .await
                .unwrap();
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (
                status,
                body["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        });
    }
    let mut answers = Vec::new();
    while let Some(a) = uploads.join_next().await {
        answers.push(a.unwrap());
    }
    let peak = watch.finish();
    println!(
        "{}: 3 concurrent uploads of a 16384x8192 PNG ({} KB): RSS {before} MB before, peak {peak} MB; answers {answers:?}",
        if postgres { "PostgreSQL" } else { "SQLite" },
        bomb.len() / 1024
    );
    assert!(
        peak < RSS_BOUND_MB,
        "peak RSS {peak} MB (bound {RSS_BOUND_MB} MB)"
    );
    for (status, code) in answers {
        assert_eq!((status, code.as_str()), (413, "too_many_pixels"));
    }
}

#[tokio::test]
async fn image_bombs_keep_memory_bounded_sqlite() {
    image_bombs_keep_memory_bounded(false).await;
}

#[tokio::test]
async fn image_bombs_keep_memory_bounded_postgres() {
    image_bombs_keep_memory_bounded(true).await;
}
