//! The desk's HTTP server: LINE's webhook, the JSON API, media, health and metrics, and the
//! background workers that talk to LINE. Feature modules each expose a `router()`.

pub mod api;
pub mod assets;
pub mod auth;
pub mod client_addr;
pub mod csrf;
pub mod delivery_view;
pub mod error;
pub mod events;
pub mod fetcher;
pub mod health;
pub mod i18n;
pub mod images;
pub mod input;
pub mod line_settings;
pub mod media_files;
pub mod metrics;
pub mod page;
pub mod passwords;
pub mod schema;
pub mod security;
pub mod sender;
pub mod session;
pub mod time;
pub mod ui;
pub mod webhook;

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use desk_core::clock::{Clock, SystemClock};
use desk_store::Store;
use tokio::net::TcpListener;

pub use error::ApiError;

/// Everything the desk needs to run; the `linedesk` binary fills it from flags and env.
#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `None`: SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// Base URL LINE fetches agents' images from (must be reachable by LINE; HTTPS in production).
    pub public_url: String,
    pub line_api_base: String,
    pub line_data_api_base: String,
    /// Dates and times shown to agents, and the From/To day boundaries.
    pub time_zone: chrono_tz::Tz,
    /// Written into the LINE settings at start when set (docs/interface.md).
    pub line_channel_secret: Option<String>,
    pub line_channel_access_token: Option<String>,
    pub line_mode: Option<String>,
    pub reply_window_secs: u64,
    /// Refuse requests for other host names (DNS rebinding; `security.rs`). Set when the
    /// public URL was given explicitly: the default one names only the listen address.
    pub check_host: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`client_addr.rs`); empty:
    /// the socket's peer address is the client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The login throttle's limits (desk_core::login_throttle).
    pub login_limits: desk_core::login_throttle::Limits,
    /// The secret key (`LINEDESK_SECRET_KEY`) and, during a rotation, the previous one;
    /// without a key, `<data dir>/secret.key` (created at the first start). See
    /// desk_store::secrets.
    pub secret_key: Option<String>,
    pub previous_secret_key: Option<String>,
}

impl Config {
    /// The defaults of docs/interface.md, for a desk listening on `listen`.
    pub fn new(data_dir: PathBuf, listen: &str) -> Config {
        Config {
            data_dir,
            database_url: None,
            public_url: format!("http://{listen}"),
            line_api_base: "https://api.line.me".into(),
            line_data_api_base: "https://api-data.line.me".into(),
            time_zone: chrono_tz::Asia::Tokyo,
            line_channel_secret: None,
            line_channel_access_token: None,
            line_mode: None,
            reply_window_secs: 50,
            check_host: false,
            trusted_proxies: Vec::new(),
            login_limits: desk_core::login_throttle::Limits::default(),
            secret_key: None,
            previous_secret_key: None,
        }
    }
}

/// Shared by every handler and worker.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub clock: Arc<dyn Clock>,
    pub line: line_settings::LineSettings,
    pub metrics: Arc<metrics::Metrics>,
    pub media: media_files::MediaFiles,
    pub ingest: webhook::IngestQueue,
    pub fetch_wakeup: Arc<tokio::sync::Notify>,
    /// Wakes the outbox worker when there is something new to send.
    pub outbox_wakeup: Arc<tokio::sync::Notify>,
    /// The bounded line for password hashing (login, password changes).
    pub passwords: passwords::PasswordWork,
    /// The bounded line for decoding agents' images.
    pub images: images::ImageWork,
}

impl AppState {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// How long after a customer message its reply token is still used (M3).
    pub fn reply_window_ms(&self) -> i64 {
        self.config.reply_window_secs as i64 * 1000
    }
}

/// A built desk: state, routes and its background workers (started by [`App::spawn_workers`]).
pub struct App {
    pub state: AppState,
}

impl App {
    /// Opens the database (running migrations), applies LINE settings from the config and
    /// starts the webhook writer.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let keys = desk_store::secrets::KeyConfig {
            key: config.secret_key.clone(),
            previous: config.previous_secret_key.clone(),
            key_file: Some(config.data_dir.join(desk_store::secrets::KEY_FILE)),
        };
        let store =
            Store::open_with_keys(config.database_url.as_deref(), &config.data_dir, &keys).await?;
        // PostgreSQL: hear the other instances' changes (SSE, outbox wake-ups) before serving.
        store.start_listener().await?;
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let line = line_settings::LineSettings::load(&store, &config, clock.now_ms()).await?;
        let metrics = Arc::new(metrics::Metrics::default());
        let media = media_files::MediaFiles::new(&config.data_dir, store.is_postgres())?;
        let fetch_wakeup = Arc::new(tokio::sync::Notify::new());
        let ingest = webhook::IngestQueue::start(
            store.clone(),
            clock.clone(),
            metrics.clone(),
            fetch_wakeup.clone(),
        );
        let state = AppState {
            store,
            config: Arc::new(config),
            clock,
            line,
            metrics,
            media,
            ingest,
            fetch_wakeup,
            outbox_wakeup: Arc::new(tokio::sync::Notify::new()),
            passwords: passwords::PasswordWork::default(),
            images: images::ImageWork::default(),
        };
        Ok(App { state })
    }

    pub fn router(&self) -> Router {
        // LINE's webhook beside the layers below, not under them (webhook.rs says why).
        let desk = Router::new()
            .merge(health::router())
            .merge(metrics::router())
            .merge(media_files::router())
            .nest("/api/v1", api::router())
            .merge(ui::router())
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                csrf::protect,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                security::check_host,
            ))
            .layer(axum::middleware::from_fn_with_state(
                self.state.clone(),
                security::headers,
            ))
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(self.state.clone());
        webhook::router(&self.state).merge(desk)
    }

    /// Background work: fetching profiles and content from LINE, flushing counters.
    pub fn spawn_workers(&self) {
        tokio::spawn(fetcher::run(self.state.clone()));
        tokio::spawn(sender::run(self.state.clone()));
        tokio::spawn(sender::wake_on_customer_messages(self.state.clone()));
        tokio::spawn(line_settings::follow_changes(self.state.clone()));
        tokio::spawn(metrics::flush_signature_failures(self.state.clone()));
        tokio::spawn(metrics::upkeep(self.state.clone()));
    }

    /// Serves until the process ends.
    pub async fn serve(self, listener: TcpListener) -> std::io::Result<()> {
        self.spawn_workers();
        let router = self.router();
        // The peer address reaches handlers (the login throttle counts by client).
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    }
}
