//! LINE's Messaging API paths, with LINE's documented rules.
//!
//! Sources: /work/shared/line-openapi/messaging-api.yml and the Messaging API reference
//! (developers.line.biz/en/reference/messaging-api/): status codes, error messages, retry
//! keys (developers.line.biz/en/docs/messaging-api/retrying-api-request/).
//!
//! Why one file of ~750 lines: one handler per LINE API path, each with LINE's rules for it, in
//! the order of LINE's reference; splitting would scatter the reference.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::validate::{Problems, check_messages, is_quotable};
use crate::{
    AcceptedRetry, Emulator, Endpoint, RETRY_KEY_TTL, State as EmuState, ids, now_rfc3339,
    sniff_image,
};

/// LINE's answer when the Authorization header is missing or not `Bearer <token>`.
pub const AUTH_REQUIRED: &str =
    "Authorization header required. Must follow the scheme, 'Authorization: Bearer <ACCESS TOKEN>'";
/// LINE's answer to a wrong channel access token.
pub const AUTH_FAILED: &str =
    "Authentication failed. Confirm that the access token in the authorization header is valid.";
pub const INVALID_REPLY_TOKEN: &str = "Invalid reply token";
pub const RETRY_KEY_ACCEPTED: &str = "The retry key is already accepted";
/// LINE's request size limit (413 above it).
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;
/// LINE's limits for the files behind image message URLs.
const MAX_ORIGINAL_BYTES: u64 = 10 * 1024 * 1024;
const MAX_PREVIEW_BYTES: u64 = 1024 * 1024;
/// How much of a media URL the emulator reads at most.
const FETCH_READ_CAP: u64 = 32 * 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/v2/bot/message/reply", post(reply))
        .route("/v2/bot/message/push", post(push))
        .route("/v2/bot/profile/{user_id}", get(profile))
        .route("/v2/bot/message/{message_id}/content", get(content))
        .route(
            "/v2/bot/message/{message_id}/content/preview",
            get(content_preview),
        )
        .route(
            "/v2/bot/message/{message_id}/content/transcoding",
            get(content_transcoding),
        )
        .route("/v2/bot/info", get(bot_info))
}

fn line_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// A LINE error answer: status and `message`.
struct LineError(StatusCode, String);

impl IntoResponse for LineError {
    fn into_response(self) -> Response {
        line_error(self.0, &self.1)
    }
}

fn bump(state: &mut EmuState, endpoint: Endpoint, rejected: Option<&str>) {
    let stats = state.stats.of(endpoint);
    match rejected {
        None => stats.accepted += 1,
        Some(reason) => *stats.rejected.entry(reason.to_string()).or_default() += 1,
    }
}

