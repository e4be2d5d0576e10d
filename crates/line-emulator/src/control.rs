//! The control API under `/_emulator` (JSON) and the phone page.
//!
//! Errors are `{"error": "..."}` with 400 (bad input), 404 (unknown user or event) or 409
//! (a blocked user writing, a user who already follows following again).

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Emulator, Endpoint, Error, Fault, Sent, UserMessage, decode_base64};

const PHONE_PAGE: &str = include_str!("phone.html");

pub(crate) fn routes() -> Router<Emulator> {
    Router::new()
        .route("/", get(phone))
        .route("/_emulator/phone", get(phone))
        .route("/_emulator/users", post(create_user).get(list_users))
        .route("/_emulator/users/{user_id}", get(get_user))
        .route("/_emulator/users/{user_id}/messages", post(user_message))
        .route("/_emulator/users/{user_id}/block", post(block))
        .route("/_emulator/users/{user_id}/unblock", post(unblock))
        .route("/_emulator/users/{user_id}/inbox", get(inbox))
        .route("/_emulator/users/{user_id}/conversation", get(conversation))
        .route("/_emulator/content/{message_id}", get(user_content))
        .route(
            "/_emulator/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_emulator/webhook-log", get(webhook_log))
        .route("/_emulator/events/{webhook_event_id}", get(get_event))
        .route("/_emulator/redeliver", post(redeliver_all))
        .route(
            "/_emulator/redeliver/{webhook_event_id}",
            post(redeliver_one),
        )
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/reset", post(reset))
        .route("/_emulator/config", get(get_config).put(put_config))
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.status(), Json(json!({ "error": self.to_string() }))).into_response()
    }
}

fn bad_request(message: impl Into<String>) -> Response {
    Error::Invalid(message.into()).into_response()
}

/// Parses a JSON body ourselves so that a bad body gets the control API's error shape.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| Error::Invalid(format!("bad JSON body: {e}")))
}

async fn phone() -> Response {
    let mut response = Html(PHONE_PAGE).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src * data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'",
        ),
    );
    response
}

#[derive(Deserialize)]
struct CreateUser {
    display_name: String,
    user_id: Option<String>,
    picture_url: Option<String>,
    status_message: Option<String>,
}

