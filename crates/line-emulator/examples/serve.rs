//! Runs the emulator alone, for trying the phone page by hand:
//! `cargo run -p line-emulator --example serve -- [LISTEN] [WEBHOOK_URL]`
//! (defaults: 127.0.0.1:8090, no webhook URL). Media URLs may be plain HTTP here.

use line_emulator::{Config, Emulator};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8090".into());
    let config = Config {
        webhook_url: args.next(),
        require_https_media: false,
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "LINE emulator on http://{listen}/ (token {})",
        config.channel_access_token
    );
    Emulator::new(config).serve(listener).await
}
