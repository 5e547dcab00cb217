//! The regions benchmark (issue 12): ignored measurements that print
//! figures, run by hand (see BENCHMARKS.md, "Regions"):
//! `cargo test --release --test api -- --ignored --nocapture regions::`.
//!
//! - `measure_warm_propagation`: three in-process nodes over one manifest
//!   file, offered to each other as peers, change-driven sync every 50 ms;
//!   1,000 pages stored on A, each timed until it is a hit on B and C, and
//!   the origin's fetches per page.
//! - `measure_a_million_page_manifest`: one populator run (full reconcile)
//!   over 1,000,000 pages the node lacks, timed with the process's peak RSS,
//!   then the cost of an idle `ManifestWatch` tick over the same manifest.

use std::cell::RefCell;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caje::actors::manifest::{self, LiteFsWrites};
use caje::actors::populator::{GetStatus, RunNow};
use caje::config::{LiteFsMode, PeerFetch};
use diesel::RunQueryDsl;

use crate::helpers::{closed_port, spawn_app_in, spawn_origin, Counter, TestApp, TestOrigin, HOST};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn sleep_ms(ms: u64) {
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
}

/// p50, p99 and max of `took`.
fn spread(mut took: Vec<Duration>) -> (Duration, Duration, Duration) {
    took.sort();
    let at = |q: f64| took[((took.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99), took[took.len() - 1])
}

/// A value of the metric line that starts with `name` and holds every one
/// of `labels` (0 when there is none).
fn metric(app: &TestApp, name: &str, labels: &[&str]) -> f64 {
    let text = app.metrics.render().expect("metrics");
    text.lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|l| line.contains(l)))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// `(kB)` of a `VmHWM:`-like line of this process's `/proc/self/status`.
fn proc_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("proc field")
}

async fn only_if_cached(app: &TestApp, path: &str) -> u16 {
    app.get_with(path, &[("cache-control", "only-if-cached")])
        .await
        .status
}

/// A node named `name` over the manifest at `database`, offered as a peer,
/// with change-driven sync every 50 ms and the slow polls off.
async fn peer_node(origin: &TestOrigin, database: &Path, name: &str) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let database = database.to_owned();
    let name = name.to_owned();
    let rate = env_or("CAJE_BENCH_POPULATE_RATE", 10_000);
    let peers = std::env::var("CAJE_BENCH_PEER_FETCH").as_deref() != Ok("off");
    spawn_app_in(origin, dir, move |s| {
        s.database = database;
        s.node_name = Some(name);
        s.peer_url = Some("http://127.0.0.1:0".to_owned());
        if !peers {
            s.peer_fetch = PeerFetch::Off;
        }
        s.purge_poll_interval = Duration::from_secs(3600);
        s.populate_interval = Duration::from_secs(3600);
        s.sync_interval = Duration::from_millis(50);
        s.populate_rate = rate;
    })
    .await
}

/// Times each page from its answer on A (`stored[n]`) until `node` has it:
/// polls the oldest page not yet seen there every 1 ms, so a page warmed
/// before an older one is timed when the older one is (an upper bound).
async fn time_in_order(
    node: &TestApp,
    paths: &[String],
    stored: &RefCell<Vec<Instant>>,
) -> Vec<Duration> {
    let mut took = Vec::with_capacity(paths.len());
    let deadline = Instant::now() + Duration::from_secs(900);
    while took.len() < paths.len() {
        let n = took.len();
        let at = stored.borrow().get(n).copied();
        match at {
            Some(at) if only_if_cached(node, &paths[n]).await == 200 => took.push(at.elapsed()),
            _ => {
                assert!(Instant::now() < deadline, "page {n} not warmed");
                sleep_ms(1).await;
            }
        }
    }
    took
}

