//! A thin typed client for the few Messaging API calls the desk makes.
//!
//! Errors are typed by what the caller has to do next, not by HTTP detail: retry later
//! ([`LineError::is_retryable`]), do not resend blindly because LINE may already have
//! delivered it ([`LineError::may_have_been_delivered`]), give up on the reply token
//! ([`LineError::InvalidReplyToken`]), count a push as sent ([`LineError::AlreadyAccepted`]),
//! or show LINE's message to the agent ([`LineError::BadRequest`]).

use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::{Deserialize, Serialize};

use crate::message::OutMessage;

/// How long the client waits. The defaults are those of [`Client::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP + TLS connect. Short: a connect failure is safe to retry at once.
    pub connect: Duration,
    /// Whole API call (connect, send, full response).
    pub request: Duration,
    /// Whole content download; longer, since videos and files can be large.
    pub content: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(20),
            content: Duration::from_secs(120),
        }
    }
}

/// The Messaging API client. Cheap to clone (one shared connection pool).
///
/// `Debug` never shows the channel access token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    api_base: Arc<str>,
    data_api_base: Arc<str>,
    /// `Bearer <token>`, marked sensitive; `None` when the token cannot be an HTTP header
    /// value (every call then fails with [`LineError::Unauthorized`], as LINE would answer).
    auth: Option<HeaderValue>,
    timeouts: Timeouts,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("api_base", &self.api_base)
            .field("data_api_base", &self.data_api_base)
            .field("channel_access_token", &"<redacted>")
            .field("timeouts", &self.timeouts)
            .finish()
    }
}

/// IDs of the messages LINE accepted, in the order sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentMessages {
    /// Empty when LINE (or an older API version, or the emulator) did not list them.
    pub sent_message_ids: Vec<String>,
}

/// A user's profile (`GET /v2/bot/profile/{userId}`), in LINE's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub user_id: String,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// BCP 47; absent until the user accepted LINE's privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// Downloaded media of a message the user sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Content {
    pub bytes: bytes::Bytes,
    /// As LINE labels it; sniff the bytes before trusting it.
    pub content_type: Option<String>,
}

/// The bot's own account (`GET /v2/bot/info`), in LINE's JSON shape. Useful to check a
/// channel access token and to show which account the desk is connected to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotInfo {
    pub user_id: String,
    pub basic_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub premium_id: Option<String>,
    pub display_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture_url: Option<String>,
    /// `chat` or `bot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_mode: Option<String>,
    /// `auto` or `manual`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark_as_read_mode: Option<String>,
}

/// What went wrong calling LINE, typed by what the caller should do about it.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// 400 "Invalid reply token": used, expired, or never issued. Send with push instead.
    #[error("LINE rejected the reply token (already used, expired or unknown)")]
    InvalidReplyToken,
    /// 409 on push: a request with this retry key was already accepted, so the message was
    /// sent. Count it as delivered.
    #[error("LINE already accepted a push with this retry key")]
    AlreadyAccepted { request_id: Option<String> },
    /// 429. `retry_after` from the `Retry-After` header (seconds form) when given.
    #[error("LINE rate limit exceeded")]
    RateLimited { retry_after: Option<Duration> },
    /// 401: the channel access token is wrong, revoked or expired.
    #[error("LINE rejected the channel access token")]
    Unauthorized,
    /// Any other 4xx (or an unexpected status); `message` is LINE's `message` with its
    /// `details` appended, fit to show to the agent.
    #[error("LINE rejected the request ({status}): {message}")]
    BadRequest { status: u16, message: String },
    /// 404: a profile of an unknown user or one who blocked the account, or content that
    /// LINE no longer has.
    #[error("not found at LINE")]
    NotFound,
    /// 5xx: LINE failed; the request may or may not have taken effect. Also a content
    /// download answered 202 (LINE is still preparing a video or audio): retry later.
    #[error("LINE server error ({status})")]
    Server { status: u16 },
    /// No (complete) answer in time. `maybe_sent` is false only when the connection was never
    /// made; it is also true when an established connection broke before the answer, since
    /// for the caller the two are the same: LINE may have acted on the request.
    #[error("no answer from LINE{}", if *.maybe_sent { " (the request may have been delivered)" } else { " (could not connect in time)" })]
    Timeout { maybe_sent: bool },
    /// The request never went out (DNS, connection refused, TLS), or LINE's answer to a
    /// read-only call was not what the API documents.
    #[error("could not talk to LINE: {0}")]
    Network(String),
}

