//! A bounded soak: the real binary under 256 concurrent connections of
//! mixed traffic for three rounds. Slow, so `#[ignore]`d: run it with
//! `cargo test --test api -- --ignored soak`.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::{
    cpu_time_of, manifest_paths, process_config, spawn_origin, CajeProcess, HOST, TOKEN,
};

const CONNECTIONS: usize = 256;
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_secs(20);
/// Pages stored before the rounds and asked for again and again.
const HOT_PAGES: usize = 500;
/// The memory rule: RSS after the third round at most this share of RSS
/// after the first, plus [`RSS_SLACK_KIB`] for the purge log and SQLite's
/// page cache, plus [`KIB_PER_NEW_PAGE`] for each page the later rounds
/// stored (its index entry): what the rounds legitimately add. How many
/// pages a round stores depends on how fast caje is (some 700 a round once,
/// over 1,500 since misses stopped waiting for delayed ACKs), so the rule
/// counts them. A leak of even 300 bytes a request (some 80,000 a round)
/// breaks it.
const RSS_GROWTH: f64 = 1.2;
const RSS_SLACK_KIB: u64 = 8 * 1024;
const KIB_PER_NEW_PAGE: u64 = 3;

/// One keep-alive HTTP/1.1 connection, read with just enough parsing for
/// the answers caje gives: lighter than a full client, so the load
/// generator is not what limits the rate.
struct Connection {
    port: u16,
    stream: Option<BufReader<TcpStream>>,
}

struct Answer {
    status: u16,
    cache_status: String,
}

impl Connection {
    async fn send(&mut self, head: &str, body: &[u8]) -> std::io::Result<Answer> {
        if self.stream.is_none() {
            let socket = TcpStream::connect(("127.0.0.1", self.port)).await?;
            socket.set_nodelay(true)?;
            self.stream = Some(BufReader::new(socket));
        }
        let stream = self.stream.as_mut().expect("connected");
        let mut request = Vec::with_capacity(head.len() + body.len());
        request.extend_from_slice(head.as_bytes());
        request.extend_from_slice(body);
        stream.get_mut().write_all(&request).await?;
        let answer = read_answer(stream).await;
        match &answer {
            Ok((_, true)) | Err(_) => self.stream = None,
            Ok((_, false)) => {}
        }
        answer.map(|(answer, _)| answer)
    }
}

/// Reads one response; answers it and whether the server closes after it.
async fn read_answer(stream: &mut BufReader<TcpStream>) -> std::io::Result<(Answer, bool)> {
    let broken = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| broken(&format!("status line {line:?}")))?;
    let (mut length, mut chunked, mut close, mut cache_status) =
        (None, false, false, String::new());
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(broken("connection closed in the head"));
        }
        let field = line.trim_end();
        if field.is_empty() {
            break;
        }
        let Some((name, value)) = field.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse::<u64>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "cache-status" => cache_status = value.to_owned(),
            _ => {}
        }
    }
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let size = u64::from_str_radix(line.trim(), 16).map_err(|_| broken("chunk size"))?;
            // A chunk and its CRLF; the last one has only the CRLF (no trailers).
            skip(stream, size + 2).await?;
            if size == 0 {
                break;
            }
        }
    } else if let Some(length) = length {
        skip(stream, length).await?;
    } else if !matches!(status, 204 | 304) {
        return Err(broken("a body without a length"));
    }
    Ok((
        Answer {
            status,
            cache_status,
        },
        close,
    ))
}

async fn skip(stream: &mut BufReader<TcpStream>, n: u64) -> std::io::Result<()> {
    let copied = tokio::io::copy(&mut stream.take(n), &mut tokio::io::sink()).await?;
    if copied != n {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("body cut at {copied} of {n} bytes"),
        ));
    }
    Ok(())
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {HOST}\r\n\r\n")
}

fn admin_post(path: &str, json: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {HOST}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\naccept: application/json\r\ncontent-length: {}\r\n\r\n",
        json.len()
    )
}

/// What a round saw.
#[derive(Default)]
struct Tally {
    requests: u64,
    hits: u64,
    purges: u64,
    populates: u64,
    /// 5xx answers whose `Cache-Status` shows no 5xx from the origin.
    caje_5xx: u64,
    /// Failed connections or malformed answers.
    errors: u64,
    first_failures: Vec<String>,
}

