//! A full or read-only cache disk: responses are still proxied whole (to
//! a client that fell behind the store too) and nothing partial is kept.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use caje::actors::cache_store::GetCacheStats;

use super::{assert_nothing_stored, cache_files, metric};
use crate::helpers::{deterministic_body, eventually, spawn_app_in, spawn_origin, TestApp, HOST};
use crate::slow_clients::{answer, ask, get_whole, narrow_connection};

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` on `dir`; `None`, with the reason
    /// printed, where this machine does not let the test mount (not root).
    fn mount(dir: &Path, options: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("mount point");
        let dir_arg = dir.to_str().expect("UTF-8 temp path");
        match run("mount", &["-t", "tmpfs", "-o", options, "tmpfs", dir_arg]) {
            Ok(()) => Some(Tmpfs {
                dir: dir.to_owned(),
            }),
            Err(reason) => {
                eprintln!("skipped: cannot mount a tmpfs here: {reason}");
                None
            }
        }
    }

    /// Changes the mount's options, e.g. `remount,ro`.
    fn remount(&self, options: &str) {
        let dir = self.dir.to_str().expect("UTF-8 temp path");
        if let Err(reason) = run("mount", &["-o", options, dir]) {
            panic!("mounted, but cannot remount {options}: {reason}");
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let dir = self.dir.to_str().unwrap_or_default();
        // Lazily when still busy: the tmpfs goes once the last file closes.
        if run("umount", &[dir]).is_err() {
            if let Err(reason) = run("umount", &["-l", dir]) {
                eprintln!("cannot unmount {dir}: {reason}");
            }
        }
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// GETs a large body whole.
async fn get_big(app: &TestApp, path: &str) -> (u16, String, bytes::Bytes) {
    let mut res = app
        .client
        .get(app.url(path))
        .insert_header(("host", HOST))
        .send()
        .await
        .expect("caje answers");
    let status = res
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = res.body().limit(16 << 20).await.expect("whole body");
    (res.status().as_u16(), status, body)
}

#[actix_web::test]
async fn a_full_disk_still_proxies_whole_bodies_and_keeps_nothing_partial() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let Some(_disk) = Tmpfs::mount(&dir.path().join("cache"), "size=1m") else {
        return;
    };
    let origin = spawn_origin().await;
    let app = spawn_app_in(&origin, dir.clone(), |_| {}).await;
    let errors = metric(&app, "caje_cache_io_errors_total");

    // 2 MiB through a cache disk of 1 MiB, twice: whole, and asked again.
    for n in 1..=2 {
        let (status, cache_status, body) = get_big(&app, "/big/2").await;
        assert_eq!(status, 200);
        assert_eq!(body.len(), 2 << 20);
        assert!(body.iter().all(|&b| b == b'x'));
        assert!(
            cache_status.starts_with("caje; fwd=uri-miss"),
            "{cache_status}"
        );
        assert_eq!(origin.counter.get("/big/2"), n);
        eventually(|| async {
            (metric(&app, "caje_cache_io_errors_total") >= errors + n as f64).then_some(())
        })
        .await;
        assert_nothing_stored(&app).await;
    }

    // The space of the abandoned writes is free again: a small body is stored.
    assert_eq!(app.get("/cache/small").await.status, 200);
    app.stored(1).await;
    let hit = app.get("/cache/small").await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
    assert_eq!(hit.body, "/cache/small #1");
}

#[actix_web::test]
async fn a_client_behind_when_the_disk_fills_still_gets_the_whole_body() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let Some(_disk) = Tmpfs::mount(&dir.path().join("cache"), "size=1m") else {
        return;
    };
    let origin = spawn_origin().await;
    let app = spawn_app_in(&origin, dir.clone(), |_| {}).await;
    let path = "/det/4096/0/full-disk";
    let expected = deterministic_body(path).expect("a /det/ path");

    // The client reads nothing; a second request waits for the entry, so
    // the fill leaves the first behind, reading on from the file, fills
    // the disk and gives up: the file stops at 1 MiB.
    let mut behind = narrow_connection(app.port).await;
    ask(&mut behind, path, true).await;
    eventually(|| async { (origin.counter.get(path) == 1).then_some(()) }).await;
    let waiting = actix_web::rt::spawn(get_whole(app.port, path));
    assert_nothing_stored(&app).await;

    let (head, body) = answer(&mut behind).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == expected, "the body differs from the origin's");
    // Not stored, so the one waiting asked the origin itself.
    let (head, body) = waiting.await.expect("the waiting request");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == expected, "the waiting request's body differs");
    assert_eq!(origin.counter.get(path), 2);
}

#[actix_web::test]
async fn a_cache_directory_turned_read_only_is_proxied_around_and_survives_a_restart() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let Some(disk) = Tmpfs::mount(&dir.path().join("cache"), "size=1m") else {
        return;
    };
    let origin = spawn_origin().await;
    let app = spawn_app_in(&origin, dir.clone(), |_| {}).await;
    app.get("/cache/before").await;
    app.stored(1).await;

    disk.remount("remount,ro");
    let errors = metric(&app, "caje_cache_io_errors_total");
    for n in 1..=2 {
        let reply = app.get("/cache/after").await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, format!("/cache/after #{n}"));
    }
    assert!(metric(&app, "caje_cache_io_errors_total") >= errors + 2.0);
    assert_eq!(cache_files(&app).0, [app.entry_path("/cache/before")]);
    let kept = app.get("/cache/before").await;
    assert!(
        kept.cache_status().contains("hit"),
        "{}",
        kept.cache_status()
    );

    // caje starts on a read-only cache directory: it serves what is there
    // and proxies the rest without storing it.
    let restarted = app.restarted().await;
    let kept = restarted.get("/cache/before").await;
    assert!(
        kept.cache_status().contains("hit"),
        "{}",
        kept.cache_status()
    );
    assert_eq!(kept.body, "/cache/before #1");
    for n in 1..=2 {
        let reply = restarted.get("/cache/new").await;
        assert_eq!(
            (reply.status, reply.body),
            (200, format!("/cache/new #{n}"))
        );
    }
    assert!(metric(&restarted, "caje_cache_io_errors_total") >= 2.0);
    assert_eq!(
        restarted
            .cache
            .send(GetCacheStats)
            .await
            .expect("stats")
            .stored,
        0
    );
}

#[actix_web::test]
async fn caje_starts_on_a_read_only_cache_directory_and_stores_once_it_is_writable() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let Some(disk) = Tmpfs::mount(&dir.path().join("cache"), "ro,size=1m") else {
        return;
    };
    let origin = spawn_origin().await;
    let app = spawn_app_in(&origin, dir.clone(), |_| {}).await;
    // Preparing the directory failed at start, and was counted.
    eventually(|| async { (metric(&app, "caje_cache_io_errors_total") >= 1.0).then_some(()) })
        .await;
    for n in 1..=2 {
        let reply = app.get("/cache/x").await;
        assert_eq!((reply.status, reply.body), (200, format!("/cache/x #{n}")));
    }
    assert!(metric(&app, "caje_cache_io_errors_total") >= 3.0);

    disk.remount("remount,rw");
    app.get("/cache/y").await;
    app.stored(1).await;
    let hit = app.get("/cache/y").await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
}
