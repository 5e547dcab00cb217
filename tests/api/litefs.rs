//! Manifest writes on a LiteFS replica go through the HALT lock, observed
//! from outside with real open-file-description locks.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use caje::actors::manifest;
use diesel::RunQueryDsl;
use futures_util::future::join_all;

use crate::helpers::{eventually, spawn_app_in, spawn_origin, TestApp};

/// How many migrations caje embeds: one folder each in `migrations/`.
fn migration_count() -> usize {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
    std::fs::read_dir(dir).expect("migrations folder").count()
}

/// A directory laid out as LiteFS presents it on a replica: `.primary`
/// names the primary, and the database, created and migrated by the
/// primary, is there with its `-lock` file.
fn replica_dir() -> Arc<tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("temp dir");
    migrate_as_primary(&dir.path().join("manifest.db"));
    std::fs::write(dir.path().join(".primary"), "primary.internal\n").expect(".primary");
    std::fs::write(dir.path().join(".lag"), "+000000012").expect(".lag");
    File::create(lock_path(dir.path())).expect("lock file");
    Arc::new(dir)
}

/// What the primary does at start: create the database and apply every
/// migration (WAL mode), as caje does without LiteFS.
fn migrate_as_primary(database: &Path) {
    let litefs = manifest::LiteFsWrites::new(
        caje::config::LiteFsMode::Off,
        database,
        Duration::from_secs(1),
    );
    let ready = manifest::prepare(database, &litefs).expect("the primary migrates");
    assert_eq!(ready, manifest::Readiness::Ready);
}

fn lock_path(dir: &Path) -> PathBuf {
    dir.join("manifest.db-lock")
}

fn halt_request(kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is plain old data; zero is a valid value for every field.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = 72;
    fl.l_len = 1;
    fl
}

/// Whether another open file description holds the HALT byte (byte 72).
fn halt_held(dir: &Path) -> bool {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(lock_path(dir))
        .expect("open lock file");
    let mut fl = halt_request(libc::F_WRLCK);
    // SAFETY: a valid descriptor and a valid flock for F_OFD_GETLK.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    assert_eq!(rc, 0, "F_OFD_GETLK: {}", std::io::Error::last_os_error());
    fl.l_type == libc::F_WRLCK as libc::c_short
}

/// Takes the HALT byte from outside caje; dropping the file releases it.
fn hold_halt(dir: &Path) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(lock_path(dir))
        .expect("open lock file");
    let fl = halt_request(libc::F_WRLCK);
    // SAFETY: a valid descriptor and a valid flock for F_OFD_SETLK.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &fl) };
    assert_eq!(rc, 0, "F_OFD_SETLK: {}", std::io::Error::last_os_error());
    file
}

async fn replica(window: Duration) -> (crate::helpers::TestOrigin, TestApp) {
    let origin = spawn_origin().await;
    let app = spawn_app_in(&origin, replica_dir(), |s| {
        s.litefs = caje::config::LiteFsMode::Auto;
        s.manifest_batch_window = window;
        s.halt_timeout = Duration::from_millis(300);
    })
    .await;
    (origin, app)
}

#[actix_web::test]
async fn a_burst_on_a_replica_is_written_in_few_batches_each_under_one_halt() {
    let (_origin, app) = replica(Duration::from_millis(200)).await;
    let paths: Vec<String> = (0..200).map(|i| format!("/cache/burst/{i}")).collect();
    join_all(paths.iter().map(|p| app.get(p))).await;

    let pages = app.pages(200).await;
    assert_eq!(pages.len(), 200);
    let m = &app.metrics.manifest;
    let (halts, batches) = (m.halt_acquisitions.get(), m.batches.get());
    assert_eq!(halts, batches, "every batch took exactly one HALT");
    assert!(batches <= 10, "{batches} batches for 200 stores");
    assert_eq!(m.rows_written.get(), 200);
    assert_eq!(m.halt_failures.get(), 0);
    assert_eq!(m.role.with_label_values(&["replica"]).get(), 1);
    assert!((m.lag_seconds.get() - 0.012).abs() < 1e-9);
    assert!(!halt_held(app.dir.path()), "HALT released after the writes");
}

