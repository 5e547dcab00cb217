//! `Manifest`: the one SQLite writer. It writes batches of stored pages to
//! the `pages` table, which LiteFS shares with every region. On a LiteFS
//! replica each batch is one transaction under one HALT lock. It runs on its
//! own thread (`SyncArbiter`) because diesel and the HALT lock block. A
//! failure is logged and counted, never returned to a user's request, and
//! the failed rows are kept and written again, with backoff, until they land.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use diesel::migration::MigrationSource;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::upsert::excluded;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use super::Mailbox;
use crate::cache::CacheKey;
use crate::config::LiteFsMode;
use crate::litefs::{self, HaltGuard, HaltLock, Lag, LiteFsError, Role};
use crate::metrics::{ActorMeter, ManifestMetrics};
use crate::schema::{pages, purges};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a write waits for another SQLite writer before failing.
const BUSY_TIMEOUT_MS: u32 = 5_000;
/// Rows kept for retry after failed writes; past it the newest are dropped.
const MAX_UNWRITTEN_ROWS: usize = 100_000;
/// First wait before kept rows are written again after a failure; it
/// doubles with each failure in a row, up to `MAX_RETRY_DELAY`, so a long
/// outage (a locked database, a HALT that cannot be had) is not hammered.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(250);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(30);
/// How often start-up looks again at LiteFS's `.lag` while waiting for the
/// initial replication.
const REPLICATION_POLL: Duration = Duration::from_millis(250);

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
    fn is_read_only(&self) -> bool {
        let ManifestError::Query(diesel::result::Error::DatabaseError(_, info)) = self else {
            return false;
        };
        let message = info.message().to_ascii_lowercase();
        ["readonly", "read only", "read-only"]
            .iter()
            .any(|m| message.contains(m))
    }
}

/// How manifest writes reach the database: directly, or under LiteFS's HALT
/// lock when this node is a replica.
#[derive(Debug, Clone)]
pub struct LiteFsWrites {
    mode: LiteFsMode,
    /// The database's directory, where LiteFS keeps `.primary` and `.lag`.
    dir: PathBuf,
    halt: HaltLock,
}

impl LiteFsWrites {
    pub fn new(mode: LiteFsMode, database: &Path, halt_timeout: Duration) -> Self {
        let dir = database
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        Self {
            mode,
            dir,
            halt: HaltLock::new(database).with_timeout(halt_timeout),
        }
    }

    /// Whether LiteFS manages the database: always with `on`, never with
    /// `off`, and with `auto` when its `.primary` or `.lag` file is there.
    fn active(&self) -> bool {
        match self.mode {
            LiteFsMode::Off => false,
            LiteFsMode::On => true,
            LiteFsMode::Auto => litefs::is_litefs_dir(&self.dir),
        }
    }

    /// The node's role, `None` when LiteFS is not active.
    fn role(&self) -> Option<Role> {
        if !self.active() {
            return None;
        }
        match litefs::role(&self.dir) {
            Ok(role) => Some(role),
            Err(e) => {
                // Writing as primary is tried first; a refusal retries under HALT.
                tracing::warn!(error = %e, "cannot read the LiteFS role; writing as primary");
                Some(Role::Primary)
            }
        }
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
    if litefs.active() {
        litefs::wait_for_replication(&litefs.dir, REPLICATION_POLL, |waits| {
            if waits % 40 == 0 {
                tracing::info!(
                    dir = %litefs.dir.display(),
                    "waiting for LiteFS to finish the initial replication of the manifest"
                );
            }
        });
    }
    let mut conn = connect(path)?;
    if pending_migrations(&mut conn)?.is_empty() {
        return Ok(());
    }
    let replica = matches!(litefs.role(), Some(Role::Replica { .. }));
    let guard = replica.then(|| litefs.halt.acquire()).transpose()?;
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

/// Stores of one page gathered for a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageVisit {
    pub key: CacheKey,
    /// Milliseconds since the Unix epoch.
    pub first_seen: i64,
    pub last_seen: i64,
    pub times: i64,
}

impl PageVisit {
    /// One store of `key`, now.
    pub fn now(key: CacheKey) -> Self {
        let now = now_ms();
        Self {
            key,
            first_seen: now,
            last_seen: now,
            times: 1,
        }
    }

