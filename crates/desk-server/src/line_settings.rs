//! The LINE設定 values (S2): mode, Channel Secret and Channel Access Token. They live in the
//! settings table; this cache keeps the hot path (signature check on every webhook) off
//! the database and holds the LINE client built from the token. Secrets are never logged.
//!
//! Saving them ([`apply`]) and the connection test ([`check`]) are here too, so the
//! LINE設定 page and `PUT /api/v1/settings/line` do the same thing.

use std::sync::{Arc, RwLock};

use desk_core::delivery::Mode;
use desk_store::Store;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::{ApiError, AppState, Config};

pub const KEY_MODE: &str = "line.mode";
/// Stored encrypted (desk_store::secrets).
pub const KEY_SECRET: &str = desk_store::secrets::CHANNEL_SECRET_SETTING;
pub const KEY_TOKEN: &str = desk_store::secrets::ACCESS_TOKEN_SETTING;
/// The confirmation a customer gets when their LINE passcode linked them (empty: none).
pub const KEY_PASSCODE_REPLY: &str = "line.passcode_reply";
/// `on`: send that confirmation in Push mode too (each push counts against the plan).
pub const KEY_PASSCODE_REPLY_PUSH: &str = "line.passcode_reply_push";

/// The confirmation until an admin changes it (Japanese: the customers are).
pub fn default_passcode_reply() -> &'static str {
    crate::i18n::I18n::t(
        crate::i18n::Locale::Ja,
        "line_settings-passcode_reply_default",
    )
}

/// A snapshot of the settings in force.
pub struct LineRuntime {
    pub mode: Mode,
    pub channel_secret: Option<String>,
    /// `None` until an access token is set.
    pub client: Option<line_api::client::Client>,
    /// When any LINE setting last changed (ステータス更新).
    pub updated_at: Option<i64>,
    /// The passcode confirmation's text; empty when turned off.
    pub passcode_reply: String,
    /// Send it in Push mode too (off by default: pushes count against the plan).
    pub passcode_reply_push: bool,
}

impl LineRuntime {
    /// The confirmation to queue after a passcode linked a customer, if any, and whether it
    /// rides the passcode message's reply token: always in Reply mode (when not empty), in
    /// Push mode only when enabled.
    pub fn passcode_confirmation(&self) -> Option<(&str, bool)> {
        let text = Some(self.passcode_reply.as_str()).filter(|t| !t.trim().is_empty())?;
        match self.mode {
            Mode::Reply => Some((text, true)),
            Mode::Push if self.passcode_reply_push => Some((text, false)),
            Mode::Push => None,
        }
    }
}

#[derive(Clone)]
pub struct LineSettings {
    current: Arc<RwLock<Arc<LineRuntime>>>,
    /// One reload at a time: a reload that read the settings earlier (the change feed's)
    /// must not store its older view after a later one (the screen's own, right after saving).
    reloading: Arc<tokio::sync::Mutex<()>>,
    api_base: String,
    data_api_base: String,
}

impl LineSettings {
    /// Writes the settings given by the environment, then loads what is stored.
    pub async fn load(store: &Store, config: &Config, now_ms: i64) -> anyhow::Result<LineSettings> {
        if let Some(s) = &config.line_channel_secret {
            store.set_secret_setting(KEY_SECRET, s, now_ms).await?;
        }
        if let Some(t) = &config.line_channel_access_token {
            store.set_secret_setting(KEY_TOKEN, t, now_ms).await?;
        }
        if let Some(m) = &config.line_mode {
            let mode: Mode = m.parse().map_err(|_| {
                anyhow::anyhow!("LINEDESK_LINE_MODE must be reply or push, not {m:?}")
            })?;
            store.set_setting(KEY_MODE, mode.as_str(), now_ms).await?;
        }
        let settings = LineSettings {
            current: Arc::new(RwLock::new(Arc::new(LineRuntime {
                mode: Mode::Reply,
                channel_secret: None,
                client: None,
                updated_at: None,
                passcode_reply: String::new(),
                passcode_reply_push: false,
            }))),
            reloading: Arc::new(tokio::sync::Mutex::new(())),
            api_base: config.line_api_base.clone(),
            data_api_base: config.line_data_api_base.clone(),
        };
        settings.reload(store).await?;
        Ok(settings)
    }

    /// Re-reads the stored settings (after the LINE設定 screen saved them).
    pub async fn reload(&self, store: &Store) -> anyhow::Result<()> {
        let _one_at_a_time = self.reloading.lock().await;
        let mode = store.setting(KEY_MODE).await?;
        let secret = store.secret_setting(KEY_SECRET).await?;
        let token = store.secret_setting(KEY_TOKEN).await?;
        let reply = store.setting(KEY_PASSCODE_REPLY).await?;
        let reply_push = store.setting(KEY_PASSCODE_REPLY_PUSH).await?;
        let updated_at = [&mode, &secret, &token, &reply, &reply_push]
            .iter()
            .filter_map(|s| s.as_ref().map(|(_, at)| *at))
            .max();
        let runtime = LineRuntime {
            mode: mode
                .and_then(|(m, _)| m.parse().ok())
                .unwrap_or(Mode::Reply),
            channel_secret: secret.map(|(s, _)| s).filter(|s| !s.is_empty()),
            client: token
                .map(|(t, _)| t)
                .filter(|t| !t.is_empty())
                .map(|t| line_api::client::Client::new(&self.api_base, &self.data_api_base, &t)),
            updated_at,
            passcode_reply: reply
                .map(|(t, _)| t)
                .unwrap_or_else(|| default_passcode_reply().to_owned()),
            passcode_reply_push: reply_push.is_some_and(|(v, _)| v == "on"),
        };
        *self.current.write().expect("settings lock") = Arc::new(runtime);
        Ok(())
    }

    pub fn current(&self) -> Arc<LineRuntime> {
        self.current.read().expect("settings lock").clone()
    }
}

/// Several instances: settings saved through another instance (or before a gap in the
/// change feed) are reloaded here, so mode and token are the same everywhere.
pub async fn follow_changes(st: AppState) {
    use desk_store::Change;
    use tokio::sync::broadcast::error::RecvError;
    let mut rx = st.store.notifier.subscribe();
    loop {
        let reload = match rx.recv().await {
            Ok(n) => matches!(n.change, Change::Settings | Change::Resync),
            Err(RecvError::Lagged(_)) => true,
            Err(RecvError::Closed) => return,
        };
        if reload && let Err(e) = st.line.reload(&st.store).await {
            tracing::error!(%e, "could not reload the LINE settings");
        }
    }
}

/// LINE設定 to save: absent or empty secrets keep the stored ones.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(as = LineSettingsInput)]
pub struct SaveBody {
    #[schema(value_type = Option<crate::schema::ModeSchema>)]
    pub mode: Option<String>,
    /// Write-only: never shown again.
    pub channel_secret: Option<String>,
    /// Write-only: never shown again.
    pub channel_access_token: Option<String>,
    /// What a customer gets on LINE when their passcode linked them. Absent: unchanged;
    /// empty: no confirmation. In Reply mode it answers the passcode message with that
    /// message's own reply token.
    #[serde(default)]
    #[schema(max_length = 1000)]
    pub passcode_reply: Option<String>,
    /// Send it in Push mode too (off by default: pushes count against the plan).
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
                "line_settings-error-mode",
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
            "line_settings-error-passcode_reply",
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
