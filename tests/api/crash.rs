//! Faults only a real process meets: SIGKILL in the middle of writes, and
//! SIGTERM with requests in flight. Each test runs the `caje` binary.

use std::cell::Cell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use caje::cache::entry::decode_head;
use caje::cache::VariantKey;
use futures_util::StreamExt;

use crate::helpers::{
    deterministic_body, eventually, integrity_check, manifest_paths, process_config, spawn_origin,
    CajeProcess, HOST,
};

const ROUNDS: usize = 20;

/// A client for one test: no redirects, room for every request of a burst.
fn client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .connector(awc::Connector::new().limit(64))
        .finish()
}

/// What came back for a path, read whole; `Err` when the connection failed
/// or the body ended short of its `Content-Length` (as when caje is killed
/// under it: awc takes the end of the connection for the end of the body).
struct Got {
    status: u16,
    cache_status: String,
    body: Vec<u8>,
}

async fn fetch(client: &awc::Client, port: u16, path: &str) -> Result<Got, String> {
    let mut res = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .insert_header(("host", HOST))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let cache_status = res
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let announced: Option<usize> = res
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut body = Vec::new();
    while let Some(chunk) = res.next().await {
        body.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
    }
    if announced.is_some_and(|len| len != body.len()) {
        return Err(format!("body cut at {} of {announced:?} bytes", body.len()));
    }
    Ok(Got {
        status: res.status().as_u16(),
        cache_status,
        body,
    })
}

/// Fails the test unless a whole answer is the origin's body for `path`,
/// byte for byte; answers whether it was a hit.
fn check(path: &str, got: &Got, expected: &HashMap<String, Vec<u8>>) -> bool {
    assert_eq!(got.status, 200, "{path}: {}", got.cache_status);
    let want = &expected[path];
    assert!(
        got.body == *want,
        "{path} ({}): {} bytes that differ from the origin's {} bytes",
        got.cache_status,
        got.body.len(),
        want.len()
    );
    got.cache_status.contains("hit")
}

/// The paths a round asks for: small bodies that complete at once, and
/// bodies of several MiB the origin sends slowly, so that their cache
/// writes are in flight when caje is killed.
fn round_paths(round: usize) -> Vec<String> {
    let mut paths = Vec::new();
    for i in 0..10 {
        paths.push(format!("/det/{}/0/r{round}-s{i}", 1 + (i * 7) % 64));
    }
    for i in 0..3 {
        paths.push(format!("/det/512/2/r{round}-m{i}"));
    }
    for i in 0..3 {
        paths.push(format!("/det/{}/4/r{round}-l{i}", 3072 + 1024 * i));
    }
    paths
}

/// Fails the test unless every file under an entry's name decodes, belongs
/// to that name and, for `bodies_of`, holds the origin's whole body;
/// answers how many of `bodies_of` were there.
fn check_entry_files(cache_dir: &Path, bodies_of: &[String]) -> usize {
    let mut checked_bodies = 0;
    for shard in std::fs::read_dir(cache_dir).expect("cache dir") {
        let shard = shard.expect("shard");
        let name = shard.file_name().to_string_lossy().into_owned();
        if name.len() != 2 {
            continue;
        }
        for file in std::fs::read_dir(shard.path()).expect("shard dir") {
            let path = file.expect("entry").path();
            let bytes = std::fs::read(&path).expect("read entry");
            let decoded = decode_head(&mut bytes.as_slice(), bytes.len() as u64)
                .unwrap_or_else(|e| panic!("{} does not decode: {e}", path.display()));
            let key = &decoded.head.key;
            let file_name = VariantKey::new(key, &decoded.head.vary).file_name();
            assert_eq!(
                path.file_name().map(|n| n.to_string_lossy().into_owned()),
                Some(file_name),
                "{} holds {}",
                path.display(),
                key.path_and_query()
            );
            if bodies_of.iter().any(|p| p == key.path_and_query()) {
                let body = &bytes[decoded.body_offset as usize..];
                assert!(
                    deterministic_body(key.path_and_query()).as_deref() == Some(body),
                    "{} holds a body of {} bytes that is not the origin's",
                    key.path_and_query(),
                    body.len()
                );
                checked_bodies += 1;
            }
        }
    }
    checked_bodies
}