async fn create_user(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    let input: CreateUser = match parse(&body) {
        Ok(input) => input,
        Err(e) => return e.into_response(),
    };
    match emulator
        .follow_with(
            &input.display_name,
            input.user_id.as_deref(),
            input.picture_url.as_deref(),
            input.status_message.as_deref(),
        )
        .await
    {
        Ok((user_id, webhook_event_id, webhook_status)) => (
            StatusCode::CREATED,
            Json(json!({
                "user_id": user_id,
                "webhook_event_id": webhook_event_id,
                "webhook_status": webhook_status,
            })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn list_users(State(emulator): State<Emulator>) -> Response {
    Json(json!({ "users": emulator.users() })).into_response()
}

async fn get_user(State(emulator): State<Emulator>, Path(user_id): Path<String>) -> Response {
    match emulator
        .users()
        .into_iter()
        .find(|u| u["user_id"] == user_id.as_str())
    {
        Some(user) => Json(user).into_response(),
        None => Error::UnknownUser(user_id).into_response(),
    }
}

#[derive(Deserialize)]
struct StickerIn {
    package_id: String,
    sticker_id: String,
}

#[derive(Deserialize)]
struct LocationIn {
    #[serde(default)]
    title: String,
    #[serde(default)]
    address: String,
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct FileIn {
    name: String,
    base64: String,
}

#[derive(Deserialize)]
struct UserMessageIn {
    text: Option<String>,
    image_base64: Option<String>,
    sticker: Option<StickerIn>,
    location: Option<LocationIn>,
    file: Option<FileIn>,
    video_base64: Option<String>,
    audio_base64: Option<String>,
    /// For video and audio; LINE reports the length in milliseconds.
    duration_ms: Option<u64>,
    /// The `Content-Type` the content API reports for an image, video, audio or file
    /// (default: sniffed from the bytes). LINE passes on what the sender's app declared.
    content_type: Option<String>,
}

impl UserMessageIn {
    fn into_message(self) -> Result<UserMessage, Error> {
        let given = [
            self.text.is_some(),
            self.image_base64.is_some(),
            self.sticker.is_some(),
            self.location.is_some(),
            self.file.is_some(),
            self.video_base64.is_some(),
            self.audio_base64.is_some(),
        ]
        .iter()
        .filter(|g| **g)
        .count();
        if given != 1 {
            return Err(Error::Invalid(
                "give exactly one of text, image_base64, sticker, location, file, \
                 video_base64, audio_base64"
                    .into(),
            ));
        }
        let duration_ms = self.duration_ms.unwrap_or(10_000);
        Ok(if let Some(text) = self.text {
            UserMessage::Text(text)
        } else if let Some(data) = self.image_base64 {
            UserMessage::Image(decode_base64(&data)?)
        } else if let Some(s) = self.sticker {
            UserMessage::Sticker {
                package_id: s.package_id,
                sticker_id: s.sticker_id,
            }
        } else if let Some(l) = self.location {
            UserMessage::Location {
                title: l.title,
                address: l.address,
                latitude: l.latitude,
                longitude: l.longitude,
            }
        } else if let Some(f) = self.file {
            UserMessage::File {
                name: f.name,
                bytes: decode_base64(&f.base64)?,
            }
        } else if let Some(data) = self.video_base64 {
            UserMessage::Video {
                bytes: decode_base64(&data)?,
                duration_ms,
            }
        } else if let Some(data) = self.audio_base64 {
            UserMessage::Audio {
                bytes: decode_base64(&data)?,
                duration_ms,
            }
        } else {
            unreachable!("exactly one was given")
        })
    }
}

fn sent_json(sent: &Sent) -> Value {
    json!({
        "message_id": sent.message_id,
        "reply_token": sent.reply_token,
        "webhook_event_id": sent.webhook_event_id,
        "webhook_status": sent.webhook_status,
    })
}

async fn user_message(
    State(emulator): State<Emulator>,
    Path(user_id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let input: UserMessageIn = match parse(&body) {
        Ok(input) => input,
        Err(e) => return e.into_response(),
    };
    let content_type = input.content_type.clone();
    if let Some(t) = &content_type
        && axum::http::HeaderValue::from_str(t).is_err()
    {
        return bad_request("content_type must be a valid header value");
    }
    let message = match input.into_message() {
        Ok(message) => message,
        Err(e) => return e.into_response(),
    };
    match emulator
        .send_with_content_type(&user_id, message, content_type.as_deref())
        .await
    {
        Ok(sent) => Json(sent_json(&sent)).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn block(State(emulator): State<Emulator>, Path(user_id): Path<String>) -> Response {
    match emulator.block_with_status(&user_id).await {
        Ok(Some((id, status))) => {
            Json(json!({"blocked": true, "webhook_event_id": id, "webhook_status": status}))
                .into_response()
        }
        Ok(None) => Json(json!({"blocked": true, "webhook_event_id": null})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn unblock(State(emulator): State<Emulator>, Path(user_id): Path<String>) -> Response {
    match emulator.unblock_with_status(&user_id).await {
        Ok(Some((id, status, token))) => Json(json!({
            "blocked": false,
            "webhook_event_id": id,
            "webhook_status": status,
            "reply_token": token,
        }))
        .into_response(),
        Ok(None) => Json(json!({"blocked": false, "webhook_event_id": null})).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn inbox(State(emulator): State<Emulator>, Path(user_id): Path<String>) -> Response {
    if !emulator.state().users.contains_key(&user_id) {
        return Error::UnknownUser(user_id).into_response();
    }
    Json(json!({ "messages": emulator.inbox(&user_id) })).into_response()
}

async fn conversation(State(emulator): State<Emulator>, Path(user_id): Path<String>) -> Response {
    match emulator.conversation(&user_id) {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => e.into_response(),
    }
}

/// What a user sent, without the bearer token: for the phone page's own bubbles.
async fn user_content(
    State(emulator): State<Emulator>,
    Path(message_id): Path<String>,
) -> Response {
    let state = emulator.state();
    match state.contents.get(&message_id) {
        Some(content) => {
            let mut response = (StatusCode::OK, content.bytes.clone()).into_response();
            if let Ok(value) = HeaderValue::from_str(&content.content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such content"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
struct FaultIn {
    endpoint: Endpoint,
    #[serde(default)]
    status: u16,
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    after_effect: bool,
    /// Seconds for a `Retry-After` header. LINE documents none on its 429s, so there is
    /// none unless asked for.
    retry_after: Option<u64>,
}

fn one() -> u32 {
    1
}

async fn add_fault(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    let input: FaultIn = match parse(&body) {
        Ok(input) => input,
        Err(e) => return e.into_response(),
    };
    if input.status != 0 && !(100..=599).contains(&input.status) {
        return bad_request("status must be 0 (slow, then normal) or an HTTP status 100..=599");
    }
    if input.status == 0 && input.delay_ms == 0 {
        return bad_request("status 0 means a slow answer: give delay_ms");
    }
    emulator.add_fault_full(
        Fault {
            endpoint: input.endpoint,
            status: input.status,
            count: input.count,
            delay_ms: input.delay_ms,
        },
        input.after_effect,
        input.retry_after,
    );
    (
        StatusCode::CREATED,
        Json(json!({ "faults": emulator.faults() })),
    )
        .into_response()
}

async fn list_faults(State(emulator): State<Emulator>) -> Response {
    Json(json!({ "faults": emulator.faults() })).into_response()
}

async fn clear_faults(State(emulator): State<Emulator>) -> Response {
    emulator.clear_faults();
    Json(json!({ "faults": [] })).into_response()
}

async fn webhook_log(State(emulator): State<Emulator>) -> Response {
    Json(json!({ "deliveries": emulator.webhook_log() })).into_response()
}

async fn get_event(
    State(emulator): State<Emulator>,
    Path(webhook_event_id): Path<String>,
) -> Response {
    match emulator.event(&webhook_event_id) {
        Some(event) => Json(event).into_response(),
        None => Error::UnknownEvent(webhook_event_id).into_response(),
    }
}

#[derive(Deserialize)]
struct RedeliverQuery {
    #[serde(default)]
    batch: bool,
}

async fn redeliver_all(
    State(emulator): State<Emulator>,
    Query(query): Query<RedeliverQuery>,
) -> Response {
    let results = emulator.redeliver_undelivered(query.batch).await;
    Json(json!({
        "results": results
            .into_iter()
            .map(|(id, status)| json!({"webhook_event_id": id, "webhook_status": status}))
            .collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn redeliver_one(
    State(emulator): State<Emulator>,
    Path(webhook_event_id): Path<String>,
) -> Response {
    match emulator.redeliver(&webhook_event_id).await {
        Ok(status) => Json(json!({
            "webhook_event_id": webhook_event_id,
            "webhook_status": status,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn stats(State(emulator): State<Emulator>) -> Response {
    Json(emulator.stats()).into_response()
}

async fn reset(State(emulator): State<Emulator>) -> Response {
    emulator.reset();
    Json(json!({ "reset": true })).into_response()
}

fn config_json(emulator: &Emulator) -> Value {
    let config = emulator.config();
    json!({
        "bot_user_id": config.bot_user_id,
        "webhook_url": emulator.webhook_url(),
        "reply_token_ttl_ms": config.reply_token_ttl.as_millis() as u64,
        "require_https_media": config.require_https_media,
    })
}

async fn get_config(State(emulator): State<Emulator>) -> Response {
    Json(config_json(&emulator)).into_response()
}

#[derive(Deserialize)]
struct ConfigIn {
    webhook_url: Option<String>,
}

async fn put_config(State(emulator): State<Emulator>, body: axum::body::Bytes) -> Response {
    let input: ConfigIn = match parse(&body) {
        Ok(input) => input,
        Err(e) => return e.into_response(),
    };
    if let Some(url) = input.webhook_url {
        if !url.is_empty() && reqwest::Url::parse(&url).is_err() {
            return bad_request("webhook_url is not a URL");
        }
        emulator.set_webhook_url(&url);
    }
    Json(config_json(&emulator)).into_response()
}
