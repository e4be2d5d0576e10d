//! A real Chromium for the UI tests: Debian's `chromium` driven by its `chromedriver`
//! through thirtyfour (WebDriver). Each [`Browser`] has its own chromedriver process on a
//! free loopback port and a fresh profile directory, so two browsers are two agents with
//! separate cookies. Waits poll with a deadline; nothing sleeps a fixed time and calls it
//! an assertion.

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use desk_store::users::Role;
use serde_json::Value;
use thirtyfour::prelude::*;

use super::TestDesk;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a browser wait lasts before the test fails (generous: two cores run the
/// desk, the emulator, Chromium and the other tests).
pub const WAIT: Duration = Duration::from_secs(20);

/// The chromedriver process; killed when dropped (after the session has quit).
struct Chromedriver(Child);

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Browser {
    /// Declared first: dropped (its session quit, Chromium closed) before chromedriver.
    pub driver: WebDriver,
    /// The desk's base URL.
    pub base: String,
    _chromedriver: Chromedriver,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (1280×900, Japanese) for the desk `d`.
    pub async fn start(d: &TestDesk) -> Browser {
        let port = free_port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let chromedriver = Chromedriver(child);
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        super::eventually("chromedriver is up", || async {
            http.get(format!("{url}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(CHROMIUM).unwrap();
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            "--lang=ja",
        ] {
            caps.add_arg(arg).unwrap();
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))
            .unwrap();
        let driver = WebDriver::new(&url, caps)
            .await
            .expect("a Chromium session");
        Browser {
            driver,
            base: d.url.clone(),
            _chromedriver: chromedriver,
            _profile: profile,
        }
    }

    /// Quits the session (Drop does the same, blocking).
    pub async fn quit(self) {
        let Browser {
            driver,
            _chromedriver,
            _profile,
            ..
        } = self;
        let _ = driver.quit().await;
    }

    /// Opens a desk path (`/chats/3`).
    pub async fn open(&self, path: &str) {
        self.driver
            .goto(format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// Logs in through the login page and waits for the chat list.
    pub async fn login(&self, login: &str, password: &str) {
        self.open("/login").await;
        self.driver
            .find(By::Id("login"))
            .await
            .unwrap()
            .send_keys(login)
            .await
            .unwrap();
        let pw = self.driver.find(By::Id("password")).await.unwrap();
        pw.send_keys(password).await.unwrap();
        pw.send_keys(Key::Enter).await.unwrap();
        self.wait_for("the chat list after login", "#chat-results")
            .await;
    }

    /// Polls `f` until it yields `Some` (every 100 ms, up to [`WAIT`]).
    pub async fn until<T, F, Fut>(&self, what: &str, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(v) = f().await {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                let url = self.driver.current_url().await.map(|u| u.to_string());
                panic!("timed out waiting for: {what} (page {url:?})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The first element matching `css`, once there is one.
    pub async fn wait_for(&self, what: &str, css: &str) -> WebElement {
        self.until(what, || async {
            self.driver
                .find_all(By::Css(css))
                .await
                .ok()?
                .into_iter()
                .next()
        })
        .await
    }

    /// Waits until `css` matches an element whose text contains `text`; returns that
    /// element's whole text. (Elements are looked up afresh on every poll: live refreshes
    /// replace parts of the page, so a kept element reference would go stale.)
    pub async fn wait_text(&self, what: &str, css: &str, text: &str) -> String {
        self.until(what, || async {
            for el in self.driver.find_all(By::Css(css)).await.ok()? {
                if let Ok(t) = el.text().await
                    && t.contains(text)
                {
                    return Some(t);
                }
            }
            None
        })
        .await
    }

    /// Clicks the first element matching `css`, retrying while a live refresh replaces it.
    pub async fn click(&self, what: &str, css: &str) {
        self.until(what, || async {
            let el = self
                .driver
                .find_all(By::Css(css))
                .await
                .ok()?
                .into_iter()
                .next()?;
            el.click().await.ok()
        })
        .await
    }

    /// How many elements match `css` now.
    pub async fn count(&self, css: &str) -> usize {
        self.driver.find_all(By::Css(css)).await.unwrap().len()
    }

    /// Whether the first element matching `css` is enabled (retried if it goes stale).
    pub async fn enabled(&self, css: &str) -> bool {
        self.until(&format!("{css} to check"), || async {
            let el = self
                .driver
                .find_all(By::Css(css))
                .await
                .ok()?
                .into_iter()
                .next()?;
            el.is_enabled().await.ok()
        })
        .await
    }

    /// Waits until no element matches `css`.
    pub async fn wait_gone(&self, what: &str, css: &str) {
        self.until(what, || async {
            self.driver
                .find_all(By::Css(css))
                .await
                .ok()
                .filter(|v| v.is_empty())
                .map(|_| ())
        })
        .await
    }

    /// The text of the first element matching `css` (retried if it goes stale).
    pub async fn text(&self, css: &str) -> String {
        self.until(&format!("the text of {css}"), || async {
            let el = self
                .driver
                .find_all(By::Css(css))
                .await
                .ok()?
                .into_iter()
                .next()?;
            el.text().await.ok()
        })
        .await
    }

    /// Runs a script (a returned promise is awaited by the driver); its JSON result.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.driver
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
            .json()
            .clone()
    }

    /// Marks the current document; [`Browser::same_document`] tells later whether the page
    /// was reloaded since (live updates must not reload).
    pub async fn mark_document(&self) {
        self.js("window.__testMark = 'kept'; return true;", vec![])
            .await;
    }

    pub async fn same_document(&self) -> bool {
        self.js("return window.__testMark === 'kept';", vec![])
            .await
            == Value::Bool(true)
    }

    /// Waits until the page's live connection (`/api/v1/events`) is up.
    pub async fn wait_live(&self) {
        self.wait_for("the live connection", "#live[data-live='on']")
            .await;
    }

    /// A full-page screenshot at `width`×`height` into [`screenshots_dir`]`/<name>`.
    pub async fn screenshot(&self, name: &str, width: u32, height: u32) -> PathBuf {
        // The window includes some browser frame even headless: size it so that the
        // page's viewport is `width`×`height`.
        self.driver
            .set_window_rect(0, 0, width, height)
            .await
            .unwrap();
        let inner = self
            .js("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        let extra =
            |i: usize, want: u32| want.saturating_sub(inner[i].as_u64().unwrap_or(0) as u32);
        self.driver
            .set_window_rect(0, 0, width + extra(0, width), height + extra(1, height))
            .await
            .unwrap();
        // Let the layout settle at the new size (two animation frames).
        self.js(
            "return new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))));",
            vec![],
        )
        .await;
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        self.driver.screenshot(&path).await.unwrap();
        path
    }
}

/// Where screenshots go: `docs/screenshots/` of the workspace when asked for
/// (`UPDATE_SCREENSHOTS=1`), else a scratch directory under the target dir — so an ordinary
/// test run takes them (and checks them) without rewriting the committed pictures, which
/// differ in a few pixels from run to run.
pub fn screenshots_dir() -> PathBuf {
    if std::env::var("UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
    }
}

impl TestDesk {
    /// A user who can log in with `password` (hashed as the desk does); returns their id.
    pub async fn agent_with_password(
        &self,
        login: &str,
        name: &str,
        role: Role,
        password: &str,
    ) -> i64 {
        let pw = password.to_owned();
        let hash = tokio::task::spawn_blocking(move || password_auth::generate_hash(pw))
            .await
            .unwrap();
        self.state
            .store
            .create_user(login, name, role, &hash, 0)
            .await
            .unwrap()
    }
}
