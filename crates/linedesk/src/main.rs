//! `linedesk`: the LINE chat desk of a call-center system. See `linedesk --help`.

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
    /// Run the LINE platform emulator alone (LINE's API, a phone page, a control API).
    Emulator(EmulatorArgs),
    /// Apply database migrations and exit.
    Migrate(DeskArgs),
    /// Copy a single-machine desk (SQLite and its media files) into an empty PostgreSQL.
    MigrateData(migrate_data::MigrateDataArgs),
    /// Send signed LINE message events to a desk's /line and report throughput and latency.
    Loadgen(loadgen::LoadgenArgs),
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
}

impl DeskArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = Config::new(self.data_dir.clone(), &self.listen);
        c.database_url = self.database_url.clone().filter(|s| !s.is_empty());
        if let Some(u) = self.public_url.as_ref().filter(|s| !s.is_empty()) {
            c.public_url = u.trim_end_matches('/').to_owned();
        }
        c.line_api_base = self.line_api_base.trim_end_matches('/').to_owned();
        c.line_data_api_base = self.line_data_api_base.trim_end_matches('/').to_owned();
        c.time_zone = self
            .time_zone
            .parse()
            .map_err(|_| anyhow::anyhow!("unknown time zone {:?}", self.time_zone))?;
        c.reply_window_secs = self.reply_window_secs;
        // Read here, never echoed: secrets only reach the settings table.
        c.line_channel_secret = env_nonempty("LINEDESK_LINE_CHANNEL_SECRET");
        c.line_channel_access_token = env_nonempty("LINEDESK_LINE_CHANNEL_ACCESS_TOKEN");
        c.line_mode = env_nonempty("LINEDESK_LINE_MODE");
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
    /// Print a new API token for a user.
    Create {
        #[arg(long)]
        login: String,
        #[command(flatten)]
        desk: DeskArgs,
    },
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
        Command::Token(TokenCommand::Create { login, desk }) => {
            let store = desk.store().await?;
            let user = store
                .user_by_login(&login)
                .await?
                .with_context(|| format!("no user {login:?}"))?;
            println!(
                "{}",
                store
                    .create_api_token(user.id, SystemClock.now_ms())
                    .await?
            );
            Ok(())
        }
        Command::Emulator(args) => run_emulator(args).await,
        Command::Migrate(args) => {
            args.store().await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Loadgen(args) => loadgen::run(args).await,
        Command::MigrateData(args) => migrate_data::run(args).await,
    }
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
