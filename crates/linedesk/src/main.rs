//! `linedesk`: the LINE chat desk of a call-center system. See `linedesk --help`.

mod bench_live;
mod demo;
mod loadgen;
mod migrate_data;

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use desk_core::clock::{Clock, SystemClock};
use desk_server::{App, Config};
use desk_store::Store;
use desk_store::users::Role;

#[derive(Parser)]
#[command(
    name = "linedesk",
    version,
    about = "The LINE chat desk of a call-center system"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the desk.
    Serve(DeskArgs),
    /// Run the desk with the built-in LINE emulator, demo agents and customers writing in.
    Demo(DemoArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The secret key that encrypts the LINE secrets and passcodes at rest.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// Run the LINE platform emulator alone (LINE's API, a phone page, a control API).
    Emulator(EmulatorArgs),
    /// Apply database migrations and exit.
    Migrate(DeskArgs),
    /// Copy a single-machine desk (SQLite and its media files) into an empty PostgreSQL.
    MigrateData(migrate_data::MigrateDataArgs),
    /// Send signed LINE message events to a desk's /line and report throughput and latency.
    Loadgen(loadgen::LoadgenArgs),
    /// Benchmark: the time from a webhook's 200 to its event on agents' event streams, and
    /// the desk's memory and CPU with many streams open (scripts/bench-live.sh).
    BenchLive(bench_live::BenchLiveArgs),
}

/// The desk's settings: each a flag and an environment variable (a flag wins).
#[derive(Args, Clone)]
struct DeskArgs {
    /// Address to listen on.
    #[arg(long, env = "LINEDESK_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Media files and the SQLite database live here.
    #[arg(long, env = "LINEDESK_DATA_DIR", default_value = "./linedesk-data")]
    data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL; default SQLite in the data dir.
    #[arg(long, env = "LINEDESK_DATABASE_URL")]
    database_url: Option<String>,
    /// Base URL LINE fetches agents' images from; default http://<listen>.
    #[arg(long, env = "LINEDESK_PUBLIC_URL")]
    public_url: Option<String>,
    #[arg(
        long,
        env = "LINEDESK_LINE_API_BASE",
        default_value = "https://api.line.me"
    )]
    line_api_base: String,
    #[arg(
        long,
        env = "LINEDESK_LINE_DATA_API_BASE",
        default_value = "https://api-data.line.me"
    )]
    line_data_api_base: String,
    /// Time zone for times shown to agents and the From/To days.
    #[arg(long, env = "LINEDESK_TIME_ZONE", default_value = "Asia/Tokyo")]
    time_zone: String,
    /// How long after an incoming message its reply token is still used (seconds).
    #[arg(long, env = "LINEDESK_REPLY_WINDOW_SECS", default_value_t = 50)]
    reply_window_secs: u64,
    /// Reverse proxies (IP addresses, comma-separated) whose X-Forwarded-For names the
    /// client for the login throttle; default none: the connecting address is the client.
    #[arg(long = "trusted-proxy", env = "LINEDESK_TRUSTED_PROXIES")]
    trusted_proxies: Option<String>,
}

impl DeskArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = Config::new(self.data_dir.clone(), &self.listen);
        c.database_url = self.database_url.clone().filter(|s| !s.is_empty());
        if let Some(u) = self.public_url.as_ref().filter(|s| !s.is_empty()) {
            c.public_url = u.trim_end_matches('/').to_owned();
            c.check_host = true;
        }
        c.line_api_base = self.line_api_base.trim_end_matches('/').to_owned();
        c.line_data_api_base = self.line_data_api_base.trim_end_matches('/').to_owned();
        c.time_zone = self
            .time_zone
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown time zone {:?}", self.time_zone))?;
        c.reply_window_secs = self.reply_window_secs;
        if let Some(list) = &self.trusted_proxies {
            c.trusted_proxies = desk_server::client_addr::parse_trusted(list)
                .map_err(|e| anyhow::anyhow!("--trusted-proxy: {e}"))?;
        }
        // Read here, never echoed: secrets only reach the settings table.
        c.line_channel_secret = env_nonempty("LINEDESK_LINE_CHANNEL_SECRET");
        c.line_channel_access_token = env_nonempty("LINEDESK_LINE_CHANNEL_ACCESS_TOKEN");
        c.line_mode = env_nonempty("LINEDESK_LINE_MODE");
        c.secret_key = env_nonempty(desk_store::secrets::KEY_ENV);
        c.previous_secret_key = env_nonempty(desk_store::secrets::PREVIOUS_KEY_ENV);
        Ok(c)
    }

    async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::open(
            self.database_url.as_deref().filter(|s| !s.is_empty()),
            &self.data_dir,
        )
        .await?)
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

#[derive(Args)]
struct DemoArgs {
    #[command(flatten)]
    desk: DeskArgs,
    /// Where the emulator listens.
    #[arg(long, default_value = "127.0.0.1:8090")]
    emulator_listen: String,
    /// Seconds between messages from the simulated customers (0: they stay quiet).
    #[arg(long, default_value_t = 45)]
    chatter_secs: u64,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input.
    Add {
        #[arg(long)]
        login: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "agent")]
        role: String,
        #[command(flatten)]
        desk: DeskArgs,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Print a new API token for a user (only its hash is stored: keep the printed token).
    Create {
        #[arg(long)]
        login: String,
        /// The token stops working after this many days (default: until revoked).
        #[arg(long)]
        expires_in_days: Option<u32>,
        #[command(flatten)]
        desk: DeskArgs,
    },
    /// List API tokens (all users', or one user's): id, user, created, expires, last used,
    /// state. Never the tokens themselves.
    List {
        #[arg(long)]
        login: Option<String>,
        #[command(flatten)]
        desk: DeskArgs,
    },
    /// Revoke a token by its id (from `token list`), or every token of a user.
    Revoke {
        #[arg(long, required_unless_present = "login", conflicts_with = "login")]
        id: Option<i64>,
        /// Revoke all tokens of this user.
        #[arg(long)]
        login: Option<String>,
        #[command(flatten)]
        desk: DeskArgs,
    },
}

