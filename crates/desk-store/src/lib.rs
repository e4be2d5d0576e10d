//! The desk's database: one API over SQLite (the single-machine default) and PostgreSQL
//! (several instances). Every query is written once, with `$1` placeholders that both
//! backends understand, and run through [`on_db!`]/[`on_tx!`], which expand the same code
//! for each pool type. No ORM and no `sqlx::Any`: we keep real types and PostgreSQL's LISTEN.
//!
//! Modules are named after the tables they hold. Each change that other parts of the desk
//! must see is announced on the writing transaction ([`Tx::announce`]): on PostgreSQL it is
//! sent to every instance with `pg_notify` inside that transaction (so it goes out if and
//! only if the write commits), and after the commit it is published to this instance's
//! [`notify::Notifier`]. A write made outside a [`Tx`] is invisible to other instances.

// The query macros first: textual scope makes them usable in every module below.
#[macro_use]
mod macros;

pub mod conversations;
pub mod customers;
mod inbound;
pub mod ingest;
mod ingest_sqlite;
pub mod jobs;
pub mod listen;
pub mod login_attempts;
pub mod media;
pub mod messages;
pub mod migrate_data;
pub mod notify;
pub mod outbox;
pub mod secrets;
pub mod sessions;
pub mod settings;
mod sql;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use notify::{Change, Notifier};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// The webhook writer's own SQLite connection (`ingest_sqlite.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("not found")]
    NotFound,
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A text column read into one of desk-core's enums outside a `FromRow` (where
/// `#[sqlx(try_from = "String")]` does it): a value no enum knows is a decode error, like a
/// row's would be.
pub(crate) fn decode<T: TryFrom<String, Error = desk_core::UnknownValue>>(s: String) -> Result<T> {
    T::try_from(s).map_err(|e| StoreError::Sqlx(sqlx::Error::Decode(Box::new(e))))
}

/// The backends' pools and transactions. Private to the crate, so that every query lives in
/// desk-store; the `testing` feature makes them public for tests that look at rows directly.
mod backend {
    use sqlx::postgres::PgPool;
    use sqlx::sqlite::SqlitePool;

    #[derive(Clone, Debug)]
    pub enum Db {
        Sqlite(SqlitePool),
        Postgres(PgPool),
    }

    /// The backend's transaction inside a [`Tx`](crate::Tx) (what `on_tx!` and `exec_tx!`
    /// match on).
    pub enum TxInner {
        Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
        Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    }
}
#[cfg(feature = "testing")]
pub use backend::{Db, TxInner};
#[cfg(not(feature = "testing"))]
use backend::{Db, TxInner};

/// An open write transaction on either backend, with the changes it will announce.
/// Dropped without [`Tx::commit`], it rolls back and announces nothing.
pub struct Tx {
    pub(crate) inner: TxInner,
    changes: Vec<Change>,
    notifier: Notifier,
}

impl Tx {
    /// `" FOR UPDATE"` on PostgreSQL, where a row read now and decided on later must be
    /// locked against other instances; nothing on SQLite, whose write transaction
    /// (`BEGIN IMMEDIATE`) already excludes every other writer.
    pub fn for_update(&self) -> &'static str {
        match self.inner {
            TxInner::Sqlite(_) => "",
            TxInner::Postgres(_) => " FOR UPDATE",
        }
    }

    /// Records a change this transaction makes; it is announced if and only if the
    /// transaction commits.
    pub fn announce(&mut self, changes: impl IntoIterator<Item = Change>) {
        self.changes.extend(changes);
    }

    /// Commits. On PostgreSQL the announced changes are sent to the other instances with
    /// `pg_notify` inside the transaction first (PostgreSQL delivers them at the commit,
    /// and only if it succeeds); then they are published to this instance's feed.
    pub async fn commit(self) -> Result<()> {
        let Tx {
            inner,
            changes,
            notifier,
        } = self;
        match inner {
            TxInner::Sqlite(t) => t.commit().await?,
            TxInner::Postgres(mut t) => {
                listen::notify_in(&mut t, notifier.origin(), &changes).await?;
                t.commit().await?
            }
        }
        notifier.publish(changes);
        Ok(())
    }
}

/// The database plus the in-process change feed. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pub(crate) db: Db,
    pub notifier: Notifier,
    /// The secret key for what is stored encrypted or keyed-hashed (`secrets.rs`); `None`
    /// for a store opened raw (copying rows as they are, `migrate-data`).
    pub secrets: Option<std::sync::Arc<secrets::Secrets>>,
}