impl LineError {
    /// Worth trying again later (with backoff; after `retry_after` for 429).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LineError::RateLimited { .. }
                | LineError::Server { .. }
                | LineError::Timeout { .. }
                | LineError::Network(_)
        )
    }

    /// LINE may have delivered the message although the call failed. The reply API has no
    /// retry key, so a reply failing like this must not be resent blindly (push is safe to
    /// retry with the same retry key: a duplicate answers 409).
    pub fn may_have_been_delivered(&self) -> bool {
        matches!(
            self,
            LineError::Server { .. } | LineError::Timeout { maybe_sent: true }
        )
    }
}

impl Client {
    /// A client for `api_base` (`https://api.line.me`) and `data_api_base`
    /// (`https://api-data.line.me`; content downloads), with the default [`Timeouts`]:
    /// connect 5 s, API calls 20 s, content downloads 120 s.
    pub fn new(api_base: &str, data_api_base: &str, channel_access_token: &str) -> Client {
        Client::with_timeouts(
            api_base,
            data_api_base,
            channel_access_token,
            Timeouts::default(),
        )
    }

    /// Like [`Client::new`] with other timeouts (tests, slow networks).
    pub fn with_timeouts(
        api_base: &str,
        data_api_base: &str,
        channel_access_token: &str,
        timeouts: Timeouts,
    ) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            // A redirect is never part of LINE's API; following one would re-send a POST
            // (or turn it into a GET) somewhere else, with our token.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("linedesk-line-api/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only fails when the TLS backend cannot initialise, which is a broken build.
            .expect("building the HTTP client");
        // Trimmed: a token pasted or read from a file often carries a newline; LINE's
        // tokens never contain whitespace.
        let token = channel_access_token.trim();
        let auth = HeaderValue::try_from(format!("Bearer {token}"))
            .ok()
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Client {
            http,
            api_base: api_base.trim_end_matches('/').into(),
            data_api_base: data_api_base.trim_end_matches('/').into(),
            auth,
            timeouts,
        }
    }

    /// Sends up to 5 messages with a reply token (`POST /v2/bot/message/reply`).
    ///
    /// A reply cannot be made idempotent: on an error where
    /// [`LineError::may_have_been_delivered`] is true, do not simply send it again.
    pub async fn reply(
        &self,
        reply_token: &str,
        messages: &[OutMessage],
    ) -> Result<SentMessages, LineError> {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ReplyRequest<'a> {
            reply_token: &'a str,
            messages: &'a [OutMessage],
        }
        let url = format!("{}/v2/bot/message/reply", self.api_base);
        let req = self
            .request(Method::POST, &url, self.timeouts.request)?
            .json(&ReplyRequest {
                reply_token,
                messages,
            });
        let resp = execute(req, Call::Reply).await?;
        Ok(sent_messages(resp, "reply").await)
    }

    /// Sends up to 5 messages to a user, group or room (`POST /v2/bot/message/push`).
    ///
    /// `retry_key` goes out as `X-Line-Retry-Key`: use one key per logical send and the
    /// same key for every retry of it; LINE then delivers it at most once and answers a
    /// duplicate with 409 ([`LineError::AlreadyAccepted`]).
    pub async fn push(
        &self,
        to: &str,
        messages: &[OutMessage],
        retry_key: uuid::Uuid,
    ) -> Result<SentMessages, LineError> {
        #[derive(Serialize)]
        struct PushRequest<'a> {
            to: &'a str,
            messages: &'a [OutMessage],
        }
        let url = format!("{}/v2/bot/message/push", self.api_base);
        let req = self
            .request(Method::POST, &url, self.timeouts.request)?
            .header("X-Line-Retry-Key", retry_key.hyphenated().to_string())
            .json(&PushRequest { to, messages });
        let resp = execute(req, Call::Push).await?;
        Ok(sent_messages(resp, "push").await)
    }

    /// A user's profile (`GET /v2/bot/profile/{userId}`). [`LineError::NotFound`] when the
    /// user is unknown or has blocked the account.
    pub async fn profile(&self, user_id: &str) -> Result<Profile, LineError> {
        let url = format!(
            "{}/v2/bot/profile/{}",
            self.api_base,
            encode_segment(user_id)
        );
        let req = self.request(Method::GET, &url, self.timeouts.request)?;
        json_response(execute(req, Call::Other).await?).await
    }

    /// Media of an image, video, audio or file message, from the data API
    /// (`GET /v2/bot/message/{messageId}/content`). LINE keeps it only for a while, so
    /// download it when the message arrives.
    pub async fn content(&self, message_id: &str) -> Result<Content, LineError> {
        let url = format!(
            "{}/v2/bot/message/{}/content",
            self.data_api_base,
            encode_segment(message_id)
        );
        let req = self.request(Method::GET, &url, self.timeouts.content)?;
        let resp = execute(req, Call::Other).await?;
        if resp.status() == StatusCode::ACCEPTED {
            // The video/audio is still being prepared; there is nothing to download yet.
            return Err(LineError::Server { status: 202 });
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await.map_err(transport_error)?;
        Ok(Content {
            bytes,
            content_type,
        })
    }

    /// The bot's own account (`GET /v2/bot/info`).
    pub async fn bot_info(&self) -> Result<BotInfo, LineError> {
        let url = format!("{}/v2/bot/info", self.api_base);
        let req = self.request(Method::GET, &url, self.timeouts.request)?;
        json_response(execute(req, Call::Other).await?).await
    }

    fn request(
        &self,
        method: Method,
        url: &str,
        timeout: Duration,
    ) -> Result<RequestBuilder, LineError> {
        let auth = self.auth.clone().ok_or(LineError::Unauthorized)?;
        Ok(self
            .http
            .request(method, url)
            .header(AUTHORIZATION, auth)
            .timeout(timeout))
    }
}

