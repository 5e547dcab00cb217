//! `Manifest`: the one SQLite writer. It records every page this node stores
//! in the `pages` table, which LiteFS shares with every region. It runs on
//! its own thread (`SyncArbiter`) because diesel blocks. A failure is logged
//! and counted, never returned to a user's request.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use diesel::prelude::*;
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::cache::CacheKey;
use crate::schema::pages;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

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
}

/// Opens a connection with the settings every caje connection uses.
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
    diesel::sql_query("PRAGMA journal_mode = WAL").execute(&mut conn)?;
    diesel::sql_query("PRAGMA synchronous = NORMAL").execute(&mut conn)?;
    Ok(conn)
}

/// Opens the database and applies the embedded migrations it lacks.
pub fn prepare(path: &Path) -> Result<(), ManifestError> {
    let mut conn = connect(path)?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| ManifestError::Migration(e.to_string()))?;
    Ok(())
}

/// A row of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = pages)]
pub struct Page {
    pub method: String,
    pub host: String,
    pub path_and_query: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub times_stored: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, MessageResponse)]
pub struct ManifestStats {
    pub recorded: u64,
    pub errors: u64,
}

pub struct Manifest {
    path: PathBuf,
    conn: Option<SqliteConnection>,
    stats: ManifestStats,
}

impl Manifest {
    /// The connection opens on first use, and again after a failure.
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            conn: None,
            stats: ManifestStats::default(),
        }
    }

    fn conn(&mut self) -> Result<&mut SqliteConnection, ManifestError> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.path)?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ManifestError::Path(self.path.clone()))
    }

    fn record(&mut self, key: &CacheKey) -> Result<(), ManifestError> {
        let now = now_ms();
        diesel::insert_into(pages::table)
            .values((
                pages::method.eq(&key.method),
                pages::host.eq(&key.host),
                pages::path_and_query.eq(&key.path_and_query),
                pages::first_seen.eq(now),
                pages::last_seen.eq(now),
                pages::times_stored.eq(1),
            ))
            .on_conflict((pages::method, pages::host, pages::path_and_query))
            .do_update()
            .set((
                pages::last_seen.eq(now),
                pages::times_stored.eq(pages::times_stored + 1),
            ))
            .execute(self.conn()?)?;
        Ok(())
    }

    /// Counts and logs a failure; drops the connection so the next message reopens it.
    fn failed(&mut self, what: &str, error: &ManifestError) {
        self.stats.errors += 1;
        self.conn = None;
        tracing::warn!(%error, "manifest {what} failed");
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Actor for Manifest {
    type Context = SyncContext<Self>;
}

/// Records that a page was stored: inserts its row or touches it.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RecordPage {
    pub key: CacheKey,
}

impl Handler<RecordPage> for Manifest {
    type Result = ();

    fn handle(&mut self, msg: RecordPage, _ctx: &mut Self::Context) {
        let _span = tracing::debug_span!("manifest.record", host = %msg.key.host, path = %msg.key.path_and_query).entered();
        match self.record(&msg.key) {
            Ok(()) => self.stats.recorded += 1,
            Err(e) => self.failed("record", &e),
        }
    }
}

/// Every page in the manifest, oldest first.
#[derive(Message)]
#[rtype(result = "Result<Vec<Page>, ManifestError>")]
pub struct ListPages;

impl Handler<ListPages> for Manifest {
    type Result = Result<Vec<Page>, ManifestError>;

    fn handle(&mut self, _msg: ListPages, _ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::debug_span!("manifest.list_pages").entered();
        let result = pages::table
            .order(pages::id)
            .select(Page::as_select())
            .load(self.conn()?)
            .map_err(ManifestError::from);
        if let Err(e) = &result {
            self.failed("list", e);
        }
        result
    }
}

/// The manifest's counters.
#[derive(Message)]
#[rtype(result = "ManifestStats")]
pub struct GetManifestStats;

impl Handler<GetManifestStats> for Manifest {
    type Result = ManifestStats;

    fn handle(&mut self, _msg: GetManifestStats, _ctx: &mut Self::Context) -> ManifestStats {
        self.stats
    }
}