#[cfg(feature = "testing")]
impl Store {
    /// The pool, for tests that read or write rows directly (`testing` feature).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl Store {
    /// Connects to `url` (`sqlite:` path or `postgres://`); without a URL, SQLite in `data_dir`.
    /// Runs the migrations, loads the secret key (`LINEDESK_SECRET_KEY`, else
    /// `<data dir>/secret.key`, created if need be) and encrypts what older versions
    /// stored in plain text.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> Result<Store> {
        Self::open_with_keys(url, data_dir, &secrets::KeyConfig::from_env(data_dir)).await
    }

    /// [`Store::open`] with the key from `keys`.
    pub async fn open_with_keys(
        url: Option<&str>,
        data_dir: &Path,
        keys: &secrets::KeyConfig,
    ) -> Result<Store> {
        let mut store = Self::open_raw(url, data_dir).await?;
        store.init_secrets(keys).await?;
        Ok(store)
    }

    /// Connects and migrates, without a secret key: rows can be copied as they are, and
    /// nothing encrypted can be read or written (`migrate-data`).
    pub async fn open_raw(url: Option<&str>, data_dir: &Path) -> Result<Store> {
        let db = match url {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => {
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect(u)
                    .await?;
                Db::Postgres(pool)
            }
            Some(u) => Db::Sqlite(open_sqlite(SqliteConnectOptions::from_str(u)?).await?),
            None => {
                private_dir(data_dir)?;
                let file = data_dir.join("linedesk.db");
                private_db_files(&file)?;
                let opts = SqliteConnectOptions::new().filename(file);
                Db::Sqlite(open_sqlite(opts).await?)
            }
        };
        let store = Store {
            db,
            notifier: Notifier::new(),
            secrets: None,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub async fn migrate(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await?,
            Db::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Begins a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so two writers queue
    /// on the lock instead of failing later with SQLITE_BUSY on upgrade.
    pub async fn begin(&self) -> Result<Tx> {
        let inner = match &self.db {
            Db::Sqlite(p) => TxInner::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => TxInner::Postgres(p.begin().await?),
        };
        Ok(Tx {
            inner,
            changes: Vec::new(),
            notifier: self.notifier.clone(),
        })
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(_))
    }

    /// For `/healthz`: one round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        exec_db!(&self.db, |p| sqlx::query("SELECT 1"))?;
        Ok(())
    }
}

/// Creates `dir` if need be and makes it accessible to the desk's user only (0700): it
/// holds the database, the media and the secret key (issue 9, item 15).
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)
        .map_err(|e| StoreError::Invalid(format!("data dir {dir:?}: {e}")))?;
    let mode = std::fs::metadata(dir)
        .map_err(|e| StoreError::Invalid(format!("data dir {dir:?}: {e}")))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::Invalid(format!("data dir {dir:?}: {e}")))?;
    }
    Ok(())
}

/// The SQLite file (created here if new, so it is born 0600) and its `-wal`/`-shm`
/// companions (which SQLite creates with the database file's mode) readable by the desk's
/// user only; files of older versions are tightened.
fn private_db_files(file: &Path) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let err = |e: std::io::Error| StoreError::Invalid(format!("{}: {e}", file.display()));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)
        .map_err(err)?;
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", file.display()));
        match std::fs::metadata(&path) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                    .map_err(err)?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn open_sqlite(opts: SqliteConnectOptions) -> Result<SqlitePool> {
    // WAL lets readers run beside the writer; synchronous=FULL makes every commit durable
    // before the webhook answers 200 (NORMAL could lose the last commits on power loss).
    let opts = opts
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10))
        .pragma("cache_size", "-65536")
        .pragma("temp_store", "memory");
    Ok(SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .connect_with(opts)
        .await?)
}

/// A fresh random token, URL-safe, for sessions, API tokens and media keys.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// Secrets (tokens) are stored as their SHA-256, so a database dump does not log anyone in.
pub fn hash_token(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Test support (the `testing` feature): a fresh, migrated store on each backend, and
/// [`backend_test!`](crate::backend_test), which makes one test per backend.
#[cfg(feature = "testing")]
pub mod testing {
    use super::*;

    /// The database a test runs on.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Backend {
        Sqlite,
        Postgres,
    }

    /// A fresh, migrated store on `backend`, its files (SQLite, the secret key) in a new
    /// temporary directory, which must live as long as the store.
    pub async fn store(backend: Backend) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = match backend {
            Backend::Sqlite => Store::open(None, dir.path()).await.expect("sqlite store"),
            Backend::Postgres => {
                let url = fresh_pg_database().await.expect(
                    "PostgreSQL must be reachable for tests (see CONTRIBUTING.md: LINEDESK_TEST_PG)",
                );
                Store::open(Some(&url), dir.path())
                    .await
                    .expect("postgres store")
            }
        };
        (dir, store)
    }

    /// The PostgreSQL server tests use; `LINEDESK_TEST_PG` overrides it. Tests create a
    /// fresh database on it per store.
    pub fn pg_admin_url() -> String {
        std::env::var("LINEDESK_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    /// A new empty PostgreSQL database; returns its URL.
    pub async fn fresh_pg_database() -> Result<String> {
        use sqlx::Connection;
        let admin = pg_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        let name = format!(
            "linedesk_test_{}",
            random_token(9).to_lowercase().replace(['-', '_'], "x")
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        Ok(format!("{base}/{name}"))
    }

    /// A fixed key for stores of tests that must agree on one (several instances).
    pub fn test_keys() -> secrets::KeyConfig {
        secrets::KeyConfig {
            key: Some("bGluZWRlc2stdGVzdC1rZXktMzItYnl0ZXMtbG9uZyE=".into()),
            ..Default::default()
        }
    }

    /// One store per backend: SQLite in `dir`, and PostgreSQL in a fresh database (for the
    /// tests that compare the two).
    pub async fn stores(dir: &Path) -> Vec<Store> {
        let sqlite = Store::open(None, dir).await.expect("sqlite store");
        let pg_url = fresh_pg_database()
            .await
            .expect("PostgreSQL must be reachable for tests (see README: ./scripts/test.sh)");
        let pg = Store::open(Some(&pg_url), dir)
            .await
            .expect("postgres store");
        vec![sqlite, pg]
    }
}

/// `backend_test!(name);` above `async fn name(b: Backend)` runs it as two tests,
/// `name::sqlite` and `name::postgres`, so that a failure on one backend neither hides nor
/// is hidden by the other's (`cargo test name` still runs both). `Backend` is
/// [`testing::Backend`].
#[cfg(feature = "testing")]
#[macro_export]
macro_rules! backend_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::testing::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                super::$name($crate::testing::Backend::Postgres).await
            }
        }
    };
}