/// The answer of an injected fault.
fn fault_response(status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match status {
        401 => AUTH_FAILED,
        403 => "Access to this API is not available for your account",
        404 => "Not found",
        409 => RETRY_KEY_ACCEPTED,
        413 => "Request Entity Too Large",
        429 => "The API rate limit has been exceeded. Try again later.",
        _ => code.canonical_reason().unwrap_or("Error"),
    };
    let mut response = line_error(code, message);
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

impl Emulator {
    /// `Err` carries LINE's 401 message.
    fn check_auth(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let Some(token) = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
        else {
            return Err(AUTH_REQUIRED);
        };
        if token.trim() != self.inner.config.channel_access_token {
            return Err(AUTH_FAILED);
        }
        Ok(())
    }

    /// Runs one API call: counts it, applies a pending fault, checks the bearer token, does
    /// `work` and stamps `x-line-request-id` on whatever the answer is.
    async fn call(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        work: impl FnOnce(&str) -> Response,
    ) -> Response {
        let request_id = ids::request_id();
        self.state().stats.of(endpoint).calls += 1;
        let fault = self.take_fault(endpoint);
        let run = |request_id: &str| match self.check_auth(headers) {
            Err(message) => {
                bump(&mut self.state(), endpoint, Some("unauthorized"));
                line_error(StatusCode::UNAUTHORIZED, message)
            }
            Ok(()) => work(request_id),
        };
        let mut response = match fault {
            None => run(&request_id),
            Some(fault) => {
                self.state().stats.of(endpoint).faulted += 1;
                let delay = Duration::from_millis(fault.delay_ms);
                if fault.status == 0 {
                    // A slow LINE. With after_effect the work is done at once and only the
                    // answer is late; otherwise the work happens after the wait (and not at
                    // all if the caller gives up and closes the connection).
                    if fault.after_effect {
                        let response = run(&request_id);
                        tokio::time::sleep(delay).await;
                        response
                    } else {
                        tokio::time::sleep(delay).await;
                        run(&request_id)
                    }
                } else {
                    if fault.after_effect {
                        let _ = run(&request_id);
                    }
                    tokio::time::sleep(delay).await;
                    fault_response(fault.status, fault.retry_after)
                }
            }
        };
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-line-request-id", value);
        }
        response
    }

    /// Content type, size and JSON checks shared by reply and push.
    fn parse_json_request(
        &self,
        endpoint: Endpoint,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, LineError> {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !content_type
            .to_ascii_lowercase()
            .starts_with("application/json")
        {
            bump(
                &mut self.state(),
                endpoint,
                Some("unsupported_content_type"),
            );
            return Err(LineError(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("The content type, {content_type}, is not supported"),
            ));
        }
        if body.len() > MAX_REQUEST_BYTES {
            bump(&mut self.state(), endpoint, Some("payload_too_large"));
            return Err(LineError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request Entity Too Large".into(),
            ));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(value) if value.is_object() => Ok(value),
            Ok(_) => {
                bump(&mut self.state(), endpoint, Some("bad_json"));
                Err(LineError(
                    StatusCode::BAD_REQUEST,
                    "The request body could not be parsed as JSON (line: 1, column: 1)".into(),
                ))
            }
            Err(e) => {
                bump(&mut self.state(), endpoint, Some("bad_json"));
                Err(LineError(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "The request body could not be parsed as JSON (line: {}, column: {})",
                        e.line(),
                        e.column()
                    ),
                ))
            }
        }
    }

    /// Gives each message an id (and a quote token where LINE gives one), and puts the
    /// messages into the user's inbox unless the user blocked the account. Returns the
    /// `sentMessages` array and the media fetches to start.
    #[allow(clippy::too_many_arguments)]
    fn deliver_messages(
        &self,
        state: &mut EmuState,
        endpoint: Endpoint,
        user_id: &str,
        messages: &[Value],
        via: &str,
        request_id: &str,
        notification_disabled: bool,
        reply_token: Option<&str>,
    ) -> (Vec<Value>, Vec<FetchJob>) {
        let mut sent_messages = Vec::new();
        let mut jobs = Vec::new();
        let deliverable = state.users.get(user_id).is_some_and(|u| !u.blocked);
        for message in messages {
            let message_id = ids::message_id();
            let kind = message["type"].as_str().unwrap_or_default();
            let quote_token = is_quotable(kind).then(ids::quote_token);
            let mut sent = json!({ "id": message_id });
            if let Some(token) = &quote_token {
                sent["quoteToken"] = json!(token);
            }
            sent_messages.push(sent);
            if !deliverable {
                state.stats.of(endpoint).undelivered_blocked += 1;
                continue;
            }
            let mut entry = message.clone();
            entry["via"] = json!(via);
            entry["at"] = json!(now_rfc3339());
            entry["request_id"] = json!(request_id);
            // Which reply token carried it (tests check a reply rode the right message's).
            if let Some(token) = reply_token {
                entry["reply_token"] = json!(token);
            }
            entry["message_id"] = json!(message_id);
            entry["quote_token"] = json!(quote_token);
            entry["notification_disabled"] = json!(notification_disabled);
            let mut urls = Vec::new();
            for (name, field, limit) in [
                ("original", "originalContentUrl", MAX_ORIGINAL_BYTES),
                ("preview", "previewImageUrl", MAX_PREVIEW_BYTES),
            ] {
                if let Some(url) = message.get(field).and_then(Value::as_str) {
                    urls.push((name, url.to_string(), limit));
                }
            }
            let user = state.users.get_mut(user_id).expect("checked above");
            user.inbox.push(entry);
            let index = user.inbox.len() - 1;
            user.conversation.push((true, index));
            state.stats.of(endpoint).delivered_messages += 1;
            if !urls.is_empty() {
                jobs.push(FetchJob {
                    user_id: user_id.to_string(),
                    index,
                    urls,
                });
            }
        }
        (sent_messages, jobs)
    }

    /// Fetches media URLs the way LINE's servers do when the user opens the message, and
    /// records what came back in the inbox entry (`fetched`).
    fn spawn_fetches(&self, jobs: Vec<FetchJob>) {
        for job in jobs {
            let emulator = self.clone();
            tokio::spawn(async move {
                let mut fetched = serde_json::Map::new();
                for (name, url, limit) in &job.urls {
                    fetched.insert(name.to_string(), emulator.fetch_media(url, *limit).await);
                }
                let mut state = emulator.state();
                if let Some(entry) = state
                    .users
                    .get_mut(&job.user_id)
                    .and_then(|u| u.inbox.get_mut(job.index))
                {
                    entry["fetched"] = Value::Object(fetched);
                }
            });
        }
    }

    async fn fetch_media(&self, url: &str, limit: u64) -> Value {
        let response = match self.inner.http.get(url).timeout(FETCH_TIMEOUT).send().await {
            Ok(response) => response,
            Err(e) => return json!({ "status": null, "error": e.to_string() }),
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut response = response;
        let mut total: u64 = 0;
        let mut head: Vec<u8> = Vec::new();
        let mut error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if head.len() < 16 {
                        head.extend_from_slice(&chunk[..chunk.len().min(16 - head.len())]);
                    }
                    total += chunk.len() as u64;
                    if total > FETCH_READ_CAP {
                        error = Some("stopped reading: larger than 32 MB".to_string());
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        json!({
            "status": status,
            "content_type": content_type,
            "bytes": total,
            "sniffed": sniff_image(&head),
            "too_large": total > limit,
            "error": error,
        })
    }
}

pub(crate) struct FetchJob {
    user_id: String,
    index: usize,
    urls: Vec<(&'static str, String, u64)>,
}

async fn reply(State(emulator): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = Endpoint::Reply;
    let mut jobs = Vec::new();
    let response = emulator
        .call(endpoint, &headers, |request_id| {
            // LINE: a retry key on an API that does not support one is rejected with 400.
            if headers.contains_key("x-line-retry-key") {
                bump(
                    &mut emulator.state(),
                    endpoint,
                    Some("retry_key_not_supported"),
                );
                return line_error(
                    StatusCode::BAD_REQUEST,
                    "X-Line-Retry-Key is not supported for this API",
                );
            }
            let body = match emulator.parse_json_request(endpoint, &headers, &body) {
                Ok(body) => body,
                Err(e) => return e.into_response(),
            };
            let mut problems = Problems::default();
            let token = match body.get("replyToken") {
                Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    problems.add("May not be empty", "replyToken");
                    None
                }
                Some(_) => {
                    problems.add("Must be a string", "replyToken");
                    None
                }
            };
            let messages = check_messages(
                &body,
                emulator.inner.config.require_https_media,
                &mut problems,
            );
            let notification_disabled = check_notification_disabled(&body, &mut problems);
            if !problems.is_empty() {
                bump(&mut emulator.state(), endpoint, Some("invalid_request"));
                return (StatusCode::BAD_REQUEST, Json(problems.error_body())).into_response();
            }
            let token = token.expect("no problems means a token");
            let ttl = emulator.inner.config.reply_token_ttl;
            let mut guard = emulator.state();
            let state = &mut *guard;
            let user_id = match state.reply_tokens.get(&token) {
                Some(t) if !t.used && t.issued.elapsed() < ttl => t.user_id.clone(),
                Some(t) => {
                    let reason = if t.used {
                        "reply_token_used"
                    } else {
                        "reply_token_expired"
                    };
                    bump(state, endpoint, Some(reason));
                    return line_error(StatusCode::BAD_REQUEST, INVALID_REPLY_TOKEN);
                }
                None => {
                    bump(state, endpoint, Some("reply_token_unknown"));
                    return line_error(StatusCode::BAD_REQUEST, INVALID_REPLY_TOKEN);
                }
            };
            if let Some(t) = state.reply_tokens.get_mut(&token) {
                t.used = true;
            }
            let (sent_messages, fetches) = emulator.deliver_messages(
                state,
                endpoint,
                &user_id,
                &messages,
                "reply",
                request_id,
                notification_disabled,
                Some(&token),
            );
            jobs = fetches;
            bump(state, endpoint, None);
            (
                StatusCode::OK,
                Json(json!({ "sentMessages": sent_messages })),
            )
                .into_response()
        })
        .await;
    emulator.spawn_fetches(jobs);
    response
}

fn check_notification_disabled(body: &Value, problems: &mut Problems) -> bool {
    match body.get("notificationDisabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            problems.add("Must be a boolean", "notificationDisabled");
            false
        }
    }
}

