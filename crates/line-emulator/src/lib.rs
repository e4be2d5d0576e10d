//! A stand-in for the LINE platform, for tests, the demo and benchmarks.
//!
//! One address serves LINE's Messaging API paths (`/v2/bot/...`, the content endpoints too),
//! a control API under `/_emulator` and a phone-like page at `/` where a person plays a LINE
//! user. Simulated users follow, block, write and send media; each action goes to the
//! configured webhook URL as a signed webhook, like LINE's servers send it.
//!
//! The rules come from LINE's documentation (the OpenAPI files and developers.line.biz), not
//! from what the desk expects: single-use reply tokens that expire, 1 to 5 messages per call,
//! the 5,000 UTF-16-unit text limit, HTTPS media URLs, retry keys answered with 409, a 401 for
//! a wrong access token. The crate does not use the desk's `line-api` crate on purpose: it
//! signs and builds everything itself, so it checks the desk independently.
//!
//! Faults can be injected per endpoint (`add_fault`, `POST /_emulator/faults`), including
//! "after effect" faults where LINE did the work but the caller sees an error or a timeout,
//! which is what never-resend-blindly rules must survive.
//!
//! # HTTP
//! LINE's paths (bearer token required; every answer carries `x-line-request-id`):
//! `POST /v2/bot/message/reply`, `POST /v2/bot/message/push`, `GET /v2/bot/profile/{id}`,
//! `GET /v2/bot/message/{id}/content` (and `/content/preview`, `/content/transcoding`),
//! `GET /v2/bot/info`.
//!
//! Control API (JSON; errors are `{"error": "..."}`):
//! - `POST /_emulator/users` `{"display_name", "user_id"?, "picture_url"?, "status_message"?}`
//!   → 201 `{"user_id", "webhook_event_id", "webhook_status"}`; `GET /_emulator/users`,
//!   `GET /_emulator/users/{id}`.
//! - `POST /_emulator/users/{id}/messages` with exactly one of `text`, `image_base64`,
//!   `sticker {package_id, sticker_id}`, `location {title, address, latitude, longitude}`,
//!   `file {name, base64}`, `video_base64`, `audio_base64` (+ `duration_ms`), and optionally
//!   `content_type` (what the content API reports; default sniffed from the bytes) →
//!   `{"message_id", "reply_token", "webhook_event_id", "webhook_status"}`; 409 when blocked.
//! - `POST /_emulator/users/{id}/block`, `/unblock`; `GET /_emulator/users/{id}/inbox` →
//!   `{"messages": [...]}` (each with `via`, `at`, `request_id`, and for a reply the
//!   `reply_token` that carried it); `GET /_emulator/users/{id}/conversation` → `{"items": [...]}`.
//! - `POST /_emulator/faults` `{"endpoint": "reply"|"push"|"profile"|"content"|"bot_info",
//!   "status", "count"?, "delay_ms"?, "after_effect"?, "retry_after"?}`; `GET`, `DELETE`.
//! - `GET /_emulator/webhook-log`, `GET /_emulator/events/{id}`, `POST /_emulator/redeliver`
//!   (`?batch=true` for one body), `POST /_emulator/redeliver/{id}`, `GET /_emulator/stats`,
//!   `POST /_emulator/reset`, `GET`/`PUT /_emulator/config` `{"webhook_url"}`,
//!   `GET /_emulator/content/{message_id}` (what a user sent, no token).
//! - `GET /` and `GET /_emulator/phone`: the phone page.
//!
//! Why one file of ~900 lines: the emulator's state (users, tokens, inboxes, faults) and the
//! webhooks it sends are one small system, kept together so that its rules about each other
//! (a token is single-use, a blocked user gets nothing) are in one place.

mod api;
mod control;
mod ids;
mod validate;
mod webhook;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use validate::{MAX_MESSAGES, MAX_TEXT_UTF16, MAX_URL_CHARS, utf16_len};