#[derive(Subcommand)]
enum SecretKeyCommand {
    /// Print a new random key (for LINEDESK_SECRET_KEY; docs/operations.md, Security).
    Generate,
}

#[derive(Args)]
struct EmulatorArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Where signed webhooks are delivered (the desk's /line).
    #[arg(long)]
    webhook_url: Option<String>,
    #[arg(long, default_value = "emulator-secret")]
    channel_secret: String,
    #[arg(long, default_value = "emulator-token")]
    channel_access_token: String,
    /// Accept http:// image URLs (LINE itself demands https).
    #[arg(long)]
    allow_http_media: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::User(UserCommand::Add {
            login,
            name,
            role,
            desk,
        }) => {
            let role = Role::parse(&role).context("--role must be agent or admin")?;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.len() < 8 {
                bail!("the password (read from standard input) must have at least 8 characters");
            }
            let store = desk.store().await?;
            let id = add_user(&store, &login, &name, role, password).await?;
            println!("user {login} created (id {id}, {})", role.as_str());
            Ok(())
        }
        Command::Token(command) => token_command(command).await,
        Command::SecretKey(SecretKeyCommand::Generate) => {
            println!("{}", desk_store::secrets::generate_key());
            Ok(())
        }
        Command::Emulator(args) => run_emulator(args).await,
        Command::Migrate(args) => {
            args.store().await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Loadgen(args) => loadgen::run(args).await,
        Command::BenchLive(args) => bench_live::run(args).await,
        Command::MigrateData(args) => migrate_data::run(args).await,
    }
}

async fn token_command(command: TokenCommand) -> anyhow::Result<()> {
    let now = SystemClock.now_ms();
    match command {
        TokenCommand::Create {
            login,
            expires_in_days,
            desk,
        } => {
            let store = desk.store().await?;
            let user = find_user(&store, &login).await?;
            let expires_at =
                expires_in_days.map(|days| now + i64::from(days) * 24 * 60 * 60 * 1000);
            if expires_in_days == Some(0) {
                bail!("--expires-in-days must be at least 1");
            }
            // Printed alone on its line (scripts read it): the contract of `token create`.
            println!(
                "{}",
                store
                    .create_api_token_until(user.id, now, expires_at)
                    .await?
            );
            Ok(())
        }
        TokenCommand::List { login, desk } => {
            let tz = desk.config()?.time_zone;
            let store = desk.store().await?;
            let user_id = match &login {
                Some(l) => Some(find_user(&store, l).await?.id),
                None => None,
            };
            let tokens = store.list_api_tokens(user_id).await?;
            let when = |ms: Option<i64>| {
                ms.map(|t| desk_server::time::short(t, tz))
                    .unwrap_or_else(|| "-".into())
            };
            println!(
                "{:>5}  {:<16}  {:<16}  {:<16}  {:<16}  state",
                "id", "login", "created", "expires", "last used"
            );
            for t in &tokens {
                let state = if t.revoked_at.is_some() {
                    "revoked"
                } else if t.is_live(now) {
                    "active"
                } else {
                    "expired"
                };
                println!(
                    "{:>5}  {:<16}  {:<16}  {:<16}  {:<16}  {state}",
                    t.id,
                    t.login,
                    when(Some(t.created_at)),
                    when(t.expires_at),
                    when(t.last_used_at)
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id, login, desk } => {
            let store = desk.store().await?;
            match (id, login) {
                (Some(id), _) => {
                    let t = store.revoke_api_token(id, now).await.map_err(|e| match e {
                        desk_store::StoreError::NotFound => anyhow::anyhow!("no API token {id}"),
                        e => e.into(),
                    })?;
                    println!("token {id} of {} revoked", t.login);
                }
                (None, Some(login)) => {
                    let user = find_user(&store, &login).await?;
                    let n = store.revoke_user_api_tokens(user.id, now).await?;
                    println!("{n} token(s) of {login} revoked");
                }
                (None, None) => bail!("give --id or --login"),
            }
            Ok(())
        }
    }
}

async fn find_user(store: &Store, login: &str) -> anyhow::Result<desk_store::users::UserRow> {
    store
        .user_by_login(login)
        .await?
        .with_context(|| format!("no user {login:?}"))
}

async fn add_user(
    store: &Store,
    login: &str,
    name: &str,
    role: Role,
    password: &str,
) -> anyhow::Result<i64> {
    let password = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password_auth::generate_hash(password)).await?;
    Ok(store
        .create_user(login, name, role, &hash, SystemClock.now_ms())
        .await?)
}

async fn serve(args: DeskArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let app = App::build(config).await?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!("linedesk listening on http://{}", listener.local_addr()?);
    app.serve(listener).await?;
    Ok(())
}

async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    let config = line_emulator::Config {
        channel_secret: args.channel_secret,
        channel_access_token: args.channel_access_token,
        webhook_url: args.webhook_url,
        require_https_media: !args.allow_http_media,
        ..Default::default()
    };
    let emulator = line_emulator::Emulator::new(config);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "LINE emulator on http://{} (phone page at /)",
        listener.local_addr()?
    );
    emulator.serve(listener).await?;
    Ok(())
}