/// Which call this is: 409 means "already accepted" only for push with a retry key.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Reply,
    Push,
    Other,
}

async fn execute(req: RequestBuilder, call: Call) -> Result<Response, LineError> {
    let resp = req.send().await.map_err(transport_error)?;
    if resp.status().is_success() {
        Ok(resp)
    } else {
        Err(status_error(resp, call).await)
    }
}

/// Maps a non-2xx answer to a [`LineError`].
async fn status_error(resp: Response, call: Call) -> LineError {
    let status = resp.status();
    let headers = resp.headers().clone();
    // The body only adds detail; if it cannot be read, the status still decides.
    let body = resp.bytes().await.unwrap_or_default();
    let error: Option<ErrorResponse> = serde_json::from_slice(&body).ok();
    match status.as_u16() {
        400 if error.as_ref().is_some_and(|e| {
            e.message
                .to_ascii_lowercase()
                .contains("invalid reply token")
        }) =>
        {
            LineError::InvalidReplyToken
        }
        401 => LineError::Unauthorized,
        404 => LineError::NotFound,
        409 if call == Call::Push => LineError::AlreadyAccepted {
            request_id: header_str(&headers, "x-line-accepted-request-id"),
        },
        429 => LineError::RateLimited {
            retry_after: header_str(&headers, RETRY_AFTER.as_str())
                .and_then(|s| s.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        s @ 500..=599 => LineError::Server { status: s },
        s => LineError::BadRequest {
            status: s,
            message: describe(status, error, &body),
        },
    }
}

/// LINE's error text for people: `message`, then each detail as `property: message`.
fn describe(status: StatusCode, error: Option<ErrorResponse>, body: &[u8]) -> String {
    match error {
        Some(e) => {
            let details: Vec<String> = e
                .details
                .iter()
                .filter_map(|d| match (&d.property, &d.message) {
                    (Some(p), Some(m)) => Some(format!("{p}: {m}")),
                    (None, Some(m)) => Some(m.clone()),
                    (Some(p), None) => Some(p.clone()),
                    (None, None) => None,
                })
                .collect();
            if details.is_empty() {
                e.message
            } else {
                format!("{} ({})", e.message, details.join("; "))
            }
        }
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("unexpected status")
                    .to_owned()
            } else {
                text.chars().take(300).collect()
            }
        }
    }
}

