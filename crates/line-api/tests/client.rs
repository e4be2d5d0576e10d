//! The client against a tiny in-test HTTP server: request shapes (messaging-api.yml) and
//! the mapping of every failure to a `LineError`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::Response;
use line_api::client::{Client, LineError, Timeouts};
use line_api::message::OutMessage;
use serde_json::{Value, json};

const TOKEN: &str = "test-access-token";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Starts a server on a free port that records each request and answers with `respond`.
async fn serve<F>(respond: F) -> (String, Log)
where
    F: Fn(&Seen) -> Response + Clone + Send + Sync + 'static,
{
    let log: Log = Arc::default();
    let log2 = log.clone();
    let app = axum::Router::new().fallback(move |req: Request| {
        let respond = respond.clone();
        let log = log2.clone();
        async move {
            let (parts, body) = req.into_parts();
            let seen = Seen {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body: axum::body::to_bytes(body, usize::MAX).await.unwrap(),
            };
            log.lock().unwrap().push(seen.clone());
            respond(&seen)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), log)
}

fn answer(status: u16, headers: &[(&str, &str)], body: impl Into<Body>) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(body.into()).unwrap()
}

fn json_answer(status: u16, body: Value) -> Response {
    answer(
        status,
        &[("content-type", "application/json")],
        body.to_string(),
    )
}

/// A server answering every request with the same status, headers and body.
async fn fixed(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> (Client, Log) {
    let (base, log) = serve(move |_| answer(status, headers, body)).await;
    (Client::new(&base, &base, TOKEN), log)
}

fn text(s: &str) -> OutMessage {
    OutMessage::Text { text: s.into() }
}

fn key() -> uuid::Uuid {
    uuid::Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap()
}

#[tokio::test]
async fn reply_request_matches_the_spec() {
    let (base, log) = serve(|_| {
        json_answer(
            200,
            json!({"sentMessages": [{"id": "461230966842064897", "quoteToken": "q1"}, {"id": "461230966842064898"}]}),
        )
    })
    .await;
    let client = Client::new(&format!("{base}/"), "http://127.0.0.1:1", TOKEN);
    let messages = [
        text("こんにちは"),
        OutMessage::Sticker {
            package_id: "446".into(),
            sticker_id: "1988".into(),
        },
    ];
    let sent = client.reply("rt-1", &messages).await.unwrap();
    assert_eq!(
        sent.sent_message_ids,
        ["461230966842064897", "461230966842064898"]
    );

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v2/bot/message/reply");
    assert_eq!(seen.headers["authorization"], format!("Bearer {TOKEN}"));
    assert!(
        seen.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(!seen.headers.contains_key("x-line-retry-key"));
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        body,
        json!({
            "replyToken": "rt-1",
            "messages": [
                {"type": "text", "text": "こんにちは"},
                {"type": "sticker", "packageId": "446", "stickerId": "1988"}
            ]
        })
    );
}

#[tokio::test]
async fn push_sends_retry_key_and_bearer_token() {
    let (base, log) = serve(|_| json_answer(200, json!({"sentMessages": [{"id": "1"}]}))).await;
    let client = Client::new(&base, &base, &format!("{TOKEN}\n"));
    let messages = [OutMessage::Image {
        original_content_url: "https://desk.example/m/o.jpg".into(),
        preview_image_url: "https://desk.example/m/p.jpg".into(),
    }];
    let sent = client.push("U123", &messages, key()).await.unwrap();
    assert_eq!(sent.sent_message_ids, ["1"]);

    let seen = log.lock().unwrap()[0].clone();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v2/bot/message/push");
    assert_eq!(seen.headers["authorization"], format!("Bearer {TOKEN}"));
    assert_eq!(
        seen.headers["x-line-retry-key"],
        "123e4567-e89b-12d3-a456-426614174000"
    );
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(
        body,
        json!({
            "to": "U123",
            "messages": [{
                "type": "image",
                "originalContentUrl": "https://desk.example/m/o.jpg",
                "previewImageUrl": "https://desk.example/m/p.jpg"
            }]
        })
    );
}

#[tokio::test]
async fn a_2xx_with_an_odd_body_is_still_sent() {
    // Sending again after LINE said 200 would duplicate the message; only the IDs are lost.
    for body in ["{}", "", "not json"] {
        let (client, _) = fixed(200, &[], body).await;
        let sent = client.reply("rt", &[text("x")]).await.unwrap();
        assert!(sent.sent_message_ids.is_empty(), "{body:?}");
        let sent = client.push("U1", &[text("x")], key()).await.unwrap();
        assert!(sent.sent_message_ids.is_empty(), "{body:?}");
    }
}

#[tokio::test]
async fn invalid_reply_token() {
    for message in ["Invalid reply token", "invalid reply token"] {
        let (base, _) = serve(move |_| json_answer(400, json!({"message": message}))).await;
        let client = Client::new(&base, &base, TOKEN);
        let err = client.reply("used", &[text("x")]).await.unwrap_err();
        assert_eq!(err, LineError::InvalidReplyToken);
        assert!(!err.is_retryable());
        assert!(!err.may_have_been_delivered());
    }
}

#[tokio::test]
async fn other_4xx_carry_lines_message_for_the_agent() {
    let (base, _) = serve(|_| {
        json_answer(
            400,
            json!({
                "message": "The request body has 2 error(s)",
                "details": [
                    {"message": "May not be empty", "property": "messages[0].text"},
                    {"message": "Length must be between 0 and 5000", "property": "messages[1].text"}
                ]
            }),
        )
    })
    .await;
    let client = Client::new(&base, &base, TOKEN);
    let err = client.push("U1", &[text("")], key()).await.unwrap_err();
    assert_eq!(
        err,
        LineError::BadRequest {
            status: 400,
            message: "The request body has 2 error(s) (messages[0].text: May not be empty; \
                      messages[1].text: Length must be between 0 and 5000)"
                .into()
        }
    );
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("May not be empty"));

    let (client, _) = fixed(403, &[], "forbidden by policy").await;
    let err = client.push("U1", &[text("x")], key()).await.unwrap_err();
    assert_eq!(
        err,
        LineError::BadRequest {
            status: 403,
            message: "forbidden by policy".into()
        }
    );

    let (client, _) = fixed(400, &[], "").await;
    let err = client.reply("rt", &[text("x")]).await.unwrap_err();
    assert_eq!(
        err,
        LineError::BadRequest {
            status: 400,
            message: "Bad Request".into()
        }
    );
}

