//! Issue 9: the holes found when the desk was attacked from outside, as an outsider, a LINE
//! user and a logged-in agent would. Each test drives a real desk over HTTP (the emulator
//! plays LINE) on SQLite and on PostgreSQL; the browser-side checks are in
//! `browser_security.rs`, the memory bound of `/login` in `crates/linedesk/tests`.

use crate::common::{Backend, TestDesk, backend_test};
use desk_store::users::Role;
use reqwest::StatusCode;
use serde_json::Value;

/// A logged-in session for `user_id` (as the login page would create it): the cookie
/// header value and the session's CSRF token.
async fn session_for(d: &TestDesk, user_id: i64) -> (String, String) {
    let now = d.state.now_ms();
    let s = d
        .state
        .store
        .create_session(user_id, now, now + 3_600_000)
        .await
        .unwrap();
    (format!("linedesk_session={}", s.token), s.csrf_token)
}

async fn admin_id(d: &TestDesk) -> i64 {
    d.state
        .store
        .user_by_login("admin")
        .await
        .unwrap()
        .unwrap()
        .id
}

backend_test!(out_of_range_dates_get_a_clear_error_instead_of_a_panic);
/// Item 9: a date at the edge of chrono's calendar panicked the history handlers
/// (`NaiveDate - TimeDelta overflowed`); now the API answers 400 and the page shows its
/// range message with the last 7 days.
async fn out_of_range_dates_get_a_clear_error_instead_of_a_panic(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let (_, conv) = d.customer("山田 花子", "こんにちは").await;
    let (cookie, _) = session_for(&d, admin_id(&d).await).await;
    for query in [
        "to=-262143-01-01",
        "from=-262143-01-01",
        "to=%2B262142-12-31",
        "from=-262143-01-01&to=-262143-01-02",
        "to=0000-01-01",
    ] {
        let resp = d
            .http
            .get(format!(
                "{}/api/v1/conversations/{conv}/messages?{query}",
                d.url
            ))
            .bearer_auth(&d.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{backend:?} API {query}: no answer ({e})"));
        assert_eq!(resp.status(), 400, "{backend:?} API {query}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "{backend:?} {query}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("YYYY-MM-DD"),
            "{body}"
        );

        let resp = d
            .http
            .get(format!("{}/chats/{conv}?{query}", d.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{backend:?} page {query}: no answer ({e})"));
        assert_eq!(resp.status(), 200, "{backend:?} page {query}");
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("YYYY-MM-DD"),
            "{backend:?} {query}: the range message is shown"
        );
        assert!(html.contains("こんにちは"), "the last 7 days are shown");
    }
}

backend_test!(every_response_has_nosniff_no_store_and_pages_a_strict_csp);
/// Item 13: every response is `nosniff` and, unless it is an immutable asset or a file,
/// `no-store`; pages (and everything without a policy of its own) carry the strict CSP, and
/// no page has an inline script or event handler for that CSP to block.
async fn every_response_has_nosniff_no_store_and_pages_a_strict_csp(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let (_, conv) = d.customer("山田 花子", "こんにちは").await;
    let customer: Value = {
        let resp = d
            .http
            .post(format!("{}/api/v1/customers", d.url))
            .bearer_auth(&d.token)
            .json(&serde_json::json!({"name": "山田 花子"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        resp.json().await.unwrap()
    };
    let customer_id = customer["id"].as_i64().unwrap();
    let admin = admin_id(&d).await;
    let (cookie, _) = session_for(&d, admin).await;
    let get = |path: String, auth: &'static str| {
        let mut req = d.http.get(format!("{}{path}", d.url));
        match auth {
            "cookie" => req = req.header("cookie", &cookie),
            "bearer" => req = req.bearer_auth(&d.token),
            _ => {}
        }
        async move { (path, req.send().await.unwrap()) }
    };
    let mut responses = vec![
        get("/login".into(), "").await,
        get("/chats".into(), "cookie").await,
        get(format!("/chats/{conv}"), "cookie").await,
        get(format!("/chats/{conv}/customer"), "cookie").await,
        get("/customers".into(), "cookie").await,
        get(format!("/customers/{customer_id}"), "cookie").await,
        get("/admin/users".into(), "cookie").await,
        get(format!("/admin/users/{admin}"), "cookie").await,
        get("/admin/line".into(), "cookie").await,
        get("/chats/999999".into(), "cookie").await,
        get("/no/such/page".into(), "cookie").await,
        get("/api/v1/conversations".into(), "bearer").await,
        get("/api/v1/conversations".into(), "").await,
        get("/api/v1/conversations/1/messages?to=x".into(), "bearer").await,
        get("/api/v1/openapi.json".into(), "").await,
        get("/metrics".into(), "").await,
        get("/healthz".into(), "").await,
    ];
    // A refused cross-site form post.
    let resp = d
        .http
        .post(format!("{}/admin/users", d.url))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("login", "x")])
        .send()
        .await
        .unwrap();
    responses.push(("cross-site POST /admin/users".into(), resp));
    for (what, resp) in responses {
        let h = resp.headers().clone();
        let header = |name: &str| {
            h.get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(
            header("x-content-type-options"),
            "nosniff",
            "{backend:?} {what}"
        );
        assert!(
            header("cache-control").contains("no-store"),
            "{backend:?} {what}: {:?}",
            header("cache-control")
        );
        let csp = header("content-security-policy");
        assert!(
            csp.contains("script-src 'self';") && csp.contains("default-src 'none'"),
            "{backend:?} {what}: {csp:?}"
        );
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(
            csp.contains("https://stickershop.line-scdn.net"),
            "sticker images may be shown: {csp}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{backend:?} {what}");
        let is_html = header("content-type").starts_with("text/html");
        let body = resp.text().await.unwrap();
        if is_html {
            assert_no_inline_script(&what, &body);
        }
    }
}

/// Fails when an HTML page holds a `<script>` without `src` or an `on…=` handler attribute.
fn assert_no_inline_script(what: &str, html: &str) {
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains(" src="), "{what}: inline script {tag}");
    }
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    for (i, _) in lower.match_indices(" on") {
        // ` onclick=`, ` onerror =` … inside a tag.
        let rest = &bytes[i + 3..];
        let name_len = rest.iter().take_while(|b| b.is_ascii_lowercase()).count();
        let after = &rest[name_len..];
        let is_attr = name_len > 0 && after.first() == Some(&b'=');
        let in_tag = lower[..i].rfind('<') > lower[..i].rfind('>');
        assert!(
            !(is_attr && in_tag),
            "{what}: inline handler near {:?}",
            &html[i..(i + 40).min(html.len())]
        );
    }
}

backend_test!(with_a_public_url_other_hosts_are_refused);
/// Item 14: with `--public-url` given, requests naming another host (a DNS-rebinding page)
/// get 421; the public host and loopback names work, `/healthz` and `/metrics` answer any
/// host. Without an explicit public URL nothing changes.
async fn with_a_public_url_other_hosts_are_refused(backend: Backend) {
    let d = TestDesk::start_configured(
        backend,
        line_emulator::Config {
            require_https_media: false,
            ..Default::default()
        },
        |c| {
            c.public_url = "https://desk.example.test".into();
            c.check_host = true;
        },
    )
    .await;
    let port = d.url.rsplit(':').next().unwrap().to_owned();
    let status = |path: &'static str, host: String| {
        let req = d
            .http
            .get(format!("{}{path}", d.url))
            .header("host", host)
            .bearer_auth(&d.token);
        async move { req.send().await.unwrap().status() }
    };
    for host in [
        "evil.example",
        "evil.example:80",
        "desk.example.test.evil.example",
    ] {
        assert_eq!(
            status("/api/v1/conversations", host.into()).await,
            StatusCode::MISDIRECTED_REQUEST,
            "{backend:?} {host}"
        );
        assert_eq!(
            status("/login", host.into()).await,
            StatusCode::MISDIRECTED_REQUEST
        );
        assert_eq!(status("/healthz", host.into()).await, 200, "probes");
        assert_eq!(status("/metrics", host.into()).await, 200, "scrapers");
    }
    let wrong_host_webhook = d
        .http
        .post(format!("{}/line", d.url))
        .header("host", "evil.example")
        .body("{}")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(wrong_host_webhook, StatusCode::MISDIRECTED_REQUEST);
    for host in [
        "desk.example.test".to_owned(),
        "DESK.example.test:443".to_owned(),
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
    ] {
        assert_eq!(
            status("/api/v1/conversations", host.clone()).await,
            200,
            "{backend:?} {host}"
        );
    }
}