async fn push(State(emulator): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let endpoint = Endpoint::Push;
    let mut jobs = Vec::new();
    let response = emulator
        .call(endpoint, &headers, |request_id| {
            let retry_key = match headers.get("x-line-retry-key") {
                None => None,
                Some(value) => match value
                    .to_str()
                    .ok()
                    .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
                {
                    // A retry key is "a hexadecimal UUID"; compare them in one spelling.
                    Some(key) => Some(key.hyphenated().to_string()),
                    None => {
                        bump(&mut emulator.state(), endpoint, Some("invalid_retry_key"));
                        return line_error(
                            StatusCode::BAD_REQUEST,
                            "The value of the X-Line-Retry-Key header is invalid. Specify a UUID.",
                        );
                    }
                },
            };
            let body = match emulator.parse_json_request(endpoint, &headers, &body) {
                Ok(body) => body,
                Err(e) => return e.into_response(),
            };
            let mut guard = emulator.state();
            let state = &mut *guard;
            if let Some(key) = &retry_key {
                state
                    .retry_keys
                    .retain(|_, accepted| accepted.at.elapsed() < RETRY_KEY_TTL);
                if let Some(accepted) = state.retry_keys.get(key) {
                    let accepted_request_id = accepted.request_id.clone();
                    let sent_messages = accepted.sent_messages.clone();
                    bump(state, endpoint, Some("retry_key_already_accepted"));
                    let mut response = (
                        StatusCode::CONFLICT,
                        Json(json!({
                            "message": RETRY_KEY_ACCEPTED,
                            "sentMessages": sent_messages,
                        })),
                    )
                        .into_response();
                    if let Ok(value) = HeaderValue::from_str(&accepted_request_id) {
                        response
                            .headers_mut()
                            .insert("x-line-accepted-request-id", value);
                    }
                    return response;
                }
            }
            let mut problems = Problems::default();
            let to = match body.get("to") {
                Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                Some(Value::String(_)) | None | Some(Value::Null) => {
                    problems.add("May not be empty", "to");
                    None
                }
                Some(_) => {
                    problems.add("Must be a string", "to");
                    None
                }
            };
            let messages = check_messages(
                &body,
                emulator.inner.config.require_https_media,
                &mut problems,
            );
            let notification_disabled = check_notification_disabled(&body, &mut problems);
            if !problems.is_empty() {
                bump(state, endpoint, Some("invalid_request"));
                return (StatusCode::BAD_REQUEST, Json(problems.error_body())).into_response();
            }
            let to = to.expect("no problems means a recipient");
            if !ids::is_user_id(&to) {
                bump(state, endpoint, Some("invalid_to"));
                return line_error(
                    StatusCode::BAD_REQUEST,
                    "The property, 'to', in the request body is invalid (line: -, column: -)",
                );
            }
            if !state.users.contains_key(&to) {
                // LINE's documented answer for a user id that does not exist.
                bump(state, endpoint, Some("unknown_user"));
                return line_error(StatusCode::BAD_REQUEST, "Failed to send messages");
            }
            // A user who blocked the account: LINE accepts the request (200) and delivers
            // nothing ("accepted ... even if it couldn't be delivered correctly because the
            // user has blocked the LINE Official Account").
            let (sent_messages, fetches) = emulator.deliver_messages(
                state,
                endpoint,
                &to,
                &messages,
                "push",
                request_id,
                notification_disabled,
                None,
            );
            jobs = fetches;
            if let Some(key) = retry_key {
                state.retry_keys.insert(
                    key,
                    AcceptedRetry {
                        request_id: request_id.to_string(),
                        sent_messages: sent_messages.clone(),
                        at: std::time::Instant::now(),
                    },
                );
            }
            bump(state, endpoint, None);
            (
                StatusCode::OK,
                Json(json!({ "sentMessages": sent_messages })),
            )
                .into_response()
        })
        .await;
    emulator.spawn_fetches(jobs);
    response
}