/// Warm propagation over three nodes, and origin fetches per page:
/// `cargo test --release --test api -- --ignored --nocapture regions::measure_warm`.
/// `CAJE_BENCH_PAGES` (1000), `CAJE_BENCH_PACE_MS` (10: one page stored on
/// A every so many ms; 0 for a burst), `CAJE_BENCH_POPULATE_RATE` (10000 a
/// second for each origin; the default setting, 10, would pace 1,000 pages
/// over 100 s), `CAJE_BENCH_PEER_FETCH=off` (warm from the origin, as
/// before peer fetch).
#[actix_web::test]
#[ignore = "a measurement: cargo test --release --test api -- --ignored --nocapture regions::measure_warm"]
async fn measure_warm_propagation() {
    let pages: usize = env_or("CAJE_BENCH_PAGES", 1000);
    let pace: u64 = env_or("CAJE_BENCH_PACE_MS", 10);
    let origin = spawn_origin().await;
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let a = peer_node(&origin, &database, "a").await;
    let b = peer_node(&origin, &database, "b").await;
    let c = peer_node(&origin, &database, "c").await;
    let paths: Vec<String> = (0..pages).map(|n| format!("/cache/warm-{n}")).collect();
    let stored = RefCell::new(Vec::with_capacity(pages));

    let started = Instant::now();
    let store = async {
        for path in &paths {
            assert_eq!(a.get(path).await.status, 200);
            stored.borrow_mut().push(Instant::now());
            if pace > 0 {
                sleep_ms(pace).await;
            }
        }
        started.elapsed()
    };
    let (storing, on_b, on_c) = futures_util::future::join3(
        store,
        time_in_order(&b, &paths, &stored),
        time_in_order(&c, &paths, &stored),
    )
    .await;
    let all_warm = started.elapsed();
    // Let any fetch still under way end before counting the origin's.
    for node in [&a, &b, &c] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = node.populator.send(GetStatus).await.expect("status");
            if s.queued == 0 && s.in_flight == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "populator still busy");
            sleep_ms(20).await;
        }
    }
    let fetches: usize = paths.iter().map(|p| origin.counter.get(p)).sum();
    let used: f64 = [&b, &c]
        .iter()
        .map(|n| metric(n, "caje_peer_requests_total", &["\"used\""]))
        .sum();
    let slowest = |took: &[Duration]| took.iter().max().copied().unwrap_or_default();
    let (b_max, c_max) = (slowest(&on_b), slowest(&on_c));
    let both: Vec<Duration> = on_b.iter().zip(&on_c).map(|(x, y)| *x.max(y)).collect();
    let (p50, p99, max) = spread(both);
    println!(
        "warm propagation, {pages} pages stored on A (one every {pace} ms; populate_rate {}, peer fetch {}):\n  \
         until a hit on both B and C: p50 {p50:?}, p99 {p99:?}, max {max:?} (B max {b_max:?}, C max {c_max:?})\n  \
         storing took {storing:?}, all warm after {all_warm:?}\n  \
         origin fetches {fetches} for {pages} pages: {:.3} per page; peer fetches used by B and C {used}",
        env_or("CAJE_BENCH_POPULATE_RATE", 10_000),
        if std::env::var("CAJE_BENCH_PEER_FETCH").as_deref() == Ok("off") {
            "off"
        } else {
            "on"
        },
        fetches as f64 / pages as f64,
    );
}

/// Writes `n` pages to a new manifest at `database` in one statement.
fn million_page_manifest(database: &Path, n: u64) {
    let litefs = LiteFsWrites::new(LiteFsMode::Off, database, Duration::from_secs(1));
    manifest::prepare(database, &litefs).expect("prepared");
    let mut conn = manifest::connect(database).expect("connect");
    diesel::sql_query(format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n}) \
         INSERT INTO pages (id, method, host, path_and_query, first_seen, last_seen, times_stored, seq) \
         SELECT i, 'GET', '{HOST}', '/cache/million-' || i, \
                CAST(strftime('%s', 'now') AS INTEGER) * 1000, \
                CAST(strftime('%s', 'now') AS INTEGER) * 1000, 1, i FROM n"
    ))
    .execute(&mut conn)
    .expect("pages written");
}

/// A node over `database` in front of `origin`, with `adjust`ed settings.
async fn node_over(
    origin: &TestOrigin,
    database: &Path,
    adjust: impl FnOnce(&mut caje::config::Settings) + 'static,
) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let database = database.to_owned();
    spawn_app_in(origin, dir, move |s| {
        s.database = database;
        adjust(s);
    })
    .await
}

