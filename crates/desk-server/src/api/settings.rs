//! LINE設定 (S2, S3, M1), admins only: the mode, the Channel Secret and the Channel Access
//! Token. The secrets are write-only: never sent back, never logged; an empty or absent
//! field keeps the stored value. Beside them, what an admin needs to diagnose a wrong
//! secret or token: the webhook URL to paste into LINE's console, the refused deliveries
//! (bad signature) with their count and time, and a connection test against LINE.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;

use crate::AppState;
use crate::auth::AdminUser;
use crate::error::ApiResult;
use crate::line_settings::{SaveBody, apply, check};
use crate::metrics::signature_report;
use crate::time::rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/line", get(show).put(save))
        .route("/settings/line/test", post(test_connection))
}

#[derive(Serialize)]
pub struct LineSettingsView {
    pub mode: &'static str,
    pub channel_secret_set: bool,
    pub channel_access_token_set: bool,
    /// ステータス更新: when a LINE setting last changed.
    pub updated_at: Option<String>,
    /// Paste this into the LINE Developers console (Webhook URL).
    pub webhook_url: String,
    pub signature_failures: SignatureFailures,
    /// What a customer gets when their LINE passcode linked them (empty: nothing). In Reply
    /// mode it rides the passcode message's own reply token.
    pub passcode_reply: String,
    /// Send that confirmation in Push mode too (it counts against the plan's pushes).
    pub passcode_reply_push: bool,
}

#[derive(Serialize)]
pub struct SignatureFailures {
    /// Every refused request.
    pub count: i64,
    pub last_at: Option<String>,
    /// Of which signed with a signature that did not match (LINE with another secret, or a
    /// forger), and when the last one was.
    pub signed: i64,
    pub last_signed_at: Option<String>,
    /// Of which without any signature (never LINE: LINE signs every delivery).
    pub unsigned: i64,
    /// Set when signed deliveries fail consistently (at least 3 in a row and none verified
    /// since): the Channel Secret is then probably wrong.
    pub hint: Option<&'static str>,
}

pub async fn view(st: &AppState) -> ApiResult<LineSettingsView> {
    let line = st.line.current();
    let tz = st.config.time_zone;
    let report = signature_report(st).await?;
    Ok(LineSettingsView {
        mode: line.mode.as_str(),
        channel_secret_set: line.channel_secret.is_some(),
        channel_access_token_set: line.client.is_some(),
        updated_at: line.updated_at.map(|t| rfc3339(t, tz)),
        webhook_url: format!("{}/line", st.config.public_url),
        signature_failures: SignatureFailures {
            count: report.total,
            last_at: report.last_at.map(|at| rfc3339(at, tz)),
            signed: report.signed,
            last_signed_at: report.last_signed_at.map(|at| rfc3339(at, tz)),
            unsigned: report.unsigned,
            hint: report.secret_probably_wrong.then_some(
                "LINE's webhook deliveries are refused for a wrong signature: the Channel Secret \
                 probably does not match the channel's (copy it again from the LINE Developers console)",
            ),
        },
        passcode_reply: line.passcode_reply.clone(),
        passcode_reply_push: line.passcode_reply_push,
    })
}

async fn show(State(st): State<AppState>, _admin: AdminUser) -> ApiResult<Json<LineSettingsView>> {
    Ok(Json(view(&st).await?))
}

async fn save(
    State(st): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<SaveBody>,
) -> ApiResult<Json<LineSettingsView>> {
    apply(&st, body).await?;
    Ok(Json(view(&st).await?))
}

async fn test_connection(State(st): State<AppState>, _admin: AdminUser) -> Json<Value> {
    Json(check(&st).await)
}