#[actix_web::test]
async fn halt_is_held_while_a_replica_writes_and_free_afterwards() {
    let (_origin, app) = replica(Duration::from_millis(10)).await;
    // Hold SQLite's write lock, so caje's write waits inside its HALT.
    let mut blocker = manifest::connect(&app.dir.path().join("manifest.db")).expect("open");
    diesel::sql_query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .expect("begin");

    app.get("/cache/halted").await;
    eventually(|| async { halt_held(app.dir.path()).then_some(()) }).await;
    assert_eq!(committed_rows(&mut blocker), 0);

    diesel::sql_query("COMMIT")
        .execute(&mut blocker)
        .expect("commit");
    let pages = app.pages(1).await;
    assert_eq!(pages[0].path_and_query, "/cache/halted");
    eventually(|| async { (!halt_held(app.dir.path())).then_some(()) }).await;
    assert_eq!(app.metrics.manifest.halt_acquisitions.get(), 1);
}

#[actix_web::test]
async fn a_halt_that_cannot_be_taken_fails_clearly_and_loses_no_row() {
    let (_origin, app) = replica(Duration::from_millis(10)).await;
    let held = hold_halt(app.dir.path());
    app.get("/cache/first").await;
    let m = &app.metrics.manifest;
    eventually(|| async { (m.write_errors.get() >= 1).then_some(()) }).await;
    assert!(m.halt_failures.get() >= 1);
    assert_eq!(m.rows_written.get(), 0);

    drop(held);
    app.get("/cache/second").await;
    let pages = app.pages(2).await;
    let mut paths: Vec<&str> = pages.iter().map(|p| p.path_and_query.as_str()).collect();
    paths.sort();
    assert_eq!(paths, ["/cache/first", "/cache/second"]);
}

#[actix_web::test]
async fn the_primary_writes_without_halt() {
    let origin = spawn_origin().await;
    // LiteFS's .lag is there but .primary is not: this node is the primary.
    // With no -lock file, any attempt to take HALT would fail the write.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(".lag"), "+000000000").expect(".lag");
    let app = spawn_app_in(&origin, Arc::new(dir), |s| {
        s.litefs = caje::config::LiteFsMode::Auto;
        s.manifest_batch_window = Duration::from_millis(10);
    })
    .await;
    app.get("/cache/p1").await;
    app.get("/cache/p2").await;
    app.pages(2).await;
    let m = &app.metrics.manifest;
    assert_eq!((m.halt_acquisitions.get(), m.halt_failures.get()), (0, 0));
    assert_eq!(m.role.with_label_values(&["primary"]).get(), 1);
    assert_eq!(m.role.with_label_values(&["replica"]).get(), 0);
}

/// Rows committed to the manifest, as another connection sees them.
fn committed_rows(conn: &mut diesel::SqliteConnection) -> i64 {
    use diesel::prelude::*;
    caje::schema::pages::table
        .count()
        .get_result(conn)
        .expect("count")
}

/// The bytes and modification time of a file, to show nothing wrote it.
fn snapshot(file: &Path) -> (Vec<u8>, std::time::SystemTime) {
    let bytes = std::fs::read(file).expect("read the database file");
    let mtime = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .expect("mtime");
    (bytes, mtime)
}

/// The journal mode of a database, read from outside caje.
fn journal_mode(database: &Path) -> String {
    use diesel::prelude::*;
    let mut conn =
        diesel::SqliteConnection::establish(&format!("file:{}?mode=ro", database.display()))
            .expect("open read-only");
    diesel::dsl::sql::<diesel::sql_types::Text>("PRAGMA journal_mode")
        .get_result(&mut conn)
        .expect("journal_mode")
}

