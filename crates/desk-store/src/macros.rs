//! The query macros: one SQL text and one piece of sqlx code for both backends. Each
//! expands its body once per backend, so the same generic code type-checks against SQLite's
//! and PostgreSQL's types; the closure-like `|p|` form is only syntax (rustfmt formats it).
//!
//! Crate-private (every query lives in desk-store); the `testing` feature exports them for
//! tests that read rows directly.

/// Runs `$body` with `$p` bound to the backend's pool:
/// `on_db!(&self.db, |p| sqlx::query_scalar(SQL).fetch_one(p).await)`.
#[cfg_attr(feature = "testing", macro_export)]
macro_rules! on_db {
    ($db:expr, |$p:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite($p) => $body,
            $crate::Db::Postgres($p) => $body,
        }
    };
}

/// Runs a statement (the query without `.execute`) on the pool; evaluates to the
/// `Result` of the number of rows it affected.
#[cfg_attr(feature = "testing", macro_export)]
macro_rules! exec_db {
    ($db:expr, |$p:ident| $query:expr) => {
        // Spelled out rather than through `on_db!`: an exported macro cannot name a sibling
        // that may not be exported.
        match $db {
            $crate::Db::Sqlite($p) => $query.execute($p).await.map(|r| r.rows_affected()),
            $crate::Db::Postgres($p) => $query.execute($p).await.map(|r| r.rows_affected()),
        }
    };
}

/// Like [`on_db!`] inside an open [`Tx`](crate::Tx): `$c` is the `&mut` connection.
#[cfg_attr(feature = "testing", macro_export)]
macro_rules! on_tx {
    ($tx:expr, |$c:ident| $body:expr) => {
        match &mut ($tx).inner {
            $crate::TxInner::Sqlite(t) => {
                let $c = &mut **t;
                $body
            }
            $crate::TxInner::Postgres(t) => {
                let $c = &mut **t;
                $body
            }
        }
    };
}

/// [`exec_db!`] inside an open transaction.
#[cfg_attr(feature = "testing", macro_export)]
macro_rules! exec_tx {
    ($tx:expr, |$c:ident| $query:expr) => {
        match &mut ($tx).inner {
            $crate::TxInner::Sqlite(t) => {
                let $c = &mut **t;
                $query.execute($c).await.map(|r| r.rows_affected())
            }
            $crate::TxInner::Postgres(t) => {
                let $c = &mut **t;
                $query.execute($c).await.map(|r| r.rows_affected())
            }
        }
    };
}
