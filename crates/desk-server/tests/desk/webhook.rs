//! `POST /line` end to end (S1, S4, C1, C2, C7): the emulator plays LINE and its users; each
//! test runs on SQLite and on PostgreSQL.

use crate::common::{Backend, TestDesk, backend_test, eventually, png, sample};
use line_emulator::{Endpoint, Fault, UserMessage};
use serde_json::Value;

backend_test!(a_follow_shows_the_chat_with_the_users_display_name);
async fn a_follow_shows_the_chat_with_the_users_display_name(b: Backend) {
    let d = TestDesk::start(b).await;
    let user = d.emulator.follow("山田 花子", None).await.unwrap();
    let conv = eventually("the profile is fetched", || async {
        d.conversation_of(&user)
            .await
            .filter(|c| c["profile_state"] == "ok")
    })
    .await;
    assert_eq!(conv["display_name"], "山田 花子", "{b:?}");
    assert_eq!(conv["status"], "unread");
    assert_eq!(conv["blocked"], false);
    assert_eq!(conv["agent"], Value::Null);
}

backend_test!(a_message_from_a_user_never_seen_opens_a_chat_at_the_events_time);
async fn a_message_from_a_user_never_seen_opens_a_chat_at_the_events_time(b: Backend) {
    let d = TestDesk::start(b).await;
    // The user follows while the desk is unreachable, so the desk first hears of them
    // through a message.
    d.emulator.set_webhook_url("http://127.0.0.1:9/line");
    let user = d.emulator.follow("鈴木 一郎", None).await.unwrap();
    d.emulator.set_webhook_url(&format!("{}/line", d.url));
    let sent = d
        .emulator
        .send_text(&user, "荷物が届きません")
        .await
        .unwrap();
    assert_eq!(sent.webhook_status, Some(200));
    let conv = d
        .conversation_of(&user)
        .await
        .expect("chat opened by the message");
    assert_eq!(conv["unread_count"], 1);
    let msgs = d.messages(conv["id"].as_i64().unwrap()).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["text"], "荷物が届きません");
    assert_eq!(msgs[0]["direction"], "in");
    assert_eq!(msgs[0]["type"], "text");
    assert_eq!(msgs[0]["delivery"], "received");
    let event = d.emulator.event(&sent.webhook_event_id).unwrap();
    let ts = event["timestamp"].as_i64().unwrap();
    let shown =
        chrono::DateTime::parse_from_rfc3339(msgs[0]["created_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        shown.timestamp_millis(),
        ts,
        "{b:?}: the message time is LINE's event time"
    );
    assert_eq!(
        shown.offset().local_minus_utc(),
        9 * 3600,
        "shown in Asia/Tokyo"
    );
    eventually("the profile arrives", || async {
        d.conversation_of(&user)
            .await
            .filter(|c| c["display_name"] == "鈴木 一郎")
    })
    .await;
}

backend_test!(a_redelivered_event_is_stored_once);
async fn a_redelivered_event_is_stored_once(b: Backend) {
    let d = TestDesk::start(b).await;
    let user = d.emulator.follow("A", None).await.unwrap();
    let sent = d.emulator.send_text(&user, "一度だけ").await.unwrap();
    assert_eq!(
        d.emulator.redeliver(&sent.webhook_event_id).await.unwrap(),
        Some(200)
    );
    assert_eq!(
        d.emulator.redeliver(&sent.webhook_event_id).await.unwrap(),
        Some(200)
    );
    let conv = d.conversation_of(&user).await.unwrap();
    let msgs = d.messages(conv["id"].as_i64().unwrap()).await;
    assert_eq!(msgs.len(), 1, "{b:?}");
    assert_eq!(conv["unread_count"], 1);
    assert_eq!(
        d.metric("linedesk_webhook_duplicate_events_total").await,
        2.0
    );
}