/// Maps a transport failure. Only a failed connect proves the request never reached LINE.
fn transport_error(e: reqwest::Error) -> LineError {
    if e.is_connect() {
        if e.is_timeout() {
            LineError::Timeout { maybe_sent: false }
        } else {
            LineError::Network(error_chain(&e))
        }
    } else if e.is_builder() {
        LineError::Network(error_chain(&e))
    } else {
        // A timeout after connecting, or a connection that broke mid-request: LINE may
        // have received and acted on it.
        if !e.is_timeout() {
            tracing::warn!(error = %error_chain(&e), "LINE request failed after connecting");
        }
        LineError::Timeout { maybe_sent: true }
    }
}

/// reqwest's own message is terse ("error sending request"); the cause is in the sources.
fn error_chain(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The sent message IDs of a 2xx reply/push answer. A 2xx means LINE accepted the
/// messages, so an unreadable body must not turn into an error (which could make the caller
/// send them again); it only loses the IDs.
async fn sent_messages(resp: Response, call: &str) -> SentMessages {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Wire {
        #[serde(default)]
        sent_messages: Vec<SentMessage>,
    }
    #[derive(Deserialize)]
    struct SentMessage {
        id: String,
    }
    let body = match resp.bytes().await {
        Ok(body) => body,
        Err(e) => {
            tracing::warn!(call, error = %error_chain(&e), "LINE accepted the messages but the answer could not be read");
            return SentMessages::default();
        }
    };
    match serde_json::from_slice::<Wire>(&body) {
        Ok(w) => SentMessages {
            sent_message_ids: w.sent_messages.into_iter().map(|m| m.id).collect(),
        },
        Err(e) => {
            tracing::warn!(call, error = %e, "LINE accepted the messages but the answer was not the documented JSON");
            SentMessages::default()
        }
    }
}

async fn json_response<T: serde::de::DeserializeOwned>(resp: Response) -> Result<T, LineError> {
    let body = resp.bytes().await.map_err(transport_error)?;
    serde_json::from_slice(&body)
        .map_err(|e| LineError::Network(format!("unexpected answer from LINE: {e}")))
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Percent-encodes an ID for one path segment, so an ID from a webhook can never change
/// which endpoint is called.
fn encode_segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// LINE's error body (`ErrorResponse` in messaging-api.yml).
#[derive(Deserialize)]
struct ErrorResponse {
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
    property: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_token() {
        let c = Client::new(
            "https://api.line.me/",
            "https://api-data.line.me",
            "s3cr3t-token",
        );
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert!(dbg.contains("https://api.line.me\""), "{dbg}");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("U0123abc"), "U0123abc");
        assert_eq!(encode_segment("../info"), "%2E%2E%2Finfo");
        assert_eq!(encode_segment("a b?#"), "a%20b%3F%23");
    }

    #[test]
    fn classification() {
        use LineError::*;
        let all = [
            InvalidReplyToken,
            AlreadyAccepted { request_id: None },
            RateLimited { retry_after: None },
            Unauthorized,
            BadRequest {
                status: 400,
                message: String::new(),
            },
            NotFound,
            Server { status: 500 },
            Timeout { maybe_sent: true },
            Timeout { maybe_sent: false },
            Network(String::new()),
        ];
        let retryable: Vec<bool> = all.iter().map(LineError::is_retryable).collect();
        assert_eq!(
            retryable,
            [
                false, false, true, false, false, false, true, true, true, true
            ]
        );
        let maybe: Vec<bool> = all.iter().map(LineError::may_have_been_delivered).collect();
        assert_eq!(
            maybe,
            [
                false, false, false, false, false, false, true, true, false, false
            ]
        );
    }
}