/// How the emulated channel is set up.
#[derive(Clone, Debug)]
pub struct Config {
    /// Key of the HMAC-SHA256 webhook signature.
    pub channel_secret: String,
    /// The only bearer token the API accepts.
    pub channel_access_token: String,
    /// Where signed webhooks go; can be set later with [`Emulator::set_webhook_url`].
    pub webhook_url: Option<String>,
    /// How long a reply token stays usable. LINE: use it within one minute of the webhook.
    pub reply_token_ttl: Duration,
    /// LINE requires HTTPS media URLs; a demo or test on loopback HTTP sets this to false.
    pub require_https_media: bool,
    /// The bot's user id (`U` + 32 hex digits), sent as `destination` in webhooks.
    pub bot_user_id: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            channel_secret: "emulator-secret".into(),
            channel_access_token: "emulator-token".into(),
            webhook_url: None,
            reply_token_ttl: Duration::from_secs(60),
            require_https_media: true,
            bot_user_id: ids::user_id(),
        }
    }
}

/// What a simulated user's message produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sent {
    pub message_id: String,
    pub reply_token: String,
    pub webhook_event_id: String,
    /// The desk's HTTP status for the webhook; `None` when it could not be reached (or no
    /// webhook URL is set).
    pub webhook_status: Option<u16>,
}

/// The API endpoints faults can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Reply,
    Push,
    Profile,
    Content,
    BotInfo,
}

impl Endpoint {
    fn name(self) -> &'static str {
        match self {
            Endpoint::Reply => "reply",
            Endpoint::Push => "push",
            Endpoint::Profile => "profile",
            Endpoint::Content => "content",
            Endpoint::BotInfo => "bot_info",
        }
    }
}

/// The next `count` calls to `endpoint` wait `delay_ms` and then answer `status` without
/// doing anything. `status: 0` means "wait `delay_ms`, then answer normally" (a slow LINE;
/// the work happens after the wait, so a caller that gives up first leaves no effect).
/// See [`Emulator::add_fault_after_effect`] for faults where the call does take effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub endpoint: Endpoint,
    pub status: u16,
    pub count: u32,
    pub delay_ms: u64,
}

/// Extra knobs for [`Emulator::add_fault_with`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultOptions {
    /// The call takes effect (message delivered, reply token used, retry key accepted)
    /// before the fault's answer: "LINE got it, but the caller saw an error or a timeout".
    pub after_effect: bool,
    /// Seconds for a `Retry-After` header on the fault's answer. LINE documents no such
    /// header on its 429s, so by default there is none.
    pub retry_after: Option<u64>,
}