/// Paths caje said it stored (`Cache-Status: …; stored`).
type Stored = Rc<RefCell<HashSet<String>>>;

/// One connection's loop until `until`: 88.8% hot pages (hits, unless just
/// purged), 8% `no-store` misses, 2% new URLs (misses, then stored), 1%
/// purges of hot pages and 0.2% populator runs (which fetch the purged pages
/// back).
async fn connection(port: u16, id: usize, round: usize, until: Instant, stored: Stored) -> Tally {
    let mut tally = Tally::default();
    let mut conn = Connection { port, stream: None };
    // xorshift: a fixed mix per connection, the same on every run.
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ ((id as u64 + 1) * 0x1000_0000_01b3);
    let mut seq = 0u64;
    while Instant::now() < until {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        seq += 1;
        // Other bits than the mix's, so that any kind of request may go to any page.
        let hot = format!("/cache/hot/{}", (rng >> 32) % HOT_PAGES as u64);
        let (head, body, path) = match rng % 1000 {
            0..=1 => (
                admin_post("/_caje/populate", ""),
                String::new(),
                String::new(),
            ),
            2..=11 => {
                let json = format!("{{\"url\": \"http://{HOST}{hot}\"}}");
                (admin_post("/_caje/purge", &json), json, String::new())
            }
            12..=31 => {
                let new = format!("/cache/new/r{round}-c{id}-{seq}");
                (get(&new), String::new(), new)
            }
            32..=111 => (get("/no-store"), String::new(), String::new()),
            _ => (get(&hot), String::new(), hot),
        };
        tally.requests += 1;
        match conn.send(&head, body.as_bytes()).await {
            Ok(answer) => {
                let origin_5xx = answer.cache_status.contains("fwd-status=5");
                if answer.status >= 500 && !origin_5xx {
                    tally.caje_5xx += 1;
                    if tally.first_failures.len() < 5 {
                        tally.first_failures.push(format!(
                            "{} {}: {}",
                            head.lines().next().unwrap_or(""),
                            answer.status,
                            answer.cache_status
                        ));
                    }
                }
                if answer.cache_status.contains("hit") {
                    tally.hits += 1;
                }
                if answer.cache_status.contains("stored") {
                    stored.borrow_mut().insert(path);
                }
                if head.contains("/_caje/purge") {
                    tally.purges += 1;
                } else if head.contains("/_caje/populate") {
                    tally.populates += 1;
                }
            }
            Err(e) => {
                tally.errors += 1;
                if tally.first_failures.len() < 5 {
                    tally
                        .first_failures
                        .push(format!("{}: {e}", head.lines().next().unwrap_or("")));
                }
            }
        }
    }
    tally
}