    /// Adds `other`'s stores of the same page to this one.
    fn absorb(&mut self, other: &PageVisit) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.times += other.times;
    }
}

/// Milliseconds since the Unix epoch, as the manifest stores times.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Merges visits into a map keyed by page.
pub fn merge_visits(into: &mut HashMap<CacheKey, PageVisit>, visits: Vec<PageVisit>) {
    for visit in visits {
        match into.get_mut(&visit.key) {
            Some(existing) => existing.absorb(&visit),
            None => {
                into.insert(visit.key.clone(), visit);
            }
        }
    }
}

pub struct Manifest {
    path: PathBuf,
    litefs: LiteFsWrites,
    conn: Option<SqliteConnection>,
    metrics: ManifestMetrics,
    meter: ActorMeter,
    /// Rows of failed writes, written with the next batch or retry.
    unwritten: HashMap<CacheKey, PageVisit>,
    /// Wait before the next retry of `unwritten`.
    retry_delay: Duration,
    /// A `RetryUnwritten` is on its way: at most one at a time.
    retry_scheduled: bool,
}

impl Manifest {
    /// The connection opens on first use, and again after a failure.
    pub fn new(
        path: PathBuf,
        litefs: LiteFsWrites,
        metrics: ManifestMetrics,
        meter: ActorMeter,
    ) -> Self {
        Self {
            path,
            litefs,
            conn: None,
            metrics,
            meter,
            unwritten: HashMap::new(),
            retry_delay: FIRST_RETRY_DELAY,
            retry_scheduled: false,
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

    /// Refreshes the role and lag gauges; `true` on a replica.
    fn observe_role(&self) -> bool {
        let role = self.litefs.role();
        let replica = matches!(role, Some(Role::Replica { .. }));
        if role.is_some() {
            self.metrics
                .role
                .with_label_values(&["primary"])
                .set(i64::from(!replica));
            self.metrics
                .role
                .with_label_values(&["replica"])
                .set(i64::from(replica));
            let lag = match litefs::lag(&self.litefs.dir) {
                Ok(Some(Lag::Millis(ms))) => ms as f64 / 1000.0,
                Ok(Some(Lag::NotReplicatedYet)) => -1.0,
                _ => 0.0,
            };
            self.metrics.lag_seconds.set(lag);
        }
        replica
    }

    /// Runs `change` in one write transaction: under HALT on a replica,
    /// and again under HALT when refused as read-only without `.primary`
    /// (a replica that lost its primary) rather than lost.
    fn write<T>(
        &mut self,
        change: impl Fn(&mut SqliteConnection) -> QueryResult<T>,
    ) -> Result<T, ManifestError> {
        let replica = self.observe_role();
        match self.write_once(&change, replica) {
            Err(e) if !replica && self.litefs.active() && e.is_read_only() => {
                tracing::warn!(error = %e, "manifest write refused as read-only; retrying under HALT");
                self.conn = None;
                self.write_once(&change, true)
            }
            other => other,
        }
    }

    fn write_once<T>(
        &mut self,
        change: &impl Fn(&mut SqliteConnection) -> QueryResult<T>,
        halt: bool,
    ) -> Result<T, ManifestError> {
        let guard = if halt { Some(self.take_halt()?) } else { None };
        let written = self
            .conn()
            .and_then(|conn| Ok(conn.immediate_transaction(|conn| change(conn))?));
        if let Some(guard) = guard {
            self.metrics
                .halt_hold_seconds
                .observe(guard.release().as_secs_f64());
        }
        written
    }

    fn write_rows(&mut self, rows: &[PageVisit]) -> Result<(), ManifestError> {
        self.write(|conn| upsert(conn, rows))?;
        self.metrics.batches.inc();
        self.metrics.batch_rows.observe(rows.len() as f64);
        self.metrics.rows_written.inc_by(rows.len() as u64);
        Ok(())
    }

    fn take_halt(&self) -> Result<HaltGuard, ManifestError> {
        match self.litefs.halt.acquire() {
            Ok(guard) => {
                self.metrics.halt_acquisitions.inc();
                self.metrics
                    .halt_wait_seconds
                    .observe(guard.waited().as_secs_f64());
                Ok(guard)
            }
            Err(e) => {
                self.metrics.halt_failures.inc();
                Err(e.into())
            }
        }
    }

    /// Counts and logs a failure; drops the connection so the next message reopens it.
    fn failed(&mut self, what: &'static str, error: &ManifestError) {
        self.conn = None;
        self.meter.error(what);
        tracing::warn!(%error, "manifest {what} failed");
    }
}

fn upsert(conn: &mut SqliteConnection, rows: &[PageVisit]) -> QueryResult<()> {
    for row in rows {
        diesel::insert_into(pages::table)
            .values((
                pages::method.eq(&row.key.method),
                pages::host.eq(&row.key.host),
                pages::path_and_query.eq(&row.key.path_and_query),
                pages::first_seen.eq(row.first_seen),
                pages::last_seen.eq(row.last_seen),
                pages::times_stored.eq(row.times),
            ))
            .on_conflict((pages::method, pages::host, pages::path_and_query))
            .do_update()
            .set((
                pages::last_seen.eq(excluded(pages::last_seen)),
                pages::times_stored.eq(pages::times_stored + excluded(pages::times_stored)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

impl Actor for Manifest {
    type Context = SyncContext<Self>;
}

/// Writes gathered page visits (and any earlier failed ones) in one transaction.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WriteBatch(pub Vec<PageVisit>);

impl Handler<WriteBatch> for Manifest {
    type Result = ();

    fn handle(&mut self, msg: WriteBatch, ctx: &mut Self::Context) {
        let _handling = self.meter.handling("write_batch");
        let _span = tracing::debug_span!("manifest.write_batch", rows = msg.0.len()).entered();
        if self.unwritten.len() + msg.0.len() > MAX_UNWRITTEN_ROWS {
            tracing::error!(
                kept = self.unwritten.len(),
                dropped = msg.0.len(),
                "too many manifest rows wait for a write; dropping the newest"
            );
        } else {
            merge_visits(&mut self.unwritten, msg.0);
        }
        self.write_unwritten("write_batch", ctx);
    }
}

/// Writes the rows kept from failed writes again; sent by the actor to
/// itself, with backoff, while a write keeps failing.
#[derive(Message)]
#[rtype(result = "()")]
struct RetryUnwritten;

impl Handler<RetryUnwritten> for Manifest {
    type Result = ();

    fn handle(&mut self, _msg: RetryUnwritten, ctx: &mut Self::Context) {
        let _handling = self.meter.handling("retry_unwritten");
        let _span =
            tracing::debug_span!("manifest.retry_unwritten", rows = self.unwritten.len()).entered();
        self.retry_scheduled = false;
        if !self.unwritten.is_empty() {
            self.metrics.write_retries.inc();
            self.write_unwritten("retry_unwritten", ctx);
        }
    }
}

impl Manifest {
    /// Writes the kept rows in one transaction. After a failure they stay
    /// kept and a retry is scheduled, so they land once the database or the
    /// HALT lock is free again even if no other page is stored meanwhile.
    fn write_unwritten(&mut self, what: &'static str, ctx: &SyncContext<Self>) {
        if self.unwritten.is_empty() {
            return;
        }
        let rows: Vec<PageVisit> = self.unwritten.values().cloned().collect();
        match self.write_rows(&rows) {
            Ok(()) => {
                self.unwritten.clear();
                self.retry_delay = FIRST_RETRY_DELAY;
            }
            Err(e) => {
                self.metrics.write_errors.inc();
                self.failed(what, &e);
                self.schedule_retry(ctx);
            }
        }
    }

    /// Sends this actor a `RetryUnwritten` after the current backoff. A
    /// `SyncContext` has no timers, so the system arbiter keeps the time.
    fn schedule_retry(&mut self, ctx: &SyncContext<Self>) {
        if self.retry_scheduled {
            return;
        }
        let delay = self.retry_delay;
        let me = Mailbox::new(ctx.address(), self.meter.clone());
        // `false` only while the system shuts down: nothing is left to retry then.
        self.retry_scheduled = System::current().arbiter().spawn(async move {
            actix::clock::sleep(delay).await;
            me.do_send(RetryUnwritten);
        });
        self.retry_delay = (delay * 2).min(MAX_RETRY_DELAY);
    }
}

/// Pages of the manifest, oldest first: `limit` of them after `offset`.
#[derive(Message)]
#[rtype(result = "Result<PageList, ManifestError>")]
pub struct ListPages {
    pub offset: usize,
    pub limit: usize,
}

impl ListPages {
    /// Every page.
    pub fn all() -> Self {
        Self {
            offset: 0,
            limit: usize::MAX,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PageList {
    pub total: usize,
    pub pages: Vec<Page>,
}

impl Handler<ListPages> for Manifest {
    type Result = Result<PageList, ManifestError>;

    fn handle(&mut self, msg: ListPages, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("list_pages");
        let _span = tracing::debug_span!("manifest.list_pages").entered();
        let offset = i64::try_from(msg.offset).unwrap_or(i64::MAX);
        let limit = i64::try_from(msg.limit).unwrap_or(i64::MAX);
        let result = self.conn().and_then(|conn| {
            let total: i64 = pages::table.count().get_result(conn)?;
            let pages = pages::table
                .order(pages::id)
                .offset(offset)
                .limit(limit)
                .select(Page::as_select())
                .load(conn)?;
            Ok(PageList {
                total: usize::try_from(total).unwrap_or(0),
                pages,
            })
        });
        if let Err(e) = &result {
            self.failed("list_pages", e);
        }
        result
    }
}

/// Empties the shared manifest (every region sees it); answers how many
/// pages it held.
#[derive(Message)]
#[rtype(result = "Result<usize, ManifestError>")]
pub struct ClearPages;

impl Handler<ClearPages> for Manifest {
    type Result = Result<usize, ManifestError>;

    fn handle(&mut self, _msg: ClearPages, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("clear_pages");
        let _span = tracing::info_span!("manifest.clear_pages").entered();
        self.unwritten.clear();
        let result = self.write(|conn| diesel::delete(pages::table).execute(conn));
        if let Err(e) = &result {
            self.failed("clear_pages", e);
        }
        result
    }
}

/// This node's LiteFS role, as a health check reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, MessageResponse)]
pub struct RoleReport {
    /// `primary`, `replica`, or `standalone` when LiteFS is not in use.
    pub role: &'static str,
    /// The primary's host name, on a replica.
    pub primary: Option<String>,
}

/// Answers at once with the node's role: also tells a health check that the
/// writer thread is alive.
#[derive(Message)]
#[rtype(result = "RoleReport")]
pub struct GetRole;

impl Handler<GetRole> for Manifest {
    type Result = RoleReport;

    fn handle(&mut self, _msg: GetRole, _ctx: &mut Self::Context) -> RoleReport {
        let _handling = self.meter.handling("get_role");
        let _span = tracing::debug_span!("manifest.get_role").entered();
        self.observe_role();
        match self.litefs.role() {
            None => RoleReport {
                role: "standalone",
                primary: None,
            },
            Some(Role::Primary) => RoleReport {
                role: "primary",
                primary: None,
            },
            Some(Role::Replica { primary }) => RoleReport {
                role: "replica",
                primary: Some(primary),
            },
        }
    }
}

/// What a purge drops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum PurgeTarget {
    /// Every stored variant of one URL.
    Url(CacheKey),
    /// Every stored response carrying a tag, on any host.
    Tag(String),
}

/// A purge as logged in the shared manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPurge {
    pub id: i64,
    pub target: PurgeTarget,
    pub soft: bool,
}

/// Appends a purge to the shared log, for every node to apply; answers its id.
#[derive(Message)]
#[rtype(result = "Result<i64, ManifestError>")]
pub struct LogPurge {
    pub target: PurgeTarget,
    pub soft: bool,
}

impl Handler<LogPurge> for Manifest {
    type Result = Result<i64, ManifestError>;

    fn handle(&mut self, msg: LogPurge, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("log_purge");
        let _span =
            tracing::info_span!("manifest.log_purge", target = ?msg.target, soft = msg.soft)
                .entered();
        let (kind, host, target) = match &msg.target {
            PurgeTarget::Url(key) => ("url", key.host.as_str(), key.path_and_query.as_str()),
            PurgeTarget::Tag(tag) => ("tag", "", tag.as_str()),
        };
        let now = now_ms();
        let result = self.write(|conn| {
            diesel::insert_into(purges::table)
                .values((
                    purges::kind.eq(kind),
                    purges::host.eq(host),
                    purges::target.eq(target),
                    purges::soft.eq(msg.soft),
                    purges::created_at.eq(now),
                ))
                .execute(conn)?;
            diesel::select(diesel::dsl::sql::<BigInt>("last_insert_rowid()")).get_result(conn)
        });
        if let Err(e) = &result {
            self.failed("log_purge", e);
        }
        result
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = purges)]
struct PurgeRow {
    id: i32,
    kind: String,
    host: String,
    target: String,
    soft: bool,
}

/// Purges logged after `id`, oldest first (at most 1,000).
#[derive(Message)]
#[rtype(result = "Result<Vec<LoggedPurge>, ManifestError>")]
pub struct PurgesSince(pub i64);

impl Handler<PurgesSince> for Manifest {
    type Result = Result<Vec<LoggedPurge>, ManifestError>;

    fn handle(&mut self, msg: PurgesSince, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("purges_since");
        let _span = tracing::debug_span!("manifest.purges_since", after = msg.0).entered();
        let after = i32::try_from(msg.0).unwrap_or(i32::MAX);
        let rows = self.conn().and_then(|conn| {
            Ok(purges::table
                .filter(purges::id.gt(after))
                .order(purges::id)
                .limit(1_000)
                .select(PurgeRow::as_select())
                .load(conn)?)
        });
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                self.failed("purges_since", &e);
                return Err(e);
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let target = match row.kind.as_str() {
                    "url" => PurgeTarget::Url(CacheKey::new("GET", &row.host, &row.target)),
                    "tag" => PurgeTarget::Tag(row.target),
                    _ => return None,
                };
                Some(LoggedPurge {
                    id: i64::from(row.id),
                    target,
                    soft: row.soft,
                })
            })
            .collect())
    }
}

/// The id of the newest logged purge (0 when there is none).
#[derive(Message)]
#[rtype(result = "Result<i64, ManifestError>")]
pub struct LastPurgeId;

impl Handler<LastPurgeId> for Manifest {
    type Result = Result<i64, ManifestError>;

    fn handle(&mut self, _msg: LastPurgeId, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("last_purge_id");
        let result = self.conn().and_then(|conn| {
            let id: Option<i32> = purges::table
                .select(diesel::dsl::max(purges::id))
                .get_result(conn)?;
            Ok(i64::from(id.unwrap_or(0)))
        });
        if let Err(e) = &result {
            self.failed("last_purge_id", e);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_refused_as_read_only_is_recognised() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("manifest.db");
        let litefs = LiteFsWrites::new(LiteFsMode::Off, &path, Duration::from_secs(1));
        prepare(&path, &litefs).expect("prepared");
        // SQLite itself refuses, as on a LiteFS replica written without HALT.
        let mut read_only =
            SqliteConnection::establish(&format!("file:{}?mode=ro", path.display()))
                .expect("open read-only");
        let visit = PageVisit::now(CacheKey::new("GET", "a", "/x"));
        let refused = ManifestError::from(
            upsert(&mut read_only, &[visit]).expect_err("a read-only database refuses"),
        );
        assert!(refused.is_read_only(), "{refused}");
        let other = ManifestError::from(diesel::result::Error::NotFound);
        assert!(!other.is_read_only());
    }
}