/// The database files in `dir`: the database and any journal, WAL or shm.
fn database_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("manifest.db") && n != "manifest.db-lock")
        .collect();
    names.sort();
    names
}

#[actix_web::test]
async fn a_replica_started_before_the_primary_serves_writes_nothing_and_catches_up() {
    use crate::helpers::{
        admin_request, manifest_paths, process_config, request, test_client, CajeProcess, HOST,
    };
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("manifest.db");
    // LiteFS on a fresh deploy: this node is a replica of a primary that has
    // not created the manifest yet.
    std::fs::write(dir.path().join(".primary"), "primary.internal\n").expect(".primary");
    let token = "replica-test-token-0123456789";
    let config = process_config(
        dir.path(),
        &origin.url(),
        "manifest_batch_window = \"10ms\"",
    );
    // Announcing its port proves start-up did not block on the manifest.
    let replica = CajeProcess::start_with(
        "replica",
        &config,
        &[("CAJE_LITEFS", "auto"), ("CAJE_ADMIN_TOKEN", token)],
    )
    .await;
    let client = test_client();
    let get = |path: &str| {
        let (client, url) = (client.clone(), replica.url(path));
        async move { request(&client, &url, "GET", HOST, &[]).await }
    };

    assert_eq!(get("/cache/early").await.status, 200);
    assert_eq!(get("/cache/early").await.status, 200, "served again");
    let said = eventually(|| async {
        let log = replica.log();
        log.contains("manifest not ready on this replica")
            .then_some(log)
    })
    .await;
    assert!(
        said.contains("the primary to create the manifest database")
            && said.contains(&database.display().to_string()),
        "the log says what it waits for: {said}"
    );
    let health = get("/_caje/health").await;
    assert_eq!(
        health.status, 200,
        "a waiting replica is healthy: it serves"
    );
    let body = health.json();
    assert_eq!(
        (body["role"].as_str(), body["manifest"].as_str()),
        (Some("replica"), Some("waiting"))
    );
    assert!(
        body["manifest_waiting_for"]
            .as_str()
            .is_some_and(|w| w.contains("to create the manifest database")),
        "{body}"
    );
    // The row of the store is kept, waiting for the manifest.
    eventually(|| async {
        let metrics = admin_request(
            &client,
            &replica.url("/_caje/metrics"),
            "GET",
            Some(token),
            None,
        )
        .await
        .body;
        metrics
            .lines()
            .any(|l| l == "caje_manifest_rows_unwritten 1")
            .then_some(())
    })
    .await;
    assert!(
        database_files(dir.path()).is_empty(),
        "a waiting replica created {:?}",
        database_files(dir.path())
    );

    // The primary creates and migrates the database; LiteFS adds the lock file.
    migrate_as_primary(&database);
    File::create(lock_path(dir.path())).expect("lock file");

    // The row gathered while waiting lands, and so do later ones: no restart.
    eventually(|| async {
        manifest_paths(&database)
            .contains("/cache/early")
            .then_some(())
    })
    .await;
    assert_eq!(get("/cache/late").await.status, 200);
    eventually(|| async {
        manifest_paths(&database)
            .contains("/cache/late")
            .then_some(())
    })
    .await;
    let body = get("/_caje/health").await.json();
    assert_eq!(body["manifest"], "ready");
    assert!(body.get("manifest_waiting_for").is_none(), "{body}");
    replica.logged("the manifest is ready").await;
}

