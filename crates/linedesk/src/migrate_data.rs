//! `linedesk migrate-data --from <data dir | sqlite:…> --to postgres://…`: moves a
//! single-machine desk (SQLite, media files on disk) into PostgreSQL, where several
//! instances can share it (spec B5).
//!
//! Here: the command line and finding the desk's files; the copy itself, with the list of
//! tables, is desk-store's (`desk_store::migrate_data`). The target must be empty. Stop the
//! desk before copying: rows written meanwhile would be missed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use desk_store::Store;

#[derive(Args)]
pub struct MigrateDataArgs {
    /// The single-machine desk: its data dir (holding linedesk.db and media/), or a
    /// `sqlite:` URL of its database file.
    #[arg(long)]
    pub from: String,
    /// The PostgreSQL database to fill (`postgres://…`); it must hold no data yet.
    #[arg(long)]
    pub to: String,
    /// Where the media files are; default `media` beside the SQLite database file.
    #[arg(long)]
    pub media_dir: Option<PathBuf>,
}

pub async fn run(args: MigrateDataArgs) -> anyhow::Result<()> {
    let counts = migrate(&args.from, &args.to, args.media_dir.as_deref()).await?;
    let width = counts.iter().map(|(t, _)| t.len()).max().unwrap_or(0);
    println!("copied into PostgreSQL:");
    for (table, n) in &counts {
        println!("  {table:<width$}  {n}");
    }
    println!("done; start the instances with --database-url pointing at the new database");
    println!(
        "the LINE secrets and passcodes stay encrypted with the SQLite desk's key: give every \
         instance that key ({} with the contents of {}/{}, or that file in each data dir)",
        desk_store::secrets::KEY_ENV,
        args.from.trim_start_matches("sqlite:"),
        desk_store::secrets::KEY_FILE
    );
    Ok(())
}

/// Copies the desk; returns the number of rows per table, in the order of
/// `desk_store::migrate_data::TABLES`.
pub async fn migrate(
    from: &str,
    to: &str,
    media_dir: Option<&Path>,
) -> anyhow::Result<Vec<(String, u64)>> {
    if !(to.starts_with("postgres://") || to.starts_with("postgresql://")) {
        bail!("--to must be a postgres:// URL");
    }
    let (db_file, source) = if from.starts_with("sqlite:") {
        let path = from
            .trim_start_matches("sqlite:")
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or_default();
        (PathBuf::from(path), from.to_owned())
    } else {
        let file = Path::new(from).join("linedesk.db");
        let url = format!("sqlite:{}", file.display());
        (file, url)
    };
    if !db_file.is_file() {
        bail!("no SQLite database at {}", db_file.display());
    }
    let media_dir = media_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| db_file.parent().unwrap_or(Path::new(".")).join("media"));
    // Opening runs the migrations: both sides then have this version's schema. Raw: rows
    // are copied as they are, encrypted values too (under the SQLite desk's key, which the
    // PostgreSQL instances then need: see `run`).
    let src = Store::open_raw(Some(&source), Path::new("."))
        .await
        .context("opening the SQLite desk")?;
    let dst = Store::open_raw(Some(to), Path::new("."))
        .await
        .context("opening PostgreSQL")?;
    Ok(desk_store::migrate_data::copy_desk(&src, &dst, &media_dir).await?)
}
