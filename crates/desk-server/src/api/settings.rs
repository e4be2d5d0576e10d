//! LINE設定 (S2, S3, M1), admins only: the mode, the Channel Secret and the Channel Access
//! Token. The secrets are write-only: never sent back, never logged; an empty or absent
//! field keeps the stored value. Beside them, what an admin needs to diagnose a wrong
//! secret or token: the webhook URL to paste into LINE's console, the refused deliveries
//! (bad signature) with their count and time, and a connection test against LINE.

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use desk_core::Mode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::AdminUser;
use crate::error::ApiResult;
use crate::line_settings::{
    KEY_MODE, KEY_PASSCODE_REPLY, KEY_PASSCODE_REPLY_PUSH, KEY_SECRET, KEY_TOKEN,
};
use crate::metrics::signature_report;
use crate::time::rfc3339;
use crate::{ApiError, AppState};

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

#[derive(Deserialize)]
pub struct SaveBody {
    pub mode: Option<String>,
    pub channel_secret: Option<String>,
    pub channel_access_token: Option<String>,
    /// Absent: unchanged; empty: no confirmation.
    #[serde(default)]
    pub passcode_reply: Option<String>,
    #[serde(default)]
    pub passcode_reply_push: Option<bool>,
}

/// The longest confirmation text: one LINE text object (desk_core::planner::MAX_TEXT_UNITS).
const MAX_PASSCODE_REPLY_UNITS: usize = 1_000;

/// Saves what was given; empty fields keep the stored secrets (the form shows "No update").
pub async fn apply(st: &AppState, body: SaveBody) -> ApiResult<()> {
    let now = st.now_ms();
    let before = st.line.current().mode;
    let mode = match body
        .mode
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        Some(m) => Some(m.parse::<Mode>().map_err(|_| {
            ApiError::localized(
                axum::http::StatusCode::BAD_REQUEST,
                "bad_request",
                "line_settings.error.mode",
                vec![("mode", m.to_owned())],
            )
        })?),
        None => None,
    };
    if let Some(text) = &body.passcode_reply
        && desk_core::planner::text_units(text.trim()) > MAX_PASSCODE_REPLY_UNITS
    {
        return Err(ApiError::localized(
            axum::http::StatusCode::BAD_REQUEST,
            "bad_request",
            "line_settings.error.passcode_reply",
            vec![("max", MAX_PASSCODE_REPLY_UNITS.to_string())],
        ));
    }
    if let Some(text) = &body.passcode_reply {
        st.store
            .set_setting(KEY_PASSCODE_REPLY, text.trim(), now)
            .await?;
    }
    if let Some(on) = body.passcode_reply_push {
        let v = if on { "on" } else { "off" };
        st.store
            .set_setting(KEY_PASSCODE_REPLY_PUSH, v, now)
            .await?;
    }
    if let Some(m) = mode {
        st.store.set_setting(KEY_MODE, m.as_str(), now).await?;
    }
    for (key, value) in [
        (KEY_SECRET, &body.channel_secret),
        (KEY_TOKEN, &body.channel_access_token),
    ] {
        if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            st.store.set_secret_setting(key, v, now).await?;
        }
    }
    st.line
        .reload(&st.store)
        .await
        .map_err(ApiError::internal)?;
    if before == Mode::Reply && mode == Some(Mode::Push) {
        // Reply → Push: what was kept unsent goes out now, by push (M1, M2).
        st.store.wake_outbox(now).await?;
        st.outbox_wakeup.notify_one();
    }
    tracing::info!(
        mode = st.line.current().mode.as_str(),
        "LINE settings saved"
    );
    Ok(())
}

async fn save(
    State(st): State<AppState>,
    _admin: AdminUser,
    Json(body): Json<SaveBody>,
) -> ApiResult<Json<LineSettingsView>> {
    apply(&st, body).await?;
    Ok(Json(view(&st).await?))
}

/// Checks the stored access token against LINE's bot info API.
pub async fn check(st: &AppState) -> Value {
    let Some(client) = st.line.current().client.clone() else {
        return json!({"ok": false, "code": "no_token", "error": "no Channel Access Token is set"});
    };
    match client.bot_info().await {
        Ok(bot) => {
            json!({"ok": true, "bot": {"display_name": bot.display_name, "basic_id": bot.basic_id,
                                             "user_id": bot.user_id}})
        }
        Err(line_api::LineError::Unauthorized) => json!({"ok": false, "code": "unauthorized",
            "error": "LINE refused the Channel Access Token: copy it again (or issue a new one) in the LINE Developers console"}),
        Err(e) => {
            json!({"ok": false, "code": "unreachable", "error": format!("could not reach LINE: {e}")})
        }
    }
}

async fn test_connection(State(st): State<AppState>, _admin: AdminUser) -> Json<Value> {
    Json(check(&st).await)
}
