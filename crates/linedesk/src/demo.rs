//! `linedesk demo`: the desk and the LINE emulator side by side on loopback, demo agents,
//! and a few emulated customers who write in now and then. No LINE account, no network.

use std::time::Duration;

use anyhow::Context;
use desk_server::App;
use desk_store::users::Role;
use line_emulator::{Emulator, UserMessage};
use rand::Rng;
use rand::seq::SliceRandom;

use crate::{DemoArgs, add_user};

const SECRET: &str = "demo-channel-secret";
const TOKEN: &str = "demo-channel-access-token";

/// Demo logins: (login, name, role, password).
pub const USERS: [(&str, &str, Role, &str); 3] = [
    ("admin", "管理者", Role::Admin, "demo-admin-pass"),
    ("sato", "佐藤 美咲", Role::Agent, "demo-agent-pass"),
    ("tanaka", "田中 健太", Role::Agent, "demo-agent-pass"),
];

/// Emulated customers: fixed user ids, so a second run finds their chats again.
const CUSTOMERS: [(&str, &str); 4] = [
    ("U00000000000000000000000000de0001", "山田 花子"),
    ("U00000000000000000000000000de0002", "鈴木 一郎"),
    ("U00000000000000000000000000de0003", "Emily Clark"),
    // Display names are chosen by LINE users: the desk must show this as text.
    (
        "U00000000000000000000000000de0004",
        "<img src=x onerror=alert(1)>",
    ),
];

const LINES: [&str; 8] = [
    "こんにちは。注文した商品がまだ届きません。",
    "注文番号は A-10293 です。",
    "配送先の住所を変更できますか？",
    "ありがとうございます！",
    "明日の午前中は留守にしています。",
    "Hello, can I change my plan to the monthly one?",
    "領収書を発行してもらえますか。",
    "電話がつながらなかったのでLINEで連絡しました。",
];

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let emulator_listener = tokio::net::TcpListener::bind(&args.emulator_listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.emulator_listen))?;
    let emulator_url = format!("http://{}", emulator_listener.local_addr()?);
    let desk_listener = tokio::net::TcpListener::bind(&args.desk.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.desk.listen))?;
    let desk_url = format!("http://{}", desk_listener.local_addr()?);

    let emulator = Emulator::new(line_emulator::Config {
        channel_secret: SECRET.into(),
        channel_access_token: TOKEN.into(),
        webhook_url: Some(format!("{desk_url}/line")),
        // Everything is on loopback HTTP here; LINE itself would demand HTTPS.
        require_https_media: false,
        ..Default::default()
    });
    tokio::spawn(emulator.clone().serve(emulator_listener));

    let mut desk_args = args.desk.clone();
    // A demo never mixes its data with a real desk's.
    desk_args.data_dir = desk_args.data_dir.join("demo");
    let mut config = desk_args.config()?;
    config.public_url = desk_url.clone();
    config.line_api_base = emulator_url.clone();
    config.line_data_api_base = emulator_url.clone();
    config.line_channel_secret = Some(SECRET.into());
    config.line_channel_access_token = Some(TOKEN.into());
    let app = App::build(config).await?;
    let store = app.state.store.clone();
    for (login, name, role, password) in USERS {
        if store.user_by_login(login).await?.is_none() {
            add_user(&store, login, name, role, password).await?;
        }
    }
    let admin = store.user_by_login("admin").await?.context("admin user")?;
    let token = store.create_api_token(admin.id, app.state.now_ms()).await?;
    tokio::spawn(app.serve(desk_listener));

    println!("linedesk demo");
    println!("  desk:            {desk_url}/");
    println!("  LINE emulator:   {emulator_url}/   (a phone: play a customer there)");
    println!("  logins:");
    for (login, name, role, password) in USERS {
        println!("    {login:<8} / {password:<16} {name} ({})", role.as_str());
    }
    println!("  API token (admin): {token}");
    println!("    curl -H 'Authorization: Bearer {token}' {desk_url}/api/v1/conversations");
    println!("  data: {}", desk_args.data_dir.display());
    println!("Press Ctrl-C to stop.");

    // The customers follow the account (again) and say hello.
    for (i, (user_id, name)) in CUSTOMERS.iter().enumerate() {
        emulator.follow(name, Some(user_id)).await.ok();
        let _ = emulator.send_text(user_id, LINES[i % LINES.len()]).await;
    }
    seed_crm(&store, admin.id).await?;
    if args.chatter_secs > 0 {
        tokio::spawn(chatter(emulator, args.chatter_secs));
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// A few CRM customers, the first linked to 山田 花子's chat (once: a second run finds them).
async fn seed_crm(store: &desk_store::Store, admin_id: i64) -> anyhow::Result<()> {
    use desk_store::customers::{CustomerFields, CustomerFilter};
    let now = desk_core::Clock::now_ms(&desk_core::SystemClock);
    if !store
        .list_customers(&CustomerFilter {
            limit: 1,
            ..Default::default()
        })
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let people = [
        (
            "山田 花子",
            "090-1234-5678",
            "hanako@example.jp",
            vec!["VIP".to_owned()],
        ),
        ("鈴木 一郎", "03-5555-0101", "", vec![]),
        ("佐々木 陽子", "080-2222-3333", "", vec!["法人".to_owned()]),
    ];
    let mut first = None;
    for (name, phone, email, tags) in people {
        let fields = CustomerFields {
            name: name.into(),
            phone: phone.into(),
            email: email.into(),
            notes: String::new(),
            tags,
        };
        let id = store.create_customer(&fields, Some(admin_id), now).await?;
        first.get_or_insert(id);
    }
    if let (Some(customer), Some(chat)) = (
        first,
        store.conversation_by_line_user(CUSTOMERS[0].0).await?,
    ) {
        store
            .link_conversation(chat.id, customer, Some(admin_id), now)
            .await?;
    }
    Ok(())
}

/// Now and then a customer writes: mostly text, sometimes a sticker or a photo.
async fn chatter(emulator: Emulator, every_secs: u64) {
    loop {
        let jitter = rand::thread_rng().gen_range(0..=every_secs / 2);
        tokio::time::sleep(Duration::from_secs(every_secs / 2 + jitter)).await;
        let (user_id, _) = *CUSTOMERS[..3]
            .choose(&mut rand::thread_rng())
            .expect("customers");
        let roll: u8 = rand::thread_rng().gen_range(0..10);
        let message = match roll {
            0 => UserMessage::Sticker {
                package_id: "446".into(),
                sticker_id: "1988".into(),
            },
            1 => UserMessage::Image(demo_photo()),
            _ => UserMessage::Text((*LINES.choose(&mut rand::thread_rng()).expect("lines")).into()),
        };
        let _ = emulator.send(user_id, message).await;
    }
}

/// A small generated picture, so the demo needs no image files.
pub fn demo_photo() -> Vec<u8> {
    let hue: u8 = rand::thread_rng().r#gen();
    let img = image::RgbImage::from_fn(320, 240, |x, y| {
        image::Rgb([
            (x * 255 / 320) as u8,
            (y * 255 / 240) as u8,
            hue.wrapping_add((x ^ y) as u8 / 4),
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png encodes");
    out.into_inner()
}