/// Every path of the cache entries `/_caje/list` shows, page by page.
async fn cache_entry_paths(port: u16) -> Vec<String> {
    let client = crate::helpers::test_client();
    let mut paths = Vec::new();
    for page in 1.. {
        let url = format!("http://127.0.0.1:{port}/_caje/list?page={page}&per_page=500");
        let reply = crate::helpers::admin_request(&client, &url, "GET", Some(TOKEN), None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let json = reply.json();
        let entries = json["cache"]["entries"]
            .as_array()
            .expect("entries")
            .clone();
        if entries.is_empty() {
            break;
        }
        paths.extend(
            entries
                .iter()
                .map(|e| e["path"].as_str().expect("path").to_owned()),
        );
    }
    paths
}

#[actix_web::test]
#[ignore = "a one-minute soak: cargo test --test api -- --ignored soak"]
async fn soak_256_connections_of_mixed_traffic_for_three_rounds() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    // Unbounded: with eviction the populator would fetch evicted pages
    // back forever, and its queue would grow with the manifest.
    let config = process_config(dir.path(), &origin.url(), "");
    let db = dir.path().join("manifest.db");
    let caje = CajeProcess::start_with("caje", &config, &[("CAJE_ADMIN_TOKEN", TOKEN)]).await;
    let stored: Stored = Rc::default();

    let mut warm = Connection {
        port: caje.port,
        stream: None,
    };
    for i in 0..HOT_PAGES {
        let path = format!("/cache/hot/{i}");
        let answer = warm.send(&get(&path), b"").await.expect("warm-up");
        assert_eq!(answer.status, 200);
        stored.borrow_mut().insert(path);
    }

    let mut rss_kib = Vec::new();
    let mut stored_after = Vec::new();
    let mut total = Tally::default();
    let own_pid = std::process::id().to_string();
    for round in 1..=ROUNDS {
        let (caje_cpu, own_cpu) = (caje.cpu_time(), cpu_time_of(&own_pid));
        let started = Instant::now();
        let until = started + ROUND;
        let tasks: Vec<_> = (0..CONNECTIONS)
            .map(|id| actix_web::rt::spawn(connection(caje.port, id, round, until, stored.clone())))
            .collect();
        let mut tally = Tally::default();
        for task in tasks {
            let t = task.await.expect("connection task");
            tally.requests += t.requests;
            tally.hits += t.hits;
            tally.purges += t.purges;
            tally.populates += t.populates;
            tally.caje_5xx += t.caje_5xx;
            tally.errors += t.errors;
            tally.first_failures.extend(t.first_failures);
        }
        let elapsed = started.elapsed().as_secs_f64();
        let rss = caje.rss_kib();
        rss_kib.push(rss);
        stored_after.push(stored.borrow().len() as u64);
        let (caje_cpu, own_cpu) = (
            (caje.cpu_time() - caje_cpu).as_secs_f64(),
            (cpu_time_of(&own_pid) - own_cpu).as_secs_f64(),
        );
        println!(
            "soak round {round}: {} requests in {elapsed:.1} s = {:.0} req/s ({} hits, {} purges, \
             {} populates), caje 5xx {}, errors {}, caje RSS {} MiB, CPU: caje {caje_cpu:.1} s, \
             test process (load and origin) {own_cpu:.1} s",
            tally.requests,
            tally.requests as f64 / elapsed,
            tally.hits,
            tally.purges,
            tally.populates,
            tally.caje_5xx,
            tally.errors,
            rss / 1024,
        );
        total.requests += tally.requests;
        total.caje_5xx += tally.caje_5xx;
        total.errors += tally.errors;
        total.first_failures.extend(tally.first_failures);
    }

    assert_eq!(
        (total.caje_5xx, total.errors),
        (0, 0),
        "5xx from caje, failed requests: {:?}",
        total.first_failures
    );
    // Rows reach the manifest within its batch window; purges drop
    // entries, never rows, so every page ever stored must be there.
    let stored = stored.borrow().clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pages = loop {
        let pages = manifest_paths(&db);
        if stored.iter().all(|p| pages.contains(p)) || Instant::now() > deadline {
            break pages;
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let unrecorded: Vec<&String> = stored.iter().filter(|p| !pages.contains(*p)).collect();
    assert!(
        unrecorded.is_empty(),
        "{} of {} stored pages are not in the manifest, e.g. {:?}",
        unrecorded.len(),
        stored.len(),
        &unrecorded[..unrecorded.len().min(5)]
    );
    let entries = cache_entry_paths(caje.port).await;
    let missing: Vec<&String> = entries.iter().filter(|p| !pages.contains(*p)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} cache entries are not in the manifest, e.g. {:?}",
        missing.len(),
        entries.len(),
        &missing[..missing.len().min(5)]
    );
    let (first, third) = (rss_kib[0], rss_kib[ROUNDS - 1]);
    let new_pages = stored_after[ROUNDS - 1] - stored_after[0];
    let bound = (first as f64 * RSS_GROWTH) as u64 + RSS_SLACK_KIB + new_pages * KIB_PER_NEW_PAGE;
    println!(
        "soak: {} requests, RSS per round {:?} MiB (bound for the third: {} MiB, with {} pages \
         stored after the first round), {} stored pages, {} cache entries, {} manifest pages",
        total.requests,
        rss_kib.iter().map(|k| k / 1024).collect::<Vec<_>>(),
        bound / 1024,
        new_pages,
        stored.len(),
        entries.len(),
        pages.len()
    );
    assert!(
        third <= bound,
        "RSS grew from {first} KiB after the first round to {third} KiB after the third"
    );
}