#[actix_web::test]
async fn a_replica_neither_switches_the_journal_mode_nor_writes_at_start_up() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("manifest.db");
    migrate_as_primary(&database);
    {
        // The primary's database in rollback-journal mode, which LiteFS
        // supports as well: a replica must keep it so.
        use diesel::prelude::*;
        let mut conn = manifest::connect(&database).expect("open");
        diesel::sql_query("PRAGMA journal_mode = DELETE")
            .execute(&mut conn)
            .expect("journal_mode = DELETE");
    }
    assert_eq!(journal_mode(&database), "delete");
    std::fs::write(dir.path().join(".primary"), "primary.internal\n").expect(".primary");
    File::create(lock_path(dir.path())).expect("lock file");
    let before = snapshot(&database);
    let files = database_files(dir.path());

    // HALT is held from outside through the whole start-up: a replica that
    // wrote anything at start-up would have to wait for it, or write without it.
    let held = hold_halt(dir.path());
    let app = spawn_app_in(&origin, Arc::new(dir), |s| {
        s.litefs = caje::config::LiteFsMode::Auto;
        s.manifest_batch_window = Duration::from_millis(10);
        s.halt_timeout = Duration::from_millis(300);
    })
    .await;
    let m = &app.metrics.manifest;
    eventually(|| async { (m.ready.get() == 1).then_some(()) }).await;
    assert_eq!(app.pages(0).await.len(), 0, "it reads the manifest");
    assert_eq!(app.get("/cache/served").await.status, 200);
    assert_eq!(m.halt_acquisitions.get(), 0, "no HALT, so no write");
    assert_eq!(journal_mode(&database), "delete");
    assert_eq!(database_files(app.dir.path()), files);
    let after = snapshot(&database);
    assert!(before.0 == after.0, "the replica changed the database file");
    assert_eq!(before.1, after.1, "the replica wrote the database file");

    // Its writes go under HALT once it is free.
    drop(held);
    let pages = app.pages(1).await;
    assert_eq!(pages[0].path_and_query, "/cache/served");
    assert!(m.halt_acquisitions.get() >= 1);
    assert_eq!(journal_mode(&database), "delete");
}

#[actix_web::test]
async fn a_replica_waits_for_the_primary_to_finish_migrating() {
    use diesel::Connection;
    use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
    const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("manifest.db");
    // An older primary: only the first migration is applied.
    let mut primary =
        diesel::SqliteConnection::establish(&database.display().to_string()).expect("open");
    primary
        .run_next_migration(MIGRATIONS)
        .expect("first migration");
    std::fs::write(dir.path().join(".primary"), "primary.internal\n").expect(".primary");
    File::create(lock_path(dir.path())).expect("lock file");
    let before = snapshot(&database);

    let app = spawn_app_in(&origin, Arc::new(dir), |s| {
        s.litefs = caje::config::LiteFsMode::Auto;
        s.manifest_batch_window = Duration::from_millis(10);
    })
    .await;
    assert_eq!(app.get("/cache/meanwhile").await.status, 200);
    let m = &app.metrics.manifest;
    eventually(|| async { (m.rows_unwritten.get() == 1).then_some(()) }).await;
    let health = app.request("GET", "any.test", "/_caje/health", &[]).await;
    let body = health.json();
    assert_eq!(
        (health.status, body["manifest"].as_str()),
        (200, Some("waiting"))
    );
    let why = body["manifest_waiting_for"].as_str().unwrap_or_default();
    assert!(
        why.contains("to migrate") && why.contains(&format!("1 of {}", migration_count())),
        "{body}"
    );
    assert_eq!(m.ready.get(), 0);
    // Deferred, not failed: the kept row waits without errors or HALT.
    assert_eq!((m.write_errors.get(), m.halt_acquisitions.get()), (0, 0));
    assert!(before.0 == snapshot(&database).0, "the replica migrated");

    primary
        .run_pending_migrations(MIGRATIONS)
        .expect("the rest of the migrations");
    eventually(|| async { (m.ready.get() == 1).then_some(()) }).await;
    let pages = app.pages(1).await;
    assert_eq!(pages[0].path_and_query, "/cache/meanwhile");
    assert_eq!((m.rows_dropped.get(), m.rows_unwritten.get()), (0, 0));
}

