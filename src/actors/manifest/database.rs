//! The manifest database: opening a connection with caje's settings, and
//! readying the schema at start (waiting for LiteFS's initial replication,
//! then, on the primary or without LiteFS, switching to WAL and applying
//! missing migrations).
//!
//! A LiteFS replica never creates, migrates or switches the journal mode of
//! the database: the primary does, and LiteFS replicates the result (the
//! journal mode lives in the database header, bytes 18–19, which LiteFS ships
//! like any other page; see "How LiteFS Works",
//! <https://fly.io/docs/litefs/how-it-works/>, for both journal modes). A
//! replica only checks, without writing, whether the database is there and
//! migrated ([`replica_readiness`]) and waits until it is.

use std::path::{Path, PathBuf};

use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::litefs::{self, Lag, LiteFsError, LiteFsWrites, NodeRole};

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
    /// On a replica: the primary has not created or migrated the database yet.
    #[error("the manifest is not ready: waiting for {0}")]
    NotReady(String),
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

    /// The database is not there or not migrated yet on a replica: nothing
    /// failed, the node waits.
    pub(super) fn is_not_ready(&self) -> bool {
        matches!(self, ManifestError::NotReady(_))
    }
}

/// Whether the manifest can be used, as start-up and a waiting replica see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// What the node waits for, in words for the log and the health check.
    Waiting(String),
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

