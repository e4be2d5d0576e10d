//! The emulator against LINE's documented behaviour, through its HTTP surface. A small axum
//! server plays the desk: it checks each webhook's signature itself (HMAC-SHA256 over the
//! raw bytes) and collects the bodies; it also serves images for the emulator to fetch.

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use line_emulator::{Config, Emulator, Endpoint, Error, Fault, UserMessage};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "test-channel-secret";
const TOKEN: &str = "test-access-token";

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE,
    0x42, 0x60, 0x82,
];

#[derive(Clone, Default)]
struct Desk {
    bodies: Arc<Mutex<Vec<Value>>>,
    bad_signatures: Arc<AtomicUsize>,
    answer: Arc<AtomicU16>,
}

impl Desk {
    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    fn events(&self) -> Vec<Value> {
        self.bodies()
            .iter()
            .flat_map(|b| b["events"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    fn last_event(&self) -> Value {
        self.events().last().cloned().expect("an event")
    }
}

async fn hook(State(desk): State<Desk>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let signature = headers
        .get("x-line-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if signature != expected {
        desk.bad_signatures.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json; charset=utf-8"
    );
    desk.bodies
        .lock()
        .unwrap()
        .push(serde_json::from_slice(&body).expect("webhook body is JSON"));
    StatusCode::from_u16(desk.answer.load(Ordering::SeqCst)).unwrap()
}

async fn png() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "image/png")], PNG)
}

/// The fake desk's base URL and state.
async fn start_desk() -> (String, Desk) {
    let desk = Desk::default();
    desk.answer.store(200, Ordering::SeqCst);
    let app = Router::new()
        .route("/line", post(hook))
        .route("/img.png", get(png))
        .with_state(desk.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, desk)
}

struct Setup {
    emulator: Emulator,
    base: String,
    desk_base: String,
    desk: Desk,
    http: reqwest::Client,
}

async fn setup_with(ttl: Duration, require_https_media: bool) -> Setup {
    let (desk_base, desk) = start_desk().await;
    let config = Config {
        channel_secret: SECRET.into(),
        channel_access_token: TOKEN.into(),
        webhook_url: Some(format!("{desk_base}/line")),
        reply_token_ttl: ttl,
        require_https_media,
        ..Config::default()
    };
    let (emulator, base) = Emulator::start(config).await.unwrap();
    Setup {
        emulator,
        base,
        desk_base,
        desk,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
    }
}

async fn setup() -> Setup {
    setup_with(Duration::from_secs(60), false).await
}

