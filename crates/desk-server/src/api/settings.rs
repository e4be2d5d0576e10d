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
use utoipa::ToSchema;

use super::extract::Json as JsonBody;
use crate::AppState;
use crate::auth::AdminUser;
use crate::error::{ApiResult, ErrorBody};
use crate::line_settings::{SaveBody, apply, check};
use crate::metrics::signature_report;
use crate::schema::ModeSchema;
use crate::time::rfc3339;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/settings/line", get(show).put(save))
        .route("/settings/line/test", post(test_connection))
}

/// LINE設定 as an admin sees it: the secrets only as set or not.
#[derive(Serialize, ToSchema)]
#[schema(as = LineSettings)]
pub struct LineSettingsView {
    #[schema(value_type = ModeSchema)]
    pub mode: &'static str,
    pub channel_secret_set: bool,
    pub channel_access_token_set: bool,
    /// ステータス更新: when a LINE setting last changed.
    #[schema(format = DateTime)]
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

/// Webhook requests refused for their signature.
#[derive(Serialize, ToSchema)]
pub struct SignatureFailures {
    /// Every refused request.
    pub count: i64,
    #[schema(format = DateTime)]
    pub last_at: Option<String>,
    /// Of which signed with a signature that did not match (LINE with another secret, or a
    /// forger), and when the last one was.
    pub signed: i64,
    #[schema(format = DateTime)]
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

/// LINE設定 (admins); secrets are never shown
#[utoipa::path(get, path = "/settings/line", tag = "settings",
    responses(
        (status = 200, description = "The settings", body = LineSettingsView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub(crate) async fn show(
    State(st): State<AppState>,
    _admin: AdminUser,
) -> ApiResult<Json<LineSettingsView>> {
    Ok(Json(view(&st).await?))
}

/// Save LINE設定 (admins)
///
/// Absent or empty secrets keep the stored ones.
#[utoipa::path(put, path = "/settings/line", tag = "settings",
    request_body = SaveBody,
    responses(
        (status = 200, description = "The settings", body = LineSettingsView),
        (status = 400, description = "Not a mode, or too long a confirmation", body = ErrorBody),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
    ))]
pub(crate) async fn save(
    State(st): State<AppState>,
    _admin: AdminUser,
    JsonBody(body): JsonBody<SaveBody>,
) -> ApiResult<Json<LineSettingsView>> {
    apply(&st, body).await?;
    Ok(Json(view(&st).await?))
}

/// What the connection test found (`line_settings::check`).
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `check` builds
pub(crate) struct ConnectionTest {
    /// LINE took the Channel Access Token.
    ok: bool,
    /// When not ok: `no_token` | `unauthorized` | `unreachable`.
    #[schema(value_type = Option<crate::schema::ConnectionProblemSchema>)]
    code: Option<String>,
    /// When not ok, in English.
    error: Option<String>,
    /// When ok: the LINE account.
    bot: Option<BotDoc>,
}

/// The LINE account the token belongs to.
#[derive(ToSchema)]
#[schema(as = Bot)]
#[allow(dead_code)] // describes the JSON `check` builds
pub(crate) struct BotDoc {
    display_name: String,
    /// The account's basic ID (`@123abcde`).
    basic_id: String,
    user_id: String,
}

/// Test the connection to LINE with the stored token (admins)
#[utoipa::path(post, path = "/settings/line/test", tag = "settings",
    responses(
        (status = 200, description = "What LINE answered", body = ConnectionTest),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    ))]
pub(crate) async fn test_connection(State(st): State<AppState>, _admin: AdminUser) -> Json<Value> {
    Json(check(&st).await)
}
