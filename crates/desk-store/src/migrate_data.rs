//! The copy behind `linedesk migrate-data`: a single-machine desk (SQLite, media files on
//! disk) into PostgreSQL, where several instances can share it (B5).
//!
//! Every table is copied row by row with its ids, in one PostgreSQL transaction (a failure
//! leaves the target as it was), media bytes from the data dir's `media` folder go into
//! `media.data`, and the identity sequences are moved past the copied ids. The tables are
//! listed here, beside the migrations that make them: a table this list does not know (one
//! added by a later migration) stops the copy, loudly, instead of being left behind.

use std::path::Path;

use sqlx::{PgPool, Row, SqlitePool};

use crate::{Db, Result, Store, StoreError};

/// `StoreError::Invalid` with a formatted message, returned at once.
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err(StoreError::Invalid(format!($($arg)*)))
    };
}

/// Every table of the desk, parents before children (foreign keys hold at each insert).
/// A new table goes here, or `migrate-data` refuses to run. A name here that neither
/// database has (its migration is not in this build) is skipped.
pub const TABLES: &[&str] = &[
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
    "login_attempts",
    "login_known_clients",
];

/// Rows per INSERT (and binds stay far below PostgreSQL's 65,535).
const BATCH_ROWS: usize = 500;
/// Media rows per INSERT: their bytes travel in the statement.
const MEDIA_BATCH_ROWS: usize = 8;

/// Copies every row of `src` (a SQLite desk, opened raw) into `dst` (an empty PostgreSQL
/// database, opened raw), media bytes from `media_dir`; returns the rows per table, in
/// [`TABLES`] order.
pub async fn copy_desk(src: &Store, dst: &Store, media_dir: &Path) -> Result<Vec<(String, u64)>> {
    let (Db::Sqlite(src), Db::Postgres(dst)) = (&src.db, &dst.db) else {
        bail!("--from must be a SQLite desk and --to a PostgreSQL database");
    };
    let tables = check_tables(src, dst).await?;
    for table in &tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(dst)
            .await?;
        if n > 0 {
            bail!(
                "the target database is not empty ({table} has {n} rows); migrate-data fills only a new, empty database"
            );
        }
    }
    let mut tx = dst.begin().await?;
    let mut counts = Vec::new();
    for table in &tables {
        let n = copy_table(src, &mut tx, table, media_dir).await?;
        let there: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *tx)
            .await?;
        if there != n as i64 {
            bail!("{table}: copied {n} rows but the target holds {there}");
        }
        counts.push((table.to_string(), n));
    }
    reset_sequences(&mut tx).await?;
    tx.commit().await?;
    Ok(counts)
}

/// Both databases must hold the same tables, each one of [`TABLES`] (besides sqlx's own);
/// returns them in the order of [`TABLES`].
async fn check_tables(src: &SqlitePool, dst: &PgPool) -> Result<Vec<&'static str>> {
    let in_sqlite: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(src)
    .await?;
    let in_pg: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(dst)
    .await?;
    for (side, tables) in [("SQLite", &in_sqlite), ("PostgreSQL", &in_pg)] {
        let unknown: Vec<&String> = tables
            .iter()
            .filter(|t| !TABLES.contains(&t.as_str()))
            .collect();
        if !unknown.is_empty() {
            bail!(
                "the {side} database has tables migrate-data does not know: {unknown:?}. \
                 Nothing was copied; add them to TABLES in crates/desk-store/src/migrate_data.rs"
            );
        }
    }
    if in_sqlite != in_pg {
        bail!("the databases hold different tables (SQLite {in_sqlite:?}, PostgreSQL {in_pg:?})");
    }
    Ok(TABLES
        .iter()
        .copied()
        .filter(|t| in_pg.iter().any(|x| x == t))
        .collect())
}

/// A value on its way, typed by the PostgreSQL column.
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
    Float(Option<f64>),
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Bool,
    Text,
    Bytes,
    Float,
}