#[tokio::test]
async fn conflict_on_push_is_already_accepted() {
    let (client, _) = fixed(
        409,
        &[
            ("x-line-accepted-request-id", "req-abc"),
            ("content-type", "application/json"),
        ],
        r#"{"message":"The retry key is already accepted","sentMessages":[{"id":"9"}]}"#,
    )
    .await;
    let err = client.push("U1", &[text("x")], key()).await.unwrap_err();
    assert_eq!(
        err,
        LineError::AlreadyAccepted {
            request_id: Some("req-abc".into())
        }
    );
    assert!(!err.is_retryable());

    let (client, _) = fixed(409, &[], r#"{"message":"conflict"}"#).await;
    assert_eq!(
        client.push("U1", &[text("x")], key()).await.unwrap_err(),
        LineError::AlreadyAccepted { request_id: None }
    );
    // 409 means "already accepted" only for push with a retry key.
    assert!(matches!(
        client.reply("rt", &[text("x")]).await.unwrap_err(),
        LineError::BadRequest { status: 409, .. }
    ));
}

#[tokio::test]
async fn rate_limited_with_and_without_retry_after() {
    let (client, _) = fixed(
        429,
        &[("retry-after", "7")],
        r#"{"message":"You have reached your monthly limit."}"#,
    )
    .await;
    let err = client.push("U1", &[text("x")], key()).await.unwrap_err();
    assert_eq!(
        err,
        LineError::RateLimited {
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert!(err.is_retryable());
    assert!(!err.may_have_been_delivered());

    let (client, _) = fixed(429, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")], "").await;
    assert_eq!(
        client.reply("rt", &[text("x")]).await.unwrap_err(),
        LineError::RateLimited { retry_after: None }
    );
}

#[tokio::test]
async fn unauthorized_not_found_and_server_errors() {
    let (client, _) = fixed(401, &[], r#"{"message":"Authentication failed"}"#).await;
    let err = client.bot_info().await.unwrap_err();
    assert_eq!(err, LineError::Unauthorized);
    assert!(!err.is_retryable());

    let (client, _) = fixed(404, &[], r#"{"message":"Not found"}"#).await;
    assert_eq!(
        client.profile("Ublocked").await.unwrap_err(),
        LineError::NotFound
    );
    assert_eq!(client.content("1").await.unwrap_err(), LineError::NotFound);

    for status in [500, 502, 503] {
        let (client, _) = fixed(status, &[], "").await;
        let err = client.reply("rt", &[text("x")]).await.unwrap_err();
        assert_eq!(err, LineError::Server { status });
        assert!(err.is_retryable());
        assert!(err.may_have_been_delivered());
    }
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let (client, log) = fixed(302, &[("location", "http://127.0.0.1:1/elsewhere")], "").await;
    let err = client.push("U1", &[text("x")], key()).await.unwrap_err();
    assert!(
        matches!(err, LineError::BadRequest { status: 302, .. }),
        "{err:?}"
    );
    assert_eq!(log.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn timeout_after_sending_may_have_been_delivered() {
    let hits = Arc::new(Mutex::new(0));
    let hits2 = hits.clone();
    let app = axum::Router::new().fallback(move || {
        let hits = hits2.clone();
        async move {
            *hits.lock().unwrap() += 1;
            tokio::time::sleep(Duration::from_secs(3)).await;
            json_answer(200, json!({"sentMessages": []}))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::with_timeouts(
        &base,
        &base,
        TOKEN,
        Timeouts {
            connect: Duration::from_secs(5),
            request: Duration::from_millis(300),
            content: Duration::from_millis(300),
        },
    );
    let err = client.reply("rt", &[text("x")]).await.unwrap_err();
    assert_eq!(err, LineError::Timeout { maybe_sent: true });
    assert!(err.is_retryable());
    assert!(err.may_have_been_delivered());
    assert_eq!(*hits.lock().unwrap(), 1, "the request did reach the server");
}

#[tokio::test]
async fn connection_closed_without_answer_may_have_been_delivered() {
    // A server that reads the request and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = sock.read(&mut buf).await;
            drop(sock);
        }
    });
    let client = Client::new(&base, &base, TOKEN);
    let err = client.reply("rt", &[text("x")]).await.unwrap_err();
    assert_eq!(err, LineError::Timeout { maybe_sent: true });
    assert!(err.may_have_been_delivered());
}

#[tokio::test]
async fn connection_refused_was_never_sent() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let client = Client::new(&base, &base, TOKEN);
    let err = client.reply("rt", &[text("x")]).await.unwrap_err();
    assert!(matches!(err, LineError::Network(_)), "{err:?}");
    assert!(err.is_retryable());
    assert!(!err.may_have_been_delivered());
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn profile_bot_info_and_content() {
    let (api, api_log) = serve(|seen| match seen.path.as_str() {
        "/v2/bot/profile/U4af4980629" => json_answer(
            200,
            json!({"displayName": "LINE taro", "userId": "U4af4980629", "language": "ja",
                   "pictureUrl": "https://profile.line-scdn.net/abc", "statusMessage": "Hello"}),
        ),
        "/v2/bot/profile/Unopic" => {
            json_answer(200, json!({"displayName": "n", "userId": "Unopic"}))
        }
        "/v2/bot/info" => json_answer(
            200,
            json!({"userId": "Ub9952f8", "basicId": "@216ru...", "displayName": "Example name",
                   "pictureUrl": "https://profile.line-scdn.net/x", "chatMode": "chat",
                   "markAsReadMode": "manual"}),
        ),
        _ => answer(500, &[], ""),
    })
    .await;
    let (data, data_log) = serve(|seen| match seen.path.as_str() {
        "/v2/bot/message/325708/content" => answer(
            200,
            &[("content-type", "image/jpeg")],
            &b"\xff\xd8\xff\xe0jpeg"[..],
        ),
        "/v2/bot/message/999/content" => answer(202, &[], ""),
        _ => answer(404, &[], ""),
    })
    .await;
    let client = Client::new(&api, &data, TOKEN);

    let p = client.profile("U4af4980629").await.unwrap();
    assert_eq!(p.user_id, "U4af4980629");
    assert_eq!(p.display_name, "LINE taro");
    assert_eq!(p.language.as_deref(), Some("ja"));
    assert_eq!(
        p.picture_url.as_deref(),
        Some("https://profile.line-scdn.net/abc")
    );
    assert_eq!(p.status_message.as_deref(), Some("Hello"));
    let p = client.profile("Unopic").await.unwrap();
    assert_eq!(
        (p.picture_url, p.status_message, p.language),
        (None, None, None)
    );

    let info = client.bot_info().await.unwrap();
    assert_eq!(info.user_id, "Ub9952f8");
    assert_eq!(info.basic_id, "@216ru...");
    assert_eq!(info.display_name, "Example name");
    assert_eq!(info.chat_mode.as_deref(), Some("chat"));
    assert_eq!(info.mark_as_read_mode.as_deref(), Some("manual"));
    assert_eq!(info.premium_id, None);

    let c = client.content("325708").await.unwrap();
    assert_eq!(&c.bytes[..], b"\xff\xd8\xff\xe0jpeg");
    assert_eq!(c.content_type.as_deref(), Some("image/jpeg"));
    // Still being prepared: retry later.
    let err = client.content("999").await.unwrap_err();
    assert_eq!(err, LineError::Server { status: 202 });
    assert!(err.is_retryable());

    // IDs are one path segment, whatever they contain.
    assert_eq!(
        client.profile("../info").await.unwrap_err(),
        LineError::Server { status: 500 }
    );
    assert_eq!(
        api_log.lock().unwrap().last().unwrap().path,
        "/v2/bot/profile/%2E%2E%2Finfo"
    );

    for seen in api_log
        .lock()
        .unwrap()
        .iter()
        .chain(data_log.lock().unwrap().iter())
    {
        assert_eq!(seen.method, "GET");
        assert_eq!(seen.headers["authorization"], format!("Bearer {TOKEN}"));
    }
    assert!(
        data_log
            .lock()
            .unwrap()
            .iter()
            .all(|s| s.path.ends_with("/content"))
    );
}

#[tokio::test]
async fn a_malformed_answer_to_a_read_is_an_error() {
    let (client, _) = fixed(200, &[], r#"{"displayName": 5}"#).await;
    let err = client.profile("U1").await.unwrap_err();
    assert!(matches!(err, LineError::Network(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_that_cannot_be_a_header_is_unauthorized() {
    let client = Client::new("http://127.0.0.1:1", "http://127.0.0.1:1", "bad\ntoken");
    assert_eq!(
        client.bot_info().await.unwrap_err(),
        LineError::Unauthorized
    );
    assert!(!format!("{client:?}").contains("bad"));
}
