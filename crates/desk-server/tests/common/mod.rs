//! The whole desk in a test: a real `linedesk` server on a loopback port, the LINE emulator
//! beside it (the desk talks to it over HTTP exactly as to LINE), and a fresh database —
//! SQLite in a temp dir, or a new PostgreSQL database.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use desk_server::{App, AppState, Config};
use desk_store::users::Role;
use line_emulator::Emulator;
use serde_json::Value;

#[allow(unused_imports)] // not every test file runs a test per backend
pub use desk_store::backend_test;
pub use desk_store::testing::Backend;

pub struct TestDesk {
    pub backend: Backend,
    pub url: String,
    pub emulator: Emulator,
    pub emulator_url: String,
    pub state: AppState,
    /// An admin's API token.
    pub token: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl TestDesk {
    pub async fn start(backend: Backend) -> TestDesk {
        Self::start_with(
            backend,
            line_emulator::Config {
                require_https_media: false,
                ..Default::default()
            },
        )
        .await
    }

    pub async fn start_with(backend: Backend, emu_config: line_emulator::Config) -> TestDesk {
        Self::start_configured(backend, emu_config, |_| {}).await
    }

    /// As [`TestDesk::start_with`], with a last word on the desk's configuration.
    pub async fn start_configured(
        backend: Backend,
        emu_config: line_emulator::Config,
        adjust: impl FnOnce(&mut Config),
    ) -> TestDesk {
        let dir = tempfile::tempdir().unwrap();
        let (emulator, emulator_url) = Emulator::start(emu_config.clone()).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let url = format!("http://{addr}");
        let mut config = Config::new(dir.path().to_path_buf(), &addr);
        if backend == Backend::Postgres {
            config.database_url = Some(desk_store::testing::fresh_pg_database().await.unwrap());
        }
        config.line_api_base = emulator_url.clone();
        config.line_data_api_base = emulator_url.clone();
        config.line_channel_secret = Some(emu_config.channel_secret.clone());
        config.line_channel_access_token = Some(emu_config.channel_access_token.clone());
        adjust(&mut config);
        let app = App::build(config).await.unwrap();
        let state = app.state.clone();
        let admin = state
            .store
            .create_user("admin", "管理者", Role::Admin, "unused-hash", 0)
            .await
            .unwrap();
        let token = state.store.create_api_token(admin, 0).await.unwrap();
        tokio::spawn(app.serve(listener));
        emulator.set_webhook_url(&format!("{url}/line"));
        TestDesk {
            backend,
            url,
            emulator,
            emulator_url,
            state,
            token,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// GET an API path with the admin's token; panics unless 200.
    pub async fn get(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub async fn status_of(&self, path: &str) -> u16 {
        self.http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    pub async fn conversations(&self) -> Vec<Value> {
        self.get("/api/v1/conversations").await["conversations"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub async fn conversation_of(&self, line_user_id: &str) -> Option<Value> {
        self.conversations()
            .await
            .into_iter()
            .find(|c| c["line_user_id"] == line_user_id)
    }

    pub async fn messages(&self, conversation_id: i64) -> Vec<Value> {
        self.get(&format!("/api/v1/conversations/{conversation_id}/messages"))
            .await["messages"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// POSTs a raw body to `/line` with the given signature header.
    pub async fn post_webhook(&self, body: &[u8], signature: Option<&str>) -> u16 {
        let mut req = self
            .http
            .post(format!("{}/line", self.url))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(s) = signature {
            req = req.header("x-line-signature", s);
        }
        req.send().await.unwrap().status().as_u16()
    }

    /// `/metrics` as text.
    pub async fn scrape(&self) -> String {
        let resp = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.text().await.unwrap()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
    }
}

/// The value of one series of a Prometheus text scrape, named with its labels as rendered
/// (`linedesk_webhook_latency_seconds_bucket{le="+Inf"}`); `None` when absent.
pub fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// Polls `f` until it yields `Some`, for up to 15 s (background work such as profile and
/// content fetches finishes after the webhook's 200).
pub async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A small real PNG.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 99]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// An API client acting as one user.
pub struct As<'a> {
    pub desk: &'a TestDesk,
    pub token: String,
    pub user_id: i64,
}

impl TestDesk {
    /// A new user of `role` and an API client acting as them.
    pub async fn user(&self, login: &str, name: &str, role: Role) -> As<'_> {
        let id = self
            .state
            .store
            .create_user(login, name, role, "unused-hash", 0)
            .await
            .unwrap();
        let token = self.state.store.create_api_token(id, 0).await.unwrap();
        As {
            desk: self,
            token,
            user_id: id,
        }
    }

    /// Sets the LINE mode (`reply` | `push`) as an admin would on LINE設定.
    pub async fn set_mode(&self, mode: &str) {
        let now = self.state.now_ms();
        self.state
            .store
            .set_setting("line.mode", mode, now)
            .await
            .unwrap();
        self.state.line.reload(&self.state.store).await.unwrap();
        self.state.store.wake_outbox(now).await.unwrap();
        self.state.outbox_wakeup.notify_one();
    }

    /// A LINE user who follows and writes once; returns (user id, conversation id).
    pub async fn customer(&self, name: &str, first_words: &str) -> (String, i64) {
        let user = self.emulator.follow(name, None).await.unwrap();
        self.emulator.send_text(&user, first_words).await.unwrap();
        let id = self.conversation_of(&user).await.unwrap()["id"]
            .as_i64()
            .unwrap();
        (user, id)
    }
}

impl As<'_> {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self
            .desk
            .http
            .post(format!("{}{path}", self.desk.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn set_status(&self, conversation: i64, status: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/conversations/{conversation}/status"),
            serde_json::json!({"status": status}),
        )
        .await
    }

    pub async fn send_text(&self, conversation: i64, text: &str) -> (u16, Value) {
        self.post(
            &format!("/api/v1/conversations/{conversation}/messages"),
            serde_json::json!({"text": text}),
        )
        .await
    }

    pub async fn send_image(
        &self,
        conversation: i64,
        bytes: Vec<u8>,
        file_name: &str,
    ) -> (u16, Value) {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("image", part);
        let resp = self
            .desk
            .http
            .post(format!(
                "{}/api/v1/conversations/{conversation}/messages",
                self.desk.url
            ))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

/// A real Chromium for the UI tests (tests/browser.rs).
pub mod browser;