/// Opens a connection on a LiteFS replica: the file must exist (`mode=rw`
/// without create), and nothing is written: no journal-mode switch (the
/// primary chose it, LiteFS replicated it) and no directory created.
/// `busy_timeout` and `synchronous` only set this connection.
pub(super) fn connect_replica(path: &Path) -> Result<SqliteConnection, ManifestError> {
    let path = path
        .to_str()
        .ok_or_else(|| ManifestError::Path(path.to_owned()))?;
    let mut conn = SqliteConnection::establish(&format!("file:{path}?mode=rw"))?;
    diesel::sql_query(format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")).execute(&mut conn)?;
    diesel::sql_query("PRAGMA synchronous = NORMAL").execute(&mut conn)?;
    Ok(conn)
}

/// SQLite's `PRAGMA data_version`: changes when another connection commits.
pub(super) fn data_version(conn: &mut SqliteConnection) -> Result<i64, ManifestError> {
    Ok(diesel::dsl::sql::<BigInt>("PRAGMA data_version").get_result(conn)?)
}

/// Whether a replica can use the database at `path`, found without writing:
/// it must exist and hold every embedded migration. `conn` is the
/// connection to check through (opened here when `None`, kept for reuse).
pub(super) fn replica_readiness(
    path: &Path,
    conn: &mut Option<SqliteConnection>,
) -> Result<Readiness, ManifestError> {
    if !path.exists() {
        *conn = None;
        return Ok(Readiness::Waiting(format!(
            "the primary to create the manifest database {}",
            path.display()
        )));
    }
    if conn.is_none() {
        *conn = Some(connect_replica(path)?);
    }
    let Some(conn) = conn.as_mut() else {
        return Err(ManifestError::Path(path.to_owned()));
    };
    let pending = pending_migrations(conn)?;
    if pending.is_empty() {
        return Ok(Readiness::Ready);
    }
    let expected = MigrationSource::<Sqlite>::migrations(&MIGRATIONS)
        .map_err(|e| ManifestError::Migration(e.to_string()))?
        .len();
    Ok(Readiness::Waiting(format!(
        "the primary to migrate the manifest database {} ({} of {expected} migrations applied, pending {})",
        path.display(),
        expected.saturating_sub(pending.len()),
        pending.join(", ")
    )))
}

/// On a replica whose `.lag` says LiteFS has not finished the initial
/// replication: what it waits for. `None` once replicated (or without LiteFS).
pub(super) fn initial_replication(litefs: &LiteFsWrites) -> Option<Readiness> {
    matches!(litefs.lag(), Ok(Some(Lag::NotReplicatedYet))).then(|| {
        Readiness::Waiting("LiteFS to finish the initial replication of the manifest".into())
    })
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

/// Readies the database at start. On the primary or without LiteFS: waits
/// while `.lag` says LiteFS has not finished its initial replication, then
/// creates the database, switches it to WAL and applies the migrations it
/// lacks. A replica neither blocks nor writes: it answers whether LiteFS has
/// replicated and the primary has created and migrated the database
/// ([`Readiness::Waiting`] saying what is missing), and the manifest actor
/// checks again until so.
pub fn prepare(path: &Path, litefs: &LiteFsWrites) -> Result<Readiness, ManifestError> {
    let replica = litefs
        .role()
        .as_ref()
        .is_some_and(NodeRole::writes_under_halt);
    // A replica never fails or blocks start-up over the manifest: it serves and waits.
    let waiting = |e: ManifestError| Readiness::Waiting(format!("a readable manifest ({e})"));
    if replica {
        if let Some(replicating) = initial_replication(litefs) {
            return Ok(replicating);
        }
        return Ok(replica_readiness(path, &mut None).unwrap_or_else(waiting));
    }
    litefs.wait_for_initial_replication();
    match migrate(path) {
        Ok(()) => Ok(Readiness::Ready),
        // No `.primary`, yet read-only: a replica that lost its primary.
        Err(e) if e.is_read_only() && litefs.active() => Ok(waiting(e)),
        Err(e) => Err(e),
    }
}

/// Creates and migrates the database as the primary (or without LiteFS).
pub(super) fn migrate(path: &Path) -> Result<(), ManifestError> {
    let mut conn = connect(path)?;
    if pending_migrations(&mut conn)?.is_empty() {
        return Ok(());
    }
    // Checked again inside the write lock: nodes starting together on one
    // database must not both create the tables.
    conn.immediate_transaction(|conn| -> Result<(), ManifestError> {
        let pending = pending_migrations(conn)?;
        if !pending.is_empty() {
            tracing::info!(?pending, "applying manifest migrations");
            conn.run_pending_migrations(MIGRATIONS)
                .map_err(|e| ManifestError::Migration(e.to_string()))?;
        }
        Ok(())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel_migrations::MigrationHarness;

    use super::*;

    fn migration_count() -> usize {
        MigrationSource::<Sqlite>::migrations(&MIGRATIONS)
            .expect("embedded migrations")
            .len()
    }

    fn journal_mode(conn: &mut SqliteConnection) -> String {
        diesel::dsl::sql::<Text>("PRAGMA journal_mode")
            .get_result(conn)
            .expect("journal_mode")
    }

    #[test]
    fn a_replica_checks_readiness_without_creating_or_migrating() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("manifest.db");
        let mut conn = None;
        let missing = replica_readiness(&path, &mut conn).expect("readiness");
        assert!(
            matches!(&missing, Readiness::Waiting(why) if why.contains("to create")),
            "{missing:?}"
        );
        assert!(!path.exists(), "the check created the database");
        assert!(
            connect_replica(&path).is_err(),
            "opening must not create it"
        );

        // An older primary: one migration of two, rollback-journal mode.
        let mut primary = SqliteConnection::establish(path.to_str().expect("utf-8")).expect("open");
        primary.run_next_migration(MIGRATIONS).expect("first");
        assert_eq!(journal_mode(&mut primary), "delete");
        let before = std::fs::read(&path).expect("read");
        let behind = replica_readiness(&path, &mut conn).expect("readiness");
        assert!(
            matches!(&behind, Readiness::Waiting(why) if why.contains(&format!("1 of {}", migration_count()))),
            "{behind:?}"
        );
        let seen = conn
            .as_mut()
            .map(data_version)
            .transpose()
            .expect("version");
        // Not assert_eq: a failure would print the whole file.
        assert!(
            std::fs::read(&path).expect("read") == before,
            "the check wrote"
        );
        assert_eq!(
            journal_mode(conn.as_mut().expect("kept")),
            "delete",
            "a replica's connection must not switch the journal mode"
        );

        primary.run_pending_migrations(MIGRATIONS).expect("rest");
        let now = conn
            .as_mut()
            .map(data_version)
            .transpose()
            .expect("version");
        assert_ne!(seen, now, "the primary's commit changes data_version");
        assert_eq!(
            replica_readiness(&path, &mut conn).expect("readiness"),
            Readiness::Ready
        );
    }
}
