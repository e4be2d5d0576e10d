//! 管理設定 > LINE設定 in the browser's terms (S2, S3): admins only, secrets write-only
//! ("No update"), an empty field keeps the stored value, the connection test, and the
//! refused deliveries with the hint about the Channel Secret.

use crate::common::{Backend, TestDesk};
use desk_store::users::Role;

/// A logged-in session: the cookie and the CSRF token of its pages.
struct Session<'a> {
    d: &'a TestDesk,
    http: reqwest::Client,
    cookie: String,
}

impl<'a> Session<'a> {
    async fn login(d: &'a TestDesk, login: &str, role: Role) -> Session<'a> {
        let hash = password_auth::generate_hash("correct horse battery");
        d.state
            .store
            .create_user(login, login, role, &hash, 0)
            .await
            .unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http
            .post(format!("{}/login", d.url))
            .header("origin", &d.url)
            .form(&[("login", login), ("password", "correct horse battery")])
            .send()
            .await
            .unwrap();
        let cookie = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("linedesk_session="))
            .expect("logged in")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        Session { d, http, cookie }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.d.url))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (u16, String, Option<String>) {
        let (_, page) = self.get("/admin/line").await;
        let csrf = page
            .split(r#"<meta name="csrf-token" content=""#)
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("")
            .to_owned();
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &csrf));
        let r = self
            .http
            .post(format!("{}{path}", self.d.url))
            .header("cookie", &self.cookie)
            .header("origin", &self.d.url)
            .form(&form)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (r.status().as_u16(), r.text().await.unwrap(), location)
    }
}

#[tokio::test]
async fn the_line_settings_screen_saves_without_ever_showing_the_secrets() {
    let d = TestDesk::start(Backend::Sqlite).await;
    let agent = Session::login(&d, "sato", Role::Agent).await;
    assert_eq!(
        agent.get("/admin/line").await.0,
        403,
        "agents cannot change settings (B1)"
    );

    let admin = Session::login(&d, "boss", Role::Admin).await;
    let (s, page) = admin.get("/admin/line").await;
    assert_eq!(s, 200);
    let secret = d.emulator.config().channel_secret.clone();
    let token = d.emulator.config().channel_access_token.clone();
    assert!(
        !page.contains(&secret) && !page.contains(&token),
        "never shown again"
    );
    assert!(page.contains("No update"), "the fields say No update (S2)");
    assert!(page.contains("変更を保存") && page.contains("ステータス更新"));
    assert!(
        page.contains(&format!("{}/line", d.url)),
        "the webhook URL to paste into LINE's console"
    );
    assert!(
        page.contains(r#"value="reply" checked"#),
        "Reply is the default (M1)"
    );

    // Push, with both secret fields left empty: the stored values stay.
    let (s, _, location) = admin
        .post_form(
            "/admin/line",
            &[
                ("mode", "push"),
                ("channel_secret", ""),
                ("channel_access_token", ""),
            ],
        )
        .await;
    assert_eq!(
        (s, location.as_deref()),
        (303, Some("/admin/line?msg=saved"))
    );
    assert_eq!(d.state.line.current().mode, desk_core::Mode::Push);
    let user = d.emulator.follow("まだ届く", None).await.unwrap();
    assert!(
        d.conversation_of(&user).await.is_some(),
        "the kept secret still verifies webhooks"
    );

    let (_, page, _) = admin.post_form("/admin/line/test", &[]).await;
    assert!(
        page.contains("LINEに接続できました"),
        "connection test against LINE's bot info"
    );

    // A wrong secret: LINE's deliveries are refused, and once they fail consistently (three
    // in a row, issue 9 item 12) the screen says why.
    admin
        .post_form(
            "/admin/line",
            &[
                ("mode", "push"),
                ("channel_secret", "a-wrong-secret"),
                ("channel_access_token", ""),
            ],
        )
        .await;
    for i in 0..3 {
        assert_eq!(
            d.emulator
                .send_text(&user, &format!("届かない {i}"))
                .await
                .unwrap()
                .webhook_status,
            Some(401)
        );
    }
    desk_server::metrics::flush_once(&d.state).await;
    let (_, page) = admin.get("/admin/line").await;
    assert!(
        page.contains("Channel Secretが正しくない可能性があります"),
        "{page}"
    );
    assert!(!page.contains("a-wrong-secret"));
}