async fn profile(
    State(emulator): State<Emulator>,
    Path(user_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let endpoint = Endpoint::Profile;
    emulator
        .call(endpoint, &headers, |_| {
            let mut guard = emulator.state();
            let state = &mut *guard;
            // LINE answers 404 for a user who does not exist, is not a friend, or blocked
            // the account after adding it.
            let profile = match state.users.get(&user_id) {
                Some(user) if !user.blocked => {
                    let mut profile = json!({
                        "displayName": user.display_name,
                        "userId": user.user_id,
                    });
                    // Optional fields are left out when not set, as LINE does.
                    if let Some(url) = &user.picture_url {
                        profile["pictureUrl"] = json!(url);
                    }
                    if let Some(status) = &user.status_message {
                        profile["statusMessage"] = json!(status);
                    }
                    if let Some(language) = &user.language {
                        profile["language"] = json!(language);
                    }
                    Some(profile)
                }
                Some(_) => None,
                None => None,
            };
            match profile {
                Some(profile) => {
                    bump(state, endpoint, None);
                    (StatusCode::OK, Json(profile)).into_response()
                }
                None => {
                    bump(state, endpoint, Some("not_found"));
                    line_error(StatusCode::NOT_FOUND, "Not found")
                }
            }
        })
        .await
}

#[derive(Clone, Copy, PartialEq)]
enum ContentView {
    Original,
    Preview,
    Transcoding,
}

fn serve_content(emulator: &Emulator, message_id: &str, view: ContentView) -> Response {
    let endpoint = Endpoint::Content;
    let mut guard = emulator.state();
    let state = &mut *guard;
    let Some(content) = state.contents.get(message_id) else {
        bump(state, endpoint, Some("not_found"));
        return line_error(StatusCode::NOT_FOUND, "Not found");
    };
    let kind = content.kind;
    let response = match view {
        ContentView::Original => Some((content.content_type.clone(), content.bytes.clone())),
        // The emulator keeps no separate preview: an image is its own preview.
        ContentView::Preview if kind == "image" => {
            Some((content.content_type.clone(), content.bytes.clone()))
        }
        ContentView::Preview => None,
        ContentView::Transcoding => None,
    };
    if view == ContentView::Transcoding {
        return if kind == "video" || kind == "audio" {
            bump(state, endpoint, None);
            (StatusCode::OK, Json(json!({"status": "succeeded"}))).into_response()
        } else {
            bump(state, endpoint, Some("not_found"));
            line_error(StatusCode::NOT_FOUND, "Not found")
        };
    }
    match response {
        Some((content_type, bytes)) => {
            bump(state, endpoint, None);
            let mut response = (StatusCode::OK, bytes).into_response();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        None => {
            bump(state, endpoint, Some("not_found"));
            line_error(StatusCode::NOT_FOUND, "Not found")
        }
    }
}

async fn content(
    State(emulator): State<Emulator>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    emulator
        .call(Endpoint::Content, &headers, |_| {
            serve_content(&emulator, &message_id, ContentView::Original)
        })
        .await
}

async fn content_preview(
    State(emulator): State<Emulator>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    emulator
        .call(Endpoint::Content, &headers, |_| {
            serve_content(&emulator, &message_id, ContentView::Preview)
        })
        .await
}

async fn content_transcoding(
    State(emulator): State<Emulator>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    emulator
        .call(Endpoint::Content, &headers, |_| {
            serve_content(&emulator, &message_id, ContentView::Transcoding)
        })
        .await
}

async fn bot_info(State(emulator): State<Emulator>, headers: HeaderMap) -> Response {
    let endpoint = Endpoint::BotInfo;
    emulator
        .call(endpoint, &headers, |_| {
            bump(&mut emulator.state(), endpoint, None);
            let bot_id = &emulator.inner.config.bot_user_id;
            (
                StatusCode::OK,
                Json(json!({
                    "userId": bot_id,
                    "basicId": format!("@{}", &bot_id[1..bot_id.len().min(9)]),
                    "displayName": "LINE Emulator",
                    "chatMode": "bot",
                    "markAsReadMode": "auto",
                })),
            )
                .into_response()
        })
        .await
}