fn kind_of(table: &str, column: &str, pg_type: &str) -> Result<Kind> {
    Ok(match pg_type {
        "bigint" | "integer" | "smallint" => Kind::Int,
        "boolean" => Kind::Bool,
        "text" | "character varying" => Kind::Text,
        "bytea" => Kind::Bytes,
        "double precision" | "real" => Kind::Float,
        other => bail!("{table}.{column}: migrate-data does not know the type {other}"),
    })
}

async fn copy_table(
    src: &SqlitePool,
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    table: &str,
    media_dir: &Path,
) -> Result<u64> {
    let pg_columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    let sqlite_columns: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
    ))
    .fetch_all(src)
    .await?;
    let mut a: Vec<&str> = pg_columns.iter().map(|(c, _)| c.as_str()).collect();
    let mut b: Vec<&str> = sqlite_columns.iter().map(String::as_str).collect();
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        bail!("{table}: the columns differ between SQLite {b:?} and PostgreSQL {a:?}");
    }
    let columns: Vec<(String, Kind)> = pg_columns
        .iter()
        .map(|(c, t)| Ok((c.clone(), kind_of(table, c, t)?)))
        .collect::<Result<_>>()?;
    let list = columns
        .iter()
        .map(|(c, _)| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let is_media = table == "media";
    let batch = if is_media {
        MEDIA_BATCH_ROWS
    } else {
        BATCH_ROWS
    };
    let select = format!(
        "SELECT rowid AS rowid__, {list} FROM {table} WHERE rowid > $1 ORDER BY rowid LIMIT $2"
    );
    let mut after = i64::MIN;
    let mut copied = 0u64;
    loop {
        let rows = sqlx::query(&select)
            .bind(after)
            .bind(batch as i64)
            .fetch_all(src)
            .await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("rowid__")?;
        let mut values: Vec<Vec<Value>> = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut out = Vec::with_capacity(columns.len());
            for (i, (name, kind)) in columns.iter().enumerate() {
                let i = i + 1; // after rowid__
                let v = match kind {
                    Kind::Int => Value::Int(row.try_get(i)?),
                    Kind::Bool => Value::Bool(row.try_get(i)?),
                    Kind::Text => Value::Text(row.try_get(i)?),
                    Kind::Float => Value::Float(row.try_get(i)?),
                    Kind::Bytes => {
                        let mut bytes: Option<Vec<u8>> = row.try_get(i)?;
                        if is_media && name == "data" && bytes.is_none() {
                            bytes = Some(media_file(row, media_dir).await?);
                        }
                        Value::Bytes(bytes)
                    }
                };
                out.push(v);
            }
            values.push(out);
        }
        let mut q =
            sqlx::QueryBuilder::<sqlx::Postgres>::new(format!("INSERT INTO {table} ({list}) "));
        q.push_values(values, |mut b, row| {
            for v in row {
                match v {
                    Value::Int(x) => b.push_bind(x),
                    Value::Bool(x) => b.push_bind(x),
                    Value::Text(x) => b.push_bind(x),
                    Value::Bytes(x) => b.push_bind(x),
                    Value::Float(x) => b.push_bind(x),
                };
            }
        });
        copied += q.build().execute(&mut **tx).await?.rows_affected();
    }
    Ok(copied)
}

/// The bytes of a media row kept on disk (where desk-server's MediaFiles puts them:
/// `media/<first two characters of the key>/<key>`), checked against the recorded size.
async fn media_file(row: &sqlx::sqlite::SqliteRow, media_dir: &Path) -> Result<Vec<u8>> {
    let key: String = row.try_get("key")?;
    let size: i64 = row.try_get("size")?;
    let path = media_dir.join(&key[..2.min(key.len())]).join(&key);
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        StoreError::Invalid(format!(
            "media file {} (of media key {key}): {e}",
            path.display()
        ))
    })?;
    if bytes.len() as i64 != size {
        bail!(
            "media file {} has {} bytes, the database says {size}",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes)
}

/// After inserting explicit ids, each identity column's sequence continues after the
/// largest id, so the next row PostgreSQL numbers does not collide.
async fn reset_sequences(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>) -> Result<()> {
    let identities: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (table, column) in identities {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'),
                           COALESCE((SELECT MAX(\"{column}\") FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
