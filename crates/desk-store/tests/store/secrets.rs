//! Issue 9, item 15: secrets at rest, on SQLite and PostgreSQL — values of older versions
//! are encrypted at the first start with a key (not lost), a database encrypted with one
//! key is refused by an instance with another (no second key is made), a key is rotated
//! with the previous one given, and the SQLite file holds no plain secret afterwards.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use desk_store::secrets::{self, KeyConfig};
use desk_store::{Store, exec_db, on_db, testing};

const SECRET: &str = "plain-channel-secret-4f1d2a";
const TOKEN: &str = "plain-access-token-9c3e77";
const CODE: &str = "@105-908";

fn key_file(dir: &Path) -> KeyConfig {
    KeyConfig {
        key_file: Some(dir.join(secrets::KEY_FILE)),
        ..Default::default()
    }
}

fn with_key(key: &str, previous: Option<&str>) -> KeyConfig {
    KeyConfig {
        key: Some(key.into()),
        previous: previous.map(str::to_owned),
        key_file: None,
    }
}

/// A database as an older desk left it: plain secrets and a plain passcode.
async fn old_desk(url: Option<&str>, dir: &Path) {
    let s = Store::open_raw(url, dir).await.unwrap();
    for (k, v) in [
        ("line.channel_secret", SECRET),
        ("line.channel_access_token", TOKEN),
    ] {
        s.set_setting(k, v, 1_000).await.unwrap();
    }
    exec_db!(s.db(), |p| sqlx::query(
        "INSERT INTO customers (name, created_at, updated_at) VALUES ('山田 花子', 1, 1)"
    ))
    .unwrap();
    exec_db!(s.db(), |p| sqlx::query(
        "INSERT INTO customer_passcodes (customer_id, code, issued_at, valid_until)
         VALUES (1, $1, 1, 9999999999999)"
    )
    .bind(CODE))
    .unwrap();
}

async fn raw_values(s: &Store) -> Vec<String> {
    let mut v: Vec<String> = on_db!(s.db(), |p| sqlx::query_scalar(
        "SELECT value FROM settings WHERE key LIKE 'line.%'"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    let codes: Vec<(String, Option<String>, Option<String>)> = on_db!(s.db(), |p| sqlx::query_as(
        "SELECT code, code_hash, code_enc FROM customer_passcodes"
    )
    .fetch_all(p)
    .await)
    .unwrap();
    for (a, b, c) in codes {
        v.extend([a, b.unwrap_or_default(), c.unwrap_or_default()]);
    }
    v
}

async fn check_decrypts(s: &Store, what: &str) {
    assert_eq!(
        s.secret_setting("line.channel_secret")
            .await
            .unwrap()
            .unwrap(),
        (SECRET.to_owned(), 1_000),
        "{what}: decrypted, and ステータス更新 kept"
    );
    assert_eq!(
        s.secret_setting("line.channel_access_token")
            .await
            .unwrap()
            .unwrap()
            .0,
        TOKEN
    );
    assert_eq!(
        s.active_passcode(1).await.unwrap().unwrap().code,
        CODE,
        "{what}"
    );
    for v in raw_values(s).await {
        assert!(
            !v.contains(SECRET) && !v.contains(TOKEN) && !v.contains("105"),
            "{what}: a plain value is left: {v}"
        );
    }
}

#[tokio::test]
async fn an_old_sqlite_desk_is_encrypted_at_its_first_start_and_keeps_nothing_plain() {
    let dir = tempfile::tempdir().unwrap();
    old_desk(None, dir.path()).await;
    let s = Store::open_with_keys(None, dir.path(), &key_file(dir.path()))
        .await
        .unwrap();
    check_decrypts(&s, "sqlite").await;
    drop(s);
    // Not in the file either (nor in its WAL): the overwritten pages were zeroed.
    let mut bytes = std::fs::read(dir.path().join("linedesk.db")).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("linedesk.db-wal")) {
        bytes.extend(wal);
    }
    for plain in [SECRET, TOKEN, CODE] {
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "{plain} is still in the SQLite file"
        );
    }
    // The key file, the data dir and the database are private.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join(secrets::KEY_FILE)), 0o600);
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.path().join("linedesk.db")), 0o600);
}

#[tokio::test]
async fn keys_are_checked_rotated_and_never_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let pg = testing::fresh_pg_database().await.unwrap();
    for url in [None, Some(pg.as_str())] {
        let b = if url.is_some() { "pg" } else { "sqlite" };
        let data = dir.path().join(b);
        old_desk(url, &data).await;
        let first = secrets::generate_key();
        let s = Store::open_with_keys(url, &data, &with_key(&first, None))
            .await
            .unwrap();
        check_decrypts(&s, b).await;
        let first_id = s.secrets().unwrap().key_id().to_owned();
        drop(s);

        // Another instance with its own new key file (as several instances on PostgreSQL
        // would get without the shared key): refused, naming the key it needs.
        let other_dir = dir.path().join(format!("{b}-other"));
        let err = Store::open_with_keys(url, &data, &key_file(&other_dir))
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(&first_id), "{b}: {err}");
        assert!(
            !other_dir.join(secrets::KEY_FILE).exists(),
            "{b}: no second key was made"
        );
        let err = Store::open_with_keys(url, &data, &with_key(&secrets::generate_key(), None))
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(&first_id), "{b}: {err}");

        // Rotation: the new key with the old one as previous re-encrypts everything.
        let second = secrets::generate_key();
        let s = Store::open_with_keys(url, &data, &with_key(&second, Some(&first)))
            .await
            .unwrap();
        check_decrypts(&s, b).await;
        let second_id = s.secrets().unwrap().key_id().to_owned();
        assert_ne!(first_id, second_id);
        for v in raw_values(&s).await {
            assert!(
                !v.contains(&first_id),
                "{b}: re-encrypted under the new key"
            );
        }
        drop(s);
        let s = Store::open_with_keys(url, &data, &with_key(&second, None))
            .await
            .unwrap();
        check_decrypts(&s, b).await;
        drop(s);
        assert!(
            Store::open_with_keys(url, &data, &with_key(&first, None))
                .await
                .is_err(),
            "{b}: the old key alone no longer opens it"
        );
    }
}
