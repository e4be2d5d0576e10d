//! `linedesk migrate-data` (spec B5): a single-machine desk built through the real code
//! paths (webhooks from the emulator, content fetches, agents sending text and images,
//! a message still waiting, a job still to retry) is copied into a fresh PostgreSQL
//! database by the binary; every table's rows and every file's bytes arrive, ids kept, and
//! new rows continue after the copied ids. A non-empty target and an unknown table are
//! refused.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use desk_server::media_files::MediaFiles;
use desk_server::{App, Config};
use desk_store::media::MediaRow;
use desk_store::users::Role;
use desk_store::{Db, Store};
use line_emulator::{Emulator, Endpoint, Fault};
use serde_json::{Value, json};
use sqlx::{Column, Row, TypeInfo};

fn png(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A single-machine desk in `dir` with some of everything.
async fn build_sqlite_desk(dir: &Path) {
    let emu = line_emulator::Config {
        require_https_media: false,
        ..Default::default()
    };
    let (emulator, emulator_url) = Emulator::start(emu.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let url = format!("http://{addr}");
    let mut config = Config::new(dir.to_path_buf(), &addr);
    config.line_api_base = emulator_url.clone();
    config.line_data_api_base = emulator_url.clone();
    config.line_channel_secret = Some(emu.channel_secret.clone());
    config.line_channel_access_token = Some(emu.channel_access_token.clone());
    config.line_mode = Some("push".into());
    let app = App::build(config).await.unwrap();
    let st = app.state.clone();
    tokio::spawn(app.serve(listener));
    emulator.set_webhook_url(&format!("{url}/line"));
    let store = &st.store;

    let admin = store
        .create_user("admin", "管理者", Role::Admin, "hash-a", 1)
        .await
        .unwrap();
    let sato = store
        .create_user("sato", "佐藤 美咲", Role::Agent, "hash-s", 2)
        .await
        .unwrap();
    store.create_api_token(admin, 3).await.unwrap();
    let token = store.create_api_token(sato, 4).await.unwrap();
    store.create_session(sato, 5, i64::MAX / 2).await.unwrap();
    store
        .add_to_counter("webhook_signature_failures", 3, 6)
        .await
        .unwrap();
    let Db::Sqlite(pool) = store.db() else {
        unreachable!()
    };
    let http = reqwest::Client::new();
    let send = async |method: reqwest::Method, path: String, body: Value| {
        let r = http
            .request(method, format!("{url}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or(Value::Null),
        )
    };
    let post = async |path: String, body: Value| send(reqwest::Method::POST, path, body).await;
    // Customers through the API: created, edited (history), a passcode issued.
    let (s, hanako) = post(
        "/api/v1/customers".into(),
        json!({"name": "山田 花子", "phone": "03-1234-5678", "email": "hanako@example.jp", "tags": ["vip"]}),
    )
    .await;
    assert_eq!(s, 201, "{hanako}");
    let (s, ichiro) = post(
        "/api/v1/customers".into(),
        json!({"name": "鈴木 一郎", "phone": "090-0000-1111"}),
    )
    .await;
    assert_eq!(s, 201, "{ichiro}");
    let (hanako, ichiro) = (
        hanako["id"].as_i64().unwrap(),
        ichiro["id"].as_i64().unwrap(),
    );
    let (s, _) = send(
        reqwest::Method::PATCH,
        format!("/api/v1/customers/{hanako}"),
        json!({"notes": "VIP"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, code) = post(
        format!("/api/v1/customers/{ichiro}/line-passcode"),
        json!({}),
    )
    .await;
    assert_eq!(s, 200, "{code}");
    let passcode = code["passcode"].as_str().unwrap().to_owned();

    // A customer writes text, an image (fetched from LINE and kept on disk) and a sticker.
    let user = emulator.follow("山田 花子", None).await.unwrap();
    emulator.send_text(&user, "荷物が届きません").await.unwrap();
    emulator.send_image(&user, png(40, 30)).await.unwrap();
    emulator.send_sticker(&user, "446", "1988").await.unwrap();
    let conv = store
        .conversation_by_line_user(&user)
        .await
        .unwrap()
        .unwrap()
        .id;
    let (s, linked) = send(
        reqwest::Method::PUT,
        format!("/api/v1/conversations/{conv}/customer"),
        json!({"customer_id": hanako}),
    )
    .await;
    assert_eq!(s, 200, "{linked}");
    eventually("the customer's image fetched", async || {
        let msgs = store.messages_between(conv, 0, i64::MAX).await.unwrap();
        msgs.iter()
            .any(|m| {
                m.kind == desk_core::MessageKind::Image
                    && m.media_state == desk_core::MediaState::Ok
            })
            .then_some(())
    })
    .await;

    // The agent takes the chat and sends text and an image (public media on disk).
    let (s, _) = post(
        format!("/api/v1/conversations/{conv}/status"),
        json!({"status": "in_progress"}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, m) = post(
        format!("/api/v1/conversations/{conv}/messages"),
        json!({"text": "確認いたします"}),
    )
    .await;
    assert_eq!((s, m["delivery"].as_str()), (201, Some("sent")), "{m}");
    let form = reqwest::multipart::Form::new().part(
        "image",
        reqwest::multipart::Part::bytes(png(64, 48)).file_name("photo.png"),
    );
    let r = http
        .post(format!("{url}/api/v1/conversations/{conv}/messages"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // LINE fails for a while: a message stays in the outbox, waiting for its retry.
    emulator.add_fault(Fault {
        endpoint: Endpoint::Push,
        status: 500,
        count: 1000,
        delay_ms: 0,
    });
    let (s, m) = post(
        format!("/api/v1/conversations/{conv}/messages"),
        json!({"text": "少々お待ちください"}),
    )
    .await;
    assert_eq!((s, m["delivery"].as_str()), (201, Some("unsent")), "{m}");
    // A profile LINE cannot give yet: its job stays to be retried.
    emulator.add_fault(Fault {
        endpoint: Endpoint::Profile,
        status: 500,
        count: 1000,
        delay_ms: 0,
    });
    let other = emulator.follow("鈴木 一郎", None).await.unwrap();
    emulator.send_text(&other, "もしもし").await.unwrap();
    // The customer links themself with the passcode (L2): a passcode attempt is recorded.
    emulator.send_text(&other, &passcode).await.unwrap();
    eventually("the passcode linked the LINE user", async || {
        let c = store.conversation_by_line_user(&other).await.unwrap()?;
        (c.customer_id == Some(ichiro)).then_some(())
    })
    .await;
    eventually("a profile job failed once", async || {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE last_error IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap();
        (n > 0).then_some(())
    })
    .await;
    assert!(store.outbox_depth().await.unwrap().0 >= 1);
}

/// A table's rows in a form both databases share (booleans as 0/1, bytes as hex), sorted.
async fn rows_of(db: &Db, table: &str, columns: &[String]) -> Vec<Vec<String>> {
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!("SELECT {list} FROM {table}");
    let mut rows: Vec<Vec<String>> = match db {
        Db::Sqlite(p) => {
            let rows = sqlx::query(&sql).fetch_all(p).await.unwrap();
            rows.iter()
                .map(|r| {
                    (0..columns.len())
                        .map(|i| {
                            if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
                                v.map_or("NULL".into(), |v| v.to_string())
                            } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
                                v.unwrap_or_else(|| "NULL".into())
                            } else {
                                let v: Option<Vec<u8>> = r.try_get(i).unwrap();
                                v.map_or("NULL".into(), hex)
                            }
                        })
                        .collect()
                })
                .collect()
        }
        Db::Postgres(p) => {
            let rows = sqlx::query(&sql).fetch_all(p).await.unwrap();
            rows.iter()
                .map(|r| {
                    (0..columns.len())
                        .map(|i| match r.columns()[i].type_info().name() {
                            "INT8" | "INT4" | "INT2" => r
                                .get::<Option<i64>, _>(i)
                                .map_or("NULL".into(), |v| v.to_string()),
                            "BOOL" => r
                                .get::<Option<bool>, _>(i)
                                .map_or("NULL".into(), |v| (v as i64).to_string()),
                            "BYTEA" => r.get::<Option<Vec<u8>>, _>(i).map_or("NULL".into(), hex),
                            _ => r
                                .get::<Option<String>, _>(i)
                                .unwrap_or_else(|| "NULL".into()),
                        })
                        .collect()
                })
                .collect()
        }
    };
    rows.sort();
    rows
}

fn hex(b: Vec<u8>) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn migrate_data(from: &Path, to: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_linedesk"))
        .args(["migrate-data", "--from"])
        .arg(from)
        .args(["--to", to])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn a_single_machine_desk_moves_to_postgresql_with_every_row_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(build_sqlite_desk(dir.path()));
    // Stops the desk's server and workers: the copy reads a quiet database, as an operator
    // who stopped the desk first would.
    drop(rt);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = rt
        .block_on(desk_store::testing::fresh_pg_database())
        .unwrap();

    let out = migrate_data(dir.path(), &pg);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{stdout}");

    rt.block_on(async {
        let src = Store::open(None, dir.path()).await.unwrap();
        let dst = Store::open(Some(&pg), dir.path()).await.unwrap();
        let Db::Sqlite(sp) = src.db() else {
            unreachable!()
        };
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
        )
        .fetch_all(sp)
        .await
        .unwrap();
        assert!(tables.len() >= 13, "{tables:?}");
        for table in &tables {
            let mut columns: Vec<String> = sqlx::query_scalar(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .fetch_all(sp)
            .await
            .unwrap();
            if table == "media" {
                columns.retain(|c| c != "data"); // compared as files below
            }
            let a = rows_of(src.db(), table, &columns).await;
            let b = rows_of(dst.db(), table, &columns).await;
            assert_eq!(a, b, "table {table}");
            assert!(
                stdout
                    .lines()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>()
                        == [table.as_str(), &a.len().to_string()]),
                "{table}: {} rows reported in\n{stdout}",
                a.len()
            );
            let filled = [
                "users",
                "api_tokens",
                "sessions",
                "settings",
                "counters",
                "customers",
                "conversations",
                "webhook_events",
                "media",
                "messages",
                "jobs",
                "outbox",
                "conversation_log",
                "customer_history",
                "customer_passcodes",
                "passcode_attempts",
            ];
            if filled.contains(&table.as_str()) {
                assert!(!a.is_empty(), "{table} was empty: a weak test");
            }
        }
        // Every file: on disk for SQLite, in media.data for PostgreSQL, byte for byte.
        let sql = "SELECT id, key, content_type, size, public, data FROM media ORDER BY id";
        let on_disk: Vec<MediaRow> = match src.db() {
            Db::Sqlite(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            _ => unreachable!(),
        };
        let in_db: Vec<MediaRow> = match dst.db() {
            Db::Postgres(p) => sqlx::query_as(sql).fetch_all(p).await.unwrap(),
            _ => unreachable!(),
        };
        assert!(
            on_disk.len() >= 3,
            "the customer's image and the agent's original and preview"
        );
        assert_eq!(on_disk.len(), in_db.len());
        let files = MediaFiles::new(dir.path(), false).unwrap();
        let db_files = MediaFiles::new(dir.path(), true).unwrap();
        for (a, b) in on_disk.iter().zip(&in_db) {
            assert!(a.data.is_none() && b.data.is_some(), "{}", a.key);
            let bytes = files.bytes(a).await.unwrap();
            assert_eq!(bytes, db_files.bytes(b).await.unwrap(), "{}", a.key);
            assert_eq!(bytes.len() as i64, b.size);
        }
        // New rows continue after the copied ids.
        let max_user: i64 = match dst.db() {
            Db::Postgres(p) => sqlx::query_scalar("SELECT MAX(id) FROM users")
                .fetch_one(p)
                .await
                .unwrap(),
            _ => unreachable!(),
        };
        let id = dst
            .create_user("newcomer", "新人", Role::Agent, "h", 0)
            .await
            .unwrap();
        assert_eq!(id, max_user + 1);
        let key = Store::new_media_key();
        let m = desk_store::media::NewMedia {
            content_type: "image/png",
            size: 1,
            public: false,
            data: Some(&[1]),
        };
        assert!(dst.insert_media(&key, m, 0).await.unwrap() > in_db.last().unwrap().id);
    });

    // Once filled, the target is refused.
    let again = migrate_data(dir.path(), &pg);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{again:?}"
    );

    // A table nobody told migrate-data about stops it before anything is copied.
    let pg2 = rt.block_on(async {
        let src = Store::open(None, dir.path()).await.unwrap();
        let Db::Sqlite(sp) = src.db() else {
            unreachable!()
        };
        sqlx::query("CREATE TABLE later_feature (id INTEGER PRIMARY KEY, note TEXT) STRICT")
            .execute(sp)
            .await
            .unwrap();
        desk_store::testing::fresh_pg_database().await.unwrap()
    });
    let refused = migrate_data(dir.path(), &pg2);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("later_feature"), "{err}");
    let users: i64 = rt.block_on(async {
        let dst = Store::open(Some(&pg2), dir.path()).await.unwrap();
        dst.count_users().await.unwrap()
    });
    assert_eq!(users, 0, "nothing copied");
    // A missing data dir is an error, never a new empty desk.
    let missing = migrate_data(&dir.path().join("nope"), &pg2);
    assert!(!missing.status.success());
}