impl Setup {
    async fn post_line(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn reply(&self, token: &str, messages: Value) -> reqwest::Response {
        self.post_line(
            "/v2/bot/message/reply",
            json!({"replyToken": token, "messages": messages}),
        )
        .await
    }

    async fn push(&self, to: &str, messages: Value, retry_key: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/v2/bot/message/push", self.base))
            .bearer_auth(TOKEN)
            .json(&json!({"to": to, "messages": messages}));
        if let Some(key) = retry_key {
            request = request.header("X-Line-Retry-Key", key);
        }
        request.send().await.unwrap()
    }

    async fn control(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get_json(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn check_common(event: &Value, kind: &str, user_id: &str) {
    assert_eq!(event["type"], kind);
    assert_eq!(event["mode"], "active");
    assert!(event["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(event["source"], json!({"type": "user", "userId": user_id}));
    let id = event["webhookEventId"].as_str().unwrap();
    assert_eq!(id.len(), 26, "ULID-like: {id}");
    assert_eq!(event["deliveryContext"], json!({"isRedelivery": false}));
}

#[tokio::test]
async fn follow_sends_a_signed_follow_webhook() {
    let s = setup().await;
    let user = s.emulator.follow("山田 花子", None).await.unwrap();
    assert!(user.starts_with('U') && user.len() == 33);
    let bodies = s.desk.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["destination"], s.emulator.bot_user_id());
    let event = &bodies[0]["events"][0];
    check_common(event, "follow", &user);
    assert!(is_hex32(event["replyToken"].as_str().unwrap()));
    assert_eq!(event["follow"], json!({"isUnblocked": false}));
    assert_eq!(s.desk.bad_signatures.load(Ordering::SeqCst), 0);

    // The profile API knows the user.
    let profile: Value = s
        .http
        .get(format!("{}/v2/bot/profile/{user}", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["displayName"], "山田 花子");
    assert_eq!(profile["userId"], user.as_str());

    // Following twice is refused; a given user id is kept.
    assert!(matches!(
        s.emulator.follow("again", Some(&user)).await,
        Err(Error::AlreadyFollowing(_))
    ));
    let fixed = format!("U{}", "ab".repeat(16));
    assert_eq!(
        s.emulator.follow("fixed", Some(&fixed)).await.unwrap(),
        fixed
    );
    assert!(matches!(
        s.emulator.follow("bad", Some("U123")).await,
        Err(Error::InvalidUserId(_))
    ));
}

#[tokio::test]
async fn message_webhooks_have_the_documented_fields() {
    let s = setup().await;
    let user = s.emulator.follow("Taro", None).await.unwrap();

    let sent = s.emulator.send_text(&user, "こんにちは 🍎").await.unwrap();
    assert_eq!(sent.webhook_status, Some(200));
    let event = s.desk.last_event();
    check_common(&event, "message", &user);
    assert_eq!(event["webhookEventId"], sent.webhook_event_id.as_str());
    assert_eq!(event["replyToken"], sent.reply_token.as_str());
    assert!(is_hex32(&sent.reply_token));
    let m = &event["message"];
    assert_eq!(m["type"], "text");
    assert_eq!(m["text"], "こんにちは 🍎");
    assert_eq!(m["id"], sent.message_id.as_str());
    assert!(sent.message_id.parse::<u64>().is_ok());
    assert!(m["quoteToken"].as_str().is_some_and(|q| !q.is_empty()));

    let image = s.emulator.send_image(&user, PNG.to_vec()).await.unwrap();
    let m = s.desk.last_event()["message"].clone();
    assert_eq!(m["type"], "image");
    assert_eq!(m["id"], image.message_id.as_str());
    assert_eq!(m["contentProvider"], json!({"type": "line"}));
    assert!(m["quoteToken"].is_string());

    s.emulator.send_sticker(&user, "446", "1988").await.unwrap();
    let m = s.desk.last_event()["message"].clone();
    assert_eq!(m["type"], "sticker");
    assert_eq!(m["packageId"], "446");
    assert_eq!(m["stickerId"], "1988");
    assert_eq!(m["stickerResourceType"], "STATIC");
    assert!(m["quoteToken"].is_string());

    // Location through the control API.
    let r = s
        .control(
            &format!("/_emulator/users/{user}/messages"),
            json!({"location": {"title": "東京駅", "address": "東京都千代田区", "latitude": 35.681236, "longitude": 139.767125}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["webhook_status"], 200);
    let m = s.desk.last_event()["message"].clone();
    assert_eq!(m["type"], "location");
    assert_eq!(m["title"], "東京駅");
    assert_eq!(m["latitude"], 35.681236);
    assert_eq!(m["longitude"], 139.767125);
    assert!(m.get("quoteToken").is_none());
    assert_eq!(m["id"], answer["message_id"]);

    // File, video and audio.
    s.emulator
        .send(
            &user,
            UserMessage::File {
                name: "見積.pdf".into(),
                bytes: b"%PDF-1.4 fake".to_vec(),
            },
        )
        .await
        .unwrap();
    let m = s.desk.last_event()["message"].clone();
    assert_eq!(m["type"], "file");
    assert_eq!(m["fileName"], "見積.pdf");
    assert_eq!(m["fileSize"], 13);
    s.emulator
        .send(
            &user,
            UserMessage::Audio {
                bytes: vec![0; 10],
                duration_ms: 1500,
            },
        )
        .await
        .unwrap();
    let m = s.desk.last_event()["message"].clone();
    assert_eq!(m["type"], "audio");
    assert_eq!(m["duration"], 1500);
    assert_eq!(m["contentProvider"], json!({"type": "line"}));

    // Every event id and message id is unique.
    let events = s.desk.events();
    let mut ids: Vec<&str> = events
        .iter()
        .map(|e| e["webhookEventId"].as_str().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len());
    assert_eq!(s.desk.bad_signatures.load(Ordering::SeqCst), 0);

    // The control API checks its input.
    let r = s
        .control(
            &format!("/_emulator/users/{user}/messages"),
            json!({"text": "a", "image_base64": "AA=="}),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = s
        .control(
            &format!("/_emulator/users/U{}/messages", "0".repeat(32)),
            json!({"text": "a"}),
        )
        .await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn content_endpoint_returns_the_exact_bytes() {
    let s = setup().await;
    let user = s.emulator.follow("Hana", None).await.unwrap();
    let sent = s.emulator.send_image(&user, PNG.to_vec()).await.unwrap();
    let r = s
        .http
        .get(format!(
            "{}/v2/bot/message/{}/content",
            s.base, sent.message_id
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/png");
    assert!(r.headers().contains_key("x-line-request-id"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);

    // Through the control API, base64 in, the same bytes out.
    let jpeg = [0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4];
    let r: Value = s
        .control(
            &format!("/_emulator/users/{user}/messages"),
            json!({"image_base64": base64::engine::general_purpose::STANDARD.encode(jpeg)}),
        )
        .await
        .json()
        .await
        .unwrap();
    let r = s
        .http
        .get(format!(
            "{}/v2/bot/message/{}/content",
            s.base,
            r["message_id"].as_str().unwrap()
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()[header::CONTENT_TYPE], "image/jpeg");
    assert_eq!(r.bytes().await.unwrap().as_ref(), jpeg);

    let r = s
        .http
        .get(format!("{}/v2/bot/message/999/content", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = s
        .http
        .get(format!(
            "{}/v2/bot/message/{}/content",
            s.base, sent.message_id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn a_reply_token_works_once() {
    let s = setup().await;
    let user = s.emulator.follow("Jiro", None).await.unwrap();
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();

    let r = s
        .reply(
            &sent.reply_token,
            json!([{"type": "text", "text": "いらっしゃいませ"}]),
        )
        .await;
    assert_eq!(r.status(), 200);
    let request_id = r.headers()["x-line-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = r.json().await.unwrap();
    let sent_messages = body["sentMessages"].as_array().unwrap();
    assert_eq!(sent_messages.len(), 1);
    assert!(
        sent_messages[0]["id"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert!(sent_messages[0]["quoteToken"].is_string());

    let r = s
        .reply(
            &sent.reply_token,
            json!([{"type": "text", "text": "again"}]),
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Invalid reply token"})
    );

    let inbox = s.emulator.inbox(&user);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["type"], "text");
    assert_eq!(inbox[0]["text"], "いらっしゃいませ");
    assert_eq!(inbox[0]["via"], "reply");
    assert_eq!(inbox[0]["request_id"], request_id.as_str());
    assert!(chrono_like(inbox[0]["at"].as_str().unwrap()));

    // The follow event's token is a reply token too; an unknown one is not.
    let r = s
        .reply(&"0".repeat(32), json!([{"type": "text", "text": "x"}]))
        .await;
    assert_eq!(r.status(), 400);

    let stats = s.get_json("/_emulator/stats").await;
    assert_eq!(stats["reply"]["accepted"], 1);
    assert_eq!(stats["reply"]["rejected"]["reply_token_used"], 1);
}

fn chrono_like(s: &str) -> bool {
    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T')
}

#[tokio::test]
async fn a_reply_token_expires() {
    let s = setup_with(Duration::from_millis(200), false).await;
    let user = s.emulator.follow("Saburo", None).await.unwrap();
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = s
        .reply(&sent.reply_token, json!([{"type": "text", "text": "late"}]))
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Invalid reply token"
    );
    assert!(s.emulator.inbox(&user).is_empty());
}

#[tokio::test]
async fn message_count_and_text_length_limits() {
    let s = setup().await;
    let user = s.emulator.follow("Shiro", None).await.unwrap();
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();

    let six: Vec<Value> = (0..6)
        .map(|i| json!({"type": "text", "text": format!("m{i}")}))
        .collect();
    let r = s.reply(&sent.reply_token, json!(six)).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["message"], "The request body has 1 error(s)");
    assert_eq!(body["details"][0]["property"], "messages");

    let r = s
        .reply(
            &sent.reply_token,
            json!([{"type": "text", "text": "a".repeat(5001)}]),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["details"][0]["property"], "messages[0].text");

    // UTF-16 units: 2,501 apples are 5,002 units.
    let r = s
        .reply(
            &sent.reply_token,
            json!([{"type": "text", "text": "🍎".repeat(2501)}]),
        )
        .await;
    assert_eq!(r.status(), 400);

    // Failed calls did not use the token up; five messages of 5,000 characters go through.
    let five: Vec<Value> = (0..5)
        .map(|_| json!({"type": "text", "text": "a".repeat(5000)}))
        .collect();
    let r = s.reply(&sent.reply_token, json!(five)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.emulator.inbox(&user).len(), 5);

    // Empty messages, and an empty text, are refused too.
    let sent = s.emulator.send_text(&user, "again").await.unwrap();
    assert_eq!(s.reply(&sent.reply_token, json!([])).await.status(), 400);
    assert_eq!(
        s.reply(&sent.reply_token, json!([{"type": "text", "text": ""}]))
            .await
            .status(),
        400
    );
    assert_eq!(
        s.reply(&sent.reply_token, json!([{"type": "video"}]))
            .await
            .status(),
        400
    );
}

#[tokio::test]
async fn https_media_urls_are_required_by_default() {
    let s = setup_with(Duration::from_secs(60), true).await;
    let user = s.emulator.follow("Goro", None).await.unwrap();
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();
    let r = s
        .reply(
            &sent.reply_token,
            json!([{"type": "image", "originalContentUrl": "http://example.com/a.png", "previewImageUrl": "https://example.com/a.png"}]),
        )
        .await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["details"][0]["property"],
        "messages[0].originalContentUrl"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_access_token_is_401() {
    let s = setup().await;
    let r = s
        .http
        .get(format!("{}/v2/bot/info", s.base))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("x-line-request-id"));
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Authentication failed. Confirm that the access token in the authorization header is valid."})
    );
    let r = s
        .http
        .post(format!("{}/v2/bot/message/push", s.base))
        .json(&json!({"to": "U", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .starts_with("Authorization header required")
    );

    let info: Value = s
        .http
        .get(format!("{}/v2/bot/info", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["userId"], s.emulator.bot_user_id());
    assert_eq!(info["chatMode"], "bot");
    assert_eq!(info["markAsReadMode"], "auto");
    assert!(info["basicId"].as_str().unwrap().starts_with('@'));
    assert_eq!(
        s.get_json("/_emulator/stats").await["bot_info"]["rejected"]["unauthorized"],
        1
    );
}

#[tokio::test]
async fn push_with_the_same_retry_key_twice_delivers_once() {
    let s = setup().await;
    let user = s.emulator.follow("Rokuro", None).await.unwrap();
    let key = "123e4567-e89b-12d3-a456-426614174000";
    let messages = json!([{"type": "text", "text": "ご連絡です"}]);

    let first = s.push(&user, messages.clone(), Some(key)).await;
    assert_eq!(first.status(), 200);
    let first_request = first.headers()["x-line-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let first_body: Value = first.json().await.unwrap();

    let second = s.push(&user, messages.clone(), Some(key)).await;
    assert_eq!(second.status(), 409);
    assert_eq!(
        second.headers()["x-line-accepted-request-id"],
        first_request.as_str()
    );
    assert_ne!(
        second.headers()["x-line-request-id"],
        first_request.as_str()
    );
    let second_body: Value = second.json().await.unwrap();
    assert_eq!(second_body["message"], "The retry key is already accepted");
    assert_eq!(second_body["sentMessages"], first_body["sentMessages"]);

    // Upper case spells the same UUID.
    let third = s
        .push(&user, messages.clone(), Some(&key.to_uppercase()))
        .await;
    assert_eq!(third.status(), 409);

    let inbox = s.emulator.inbox(&user);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0]["via"], "push");
    assert_eq!(inbox[0]["request_id"], first_request.as_str());

    // Not a UUID: 400. A retry key on reply: 400 too.
    assert_eq!(
        s.push(&user, messages.clone(), Some("not-a-uuid"))
            .await
            .status(),
        400
    );
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();
    let r = s
        .http
        .post(format!("{}/v2/bot/message/reply", s.base))
        .bearer_auth(TOKEN)
        .header("X-Line-Retry-Key", key)
        .json(&json!({"replyToken": sent.reply_token, "messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Without a key, pushing twice delivers twice.
    s.push(&user, messages.clone(), None).await;
    s.push(&user, messages.clone(), None).await;
    assert_eq!(s.emulator.inbox(&user).len(), 3);
}

#[tokio::test]
async fn push_to_unknown_or_malformed_recipients() {
    let s = setup().await;
    let messages = json!([{"type": "text", "text": "x"}]);
    let r = s
        .push(&format!("U{}", "1".repeat(32)), messages.clone(), None)
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap()["message"],
        "Failed to send messages"
    );
    let r = s.push("someone", messages.clone(), None).await;
    assert_eq!(r.status(), 400);
    let r = s
        .http
        .post(format!("{}/v2/bot/message/push", s.base))
        .bearer_auth(TOKEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.json::<Value>().await.unwrap()["message"]
            .as_str()
            .unwrap()
            .starts_with("The request body could not be parsed as JSON")
    );
}

#[tokio::test]
async fn a_fault_answers_then_clears() {
    let s = setup().await;
    let user = s.emulator.follow("Nana", None).await.unwrap();
    s.emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    let key = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let messages = json!([{"type": "text", "text": "retry me"}]);
    let r = s.push(&user, messages.clone(), Some(key)).await;
    assert_eq!(r.status(), 500);
    assert!(r.headers().contains_key("x-line-request-id"));
    assert!(s.emulator.inbox(&user).is_empty());
    // The faulted call had no effect, so the same retry key is accepted now.
    let r = s.push(&user, messages.clone(), Some(key)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.emulator.inbox(&user).len(), 1);

    // A faulted reply leaves the token unused.
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();
    s.emulator.add_fault(Fault {
        endpoint: Endpoint::Reply,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    assert_eq!(
        s.reply(&sent.reply_token, messages.clone()).await.status(),
        500
    );
    assert_eq!(
        s.reply(&sent.reply_token, messages.clone()).await.status(),
        200
    );

    // Through the control API: 429 twice, with an opt-in Retry-After.
    let r = s
        .control(
            "/_emulator/faults",
            json!({"endpoint": "profile", "status": 429, "count": 2, "retry_after": 1}),
        )
        .await;
    assert_eq!(r.status(), 201);
    for _ in 0..2 {
        let r = s
            .http
            .get(format!("{}/v2/bot/profile/{user}", s.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
    }
    let r = s
        .http
        .get(format!("{}/v2/bot/profile/{user}", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.get_json("/_emulator/stats").await["profile"]["faulted"],
        2
    );
}

#[tokio::test]
async fn an_after_effect_fault_delivers_but_answers_500() {
    let s = setup().await;
    let user = s.emulator.follow("Hachi", None).await.unwrap();
    let key = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    let messages = json!([{"type": "text", "text": "did it arrive?"}]);
    let r = s
        .control(
            "/_emulator/faults",
            json!({"endpoint": "push", "status": 500, "after_effect": true}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = s.push(&user, messages.clone(), Some(key)).await;
    assert_eq!(r.status(), 500);
    let faulted_request = r.headers()["x-line-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(s.emulator.inbox(&user).len(), 1);
    // A retry with the same key is answered 409: LINE already has it.
    let r = s.push(&user, messages.clone(), Some(key)).await;
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.headers()["x-line-accepted-request-id"],
        faulted_request.as_str()
    );
    assert_eq!(s.emulator.inbox(&user).len(), 1);

    // On reply: the token is used up although the caller saw a 500.
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();
    s.emulator.add_fault_after_effect(Fault {
        endpoint: Endpoint::Reply,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    assert_eq!(
        s.reply(&sent.reply_token, messages.clone()).await.status(),
        500
    );
    assert_eq!(s.emulator.inbox(&user).len(), 2);
    assert_eq!(
        s.reply(&sent.reply_token, messages.clone()).await.status(),
        400
    );

    // A slow LINE that did the work: the caller times out, the message is there.
    let sent = s.emulator.send_text(&user, "hi").await.unwrap();
    s.emulator.add_fault_after_effect(Fault {
        endpoint: Endpoint::Reply,
        status: 0,
        count: 1,
        delay_ms: 2_000,
    });
    let timed_out = s
        .http
        .post(format!("{}/v2/bot/message/reply", s.base))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_millis(300))
        .json(&json!({"replyToken": sent.reply_token, "messages": messages}))
        .send()
        .await;
    assert!(timed_out.is_err());
    assert_eq!(s.emulator.inbox(&user).len(), 3);
}

#[tokio::test]
async fn an_image_reply_makes_the_emulator_fetch_the_urls() {
    let s = setup().await;
    let user = s.emulator.follow("Kyu", None).await.unwrap();
    let sent = s.emulator.send_text(&user, "写真ください").await.unwrap();
    let r = s
        .reply(
            &sent.reply_token,
            json!([
                {"type": "image", "originalContentUrl": format!("{}/img.png", s.desk_base), "previewImageUrl": format!("{}/img.png", s.desk_base)},
                {"type": "image", "originalContentUrl": format!("{}/missing.png", s.desk_base), "previewImageUrl": "http://127.0.0.1:9/unreachable.png"}
            ]),
        )
        .await;
    assert_eq!(r.status(), 200, "a failed fetch is recorded, not refused");
    let mut inbox = Vec::new();
    for _ in 0..100 {
        inbox = s.emulator.inbox(&user);
        if inbox.len() == 2 && inbox.iter().all(|m| m.get("fetched").is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let fetched = &inbox[0]["fetched"];
    for side in ["original", "preview"] {
        assert_eq!(fetched[side]["status"], 200);
        assert_eq!(fetched[side]["content_type"], "image/png");
        assert_eq!(fetched[side]["bytes"], PNG.len());
        assert_eq!(fetched[side]["sniffed"], "image/png");
        assert_eq!(fetched[side]["too_large"], false);
    }
    let fetched = &inbox[1]["fetched"];
    assert_eq!(fetched["original"]["status"], 404);
    assert!(fetched["preview"]["status"].is_null());
    assert!(fetched["preview"]["error"].is_string());

    // The conversation shows both sides in order.
    let conversation = s.emulator.conversation(&user).unwrap();
    let sides: Vec<&str> = conversation
        .iter()
        .map(|c| c["from"].as_str().unwrap())
        .collect();
    assert_eq!(sides, ["user", "account", "account"]);
}

#[tokio::test]
async fn redelivery_keeps_the_event_id_and_marks_it() {
    let s = setup().await;
    let user = s.emulator.follow("Ju", None).await.unwrap();
    s.desk.answer.store(500, Ordering::SeqCst);
    let sent = s.emulator.send_text(&user, "are you there?").await.unwrap();
    assert_eq!(sent.webhook_status, Some(500));
    assert_eq!(
        s.emulator.undelivered_events(),
        vec![sent.webhook_event_id.clone()]
    );

    s.desk.answer.store(200, Ordering::SeqCst);
    let r: Value = s
        .control("/_emulator/redeliver", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        r["results"][0]["webhook_event_id"],
        sent.webhook_event_id.as_str()
    );
    assert_eq!(r["results"][0]["webhook_status"], 200);
    let event = s.desk.last_event();
    assert_eq!(event["webhookEventId"], sent.webhook_event_id.as_str());
    assert_eq!(event["deliveryContext"]["isRedelivery"], true);
    assert_eq!(event["message"]["text"], "are you there?");
    assert!(s.emulator.undelivered_events().is_empty());

    // Any event can be sent again on demand, delivered or not.
    let before = s.desk.events().len();
    let r = s
        .control(
            &format!("/_emulator/redeliver/{}", sent.webhook_event_id),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(s.desk.events().len(), before + 1);
    assert_eq!(s.desk.last_event()["deliveryContext"]["isRedelivery"], true);
    assert_eq!(
        s.control("/_emulator/redeliver/01ARZ3NDEKTSV4RRFFQ69G5FAV", json!({}))
            .await
            .status(),
        404
    );

    // An unreachable desk: no status, kept for redelivery, logged.
    s.emulator.set_webhook_url("http://127.0.0.1:9/line");
    let sent = s.emulator.send_text(&user, "hello?").await.unwrap();
    assert_eq!(sent.webhook_status, None);
    let log = s.get_json("/_emulator/webhook-log").await;
    let last = log["deliveries"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["webhook_event_ids"][0], sent.webhook_event_id.as_str());
    assert!(last["status"].is_null());
    assert!(last["error"].is_string());
    assert_eq!(s.emulator.undelivered_events(), vec![sent.webhook_event_id]);
}

#[tokio::test]
async fn block_and_unblock() {
    let s = setup().await;
    let user = s.emulator.follow("Juichi", None).await.unwrap();
    s.emulator.block(&user).await.unwrap();
    let event = s.desk.last_event();
    check_common(&event, "unfollow", &user);
    assert!(event.get("replyToken").is_none());

    // A blocked user cannot write.
    assert!(matches!(
        s.emulator.send_text(&user, "x").await,
        Err(Error::Blocked(_))
    ));
    let r = s
        .control(
            &format!("/_emulator/users/{user}/messages"),
            json!({"text": "x"}),
        )
        .await;
    assert_eq!(r.status(), 409);
    // The profile is gone for the account.
    let r = s
        .http
        .get(format!("{}/v2/bot/profile/{user}", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"message": "Not found"})
    );
    // A push is accepted but not delivered.
    let r = s
        .push(&user, json!([{"type": "text", "text": "hello?"}]), None)
        .await;
    assert_eq!(r.status(), 200);
    assert!(s.emulator.inbox(&user).is_empty());
    assert_eq!(
        s.get_json("/_emulator/stats").await["push"]["undelivered_blocked"],
        1
    );

    let users = s.get_json("/_emulator/users").await;
    assert_eq!(users["users"][0]["blocked"], true);

    let r = s
        .control(&format!("/_emulator/users/{user}/unblock"), json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let event = s.desk.last_event();
    check_common(&event, "follow", &user);
    assert_eq!(event["follow"], json!({"isUnblocked": true}));
    assert!(is_hex32(event["replyToken"].as_str().unwrap()));
    s.emulator.send_text(&user, "戻りました").await.unwrap();
}

#[tokio::test]
async fn the_phone_page_is_served_and_escapes() {
    let s = setup().await;
    for path in ["/", "/_emulator/phone"] {
        let r = s
            .http
            .get(format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key(header::CONTENT_SECURITY_POLICY));
        let page = r.text().await.unwrap();
        assert!(page.contains("textContent"));
        assert!(
            !page.contains("innerHTML"),
            "data must never go through innerHTML"
        );
        assert!(!page.contains("http://") || !page.contains("<script src"));
    }
    let config = s.get_json("/_emulator/config").await;
    assert_eq!(config["bot_user_id"], s.emulator.bot_user_id());
}

#[tokio::test]
async fn reset_forgets_everything_but_the_config() {
    let s = setup().await;
    let user = s.emulator.follow("Juni", None).await.unwrap();
    s.emulator.send_text(&user, "x").await.unwrap();
    assert_eq!(s.control("/_emulator/reset", json!({})).await.status(), 200);
    assert!(s.emulator.users().is_empty());
    assert!(s.emulator.webhook_log().is_empty());
    assert!(s.emulator.webhook_url().is_some());
}

#[tokio::test]
async fn batch_redelivery_sends_one_body_and_profiles_omit_unset_fields() {
    let s = setup().await;
    let user = s.emulator.follow("Jusan", None).await.unwrap();
    s.desk.answer.store(503, Ordering::SeqCst);
    let a = s.emulator.send_text(&user, "one").await.unwrap();
    let b = s.emulator.send_text(&user, "two").await.unwrap();
    s.desk.answer.store(200, Ordering::SeqCst);
    let bodies_before = s.desk.bodies().len();
    let r: Value = s
        .control("/_emulator/redeliver?batch=true", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["results"].as_array().unwrap().len(), 2);
    let bodies = s.desk.bodies();
    assert_eq!(bodies.len(), bodies_before + 1);
    let events = bodies.last().unwrap()["events"].as_array().unwrap().clone();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["webhookEventId"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [a.webhook_event_id.as_str(), b.webhook_event_id.as_str()]
    );
    assert!(
        events
            .iter()
            .all(|e| e["deliveryContext"]["isRedelivery"] == true)
    );

    let profile: Value = s
        .http
        .get(format!("{}/v2/bot/profile/{user}", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(profile["language"], "ja");
    assert!(profile.get("pictureUrl").is_none());
    assert!(profile.get("statusMessage").is_none());
}
