//! 管理設定 > LINE設定 (S2, S3, M1), admins only: Mode (Reply | Push), Channel Secret and
//! Channel Access Token (write-only: the fields show "No update" and an empty field keeps
//! the stored value), ステータス更新, 変更を保存 — and beside them what makes a wrong secret
//! or token diagnosable: the webhook URL for LINE's console, the deliveries refused for a
//! bad signature, and a connection test against LINE's bot info API.

use askama::Template;
use axum::Router;
use axum::extract::{Form, Query, State};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::AppState;
use crate::line_settings::{SaveBody, apply, check};
use crate::metrics::{passcode_report, signature_report};
use crate::page::{PageAdmin, PageCtx, PageError, PageResult, render};
use crate::time::short;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin/line", get(show).post(save))
        .route("/admin/line/test", post(test))
}

#[derive(Template)]
#[template(path = "line_settings.html")]
struct LinePage {
    ctx: PageCtx,
    push: bool,
    secret_set: bool,
    token_set: bool,
    updated_at: Option<String>,
    webhook_url: String,
    /// Signed deliveries refused, and the last one's time.
    failures: i64,
    last_failure: Option<String>,
    /// Unsigned requests refused (never LINE), and the last one's time.
    unsigned: i64,
    last_unsigned: Option<String>,
    /// Signed deliveries fail consistently: show the Channel Secret hint.
    secret_hint: bool,
    /// The passcode guessing budget (issue 9, item 6).
    passcode_failures: i64,
    passcode_budget: i64,
    passcode_exhausted: bool,
    passcode_refused: i64,
    passcode_last_refused: Option<String>,
    saved: bool,
    error: Option<String>,
    /// The connection test's result: Ok(bot name) or Err(reason, translated).
    test: Option<Result<String, String>>,
    passcode_reply: String,
    passcode_reply_push: bool,
}

#[derive(Deserialize, Default)]
struct MsgQuery {
    msg: Option<String>,
}

#[derive(Deserialize)]
struct SaveForm {
    mode: String,
    #[serde(default)]
    channel_secret: String,
    #[serde(default)]
    channel_access_token: String,
    #[serde(default)]
    passcode_reply: String,
    /// A checkbox: present ("on") when checked.
    #[serde(default)]
    passcode_reply_push: Option<String>,
}

async fn page(st: &AppState, admin: &PageAdmin) -> Result<LinePage, PageError> {
    let line = st.line.current();
    let tz = st.config.time_zone;
    let report = signature_report(st).await?;
    let passcodes = passcode_report(st).await?;
    Ok(LinePage {
        ctx: admin.ctx_t("line_settings-title"),
        push: line.mode == desk_core::Mode::Push,
        secret_set: line.channel_secret.is_some(),
        token_set: line.client.is_some(),
        updated_at: line.updated_at.map(|t| short(t, tz)),
        webhook_url: format!("{}/line", st.config.public_url),
        failures: report.signed,
        last_failure: report.last_signed_at.map(|at| short(at, tz)),
        unsigned: report.unsigned,
        last_unsigned: report.last_unsigned_at.map(|at| short(at, tz)),
        secret_hint: report.secret_probably_wrong,
        passcode_failures: passcodes.failures_last_hour,
        passcode_budget: passcodes.budget,
        passcode_exhausted: passcodes.exhausted,
        passcode_refused: passcodes.refused,
        passcode_last_refused: passcodes.last_refused_at.map(|at| short(at, tz)),
        saved: false,
        error: None,
        test: None,
        passcode_reply: line.passcode_reply.clone(),
        passcode_reply_push: line.passcode_reply_push,
    })
}

async fn show(
    State(st): State<AppState>,
    admin: PageAdmin,
    Query(q): Query<MsgQuery>,
) -> PageResult {
    let mut p = page(&st, &admin).await?;
    p.saved = q.msg.as_deref() == Some("saved");
    Ok(render(&p))
}

async fn save(
    State(st): State<AppState>,
    admin: PageAdmin,
    Form(form): Form<SaveForm>,
) -> PageResult {
    let body = SaveBody {
        mode: Some(form.mode),
        channel_secret: Some(form.channel_secret),
        channel_access_token: Some(form.channel_access_token),
        passcode_reply: Some(form.passcode_reply),
        passcode_reply_push: Some(form.passcode_reply_push.is_some()),
    };
    match apply(&st, body).await {
        Ok(()) => {
            tracing::info!(admin = %admin.user().login, "LINE設定 saved");
            Ok(Redirect::to("/admin/line?msg=saved").into_response())
        }
        Err(e) if e.status.is_client_error() => {
            let mut p = page(&st, &admin).await?;
            p.error = Some(e.message_in(p.ctx.locale));
            Ok(render(&p))
        }
        Err(e) => Err(e.into()),
    }
}

async fn test(State(st): State<AppState>, admin: PageAdmin) -> PageResult {
    let result = check(&st).await;
    let mut p = page(&st, &admin).await?;
    p.test = Some(if result["ok"] == true {
        Ok(format!(
            "{} ({})",
            result["bot"]["display_name"].as_str().unwrap_or_default(),
            result["bot"]["basic_id"].as_str().unwrap_or_default()
        ))
    } else {
        let key = match result["code"].as_str() {
            Some("no_token") => "line_settings-test_no_token",
            Some("unauthorized") => "line_settings-test_unauthorized",
            _ => "line_settings-test_unreachable",
        };
        Err(p.ctx.t(key).to_owned())
    });
    Ok(render(&p))
}
