//! The manifest database or the LiteFS HALT lock held by another process:
//! writes wait, requests do not, and no manifest row is lost.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{eventually, spawn_app_in, spawn_origin, TestApp};

/// Another process holding a lock until the test releases it (by closing
/// its stdin). Killed when dropped.
struct Locker {
    child: Child,
}

/// Holds SQLite's write lock on the database given as argument.
const SQLITE_LOCKER: &str = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
c.execute("COMMIT")
"#;

/// Holds LiteFS's HALT byte (72) of the lock file given as argument, with a
/// POSIX lock: it conflicts with caje's open-file-description lock.
const HALT_LOCKER: &str = r#"
import fcntl, sys
f = open(sys.argv[1], "r+b")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 72)
print("locked", flush=True)
sys.stdin.read()
"#;

impl Locker {
    /// Runs `script` in python3 on `path` and waits until it holds its lock;
    /// `None`, with the reason printed, where python3 cannot run.
    async fn start(script: &str, path: &Path) -> Option<Locker> {
        let spawned = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipped: cannot run python3: {e}");
                return None;
            }
        };
        let stdout = child.stdout.take().expect("stdout");
        let line = actix_web::rt::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .map(|_| line)
        })
        .await
        .expect("reader")
        .expect("read the locker's stdout");
        assert_eq!(line.trim(), "locked", "the locker did not get its lock");
        Some(Locker { child })
    }

    fn holding(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Lets go of the lock and waits until the process is gone.
    async fn release(mut self) {
        drop(self.child.stdin.take());
        let child = &std::cell::RefCell::new(&mut self.child);
        let status =
            eventually(move || async move { child.borrow_mut().try_wait().ok().flatten() }).await;
        assert!(status.success(), "the locker failed: {status}");
    }
}

impl Drop for Locker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// While writes cannot happen, a miss, a hit and an uncacheable miss are
/// answered, and exactly one page (`path`) waits for the manifest.
async fn serve_while_locked(app: &TestApp, path: &str) {
    let miss = app.get(path).await;
    assert_eq!((miss.status, miss.body), (200, format!("{path} #1")));
    app.stored(1).await;
    let hit = app.get(path).await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
    assert_eq!(app.get("/no-store").await.status, 200);
}

#[actix_web::test]
async fn a_manifest_locked_by_another_process_delays_writes_not_requests_and_loses_no_row() {
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |_| {}).await;
    let Some(mut locker) = Locker::start(SQLITE_LOCKER, &app.dir.path().join("manifest.db")).await
    else {
        return;
    };
    serve_while_locked(&app, "/cache/locked").await;
    // The write waits out SQLite's busy timeout (5 s), fails, keeps its row.
    let m = &app.metrics.manifest;
    eventually(|| async { (m.write_errors.get() >= 1).then_some(()) }).await;
    assert_eq!(m.rows_written.get(), 0);
    assert!(locker.holding(), "the lock was let go too early");

    // No page is stored after the lock is gone: only a retry writes the row.
    locker.release().await;
    let pages = app.pages(1).await;
    assert_eq!(pages[0].path_and_query, "/cache/locked");
    assert!(m.write_retries.get() >= 1);
}

#[actix_web::test]
async fn a_halt_held_by_another_process_delays_writes_not_requests_and_loses_no_row() {
    let origin = spawn_origin().await;
    // Laid out as LiteFS presents a replica: `.primary` names the primary.
    let dir = tempfile::tempdir().expect("temp dir");
    // The primary has created and migrated the manifest.
    let database = dir.path().join("manifest.db");
    let primary = caje::actors::manifest::LiteFsWrites::new(
        caje::config::LiteFsMode::Off,
        &database,
        Duration::from_secs(1),
    );
    caje::actors::manifest::prepare(&database, &primary).expect("the primary migrates");
    std::fs::write(dir.path().join(".primary"), "primary.internal\n").expect(".primary");
    std::fs::write(dir.path().join(".lag"), "+000000012").expect(".lag");
    let lock_file = dir.path().join("manifest.db-lock");
    std::fs::File::create(&lock_file).expect("lock file");
    let app = spawn_app_in(&origin, Arc::new(dir), |s| {
        s.litefs = caje::config::LiteFsMode::Auto;
        s.manifest_batch_window = Duration::from_millis(10);
        s.halt_timeout = Duration::from_millis(300);
    })
    .await;
    let Some(mut locker) = Locker::start(HALT_LOCKER, &lock_file).await else {
        return;
    };
    serve_while_locked(&app, "/cache/halted").await;
    let m = &app.metrics.manifest;
    eventually(|| async {
        (m.halt_failures.get() >= 1 && m.write_errors.get() >= 1).then_some(())
    })
    .await;
    assert_eq!(m.rows_written.get(), 0);
    assert!(locker.holding(), "the lock was let go too early");

    locker.release().await;
    let pages = app.pages(1).await;
    assert_eq!(pages[0].path_and_query, "/cache/halted");
    assert!(m.write_retries.get() >= 1);
    assert!(m.halt_acquisitions.get() >= 1);
}