#[actix_web::test]
async fn a_replica_serves_while_litefs_has_not_finished_the_initial_replication() {
    let origin = spawn_origin().await;
    let dir = replica_dir();
    // `.lag` as LiteFS writes it before the initial replication is done.
    std::fs::write(dir.path().join(".lag"), "+2147483647").expect(".lag");
    let started = tokio::time::timeout(
        Duration::from_secs(10),
        spawn_app_in(&origin, dir, |s| {
            s.litefs = caje::config::LiteFsMode::Auto;
            s.manifest_batch_window = Duration::from_millis(10);
        }),
    )
    .await;
    let app = started.expect("start-up must not block on the initial replication");
    assert_eq!(app.get("/cache/replicating").await.status, 200);
    let body = app
        .request("GET", "any.test", "/_caje/health", &[])
        .await
        .json();
    assert_eq!(body["manifest"], "waiting");
    assert!(
        body["manifest_waiting_for"]
            .as_str()
            .is_some_and(|w| w.contains("initial replication")),
        "{body}"
    );
    let m = &app.metrics.manifest;
    eventually(|| async { (m.rows_unwritten.get() == 1).then_some(()) }).await;
    assert_eq!(m.halt_acquisitions.get(), 0);

    std::fs::write(app.dir.path().join(".lag"), "+000000005").expect(".lag");
    let pages = app.pages(1).await;
    assert_eq!(pages[0].path_and_query, "/cache/replicating");
}

/// A purge logged by another region reaches a replica whose manifest writer
/// is blocked waiting for HALT: purge reads go through the watch's
/// read-only connection, never behind a write.
#[actix_web::test]
async fn a_replica_applies_a_purge_while_its_writer_waits_for_halt() {
    use crate::helpers::{log_purge_as_another_node, HOST};

    let origin = spawn_origin().await;
    let dir = replica_dir();
    let database = dir.path().join("manifest.db");
    let cursor = dir.path().join("cache").join("purge-cursor");
    let app = spawn_app_in(&origin, dir, |s| {
        s.litefs = caje::config::LiteFsMode::Auto;
        s.manifest_batch_window = Duration::from_millis(10);
        // A write waits this long for HALT: far longer than the purge may take.
        s.halt_timeout = Duration::from_secs(10);
        // Only the change-driven sync can carry the purge in time.
        s.sync_interval = Duration::from_millis(50);
        s.purge_poll_interval = Duration::from_secs(3600);
    })
    .await;
    // Purge sync has its cursor (the log's end, 0), and the watch has read
    // the log once: a purge logged from now on is new to both.
    eventually(|| async {
        let saved = std::fs::read_to_string(&cursor).ok()?;
        (saved.trim() == "0" && app.metrics.sync.changes.get() >= 1).then_some(())
    })
    .await;

    // Another node holds HALT; this node stores a page, so its writer
    // blocks taking HALT for the batch.
    let held = hold_halt(app.dir.path());
    let path = "/cache/purged-while-halted";
    assert_eq!(app.get(path).await.status, 200);
    app.stored(1).await;
    let m = &app.metrics.manifest;
    eventually(|| async {
        let text = app.metrics.render().expect("metrics");
        text.lines()
            .any(|l| {
                l.starts_with("caje_actor_messages_total{")
                    && l.contains("actor=\"manifest\"")
                    && l.contains("message=\"write_batch\"")
            })
            .then_some(())
    })
    .await;
    assert_eq!(m.halt_acquisitions.get() + m.halt_failures.get(), 0);

    // Another region's purge lands in the shared database.
    let started = std::time::Instant::now();
    log_purge_as_another_node(&database, HOST, path);
    loop {
        let status = app
            .get_with(path, &[("cache-control", "only-if-cached")])
            .await
            .status;
        if status == 504 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the purge was not applied while the writer waited for HALT"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // Applied while HALT was still held, before the write could be done.
    assert!(halt_held(app.dir.path()));
    assert_eq!(m.halt_acquisitions.get() + m.halt_failures.get(), 0);
    assert_eq!(m.rows_written.get(), 0);

    drop(held);
    let pages = app.pages(1).await;
    assert_eq!(pages[0].path_and_query, path);
}