/// A message a simulated user sends.
#[derive(Clone, Debug, PartialEq)]
pub enum UserMessage {
    Text(String),
    Image(Vec<u8>),
    Sticker {
        package_id: String,
        sticker_id: String,
    },
    Location {
        title: String,
        address: String,
        latitude: f64,
        longitude: f64,
    },
    File {
        name: String,
        bytes: Vec<u8>,
    },
    Video {
        bytes: Vec<u8>,
        duration_ms: u64,
    },
    Audio {
        bytes: Vec<u8>,
        duration_ms: u64,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("unknown LINE user: {0}")]
    UnknownUser(String),
    #[error("LINE user {0} has blocked the account")]
    Blocked(String),
    #[error("LINE user {0} already follows the account")]
    AlreadyFollowing(String),
    #[error("not a LINE user id (U followed by 32 lowercase hex digits): {0}")]
    InvalidUserId(String),
    #[error("unknown webhook event: {0}")]
    UnknownEvent(String),
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Error {
    fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Error::UnknownUser(_) | Error::UnknownEvent(_) => StatusCode::NOT_FOUND,
            Error::Blocked(_) | Error::AlreadyFollowing(_) => StatusCode::CONFLICT,
            Error::InvalidUserId(_) | Error::Invalid(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// The emulator: a cheap, clonable handle to shared state.
#[derive(Clone)]
pub struct Emulator {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    state: Mutex<State>,
    http: reqwest::Client,
}

#[derive(Default)]
struct State {
    webhook_url: Option<String>,
    users: HashMap<String, User>,
    user_order: Vec<String>,
    reply_tokens: HashMap<String, ReplyToken>,
    contents: HashMap<String, Content>,
    retry_keys: HashMap<String, AcceptedRetry>,
    events: HashMap<String, StoredEvent>,
    event_order: Vec<String>,
    webhook_log: VecDeque<Value>,
    faults: BTreeMap<Endpoint, VecDeque<ActiveFault>>,
    stats: Stats,
}

struct User {
    user_id: String,
    display_name: String,
    picture_url: Option<String>,
    status_message: Option<String>,
    language: Option<String>,
    blocked: bool,
    /// What the account sent this user (delivered messages), oldest first.
    inbox: Vec<Value>,
    /// What this user sent, oldest first.
    sent: Vec<Value>,
    /// Both sides in order: (from the account?, index into `inbox` or `sent`).
    conversation: Vec<(bool, usize)>,
}

impl User {
    fn summary(&self) -> Value {
        json!({
            "user_id": self.user_id,
            "display_name": self.display_name,
            "picture_url": self.picture_url,
            "status_message": self.status_message,
            "language": self.language,
            "blocked": self.blocked,
            "inbox_count": self.inbox.len(),
            "sent_count": self.sent.len(),
        })
    }
}

struct ReplyToken {
    user_id: String,
    issued: Instant,
    used: bool,
}

struct Content {
    bytes: bytes::Bytes,
    content_type: String,
    kind: &'static str,
}

struct AcceptedRetry {
    request_id: String,
    sent_messages: Vec<Value>,
    at: Instant,
}

struct StoredEvent {
    event: Value,
    delivered: bool,
}

#[derive(Clone, Debug)]
struct ActiveFault {
    status: u16,
    remaining: u32,
    delay_ms: u64,
    after_effect: bool,
    retry_after: Option<u64>,
}

impl ActiveFault {
    fn describe(&self, endpoint: Endpoint) -> Value {
        json!({
            "endpoint": endpoint.name(),
            "status": self.status,
            "count": self.remaining,
            "delay_ms": self.delay_ms,
            "after_effect": self.after_effect,
            "retry_after": self.retry_after,
        })
    }
}

#[derive(Default, Serialize)]
struct CallStats {
    calls: u64,
    accepted: u64,
    faulted: u64,
    rejected: BTreeMap<String, u64>,
    /// Messages put into users' inboxes.
    delivered_messages: u64,
    /// Messages accepted (200) but not delivered because the user blocked the account.
    undelivered_blocked: u64,
}

#[derive(Default, Serialize)]
struct WebhookStats {
    deliveries: u64,
    ok: u64,
    failed: u64,
    redeliveries: u64,
    events: u64,
}

#[derive(Default, Serialize)]
struct Stats {
    reply: CallStats,
    push: CallStats,
    profile: CallStats,
    content: CallStats,
    bot_info: CallStats,
    webhooks: WebhookStats,
}

impl Stats {
    fn of(&mut self, endpoint: Endpoint) -> &mut CallStats {
        match endpoint {
            Endpoint::Reply => &mut self.reply,
            Endpoint::Push => &mut self.push,
            Endpoint::Profile => &mut self.profile,
            Endpoint::Content => &mut self.content,
            Endpoint::BotInfo => &mut self.bot_info,
        }
    }
}

/// How many webhook deliveries the log keeps (oldest dropped first).
const WEBHOOK_LOG_CAP: usize = 10_000;
/// Above this many stored events, the older half of the delivered ones is forgotten
/// (undelivered events are always kept for redelivery).
const EVENT_CAP: usize = 200_000;
/// LINE: "The retry key is valid for 24 hours after the first request."
const RETRY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The media type from the first bytes (JPEG, PNG, GIF, WebP), if it is an image.
fn sniff_image(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some("image/png")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

fn decode_base64(data: &str) -> Result<Vec<u8>, Error> {
    // Accept a data URL too (what a browser's FileReader gives).
    let data = match data.split_once(";base64,") {
        Some((prefix, rest)) if prefix.starts_with("data:") => rest,
        _ => data,
    };
    let cleaned: String = data.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(cleaned.as_bytes())
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(cleaned.as_bytes()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cleaned.as_bytes()))
        .map_err(|e| Error::Invalid(format!("bad base64: {e}")))
}

impl Emulator {
    pub fn new(config: Config) -> Emulator {
        let http = reqwest::Client::builder()
            // The emulator talks to local desks; a proxy from the environment would only get
            // in the way of loopback addresses.
            .no_proxy()
            .build()
            .expect("reqwest client");
        let state = State {
            webhook_url: config.webhook_url.clone(),
            ..State::default()
        };
        Emulator {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                http,
            }),
        }
    }

    /// Everything on one router: LINE's API paths, `/_emulator/...` and the phone page.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(api::routes())
            .merge(control::routes())
            // LINE's own 2 MB request limit is checked in the API handlers (with LINE's
            // answer); the control API takes media as base64, so it needs more room.
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(self.clone())
    }

    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Binds `127.0.0.1:0`, serves in a spawned task and returns the base URL
    /// (`http://127.0.0.1:PORT`).
    pub async fn start(config: Config) -> std::io::Result<(Emulator, String)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let emulator = Emulator::new(config);
        let serving = emulator.clone();
        tokio::spawn(async move {
            if let Err(e) = serving.serve(listener).await {
                tracing::error!("line emulator stopped: {e}");
            }
        });
        Ok((emulator, format!("http://{addr}")))
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn bot_user_id(&self) -> &str {
        &self.inner.config.bot_user_id
    }