backend_test!(events_refused_while_the_desk_failed_arrive_on_redelivery);
async fn events_refused_while_the_desk_failed_arrive_on_redelivery(b: Backend) {
    let d = TestDesk::start(b).await;
    d.emulator.set_webhook_url("http://127.0.0.1:9/line");
    let user = d.emulator.follow("B", None).await.unwrap();
    d.emulator.send_text(&user, "届いていますか").await.unwrap();
    d.emulator.set_webhook_url(&format!("{}/line", d.url));
    let results = d.emulator.redeliver_undelivered(true).await;
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|(_, s)| *s == Some(200)), "{results:?}");
    let conv = d.conversation_of(&user).await.unwrap();
    assert_eq!(
        d.messages(conv["id"].as_i64().unwrap()).await[0]["text"],
        "届いていますか"
    );
}

backend_test!(a_wrong_or_missing_signature_is_refused_stored_nowhere_and_counted);
async fn a_wrong_or_missing_signature_is_refused_stored_nowhere_and_counted(b: Backend) {
    let d = TestDesk::start(b).await;
    let body = br#"{"destination":"U0","events":[{"type":"message","timestamp":1,"source":{"type":"user","userId":"Uattacker"},"webhookEventId":"X1","message":{"id":"1","type":"text","text":"forged"}}]}"#;
    let wrong = line_api::signature::sign(b"not-the-secret", body);
    assert_eq!(d.post_webhook(body, Some(&wrong)).await, 401);
    assert_eq!(d.post_webhook(body, None).await, 401);
    assert_eq!(d.post_webhook(body, Some("garbage!!")).await, 401);
    assert!(d.conversations().await.is_empty(), "{b:?}: nothing stored");
    assert_eq!(d.state.store.count_messages().await.unwrap(), 0);
    assert_eq!(
        d.metric("linedesk_webhook_signature_failures_total").await,
        3.0
    );
    // The failures are recorded for admins (LINE設定), with their time.
    // (The background flush may be writing them at this very moment.)
    desk_server::metrics::flush_once(&d.state).await;
    eventually("the failures are recorded", || async {
        let c = d
            .state
            .store
            .counter(desk_server::metrics::SIGNATURE_FAILURES)
            .await
            .unwrap();
        (c.map(|(n, _)| n) == Some(3)).then_some(())
    })
    .await;
    // The desk keeps serving.
    let user = d.emulator.follow("C", None).await.unwrap();
    assert!(d.conversation_of(&user).await.is_some());
}

backend_test!(a_body_that_is_not_a_webhook_is_400_and_an_oversized_one_413);
async fn a_body_that_is_not_a_webhook_is_400_and_an_oversized_one_413(b: Backend) {
    let d = TestDesk::start(b).await;
    let secret = d.emulator.config().channel_secret.clone();
    for body in [&b"not json"[..], b"[1,2]", b"{\"destination\":\"U0\"}"] {
        let sig = line_api::signature::sign(secret.as_bytes(), body);
        assert_eq!(
            d.post_webhook(body, Some(&sig)).await,
            400,
            "{b:?} {body:?}"
        );
    }
    let big = vec![b' '; 1024 * 1024 + 1];
    let sig = line_api::signature::sign(secret.as_bytes(), &big);
    assert_eq!(d.post_webhook(&big, Some(&sig)).await, 413);
    // LINE's "Verify" button: an empty event list.
    let verify = br#"{"destination":"U0","events":[]}"#;
    let sig = line_api::signature::sign(secret.as_bytes(), verify);
    assert_eq!(d.post_webhook(verify, Some(&sig)).await, 200);
}

