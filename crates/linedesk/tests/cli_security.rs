//! Issue 9 at the command line, with the real binary on SQLite and on PostgreSQL:
//! `linedesk token create|list|revoke` (item 11; `token create --login` prints the token
//! alone, as before) and the secret key (item 15: `secret-key generate`, and a desk refusing
//! to start with a key other than the one its database is encrypted with).

use std::path::Path;
use std::process::{Command, Output};

use desk_store::Store;
use desk_store::users::Role;

fn linedesk(dir: &Path, db: Option<&str>, args: &[&str], key: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_linedesk"));
    cmd.args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("LINEDESK_SECRET_KEY")
        .env("RUST_LOG", "warn");
    if let Some(u) = db {
        cmd.env("LINEDESK_DATABASE_URL", u);
    }
    if let Some(k) = key {
        cmd.env("LINEDESK_SECRET_KEY", k);
    }
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn tokens_are_created_listed_and_revoked_from_the_command_line() {
    let pg = desk_store::testing::fresh_pg_database().await.unwrap();
    for db in [None, Some(pg.as_str())] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(db, dir.path()).await.unwrap();
        store
            .create_user("sato", "佐藤", Role::Agent, "x", 0)
            .await
            .unwrap();

        let plain = stdout(&linedesk(
            dir.path(),
            db,
            &["token", "create", "--login", "sato"],
            None,
        ));
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 1, "{plain}");
        assert!(
            lines[0].starts_with("ld_") && lines[0].len() > 40,
            "{plain}"
        );
        let expiring = stdout(&linedesk(
            dir.path(),
            db,
            &[
                "token",
                "create",
                "--login",
                "sato",
                "--expires-in-days",
                "30",
            ],
            None,
        ));
        let expiring = expiring.trim();
        let now = desk_core::clock::Clock::now_ms(&desk_core::clock::SystemClock);
        assert!(
            store
                .user_by_api_token(lines[0], now)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .user_by_api_token(expiring, now)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .user_by_api_token(expiring, now + 31 * 86_400_000)
                .await
                .unwrap()
                .is_none(),
            "expires after 30 days"
        );

        let list = stdout(&linedesk(dir.path(), db, &["token", "list"], None));
        assert_eq!(list.lines().count(), 3, "{list}");
        assert!(
            !list.contains(lines[0]) && !list.contains(expiring),
            "never the tokens"
        );
        assert_eq!(list.matches("active").count(), 2, "{list}");
        let ids: Vec<String> = list
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap().to_owned())
            .collect();
        let out = stdout(&linedesk(
            dir.path(),
            db,
            &["token", "revoke", "--id", &ids[1]],
            None,
        ));
        assert!(out.contains("revoked"), "{out}");
        assert!(
            store
                .user_by_api_token(lines[0], now)
                .await
                .unwrap()
                .is_none()
        );
        let list = stdout(&linedesk(
            dir.path(),
            db,
            &["token", "list", "--login", "sato"],
            None,
        ));
        assert_eq!(list.matches("revoked").count(), 1, "{list}");
        let out = stdout(&linedesk(
            dir.path(),
            db,
            &["token", "revoke", "--login", "sato"],
            None,
        ));
        assert!(out.starts_with("1 token"), "{out}");
        assert!(
            store
                .user_by_api_token(expiring, now)
                .await
                .unwrap()
                .is_none()
        );
        let bad = linedesk(dir.path(), db, &["token", "revoke", "--id", "99999"], None);
        assert!(!bad.status.success());
        assert!(String::from_utf8_lossy(&bad.stderr).contains("no API token 99999"));
        let bad = linedesk(
            dir.path(),
            db,
            &["token", "create", "--login", "nobody"],
            None,
        );
        assert!(!bad.status.success());
    }
}

#[tokio::test]
async fn a_desk_refuses_to_start_with_another_key_than_its_database_has() {
    let key = Command::new(env!("CARGO_BIN_EXE_linedesk"))
        .args(["secret-key", "generate"])
        .output()
        .unwrap();
    let key = stdout(&key).trim().to_owned();
    assert_eq!(key.len(), 44, "base64 of 32 bytes: {key}");
    let pg = desk_store::testing::fresh_pg_database().await.unwrap();
    for db in [None, Some(pg.as_str())] {
        let dir = tempfile::tempdir().unwrap();
        stdout(&linedesk(dir.path(), db, &["migrate"], Some(&key)));
        assert!(
            !dir.path().join("secret.key").exists(),
            "with LINEDESK_SECRET_KEY no key file is made"
        );
        // Another instance without the key (its own data dir): refused, nothing created.
        let other = tempfile::tempdir().unwrap();
        let refused = linedesk(other.path(), db, &["migrate"], None);
        let err = String::from_utf8_lossy(&refused.stderr);
        if db.is_some() {
            assert!(!refused.status.success());
            assert!(err.contains("encrypted with key"), "{err}");
            assert!(!other.path().join("secret.key").exists());
        }
        let wrong = linedesk(
            dir.path(),
            db,
            &["migrate"],
            Some(&desk_store::secrets::generate_key()),
        );
        assert!(!wrong.status.success());
        assert!(
            String::from_utf8_lossy(&wrong.stderr).contains("encrypted with key"),
            "{}",
            String::from_utf8_lossy(&wrong.stderr)
        );
        stdout(&linedesk(dir.path(), db, &["migrate"], Some(&key)));
    }
}
