//! The per-request access line, buffered for the log writer's own thread:
//! every request's line reaches stderr with how the cache answered, the
//! last ones too when caje stops; a URL's query never does; JSON lines are
//! one object each; a level that excludes `caje::access` writes none.

use std::time::Duration;

use crate::helpers::{process_config, spawn_origin, CajeProcess, TestOrigin, HOST};

/// A caje process in front of a test origin, with extra environment.
async fn start(env: &[(&str, &str)]) -> (TestOrigin, tempfile::TempDir, CajeProcess) {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &origin.url(), "");
    let caje = CajeProcess::start_with("caje", &config, env).await;
    (origin, dir, caje)
}

/// Requests `path`; how the cache answered, as its `Cache-Status` says.
async fn get(caje: &CajeProcess, path: &str) -> String {
    let reply = awc::Client::default()
        .get(caje.url(path))
        .insert_header(("host", HOST))
        .insert_header(("user-agent", "tester \"quoted\""))
        .send()
        .await
        .expect("an answer");
    assert_eq!(reply.status(), 200);
    let status = reply.headers().get("cache-status").expect("cache-status");
    let status = status.to_str().expect("text");
    let outcome = status.split("; ").nth(1).expect("an outcome");
    outcome.strip_prefix("fwd=").unwrap_or(outcome).to_owned()
}

/// Whether a logged outcome is the one a client saw: a request that waited
/// for another's origin fetch is logged (and counted) as `collapsed`, its
/// `Cache-Status` that of the answer it shared.
fn agrees(logged: &str, seen: &str) -> bool {
    logged == seen || logged == "collapsed"
}

async fn stopped_log(mut caje: CajeProcess) -> String {
    caje.signal(libc::SIGTERM);
    assert!(caje.wait_exit(Duration::from_secs(30)).await.success());
    caje.log()
}

#[actix_web::test]
async fn every_request_is_logged_and_the_last_lines_are_written_when_caje_stops() {
    let (_origin, _dir, caje) = start(&[]).await;
    const REQUESTS: usize = 50;
    let mut outcomes = Vec::new();
    for i in 0..REQUESTS {
        outcomes.push(get(&caje, &format!("/cache/logged-{i}?token=hush")).await);
    }
    let again = get(&caje, "/cache/logged-0?token=hush").await;
    let log = stopped_log(caje).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        let line = log
            .lines()
            .find(|l| l.contains(&format!(" target=/cache/logged-{i} ")))
            .unwrap_or_else(|| panic!("no line for request {i}:\n{log}"));
        assert!(line.contains("INFO caje::access: request done"), "{line}");
        assert!(
            line.contains(&format!(" method=GET host={HOST} ")),
            "{line}"
        );
        let cache = format!(" status=200 cache={outcome} ");
        assert!(line.contains(&cache), "{line}");
        assert!(line.contains(" client=127.0.0.1 "), "{line}");
        assert!(line.ends_with(r#" ua="tester \"quoted\"""#), "{line}");
    }
    assert_eq!(log.matches("request done").count(), REQUESTS + 1, "{log}");
    let last = log.lines().rfind(|l| l.contains("request done"));
    let logged = last.and_then(|l| l.split(" cache=").nth(1)?.split(' ').next());
    assert!(logged.is_some_and(|c| agrees(c, &again)), "{again}:\n{log}");
    assert!(!log.contains("hush"), "a query reached the log:\n{log}");
}

#[actix_web::test]
async fn json_access_lines_are_one_object_each() {
    let (_origin, _dir, caje) = start(&[("CAJE_LOG_FORMAT", "json")]).await;
    let outcomes = [
        get(&caje, "/cache/json?secret=1").await,
        get(&caje, "/cache/json?secret=1").await,
    ];
    let log = stopped_log(caje).await;
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.contains("caje::access"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    let caches: Vec<&str> = lines
        .iter()
        .map(|l| l["fields"]["cache"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(caches[0], "uri-miss");
    assert!(agrees(caches[1], &outcomes[1]), "{caches:?} {outcomes:?}");
    assert_eq!(lines[0]["fields"]["target"], "/cache/json");
    assert_eq!(lines[0]["fields"]["ua"], "tester \"quoted\"");
    assert!(lines[0]["fields"]["origin_ms"].is_u64(), "{}", lines[0]);
    assert!(!log.contains("secret"), "{log}");
}

#[actix_web::test]
async fn a_level_without_the_access_target_writes_no_line() {
    let (_origin, _dir, caje) = start(&[("RUST_LOG", "caje=info,caje::access=off")]).await;
    get(&caje, "/cache/quiet").await;
    let log = stopped_log(caje).await;
    assert!(!log.contains("request done"), "{log}");
    assert!(
        log.contains("stopped serving"),
        "other lines still written:\n{log}"
    );
}