backend_test!(an_image_is_downloaded_from_line_and_served_to_logged_in_users);
async fn an_image_is_downloaded_from_line_and_served_to_logged_in_users(b: Backend) {
    let d = TestDesk::start(b).await;
    let user = d.emulator.follow("D", None).await.unwrap();
    let photo = png(40, 30);
    // LINE's content API fails once: the image shows "not yet fetched", then arrives.
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Content,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    d.emulator.send_image(&user, photo.clone()).await.unwrap();
    let conv = d.conversation_of(&user).await.unwrap();
    let id = conv["id"].as_i64().unwrap();
    let first = d.messages(id).await;
    assert_eq!(first[0]["type"], "image");
    let msg = eventually("the image is fetched on retry", || async {
        d.messages(id)
            .await
            .into_iter()
            .find(|m| m["media_state"] == "ok")
    })
    .await;
    let url = msg["media_url"].as_str().unwrap();
    let resp = d
        .http
        .get(format!("{}{url}", d.url))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(
        resp.bytes().await.unwrap().to_vec(),
        photo,
        "{b:?}: the exact bytes"
    );
    // Customers' images are private: no login, no image; nor at the public path.
    assert_eq!(
        d.http
            .get(format!("{}{url}", d.url))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let key = url.rsplit('/').next().unwrap();
    assert_eq!(
        d.http
            .get(format!("{}/media/{key}", d.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn a_failed_content_fetch_is_visible_and_retried() {
    let d = TestDesk::start(crate::common::Backend::Sqlite).await;
    let user = d.emulator.follow("E", None).await.unwrap();
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Content,
        status: 503,
        count: 2,
        delay_ms: 0,
    });
    d.emulator.send_image(&user, png(8, 8)).await.unwrap();
    let id = d.conversation_of(&user).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let pending = eventually("a failed try is recorded", || async {
        let jobs: Option<String> = desk_store::on_db!(d.state.store.db(), |p| sqlx::query_scalar(
            "SELECT last_error FROM jobs WHERE kind = 'content'"
        )
        .fetch_optional(p)
        .await)
        .unwrap()
        .flatten();
        jobs
    })
    .await;
    assert!(pending.contains("503"), "{pending}");
    let m = &d.messages(id).await[0];
    assert_eq!(m["media_state"], "pending", "shown as not yet fetched");
    assert_eq!(m["media_url"], Value::Null);
    eventually("fetched after the faults", || async {
        d.messages(id)
            .await
            .into_iter()
            .find(|m| m["media_state"] == "ok")
    })
    .await;
}

backend_test!(every_message_kind_is_kept_as_what_it_is);
async fn every_message_kind_is_kept_as_what_it_is(b: Backend) {
    let d = TestDesk::start(b).await;
    let user = d.emulator.follow("F", None).await.unwrap();
    d.emulator.send_sticker(&user, "446", "1988").await.unwrap();
    d.emulator
        .send(
            &user,
            UserMessage::Location {
                title: "東京タワー".into(),
                address: "東京都港区芝公園4-2-8".into(),
                latitude: 35.658581,
                longitude: 139.745433,
            },
        )
        .await
        .unwrap();
    d.emulator
        .send(
            &user,
            UserMessage::File {
                name: "見積書.pdf".into(),
                bytes: b"%PDF-1.4 demo".to_vec(),
            },
        )
        .await
        .unwrap();
    d.emulator
        .send(
            &user,
            UserMessage::Video {
                bytes: b"\x00\x00\x00\x18ftypmp42 video".to_vec(),
                duration_ms: 3000,
            },
        )
        .await
        .unwrap();
    d.emulator
        .send(
            &user,
            UserMessage::Audio {
                bytes: b"\x00\x00\x00\x18ftypM4A audio".to_vec(),
                duration_ms: 1500,
            },
        )
        .await
        .unwrap();
    let id = d.conversation_of(&user).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let msgs = eventually("all content fetched", || async {
        let m = d.messages(id).await;
        m.iter()
            .all(|m| m["media_state"] == "none" || m["media_state"] == "ok")
            .then_some(m)
    })
    .await;
    let kinds: Vec<&str> = msgs.iter().map(|m| m["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["sticker", "location", "file", "video", "audio"],
        "{b:?}"
    );
    assert_eq!(msgs[0]["details"]["package_id"], "446");
    assert_eq!(msgs[0]["details"]["sticker_id"], "1988");
    assert_eq!(msgs[1]["details"]["title"], "東京タワー");
    assert_eq!(msgs[1]["details"]["latitude"], 35.658581);
    assert_eq!(msgs[2]["details"]["file_name"], "見積書.pdf");
    assert_eq!(msgs[3]["details"]["duration_ms"], 3000);
    for m in &msgs[2..] {
        assert!(m["media_url"].is_string(), "content kept: {m}");
    }
}

backend_test!(block_keeps_the_history_and_unblock_brings_the_chat_back);
async fn block_keeps_the_history_and_unblock_brings_the_chat_back(b: Backend) {
    let d = TestDesk::start(b).await;
    let user = d.emulator.follow("G", None).await.unwrap();
    d.emulator.send_text(&user, "さようなら").await.unwrap();
    d.emulator.block(&user).await.unwrap();
    let conv = d.conversation_of(&user).await.unwrap();
    assert_eq!(conv["blocked"], true, "{b:?}");
    let id = conv["id"].as_i64().unwrap();
    assert_eq!(d.messages(id).await.len(), 1, "history kept");
    d.emulator.unblock(&user).await.unwrap();
    let conv = d.conversation_of(&user).await.unwrap();
    assert_eq!(conv["blocked"], false);
    assert_eq!(conv["id"], id, "the same chat reappears");
}

backend_test!(a_failed_profile_fetch_shows_the_user_id_meanwhile_and_is_retried);
async fn a_failed_profile_fetch_shows_the_user_id_meanwhile_and_is_retried(b: Backend) {
    let d = TestDesk::start(b).await;
    d.emulator.add_fault(Fault {
        endpoint: Endpoint::Profile,
        status: 500,
        count: 1,
        delay_ms: 0,
    });
    let user = d.emulator.follow("H さん", None).await.unwrap();
    let conv = d.conversation_of(&user).await.unwrap();
    assert_eq!(conv["display_name"], Value::Null);
    assert_eq!(conv["line_user_id"], user.as_str());
    eventually("the retry fetches the name", || async {
        d.conversation_of(&user)
            .await
            .filter(|c| c["display_name"] == "H さん")
    })
    .await;
}

#[tokio::test]
async fn the_api_needs_a_token_but_health_and_metrics_do_not() {
    let d = TestDesk::start(crate::common::Backend::Sqlite).await;
    let get = |path: &str, token: Option<&str>| {
        let mut r = d.http.get(format!("{}{path}", d.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get("/api/v1/conversations", None).await, 401);
    assert_eq!(get("/api/v1/conversations", Some("ld_wrong")).await, 401);
    assert_eq!(get("/api/v1/conversations/1/messages", None).await, 401);
    assert_eq!(get("/api/v1/conversations", Some(&d.token)).await, 200);
    assert_eq!(get("/api/v1/conversations/999", Some(&d.token)).await, 404);
    assert_eq!(get("/healthz", None).await, 200);
    assert_eq!(get("/metrics", None).await, 200);
    let body: Value = d
        .http
        .get(format!("{}/api/v1/conversations", d.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let doc = d.get("/api/v1/openapi.json").await;
    assert!(doc["paths"]["/conversations"].is_object());
}

backend_test!(history_defaults_to_the_last_seven_days_and_takes_from_to);
async fn history_defaults_to_the_last_seven_days_and_takes_from_to(b: Backend) {
    let d = TestDesk::start(b).await;
    let secret = d.emulator.config().channel_secret.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let day = 86_400_000;
    let body = format!(
        r#"{{"destination":"U0","events":[
        {{"type":"message","timestamp":{old},"source":{{"type":"user","userId":"Uhist"}},"webhookEventId":"H1","message":{{"id":"h1","type":"text","text":"十日前"}}}},
        {{"type":"message","timestamp":{now},"source":{{"type":"user","userId":"Uhist"}},"webhookEventId":"H2","message":{{"id":"h2","type":"text","text":"今日"}}}}]}}"#,
        old = now - 10 * day
    );
    let sig = line_api::signature::sign(secret.as_bytes(), body.as_bytes());
    assert_eq!(d.post_webhook(body.as_bytes(), Some(&sig)).await, 200);
    let id = d.conversation_of("Uhist").await.unwrap()["id"]
        .as_i64()
        .unwrap();
    let recent = d.messages(id).await;
    assert_eq!(recent.len(), 1, "{b:?}");
    assert_eq!(recent[0]["text"], "今日");
    let tz = chrono_tz::Asia::Tokyo;
    let date = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap()
            .with_timezone(&tz)
            .format("%Y-%m-%d")
            .to_string()
    };
    let all = d
        .get(&format!(
            "/api/v1/conversations/{id}/messages?from={}&to={}",
            date(now - 10 * day),
            date(now)
        ))
        .await;
    assert_eq!(all["messages"].as_array().unwrap().len(), 2);
    assert_eq!(all["messages"][0]["text"], "十日前", "oldest first");
    assert_eq!(
        d.status_of(&format!(
            "/api/v1/conversations/{id}/messages?from=2020-13-01"
        ))
        .await,
        400
    );
    assert_eq!(
        d.status_of(&format!(
            "/api/v1/conversations/{id}/messages?from=2020-02-02&to=2020-02-01"
        ))
        .await,
        400
    );
}

backend_test!(histograms_and_gauges_after_real_traffic);
/// What `/metrics` adds with the metrics facade (issue 11, item 7), after real traffic: a
/// customer writing through the webhook, an agent's message pushed to LINE, a live-update
/// stream open and then closed. One test case per database.
async fn histograms_and_gauges_after_real_traffic(b: Backend) {
    let d = TestDesk::start(b).await;
    d.set_mode("push").await;
    let sato = d
        .user("sato", "佐藤 美咲", desk_store::users::Role::Agent)
        .await;
    let (user, conv) = d.customer("山田 花子", "荷物が届きません").await;
    d.emulator.send_text(&user, "まだですか").await.unwrap();
    assert_eq!(sato.set_status(conv, "in_progress").await.0, 200);
    let (s, m) = sato.send_text(conv, "確認いたします。").await;
    assert_eq!((s, m["delivery"].as_str()), (201, Some("sent")), "{m}");
    let stream = d
        .http
        .get(format!("{}/api/v1/events", d.url))
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);

    let text = d.scrape().await;
    let get = |series: &str| {
        sample(&text, series).unwrap_or_else(|| panic!("{b:?}: {series} missing in:\n{text}"))
    };
    // Every 200 of `/line` is timed, in seconds; all fall in the last bucket.
    let answered = get("linedesk_webhook_requests_total{result=\"ok\"}");
    assert!(answered >= 3.0, "follow and two messages: {answered}");
    let latency = "linedesk_webhook_latency_seconds";
    assert_eq!(get(&format!("{latency}_count")), answered);
    assert_eq!(get(&format!("{latency}_bucket{{le=\"+Inf\"}}")), answered);
    let sum = get(&format!("{latency}_sum"));
    assert!(sum > 0.0 && sum < 10.0 * answered, "{sum}");
    // Each commit of the writer holds at least one event, and together every event stored.
    let batches = "linedesk_webhook_commit_batch_events";
    let events =
        get("linedesk_webhook_events_total") + get("linedesk_webhook_duplicate_events_total");
    assert!(events >= 3.0, "{events}");
    assert!((1.0..=events).contains(&get(&format!("{batches}_count"))));
    assert_eq!(get(&format!("{batches}_sum")), events);
    assert_eq!(
        get(&format!("{batches}_bucket{{le=\"4096\"}}")),
        get(&format!("{batches}_count"))
    );
    // The one message pushed: queued to accepted by LINE in (much) less than a minute.
    let delivery = "linedesk_delivery_latency_seconds";
    assert_eq!(get("linedesk_deliveries_total"), 1.0);
    assert_eq!(get(&format!("{delivery}_count")), 1.0);
    assert!((0.0..60.0).contains(&get(&format!("{delivery}_sum"))));
    assert_eq!(get(&format!("{delivery}_bucket{{le=\"60\"}}")), 1.0);
    // The open stream, and no listener trouble (none on SQLite, no reconnect on PostgreSQL).
    assert_eq!(get("linedesk_sse_clients"), 1.0);
    assert_eq!(get("linedesk_listener_reconnects_total"), 0.0);
    assert_eq!(get("linedesk_store_up"), 1.0);
    assert_eq!(get("linedesk_outbox_messages"), 0.0);
    assert!(
        text.contains("# TYPE linedesk_webhook_latency_seconds histogram"),
        "{text}"
    );

    drop(stream);
    eventually("the closed stream is no longer counted", || async {
        (sample(&d.scrape().await, "linedesk_sse_clients") == Some(0.0)).then_some(())
    })
    .await;
}