    pub fn set_webhook_url(&self, url: &str) {
        self.state().webhook_url = if url.is_empty() {
            None
        } else {
            Some(url.to_string())
        };
    }

    pub fn webhook_url(&self) -> Option<String> {
        self.state().webhook_url.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A LINE user adds the account as a friend: a signed `follow` webhook goes out. With
    /// `user_id` of a user who blocked the account, this is an unblock. Returns the user id.
    pub async fn follow(&self, display_name: &str, user_id: Option<&str>) -> Result<String, Error> {
        self.follow_with(display_name, user_id, None, None)
            .await
            .map(|(id, _, _)| id)
    }

    /// [`Emulator::follow`] with profile details; also returns the follow event's id and
    /// the webhook status.
    pub async fn follow_with(
        &self,
        display_name: &str,
        user_id: Option<&str>,
        picture_url: Option<&str>,
        status_message: Option<&str>,
    ) -> Result<(String, String, Option<u16>), Error> {
        if display_name.trim().is_empty() {
            return Err(Error::Invalid("display_name may not be empty".into()));
        }
        let user_id = match user_id {
            Some(id) if !ids::is_user_id(id) => return Err(Error::InvalidUserId(id.into())),
            Some(id) => id.to_string(),
            None => ids::user_id(),
        };
        let unblocked = {
            let mut state = self.state();
            match state.users.get_mut(&user_id) {
                Some(user) if !user.blocked => return Err(Error::AlreadyFollowing(user_id)),
                Some(user) => {
                    user.blocked = false;
                    user.display_name = display_name.to_string();
                    if picture_url.is_some() {
                        user.picture_url = picture_url.map(str::to_string);
                    }
                    if status_message.is_some() {
                        user.status_message = status_message.map(str::to_string);
                    }
                    true
                }
                None => {
                    state.users.insert(
                        user_id.clone(),
                        User {
                            user_id: user_id.clone(),
                            display_name: display_name.to_string(),
                            picture_url: picture_url.map(str::to_string),
                            status_message: status_message.map(str::to_string),
                            language: Some("ja".into()),
                            blocked: false,
                            inbox: Vec::new(),
                            sent: Vec::new(),
                            conversation: Vec::new(),
                        },
                    );
                    state.user_order.push(user_id.clone());
                    false
                }
            }
        };
        let (event_id, status, _) = self.emit_follow(&user_id, unblocked).await;
        Ok((user_id, event_id, status))
    }

    pub async fn send_text(&self, user_id: &str, text: &str) -> Result<Sent, Error> {
        self.send(user_id, UserMessage::Text(text.to_string()))
            .await
    }

    pub async fn send_image(&self, user_id: &str, bytes: Vec<u8>) -> Result<Sent, Error> {
        self.send(user_id, UserMessage::Image(bytes)).await
    }

    pub async fn send_sticker(
        &self,
        user_id: &str,
        package_id: &str,
        sticker_id: &str,
    ) -> Result<Sent, Error> {
        self.send(
            user_id,
            UserMessage::Sticker {
                package_id: package_id.to_string(),
                sticker_id: sticker_id.to_string(),
            },
        )
        .await
    }

    /// A user sends any kind of message: a signed `message` webhook with a fresh reply token
    /// goes out.
    pub async fn send(&self, user_id: &str, message: UserMessage) -> Result<Sent, Error> {
        self.send_with_content_type(user_id, message, None).await
    }

    /// [`Emulator::send`], with the `Content-Type` LINE's content API will report for the
    /// message's content (image, video, audio, file). LINE reports what the sending app
    /// declared, which says nothing about the bytes: a desk must not trust it. Without one,
    /// the type is sniffed from the bytes as before.
    pub async fn send_with_content_type(
        &self,
        user_id: &str,
        message: UserMessage,
        content_type: Option<&str>,
    ) -> Result<Sent, Error> {
        let message_id = ids::message_id();
        let mut object = serde_json::Map::new();
        object.insert("id".into(), json!(message_id));
        let mut content: Option<Content> = None;
        match message {
            UserMessage::Text(text) => {
                if text.is_empty() {
                    return Err(Error::Invalid("text may not be empty".into()));
                }
                object.insert("type".into(), json!("text"));
                object.insert("quoteToken".into(), json!(ids::quote_token()));
                object.insert("text".into(), json!(text));
            }
            UserMessage::Image(bytes) => {
                if bytes.is_empty() {
                    return Err(Error::Invalid("image may not be empty".into()));
                }
                object.insert("type".into(), json!("image"));
                object.insert("quoteToken".into(), json!(ids::quote_token()));
                object.insert("contentProvider".into(), json!({"type": "line"}));
                let content_type = sniff_image(&bytes).unwrap_or("application/octet-stream");
                content = Some(Content {
                    content_type: content_type.into(),
                    bytes: bytes.into(),
                    kind: "image",
                });
            }
            UserMessage::Sticker {
                package_id,
                sticker_id,
            } => {
                if package_id.is_empty() || sticker_id.is_empty() {
                    return Err(Error::Invalid(
                        "package_id and sticker_id are required".into(),
                    ));
                }
                object.insert("type".into(), json!("sticker"));
                object.insert("quoteToken".into(), json!(ids::quote_token()));
                object.insert("packageId".into(), json!(package_id));
                object.insert("stickerId".into(), json!(sticker_id));
                object.insert("stickerResourceType".into(), json!("STATIC"));
            }
            UserMessage::Location {
                title,
                address,
                latitude,
                longitude,
            } => {
                if !latitude.is_finite() || !longitude.is_finite() {
                    return Err(Error::Invalid(
                        "latitude and longitude must be numbers".into(),
                    ));
                }
                object.insert("type".into(), json!("location"));
                object.insert("title".into(), json!(title));
                object.insert("address".into(), json!(address));
                object.insert("latitude".into(), json!(latitude));
                object.insert("longitude".into(), json!(longitude));
            }
            UserMessage::File { name, bytes } => {
                if name.is_empty() {
                    return Err(Error::Invalid("file name may not be empty".into()));
                }
                object.insert("type".into(), json!("file"));
                object.insert("fileName".into(), json!(name));
                object.insert("fileSize".into(), json!(bytes.len()));
                let content_type = infer::get(&bytes)
                    .map(|t| t.mime_type())
                    .unwrap_or("application/octet-stream");
                content = Some(Content {
                    content_type: content_type.into(),
                    bytes: bytes.into(),
                    kind: "file",
                });
            }
            UserMessage::Video { bytes, duration_ms } => {
                object.insert("type".into(), json!("video"));
                object.insert("quoteToken".into(), json!(ids::quote_token()));
                object.insert("duration".into(), json!(duration_ms));
                object.insert("contentProvider".into(), json!({"type": "line"}));
                let content_type = infer::get(&bytes)
                    .map(|t| t.mime_type())
                    .unwrap_or("video/mp4");
                content = Some(Content {
                    content_type: content_type.into(),
                    bytes: bytes.into(),
                    kind: "video",
                });
            }
            UserMessage::Audio { bytes, duration_ms } => {
                object.insert("type".into(), json!("audio"));
                object.insert("duration".into(), json!(duration_ms));
                object.insert("contentProvider".into(), json!({"type": "line"}));
                let content_type = infer::get(&bytes)
                    .map(|t| t.mime_type())
                    .unwrap_or("audio/x-m4a");
                content = Some(Content {
                    content_type: content_type.into(),
                    bytes: bytes.into(),
                    kind: "audio",
                });
            }
        }
        let message = Value::Object(object);
        let reply_token = ids::reply_token();
        {
            let mut state = self.state();
            let user = state
                .users
                .get_mut(user_id)
                .ok_or_else(|| Error::UnknownUser(user_id.to_string()))?;
            if user.blocked {
                return Err(Error::Blocked(user_id.to_string()));
            }
            let mut shown = message.clone();
            shown["at"] = json!(now_rfc3339());
            user.sent.push(shown);
            let index = user.sent.len() - 1;
            user.conversation.push((false, index));
            if let Some(mut content) = content {
                if let Some(t) = content_type {
                    content.content_type = t.to_owned();
                }
                state.contents.insert(message_id.clone(), content);
            }
            self.register_reply_token(&mut state, &reply_token, user_id);
        }
        let mut event = self.new_event("message", user_id, Some(&reply_token));
        event.insert("message".into(), message);
        let (webhook_event_id, webhook_status) = self.emit(Value::Object(event)).await;
        Ok(Sent {
            message_id,
            reply_token,
            webhook_event_id,
            webhook_status,
        })
    }

    /// The user blocks the account: an `unfollow` webhook (no reply token). Blocking twice
    /// does nothing the second time.
    pub async fn block(&self, user_id: &str) -> Result<(), Error> {
        self.block_with_status(user_id).await.map(|_| ())
    }

    /// [`Emulator::block`], returning the unfollow event id and webhook status (`None` when
    /// the user had already blocked the account).
    pub async fn block_with_status(
        &self,
        user_id: &str,
    ) -> Result<Option<(String, Option<u16>)>, Error> {
        {
            let mut state = self.state();
            let user = state
                .users
                .get_mut(user_id)
                .ok_or_else(|| Error::UnknownUser(user_id.to_string()))?;
            if user.blocked {
                return Ok(None);
            }
            user.blocked = true;
        }
        let event = self.new_event("unfollow", user_id, None);
        Ok(Some(self.emit(Value::Object(event)).await))
    }

    /// The user unblocks the account: a `follow` webhook with `follow.isUnblocked: true`.
    pub async fn unblock(&self, user_id: &str) -> Result<(), Error> {
        self.unblock_with_status(user_id).await.map(|_| ())
    }

    /// [`Emulator::unblock`], returning the follow event id, webhook status and reply token
    /// (`None` when the user had not blocked the account).
    pub async fn unblock_with_status(
        &self,
        user_id: &str,
    ) -> Result<Option<(String, Option<u16>, String)>, Error> {
        {
            let mut state = self.state();
            let user = state
                .users
                .get_mut(user_id)
                .ok_or_else(|| Error::UnknownUser(user_id.to_string()))?;
            if !user.blocked {
                return Ok(None);
            }
            user.blocked = false;
        }
        Ok(Some(self.emit_follow(user_id, true).await))
    }

    async fn emit_follow(&self, user_id: &str, unblocked: bool) -> (String, Option<u16>, String) {
        let reply_token = ids::reply_token();
        self.register_reply_token(&mut self.state(), &reply_token, user_id);
        let mut event = self.new_event("follow", user_id, Some(&reply_token));
        event.insert("follow".into(), json!({ "isUnblocked": unblocked }));
        let (id, status) = self.emit(Value::Object(event)).await;
        (id, status, reply_token)
    }

    fn register_reply_token(&self, state: &mut State, token: &str, user_id: &str) {
        // Keep the table small in long runs: an expired token answers the same as an unknown
        // one, so forgetting expired tokens changes nothing.
        if state.reply_tokens.len() > 10_000 {
            let ttl = self.inner.config.reply_token_ttl;
            state
                .reply_tokens
                .retain(|_, t| !t.used && t.issued.elapsed() < ttl);
        }
        state.reply_tokens.insert(
            token.to_string(),
            ReplyToken {
                user_id: user_id.to_string(),
                issued: Instant::now(),
                used: false,
            },
        );
    }

    /// What the account sent this user (delivered messages only), oldest first: each LINE
    /// message object as received plus `via` (`reply` | `push`), `at`, `request_id`,
    /// `message_id`, and for media `fetched` once the emulator has fetched the URLs.
    pub fn inbox(&self, user_id: &str) -> Vec<Value> {
        self.state()
            .users
            .get(user_id)
            .map(|u| u.inbox.clone())
            .unwrap_or_default()
    }

    /// Both sides of the chat in order: `{"from": "user" | "account", "message": {...}}`.
    pub fn conversation(&self, user_id: &str) -> Result<Vec<Value>, Error> {
        let state = self.state();
        let user = state
            .users
            .get(user_id)
            .ok_or_else(|| Error::UnknownUser(user_id.to_string()))?;
        Ok(user
            .conversation
            .iter()
            .map(|(from_account, i)| {
                if *from_account {
                    json!({"from": "account", "message": user.inbox[*i]})
                } else {
                    json!({"from": "user", "message": user.sent[*i]})
                }
            })
            .collect())
    }

    /// All simulated users, in the order they were created.
    pub fn users(&self) -> Vec<Value> {
        let state = self.state();
        state
            .user_order
            .iter()
            .filter_map(|id| state.users.get(id))
            .map(User::summary)
            .collect()
    }

    /// The next `fault.count` calls to the endpoint answer `fault.status` after
    /// `fault.delay_ms`, and have no effect.
    pub fn add_fault(&self, fault: Fault) {
        self.add_fault_full(fault, false, None);
    }

    /// Like [`Emulator::add_fault`], but the call does take effect (the message is delivered,
    /// the reply token used up, the retry key accepted) before the fault's answer: "LINE got
    /// it, but the caller saw a 500 or a timeout". With `status: 0` the effect happens at
    /// once and the normal answer comes after `delay_ms`.
    pub fn add_fault_after_effect(&self, fault: Fault) {
        self.add_fault_full(fault, true, None);
    }

    /// [`Emulator::add_fault`] with [`FaultOptions`].
    pub fn add_fault_with(&self, fault: Fault, options: FaultOptions) {
        self.add_fault_full(fault, options.after_effect, options.retry_after);
    }

    fn add_fault_full(&self, fault: Fault, after_effect: bool, retry_after: Option<u64>) {
        if fault.count == 0 {
            return;
        }
        self.state()
            .faults
            .entry(fault.endpoint)
            .or_default()
            .push_back(ActiveFault {
                status: fault.status,
                remaining: fault.count,
                delay_ms: fault.delay_ms,
                after_effect,
                retry_after,
            });
    }

    /// The faults still pending, in the order they will be used.
    pub fn faults(&self) -> Vec<Value> {
        let state = self.state();
        state
            .faults
            .iter()
            .flat_map(|(endpoint, queue)| queue.iter().map(|f| f.describe(*endpoint)))
            .collect()
    }

    /// Removes all pending faults.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    fn take_fault(&self, endpoint: Endpoint) -> Option<ActiveFault> {
        let mut state = self.state();
        let queue = state.faults.get_mut(&endpoint)?;
        let front = queue.front_mut()?;
        let taken = front.clone();
        front.remaining -= 1;
        if front.remaining == 0 {
            queue.pop_front();
        }
        Some(taken)
    }

    /// Every webhook delivery attempt, oldest first (the last 10,000).
    pub fn webhook_log(&self) -> Vec<Value> {
        self.state().webhook_log.iter().cloned().collect()
    }

    /// Counters of API calls (accepted, rejected by reason, faulted) and webhook deliveries.
    pub fn stats(&self) -> Value {
        serde_json::to_value(&self.state().stats).unwrap_or(Value::Null)
    }

    /// Forgets users, tokens, contents, retry keys, events, the log, faults and counters.
    /// The configuration and webhook URL stay.
    pub fn reset(&self) {
        let mut state = self.state();
        let webhook_url = state.webhook_url.take();
        *state = State {
            webhook_url,
            ..State::default()
        };
    }
}
