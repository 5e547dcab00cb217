//! The manifest database: opening a connection with caje's settings, and
//! readying the schema at start (waiting for LiteFS's initial replication,
//! then applying missing migrations, under HALT on a replica).

use std::path::{Path, PathBuf};

use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::litefs::{self, LiteFsError, LiteFsWrites, NodeRole};

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a write waits for another SQLite writer before failing.
const BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot create the database directory {dir}: {source}")]
    CreateDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("database path {0} is not valid UTF-8")]
    Path(PathBuf),
    #[error("cannot open the manifest database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("manifest query failed: {0}")]
    Query(#[from] diesel::result::Error),
    #[error("manifest migration failed: {0}")]
    Migration(String),
    #[error(transparent)]
    Halt(#[from] LiteFsError),
}

impl ManifestError {
    /// A write refused because the database is read-only here, as on a
    /// LiteFS replica written without HALT.
    pub(super) fn is_read_only(&self) -> bool {
        let ManifestError::Query(diesel::result::Error::DatabaseError(_, info)) = self else {
            return false;
        };
        litefs::is_read_only_refusal(info.message())
    }
}

/// Opens a connection with the settings every caje connection uses. It
/// writes nothing when the database is already in WAL mode, so it also
/// works on a LiteFS replica.
pub fn connect(path: &Path) -> Result<SqliteConnection, ManifestError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ManifestError::CreateDir {
            dir: dir.to_owned(),
            source,
        })?;
    }
    let url = path
        .to_str()
        .ok_or_else(|| ManifestError::Path(path.to_owned()))?;
    let mut conn = SqliteConnection::establish(url)?;
    // busy_timeout first: switching to WAL itself may wait for another writer.
    diesel::sql_query(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")).execute(&mut conn)?;
    let mode: String = diesel::dsl::sql::<Text>("PRAGMA journal_mode").get_result(&mut conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        if let Err(e) = diesel::sql_query("PRAGMA journal_mode = WAL").execute(&mut conn) {
            tracing::warn!(error = %e, journal_mode = %mode, "cannot switch the manifest to WAL mode");
        }
    }
    diesel::sql_query("PRAGMA synchronous = NORMAL").execute(&mut conn)?;
    Ok(conn)
}

/// Versions of the embedded migrations the database lacks, found without
/// writing (a replica may not write outside HALT).
fn pending_migrations(conn: &mut SqliteConnection) -> Result<Vec<String>, ManifestError> {
    let has_table: i64 = diesel::dsl::sql::<BigInt>(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '__diesel_schema_migrations'",
    )
    .get_result(conn)?;
    let applied: Vec<String> = if has_table > 0 {
        diesel::dsl::sql::<Text>("SELECT version FROM __diesel_schema_migrations").load(conn)?
    } else {
        Vec::new()
    };
    let embedded = MigrationSource::<Sqlite>::migrations(&MIGRATIONS)
        .map_err(|e| ManifestError::Migration(e.to_string()))?;
    Ok(embedded
        .iter()
        .map(|m| m.name().version().to_string())
        .filter(|v| !applied.contains(v))
        .collect())
}

/// Readies the database at start: waits while LiteFS has not finished its
/// initial replication, then applies the migrations it lacks, under HALT on
/// a replica.
pub fn prepare(path: &Path, litefs: &LiteFsWrites) -> Result<(), ManifestError> {
    litefs.wait_for_initial_replication();
    let mut conn = connect(path)?;
    if pending_migrations(&mut conn)?.is_empty() {
        return Ok(());
    }
    let replica = litefs
        .role()
        .as_ref()
        .is_some_and(NodeRole::writes_under_halt);
    let guard = replica.then(|| litefs.halt()).transpose()?;
    // Checked again inside the write lock: nodes starting together on one
    // database must not both create the tables.
    conn.immediate_transaction(|conn| -> Result<(), ManifestError> {
        let pending = pending_migrations(conn)?;
        if !pending.is_empty() {
            tracing::info!(
                ?pending,
                under_halt = replica,
                "applying manifest migrations"
            );
            conn.run_pending_migrations(MIGRATIONS)
                .map_err(|e| ManifestError::Migration(e.to_string()))?;
        }
        Ok(())
    })?;
    drop(guard);
    Ok(())
}