/// A full reconcile and an idle tick over a manifest of a million pages:
/// `cargo test --release --test api -- --ignored --nocapture regions::measure_a_million`.
/// `CAJE_BENCH_PAGES` (1000000); `CAJE_BENCH_ORIGIN=live` points the node
/// at the scripted origin (paced at `populate_rate`, 10 a second), instead
/// of a closed port where every fetch fails at once and the origin backs
/// off (so the run's own cost shows, not the fetching).
#[actix_web::test]
#[ignore = "a measurement: cargo test --release --test api -- --ignored --nocapture regions::measure_a_million"]
async fn measure_a_million_page_manifest() {
    let n: u64 = env_or("CAJE_BENCH_PAGES", 1_000_000);
    let live = std::env::var("CAJE_BENCH_ORIGIN").as_deref() == Ok("live");
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let started = Instant::now();
    million_page_manifest(&database, n);
    let bytes = std::fs::metadata(&database).map_or(0, |m| m.len());
    println!(
        "{n} pages written in {:?} ({} MiB manifest)",
        started.elapsed(),
        bytes >> 20
    );
    let origin = if live {
        spawn_origin().await
    } else {
        TestOrigin {
            port: closed_port(),
            counter: Counter::default(),
        }
    };

    // The full reconcile, on a node whose cache holds none of the pages.
    let reconciler = node_over(&origin, &database, |_| {}).await;
    let (hwm_before, rss_before) = (proc_kib("VmHWM:"), proc_kib("VmRSS:"));
    let started = Instant::now();
    let report = reconciler
        .populator
        .send(RunNow)
        .await
        .expect("answer")
        .expect("run");
    let answered = started.elapsed();
    let hwm_answered = proc_kib("VmHWM:");
    let queued = report.queued.len();
    drop(report);
    let deadline = Instant::now() + Duration::from_secs(600);
    let status = loop {
        let s = reconciler.populator.send(GetStatus).await.expect("status");
        if live || (s.queued == 0 && s.in_flight == 0) {
            break s;
        }
        assert!(Instant::now() < deadline, "still fetching: {s:?}");
        sleep_ms(20).await;
    };
    let drained = started.elapsed();
    let (hwm_after, rss_after) = (proc_kib("VmHWM:"), proc_kib("VmRSS:"));
    println!(
        "full reconcile over {n} pages ({} origin): queued {queued}, answered in {answered:?}, \
         queue drained after {drained:?} (fetched {}, failed {}, deferred {}, still queued {})\n  \
         test process VmHWM {hwm_before} kB before, {hwm_answered} kB at the answer, {hwm_after} kB after \
         (+{} MiB); VmRSS {rss_before} kB -> {rss_after} kB",
        if live { "live" } else { "closed-port" },
        status.fetched,
        status.failed,
        status.deferred,
        status.queued,
        (hwm_after - hwm_before) >> 10,
    );
    if live {
        return;
    }

    // An idle tick over the same manifest: a node with sync every 1 ms
    // first hands the whole manifest on (500 rows a tick), then idles.
    let started = Instant::now();
    let watcher = node_over(&origin, &database, |s| {
        s.sync_interval = Duration::from_millis(1);
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(&watcher, "caje_sync_pages_queued_total", &[]) < n as f64 {
        assert!(Instant::now() < deadline, "the watch did not catch up");
        sleep_ms(20).await;
    }
    println!(
        "a node starting over {n} pages handed them all on in {:?}",
        started.elapsed()
    );
    sleep_ms(500).await;
    let tick = ["actor=\"manifest_watch\"", "message=\"tick\""];
    let mut each = Vec::new();
    for _ in 0..5 {
        let changes = metric(&watcher, "caje_sync_changes_total", &[]);
        let (sum, count) = (
            metric(&watcher, "caje_actor_handle_seconds_sum", &tick),
            metric(&watcher, "caje_actor_handle_seconds_count", &tick),
        );
        sleep_ms(2000).await;
        let ticks = metric(&watcher, "caje_actor_handle_seconds_count", &tick) - count;
        let spent = metric(&watcher, "caje_actor_handle_seconds_sum", &tick) - sum;
        assert_eq!(
            metric(&watcher, "caje_sync_changes_total", &[]),
            changes,
            "not idle"
        );
        each.push(Duration::from_secs_f64(spent / ticks));
        println!(
            "  idle ticks: {ticks} in 2 s, {:?} each",
            each[each.len() - 1]
        );
    }
    each.sort();
    println!(
        "idle tick over {n} pages: median {:?} of 5 rounds",
        each[each.len() / 2]
    );
}