/// … and without one, the default public URL (http://<listen>) checks nothing.
#[tokio::test]
async fn without_a_public_url_any_host_reaches_the_desk() {
    let d = TestDesk::start(crate::common::Backend::Sqlite).await;
    let resp = d
        .http
        .get(format!("{}/api/v1/conversations", d.url))
        .header("host", "some-name.internal")
        .bearer_auth(&d.token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A same-origin-looking form post with the session cookie, the session's CSRF token, and
/// whatever else `extra` adds.
async fn form_post(
    d: &TestDesk,
    path: &str,
    cookie: &str,
    form: &[(&str, &str)],
    extra: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> reqwest::Response {
    // As a browser's form post, but without following the answer's redirect.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let req = http
        .post(format!("{}{path}", d.url))
        .header("cookie", cookie)
        .form(form);
    extra(req).send().await.unwrap()
}

backend_test!(a_junk_bearer_header_does_not_bypass_csrf);
/// Item 7: a junk `Authorization: Bearer` header no longer exempts a cookie-authenticated
/// form post from the CSRF checks: every form of the UI refuses a cross-site post, or one
/// without the token, that carries one. A valid token still needs no CSRF token.
async fn a_junk_bearer_header_does_not_bypass_csrf(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let (_, conv) = d.customer("山田 花子", "こんにちは").await;
    let admin = admin_id(&d).await;
    let sato = d
        .state
        .store
        .create_user("sato", "佐藤", Role::Agent, "x", 0)
        .await
        .unwrap();
    let token = d.state.store.create_api_token(sato, 0).await.unwrap();
    let token_id = d.state.store.list_api_tokens(Some(sato)).await.unwrap()[0].id;
    let customer: Value = d
        .http
        .post(format!("{}/api/v1/customers", d.url))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"name": "山田 花子"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = customer["id"].as_i64().unwrap();
    let (cookie, csrf) = session_for(&d, admin).await;
    let forms = [
        "/logout".to_owned(),
        "/me/locale".into(),
        "/admin/users".into(),
        format!("/admin/users/{sato}"),
        format!("/admin/users/{sato}/disable"),
        format!("/admin/users/{sato}/enable"),
        format!("/admin/users/{sato}/password"),
        format!("/admin/users/{sato}/tokens/{token_id}/revoke"),
        "/admin/line".into(),
        "/admin/line/test".into(),
        "/customers".into(),
        format!("/customers/{c}"),
        format!("/customers/{c}/passcode"),
        format!("/customers/{c}/unlink/{conv}"),
        format!("/customers/{c}/delete"),
        format!("/chats/{conv}/customer"),
        format!("/chats/{conv}/customer/unlink"),
    ];
    for path in &forms {
        let fields = [
            ("locale", "en"),
            ("login", "mallory"),
            ("name", "Mallory"),
            ("role", "admin"),
            ("password", "mallory-password"),
            ("new_password", "mallory-password"),
            ("mode", "push"),
            ("customer_id", "1"),
        ];
        let resp = form_post(&d, path, &cookie, &fields, |r| {
            r.header("authorization", "Bearer junk")
                .header("origin", "https://evil.example")
                .header("sec-fetch-site", "cross-site")
        })
        .await;
        assert_eq!(resp.status(), 403, "{backend:?} cross-site {path}");
        // Same-origin, but without the session's CSRF token.
        let resp = form_post(&d, path, &cookie, &fields, |r| {
            r.header("authorization", "Bearer junk")
                .header("origin", &d.url)
                .header("sec-fetch-site", "same-origin")
        })
        .await;
        assert_eq!(resp.status(), 403, "{backend:?} no token {path}");
    }
    // Nothing was changed by them.
    assert!(
        d.state
            .store
            .user_by_login("mallory")
            .await
            .unwrap()
            .is_none()
    );
    let sato_row = d.state.store.user_by_id(sato).await.unwrap().unwrap();
    assert!(!sato_row.disabled && sato_row.name == "佐藤");
    assert!(
        d.state
            .store
            .user_by_api_token(&token, d.state.now_ms())
            .await
            .unwrap()
            .is_some()
    );
    assert!(d.state.store.customer(c).await.unwrap().is_some());
    // The session still works (logout was refused), and with its token a form posts.
    let resp = form_post(
        &d,
        "/me/locale",
        &cookie,
        &[("locale", "en"), ("csrf_token", &csrf)],
        |r| r.header("authorization", "Bearer junk"),
    )
    .await;
    assert_eq!(resp.status(), 303, "{backend:?}");
    // A valid token needs no CSRF token (API clients have none).
    let resp = d
        .http
        .post(format!("{}/api/v1/customers", d.url))
        .bearer_auth(&d.token)
        .header("origin", "https://integration.example")
        .json(&serde_json::json!({"name": "佐藤 一郎"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{backend:?}");
}

/// Opens `/api/v1/events` with `auth` and waits for its first event.
async fn open_stream(
    d: &TestDesk,
    auth: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> reqwest::Response {
    let mut resp = auth(d.http.get(format!("{}/api/v1/events", d.url)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("event: ready"));
    resp
}

/// Reads the stream until the server ends it; panics if it is still open after `limit`
/// (while changes keep coming: the stream is alive, not merely quiet).
async fn until_stream_ends(d: &TestDesk, resp: &mut reqwest::Response, what: &str) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        // A change every round (settings changes reach every stream), so a stream that is
        // still live has something to deliver.
        let now = d.state.now_ms();
        d.state
            .store
            .set_setting("test.tick", &now.to_string(), now)
            .await
            .unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(500), resp.chunk()).await {
            Ok(Ok(None)) | Ok(Err(_)) => return,
            Ok(Ok(Some(_))) | Err(_) => {}
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event stream still delivers after {what}"
        );
    }
}

backend_test!(event_streams_end_when_access_is_withdrawn);
/// Item 10: an open event stream ends when its user is disabled, logs out, has their
/// password reset, or its API token is revoked — while other users' streams go on.
async fn event_streams_end_when_access_is_withdrawn(backend: Backend) {
    let d = TestDesk::start(backend).await;
    d.customer("山田 花子", "こんにちは").await;
    let admin = admin_id(&d).await;
    let (admin_cookie, admin_csrf) = session_for(&d, admin).await;
    let mut bystander = open_stream(&d, |r| r.bearer_auth(&d.token)).await;

    // Disabled by an admin.
    let sato = d
        .state
        .store
        .create_user("sato", "佐藤", Role::Agent, "x", 0)
        .await
        .unwrap();
    let (sato_cookie, sato_csrf) = session_for(&d, sato).await;
    let mut stream = open_stream(&d, |r| r.header("cookie", &sato_cookie)).await;
    let resp = form_post(
        &d,
        &format!("/admin/users/{sato}/disable"),
        &admin_cookie,
        &[("csrf_token", &admin_csrf)],
        |r| r,
    )
    .await;
    assert_eq!(resp.status(), 303);
    until_stream_ends(&d, &mut stream, "disabling").await;
    d.state.store.set_user_disabled(sato, false).await.unwrap();

    // Logged out.
    let (cookie, csrf) = session_for(&d, sato).await;
    let mut stream = open_stream(&d, |r| r.header("cookie", &cookie)).await;
    let resp = form_post(&d, "/logout", &cookie, &[("csrf_token", &csrf)], |r| r).await;
    assert_eq!(resp.status(), 303);
    until_stream_ends(&d, &mut stream, "logout").await;

    // Password reset by an admin (the stream by cookie and one by token).
    let (cookie, _) = session_for(&d, sato).await;
    let token = d.state.store.create_api_token(sato, 0).await.unwrap();
    let mut by_cookie = open_stream(&d, |r| r.header("cookie", &cookie)).await;
    let mut by_token = open_stream(&d, |r| r.bearer_auth(&token)).await;
    let resp = form_post(
        &d,
        &format!("/admin/users/{sato}/password"),
        &admin_cookie,
        &[
            ("csrf_token", &admin_csrf),
            ("new_password", "brand-new-pass"),
        ],
        |r| r,
    )
    .await;
    assert_eq!(resp.status(), 303);
    until_stream_ends(&d, &mut by_cookie, "a password reset (cookie)").await;
    until_stream_ends(&d, &mut by_token, "a password reset (token)").await;

    // A revoked token.
    let token = d.state.store.create_api_token(sato, 0).await.unwrap();
    let mut stream = open_stream(&d, |r| r.bearer_auth(&token)).await;
    let id = d.state.store.list_api_tokens(Some(sato)).await.unwrap()[0].id;
    d.state
        .store
        .revoke_api_token(id, d.state.now_ms())
        .await
        .unwrap();
    until_stream_ends(&d, &mut stream, "revoking the token").await;
    let _ = sato_csrf;

    // The admin's stream saw all of that go by and is still open.
    let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), bystander.chunk())
        .await
        .expect("the bystander's stream delivers")
        .unwrap();
    assert!(
        chunk.is_some(),
        "{backend:?}: the bystander's stream is open"
    );
}

backend_test!(admins_list_and_revoke_tokens_and_a_reset_revokes_them);
/// Item 11 on the users page: an admin sees a user's API tokens (never the tokens), revokes
/// one, and a password reset revokes the rest; the JSON API refuses them at once.
async fn admins_list_and_revoke_tokens_and_a_reset_revokes_them(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let admin = admin_id(&d).await;
    let (cookie, csrf) = session_for(&d, admin).await;
    let sato = d
        .state
        .store
        .create_user("sato", "佐藤", Role::Agent, "x", 0)
        .await
        .unwrap();
    let now = d.state.now_ms();
    let first = d.state.store.create_api_token(sato, now).await.unwrap();
    let second = d
        .state
        .store
        .create_api_token_until(sato, now, Some(now + 90 * 86_400_000))
        .await
        .unwrap();
    let api = |token: &str| {
        let req = d
            .http
            .get(format!("{}/api/v1/conversations", d.url))
            .bearer_auth(token);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(api(&first).await, 200);
    let page = |cookie: &str| {
        let req = d
            .http
            .get(format!("{}/admin/users/{sato}", d.url))
            .header("cookie", cookie);
        async move { req.send().await.unwrap().text().await.unwrap() }
    };
    let html = page(&cookie).await;
    assert!(html.contains("APIトークン"), "{backend:?}");
    assert_eq!(html.matches("data-token=").count(), 2);
    assert!(!html.contains(&first[3..]) && !html.contains(&second[3..]));
    assert_eq!(html.matches("/revoke\"").count(), 2, "both can be revoked");

    let tokens = d.state.store.list_api_tokens(Some(sato)).await.unwrap();
    let first_id = tokens.iter().find(|t| t.expires_at.is_none()).unwrap().id;
    let resp = form_post(
        &d,
        &format!("/admin/users/{sato}/tokens/{first_id}/revoke"),
        &cookie,
        &[("csrf_token", &csrf)],
        |r| r,
    )
    .await;
    assert_eq!(resp.status(), 303, "{backend:?}");
    let back = resp.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(api(&first).await, 401, "{backend:?}: revoked at once");
    assert_eq!(api(&second).await, 200);
    let flash = d
        .http
        .get(format!("{}{back}", d.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(flash.contains("APIトークンを取り消しました。"), "{back}");
    let html = page(&cookie).await;
    assert!(html.contains("取り消し済み"));
    assert_eq!(html.matches("/revoke\"").count(), 1);

    // Another user's token id through this user's page: 404, nothing revoked.
    let other = d.state.store.list_api_tokens(None).await.unwrap();
    let admins = other.iter().find(|t| t.login == "admin").unwrap().id;
    let resp = form_post(
        &d,
        &format!("/admin/users/{sato}/tokens/{admins}/revoke"),
        &cookie,
        &[("csrf_token", &csrf)],
        |r| r,
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(api(&d.token).await, 200);

    // A password reset revokes what is left.
    let resp = form_post(
        &d,
        &format!("/admin/users/{sato}/password"),
        &cookie,
        &[("csrf_token", &csrf), ("new_password", "brand-new-pass")],
        |r| r,
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(api(&second).await, 401, "{backend:?}: revoked by the reset");
    assert_eq!(page(&cookie).await.matches("/revoke\"").count(), 0);
}

/// An HTTP client whose connections come from `ip` (any 127.x.y.z is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Posts the login form to the desk at `base`; the status.
async fn login_at(http: &reqwest::Client, base: &str, login: &str, password: &str) -> u16 {
    login_with(http, base, login, password, |r| r).await
}

async fn login_with(
    http: &reqwest::Client,
    base: &str,
    login: &str,
    password: &str,
    extra: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> u16 {
    let req = http
        .post(format!("{base}/login"))
        .header("origin", base)
        .form(&[("login", login), ("password", password)]);
    extra(req).send().await.unwrap().status().as_u16()
}

async fn admin_with_password(d: &TestDesk) -> &'static str {
    let hash = tokio::task::spawn_blocking(|| password_auth::generate_hash("admin-password"))
        .await
        .unwrap();
    let id = admin_id(d).await;
    d.state.store.set_user_password(id, &hash).await.unwrap();
    "admin-password"
}

backend_test!(concurrent_tries_get_no_more_checks_than_the_limit);
/// Items 2 and 3: 200 concurrent tries at one login ID from one address — the right
/// password among them — get at most 5 password checks (each attempt is reserved before
/// the slow check), the others are refused at once (429 throttled, or 503 busy); and the
/// right password afterwards is refused too.
async fn concurrent_tries_get_no_more_checks_than_the_limit(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let pw = admin_with_password(&d).await;
    let http = client_from("127.0.0.2");
    let mut tries = tokio::task::JoinSet::new();
    for i in 0..200 {
        let (http, base) = (http.clone(), d.url.clone());
        let password = if i == 100 {
            pw.to_owned()
        } else {
            format!("wrong-{i}")
        };
        tries.spawn(async move { login_at(&http, &base, "admin", &password).await });
    }
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    while let Some(s) = tries.join_next().await {
        *statuses.entry(s.unwrap()).or_default() += 1;
    }
    let checked = statuses.get(&401).unwrap_or(&0) + statuses.get(&303).unwrap_or(&0);
    assert!(
        (1..=5).contains(&checked),
        "{backend:?}: {checked} password checks against a limit of 5: {statuses:?}"
    );
    assert_eq!(
        statuses
            .keys()
            .filter(|s| ![401, 303, 429, 503].contains(*s))
            .count(),
        0,
        "{statuses:?}"
    );
    if !statuses.contains_key(&303) {
        assert_eq!(
            login_at(&http, &d.url, "admin", pw).await,
            429,
            "{backend:?}"
        );
    }
}

backend_test!(a_spray_of_made_up_logins_does_not_clear_a_live_lock);
/// Item 4: a spray of 10,001 failures with made-up login IDs does not clear a live lock —
/// and does not get 10,001 password checks either (the address and the desk-wide limits
/// refuse most at once); the attempts table stays small.
async fn a_spray_of_made_up_logins_does_not_clear_a_live_lock(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let pw = admin_with_password(&d).await;
    let victim = client_from("127.0.0.2");
    for i in 0..5 {
        assert_eq!(
            login_at(&victim, &d.url, "admin", &format!("w{i}")).await,
            401
        );
    }
    assert_eq!(
        login_at(&victim, &d.url, "admin", pw).await,
        429,
        "{backend:?}"
    );

    let sprayer = client_from("127.0.0.3");
    let mut refused = 0;
    let mut tries = tokio::task::JoinSet::new();
    for batch in 0..(10_001 / 16 + 1) {
        for j in 0..16 {
            let n = batch * 16 + j;
            if n >= 10_001 {
                break;
            }
            let (http, base) = (sprayer.clone(), d.url.clone());
            tries.spawn(async move {
                login_at(&http, &base, &format!("made-up-{n}"), "guess-password").await
            });
        }
        while let Some(s) = tries.join_next().await {
            if s.unwrap() != 401 {
                refused += 1;
            }
        }
    }
    assert!(refused > 9_900, "{backend:?}: only {refused} refused");
    assert_eq!(
        login_at(&victim, &d.url, "admin", pw).await,
        429,
        "{backend:?}: the lock outlived the spray"
    );
    let rows = d.state.store.count_login_attempts().await.unwrap();
    assert!(rows <= 100, "{backend:?}: {rows} attempt rows kept");
}

backend_test!(the_throttle_is_per_address_shared_and_spares_the_users_own_address);
/// Item 5: a guesser locks only their own address — the real user gets in from theirs;
/// many addresses together lock the login ID except from the address it signed in from;
/// the throttle lives in the database, so a second instance refuses what the first
/// locked; `X-Forwarded-For` is believed only from a trusted proxy.
async fn the_throttle_is_per_address_shared_and_spares_the_users_own_address(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let pw = admin_with_password(&d).await;
    let office = client_from("127.0.0.3");
    assert_eq!(
        login_at(&office, &d.url, "admin", pw).await,
        303,
        "{backend:?}"
    );

    let attacker = client_from("127.0.0.2");
    for i in 0..5 {
        assert_eq!(
            login_at(&attacker, &d.url, "ADMIN", &format!("w{i}")).await,
            401
        );
    }
    assert_eq!(login_at(&attacker, &d.url, "admin", pw).await, 429);
    assert_eq!(
        login_at(&office, &d.url, "admin", pw).await,
        303,
        "{backend:?}: the real user, from their own address, gets in"
    );

    // Four more addresses, 5 wrong tries each: 25 failures on the login ID in all.
    for host in 10..14 {
        let bot = client_from(&format!("127.0.0.{host}"));
        for i in 0..5 {
            login_at(&bot, &d.url, "admin", &format!("w{i}")).await;
        }
    }
    let stranger = client_from("127.0.0.20");
    assert_eq!(
        login_at(&stranger, &d.url, "admin", pw).await,
        429,
        "{backend:?}: the login ID is throttled from new addresses"
    );
    assert_eq!(
        login_at(&office, &d.url, "admin", pw).await,
        303,
        "{backend:?}"
    );

    // A second instance on the same database sees the same attempts.
    let config = (*d.state.config).clone();
    let app = desk_server::App::build(config).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let second = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.serve(listener));
    assert_eq!(
        login_at(&attacker, &second, "admin", pw).await,
        429,
        "{backend:?}: the lock holds on the other instance"
    );
    assert_eq!(login_at(&office, &second, "admin", pw).await, 303);
}

backend_test!(forwarded_for_is_believed_only_from_a_trusted_proxy);
/// Item 5, behind a proxy: with `--trusted-proxy`, the address the proxy put in
/// `X-Forwarded-For` is the client; from anyone else the header is ignored.
async fn forwarded_for_is_believed_only_from_a_trusted_proxy(backend: Backend) {
    let d = TestDesk::start_configured(
        backend,
        line_emulator::Config {
            require_https_media: false,
            ..Default::default()
        },
        |c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
    )
    .await;
    let pw = admin_with_password(&d).await;
    let proxy = client_from("127.0.0.1");
    let via = |ip: &'static str| move |r: reqwest::RequestBuilder| r.header("x-forwarded-for", ip);
    for i in 0..5 {
        let s = login_with(
            &proxy,
            &d.url,
            "admin",
            &format!("w{i}"),
            via("198.51.100.7"),
        )
        .await;
        assert_eq!(s, 401);
    }
    assert_eq!(
        login_with(&proxy, &d.url, "admin", pw, via("198.51.100.7")).await,
        429,
        "{backend:?}"
    );
    assert_eq!(
        login_with(&proxy, &d.url, "admin", pw, via("203.0.113.9")).await,
        303,
        "{backend:?}: another client behind the proxy"
    );
    // Not a trusted proxy: its X-Forwarded-For is ignored, it is 127.0.0.5 itself.
    let liar = client_from("127.0.0.5");
    for i in 0..5 {
        login_with(
            &liar,
            &d.url,
            "admin",
            &format!("w{i}"),
            via(if i % 2 == 0 { "192.0.2.1" } else { "192.0.2.2" }),
        )
        .await;
    }
    assert_eq!(
        login_with(&liar, &d.url, "admin", pw, via("192.0.2.3")).await,
        429,
        "{backend:?}: a made-up X-Forwarded-For buys no fresh tries"
    );
}

backend_test!(uploads_are_checked_before_anything_is_decoded_or_stored);
/// Item 8: an image upload for a chat that does not exist or that the agent does not hold
/// is refused before anything is decoded or stored (no orphan public files); a picture of
/// too many pixels is refused from its header; a fine one goes out.
async fn uploads_are_checked_before_anything_is_decoded_or_stored(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let (_, conv) = d.customer("山田 花子", "写真を送ってください").await;
    let sato = d.user("sato", "佐藤", Role::Agent).await;
    let tanaka = d.user("tanaka", "田中", Role::Agent).await;
    let media = || async { d.state.store.count_media().await.unwrap() };
    let before = media().await;

    // Nobody holds the chat yet; then tanaka does.
    let (status, body) = sato
        .send_image(conv, crate::common::png(64, 48), "a.png")
        .await;
    assert_eq!(status, 409, "{backend:?} {body}");
    assert_eq!(tanaka.set_status(conv, "in_progress").await.0, 200);
    let (status, body) = sato
        .send_image(conv, crate::common::png(64, 48), "a.png")
        .await;
    assert_eq!(status, 409, "{backend:?} {body}");
    assert_eq!(body["error"]["code"], "held_by_other");
    let (status, _) = sato
        .send_image(999_999, crate::common::png(64, 48), "a.png")
        .await;
    assert_eq!(status, 404, "{backend:?}");
    assert_eq!(media().await, before, "{backend:?}: no file was stored");

    // The holder: a decompression bomb is refused from its header, a photo goes.
    let (status, body) = tanaka
        .send_image(
            conv,
            desk_server::images::huge_bilevel_png(16_384, 8_192),
            "bomb.png",
        )
        .await;
    assert_eq!(status, 413, "{backend:?} {body}");
    assert_eq!(body["error"]["code"], "too_many_pixels");
    assert_eq!(media().await, before);
    let (status, body) = tanaka
        .send_image(conv, crate::common::png(64, 48), "a.png")
        .await;
    assert_eq!(status, 201, "{backend:?} {body}");
    assert_eq!(media().await, before + 2, "the original and its preview");
}

backend_test!(only_consistently_failing_signed_deliveries_blame_the_channel_secret);
/// Item 12: unsigned posts to `/line` (never LINE) are counted apart and do not make
/// LINE設定 claim the Channel Secret is wrong; signed deliveries failing consistently do,
/// until a delivery verifies again; a forger's wrong signatures between LINE's good
/// deliveries do not.
async fn only_consistently_failing_signed_deliveries_blame_the_channel_secret(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let (cookie, _) = session_for(&d, admin_id(&d).await).await;
    let body = br#"{"destination":"U0","events":[]}"#;
    let page = || async {
        d.http
            .get(format!("{}/admin/line", d.url))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let report = || async {
        desk_server::metrics::flush_once(&d.state).await;
        d.get("/api/v1/settings/line").await["signature_failures"].clone()
    };

    for _ in 0..20 {
        assert_eq!(d.post_webhook(body, None).await, 401);
    }
    let r = report().await;
    assert_eq!(
        (r["unsigned"].as_i64(), r["signed"].as_i64()),
        (Some(20), Some(0)),
        "{backend:?} {r}"
    );
    assert_eq!(
        r["hint"],
        Value::Null,
        "{backend:?}: unsigned posts blame nothing"
    );
    let html = page().await;
    assert!(
        !html.contains("Channel Secretが正しくない可能性があります"),
        "{backend:?}"
    );
    assert!(html.contains("署名のない送信（LINEからではありません。受け付けていません）: 20"));
    assert_eq!(
        d.metric("linedesk_webhook_unsigned_requests_total").await,
        20.0
    );

    // LINE signing with another secret: three signed failures in a row.
    let wrong = line_api::signature::sign(b"the-old-secret", body);
    for _ in 0..3 {
        assert_eq!(d.post_webhook(body, Some(&wrong)).await, 401);
    }
    let r = report().await;
    assert_eq!(r["signed"], 3);
    assert!(r["hint"].is_string(), "{backend:?}: {r}");
    assert!(
        page()
            .await
            .contains("Channel Secretが正しくない可能性があります")
    );
    assert_eq!(
        d.metric("linedesk_webhook_signed_failures_total").await,
        3.0
    );

    // Fixed: a delivery verifies, the hint goes.
    let user = d.emulator.follow("C", None).await.unwrap();
    assert!(d.conversation_of(&user).await.is_some());
    assert_eq!(report().await["hint"], Value::Null, "{backend:?}");

    // A forger between LINE's good deliveries never makes a streak.
    for round in 0..3 {
        for _ in 0..2 {
            assert_eq!(d.post_webhook(body, Some(&wrong)).await, 401);
        }
        desk_server::metrics::flush_once(&d.state).await;
        d.emulator
            .send_text(&user, &format!("round {round}"))
            .await
            .unwrap();
        desk_server::metrics::flush_once(&d.state).await;
    }
    for _ in 0..2 {
        assert_eq!(d.post_webhook(body, Some(&wrong)).await, 401);
    }
    let r = report().await;
    assert_eq!(r["signed"], 11);
    assert_eq!(r["hint"], Value::Null, "{backend:?}: {r}");
    assert!(
        !page()
            .await
            .contains("Channel Secretが正しくない可能性があります")
    );
}

/// How many passcode attempts the desk has judged so far.
async fn attempts_judged(d: &TestDesk) -> i64 {
    desk_store::on_db!(d.state.store.db(), |p| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM passcode_attempts"
    )
    .fetch_one(p)
    .await)
    .unwrap()
}

backend_test!(passcode_guessing_across_line_users_trips_a_desk_wide_budget_and_alerts);
/// Item 6 end to end: LINE users guessing passcodes (each within their own 5 an hour) use
/// up the desk-wide budget; further attempts — a right one too — are not checked, and
/// admins are alerted on `/metrics` and LINE設定.
async fn passcode_guessing_across_line_users_trips_a_desk_wide_budget_and_alerts(backend: Backend) {
    let d = TestDesk::start(backend).await;
    let customer: Value = d
        .http
        .post(format!("{}/api/v1/customers", d.url))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({"name": "山田 花子"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = customer["id"].as_i64().unwrap();
    let issued: Value = d
        .http
        .post(format!("{}/api/v1/customers/{id}/line-passcode", d.url))
        .bearer_auth(&d.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code: desk_core::passcode::Passcode = issued["passcode"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        d.metric("linedesk_passcode_guess_budget_exhausted").await,
        0.0
    );

    // Four LINE users, five wrong guesses each: the budget of 20 is used up.
    let mut n = 0;
    for u in 0..4 {
        let user = d
            .emulator
            .follow(&format!("guesser {u}"), None)
            .await
            .unwrap();
        for _ in 0..5 {
            n += 1;
            let wrong = desk_core::passcode::generate((code.number() + n) % 1_000_000);
            d.emulator.send_text(&user, wrong.as_str()).await.unwrap();
        }
    }
    crate::common::eventually("20 guesses judged", || async {
        (attempts_judged(&d).await >= 20).then_some(())
    })
    .await;
    // A fifth guesser, and then the customer with the right passcode: not checked.
    let fifth = d.emulator.follow("guesser 4", None).await.unwrap();
    d.emulator.send_text(&fifth, "@000-001").await.unwrap();
    let honest = d.emulator.follow("山田 花子", None).await.unwrap();
    d.emulator.send_text(&honest, code.as_str()).await.unwrap();
    crate::common::eventually("all attempts judged", || async {
        (attempts_judged(&d).await >= 22).then_some(())
    })
    .await;
    let conv = d.conversation_of(&honest).await.unwrap();
    assert_eq!(
        conv["customer"],
        Value::Null,
        "{backend:?}: not linked while paused"
    );
    assert_eq!(
        d.metric("linedesk_passcode_failures_last_hour").await,
        20.0,
        "{backend:?}"
    );
    assert_eq!(
        d.metric("linedesk_passcode_guess_budget_exhausted").await,
        1.0
    );
    assert_eq!(
        d.metric("linedesk_passcode_attempts_refused_total").await,
        2.0
    );
    let (cookie, _) = session_for(&d, admin_id(&d).await).await;
    let html = d
        .http
        .get(format!("{}/admin/line", d.url))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("パスコードの照合を一時停止しています"),
        "{backend:?}"
    );
    assert!(html.contains("照合を停止中に届いたため照合しなかった送信: 2"));
}

backend_test!(secrets_are_encrypted_and_data_files_private);
/// Item 15 at the desk: the LINE secrets given at start are stored encrypted (the desk still
/// verifies LINE's webhooks with them), and the data dir, the database and media files are
/// private to the desk's user — also those of an older desk, tightened at start.
async fn secrets_are_encrypted_and_data_files_private(backend: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // An older desk's data dir, as umask 022 left it.
    let old = tempfile::tempdir().unwrap();
    std::fs::set_permissions(old.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(old.path().join("linedesk.db"), b"").unwrap();
    std::fs::set_permissions(
        old.path().join("linedesk.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    std::fs::create_dir(old.path().join("media")).unwrap();
    std::fs::set_permissions(
        old.path().join("media"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let old_dir = old.path().to_path_buf();
    let dir = old_dir.clone();
    let d = TestDesk::start_configured(
        backend,
        line_emulator::Config {
            require_https_media: false,
            ..Default::default()
        },
        move |c| {
            if backend == crate::common::Backend::Sqlite {
                c.data_dir = dir;
            }
        },
    )
    .await;
    let secret = d.emulator.config().channel_secret.clone();
    let token = d.emulator.config().channel_access_token.clone();
    let stored: Vec<String> = desk_store::on_db!(d.state.store.db(), |p| sqlx::query_scalar(
        "SELECT value FROM settings WHERE key IN ('line.channel_secret', 'line.channel_access_token')")
        .fetch_all(p).await)
    .unwrap();
    assert_eq!(stored.len(), 2);
    for v in &stored {
        assert!(v.starts_with("enc:v1:"), "{backend:?}: {v}");
        assert!(!v.contains(&secret) && !v.contains(&token));
    }
    // LINE's signed deliveries verify with the decrypted secret; images are kept.
    let user = d.emulator.follow("お客様", None).await.unwrap();
    d.emulator
        .send_image(&user, crate::common::png(20, 20))
        .await
        .unwrap();
    let conv = d.conversation_of(&user).await.unwrap()["id"]
        .as_i64()
        .unwrap();
    crate::common::eventually("the image is kept", || async {
        d.messages(conv).await[0]["media_url"]
            .as_str()
            .map(str::to_owned)
    })
    .await;
    let data = d.state.config.data_dir.clone();
    assert_eq!(mode(&data), 0o700, "{backend:?}: the data dir");
    assert_eq!(mode(&data.join(desk_store::secrets::KEY_FILE)), 0o600);
    if backend == crate::common::Backend::Sqlite {
        assert_eq!(data, old_dir, "the older desk's data dir");
        for f in ["linedesk.db", "linedesk.db-wal", "linedesk.db-shm"] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&data.join("media")), 0o700);
        let mut files = Vec::new();
        for sub in std::fs::read_dir(data.join("media")).unwrap() {
            let sub = sub.unwrap().path();
            assert_eq!(mode(&sub), 0o700, "{sub:?}");
            for f in std::fs::read_dir(&sub).unwrap() {
                files.push(f.unwrap().path());
            }
        }
        assert!(!files.is_empty());
        for f in files {
            assert_eq!(mode(&f), 0o600, "{f:?}");
        }
    }
}