/// Temp files in `<cache_dir>/tmp/` that no process named `pid` wrote.
fn stray_temp_files(cache_dir: &Path, pid: Option<i32>) -> Vec<String> {
    let own = pid.map(|p| format!("{p}-"));
    match std::fs::read_dir(cache_dir.join("tmp")) {
        Ok(files) => files
            .map(|f| {
                f.expect("temp file")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| own.as_ref().is_none_or(|own| !name.starts_with(own)))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[actix_web::test]
async fn sigkill_mid_burst_twenty_times_never_serves_a_broken_entry() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // A short window: manifest transactions run all through each burst.
    let config = process_config(
        dir.path(),
        &origin.url(),
        "workers = 2\nmanifest_batch_window = \"5ms\"",
    );
    let cache_dir = dir.path().join("cache");
    let db = dir.path().join("manifest.db");
    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut previous_round: Vec<String> = Vec::new();
    let mut older_small: Vec<String> = Vec::new();
    let (mut interrupted_writes, mut hits_after_restart, mut cut_answers) = (0, 0, 0);
    let mut committed_before_kill = 0;

    for round in 0..=ROUNDS {
        let mut caje = CajeProcess::start_with(&format!("caje round {round}"), &config, &[]).await;
        let client = client();

        // Whatever the last kill left is served whole or fetched again;
        // these lookups also mean the store has started (and cleaned up).
        let verify: Vec<String> = previous_round.iter().chain(&older_small).cloned().collect();
        let answers = futures_util::stream::iter(verify.iter())
            .map(|path| {
                let client = &client;
                async move { (path, fetch(client, caje.port, path).await) }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for (path, got) in answers {
            let got = got.unwrap_or_else(|e| panic!("{path} after restart: {e}"));
            if check(path, &got, &expected) {
                hits_after_restart += 1;
            }
        }
        let stray = stray_temp_files(&cache_dir, Some(caje.pid()));
        assert!(
            stray.is_empty(),
            "round {round}: temp files left: {stray:?}"
        );
        assert_eq!(integrity_check(&db), "ok", "round {round}");
        if round == ROUNDS {
            let pages = manifest_paths(&db);
            assert!(
                verify.iter().any(|p| pages.contains(p)),
                "the manifest holds none of the pages served"
            );
            break;
        }

        // A burst of new pages and hits on old ones; killed part way.
        let paths = round_paths(round);
        for path in &paths {
            expected.insert(path.clone(), deterministic_body(path).expect("det path"));
        }
        let asked: Vec<String> = paths
            .iter()
            .chain(older_small.iter().rev().take(6))
            .cloned()
            .collect();
        let (done, killed) = (Rc::new(Cell::new(0usize)), Rc::new(Cell::new(false)));
        let tasks: Vec<_> = asked
            .iter()
            .cloned()
            .map(|path| {
                let (client, port) = (client.clone(), caje.port);
                let (done, killed) = (done.clone(), killed.clone());
                actix_web::rt::spawn(async move {
                    let got = fetch(&client, port, &path).await;
                    done.set(done.get() + 1);
                    (path, got, killed.get())
                })
            })
            .collect();
        // Each round is killed at another point of the burst.
        let kill_after = 1 + round % 9;
        eventually(|| async { (done.get() >= kill_after).then_some(()) }).await;
        killed.set(true);
        caje.signal(libc::SIGKILL);
        let status = caje.wait_exit(Duration::from_secs(10)).await;
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        for task in tasks {
            let (path, got, after_kill) = task.await.expect("request task");
            match got {
                Ok(got) => {
                    check(&path, &got, &expected);
                }
                Err(_) if after_kill => cut_answers += 1,
                Err(e) => panic!("{path} failed before the kill: {e}"),
            }
        }
        interrupted_writes += stray_temp_files(&cache_dir, None).len();
        committed_before_kill += check_entry_files(&cache_dir, &paths);
        assert_eq!(
            integrity_check(&db),
            "ok",
            "after the kill of round {round}"
        );

        older_small.extend(previous_round.iter().filter(|p| !p.contains("-l")).cloned());
        previous_round = paths;
    }
    // Without these the rounds would not have tested what they claim.
    assert!(interrupted_writes > 0, "no kill interrupted a cache write");
    assert!(cut_answers > 0, "no kill cut a response short");
    assert!(hits_after_restart > 0, "no entry survived a restart");
    assert!(
        committed_before_kill > 0,
        "no entry was committed before a kill"
    );
    println!(
        "{ROUNDS} kills: {interrupted_writes} cache writes interrupted, {cut_answers} answers cut, \
         {committed_before_kill} entries checked on disk, {hits_after_restart} hits checked after restarts"
    );
}

/// Waits until a new connection to `port` is refused.
async fn refused(port: u16) {
    eventually(|| async {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Some(()),
            _ => None,
        }
    })
    .await
}

/// Stores `paths` through `caje`, each until it is a hit (committed, so its
/// manifest row is gathering in the batcher).
async fn store(caje: &CajeProcess, paths: &[&str]) {
    let client = client();
    for path in paths {
        let got = fetch(&client, caje.port, path).await.expect("caje answers");
        assert!(
            got.cache_status.contains("stored"),
            "{path}: {}",
            got.cache_status
        );
        eventually(|| async {
            let got = fetch(&client, caje.port, path).await.ok()?;
            got.cache_status.contains("hit").then_some(())
        })
        .await;
    }
}

/// A GET that asks caje to close the connection after it, so the slow
/// request alone keeps the server busy.
async fn slow_get(port: u16, path: String) -> Result<Got, String> {
    let client = client();
    let mut res = client
        .get(format!("http://127.0.0.1:{port}{path}"))
        .insert_header(("host", HOST))
        .insert_header(("connection", "close"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body = res.body().await.map_err(|e| e.to_string())?;
    Ok(Got {
        status: res.status().as_u16(),
        cache_status: String::new(),
        body: body.to_vec(),
    })
}

#[actix_web::test]
async fn sigterm_finishes_requests_in_flight_refuses_new_ones_and_flushes_the_manifest() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Rows gather for an hour: only a flush at shutdown can write them.
    let config = process_config(
        dir.path(),
        &origin.url(),
        "workers = 2\nmanifest_batch_window = \"1h\"",
    );
    let db = dir.path().join("manifest.db");
    let mut caje = CajeProcess::start(&config).await;
    store(&caje, &["/cache/a", "/cache/b", "/cache/c"]).await;
    assert!(manifest_paths(&db).is_empty(), "rows were written early");

    let slow = actix_web::rt::spawn(slow_get(caje.port, "/sleep/4000".to_owned()));
    eventually(|| async { (origin.counter.get("/sleep/4000") == 1).then_some(()) }).await;
    caje.signal(libc::SIGTERM);

    refused(caje.port).await;
    assert!(
        !slow.is_finished(),
        "new connections were refused only after the request in flight ended"
    );
    let answer = slow
        .await
        .expect("slow task")
        .expect("the request in flight is answered");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"/sleep/4000 #1");
    let status = caje.wait_exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    let pages = manifest_paths(&db);
    for path in ["/cache/a", "/cache/b", "/cache/c", "/sleep/4000"] {
        assert!(
            pages.contains(path),
            "{path} not in the manifest: {pages:?}"
        );
    }
    let log = caje.log();
    assert!(log.contains("shut down"), "{log}");
}

#[actix_web::test]
async fn sigterm_waits_for_requests_in_flight_no_longer_than_shutdown_timeout() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(
        dir.path(),
        &origin.url(),
        "workers = 1\nshutdown_timeout = \"1s\"\nmanifest_batch_window = \"1h\"",
    );
    let db = dir.path().join("manifest.db");
    let mut caje = CajeProcess::start(&config).await;
    store(&caje, &["/cache/kept"]).await;

    // Far longer than the timeout, and than the test waits for the exit;
    // shorter than the default origin timeout, so caje would wait for it.
    let slow = actix_web::rt::spawn(slow_get(caje.port, "/sleep/25000".to_owned()));
    eventually(|| async { (origin.counter.get("/sleep/25000") == 1).then_some(()) }).await;
    caje.signal(libc::SIGTERM);

    let status = caje.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        slow.await.expect("slow task").is_err(),
        "the request cut by the timeout was answered"
    );
    assert!(manifest_paths(&db).contains("/cache/kept"));
}
