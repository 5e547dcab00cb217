//! Origins that hang, reset mid-body or send short bodies: the client is
//! cut off, never handed a complete-looking body, and nothing is stored.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::{assert_nothing_stored, cache_files};
use crate::helpers::{
    closed_port, eventually, read_head, request, spawn_app_with, spawn_faulty_origin, spawn_origin,
    spawn_raw_origin, test_client, Ending, TestApp, HOST,
};

/// caje for [`HOST`] in front of a raw origin on `port`.
async fn app_for(port: u16) -> TestApp {
    spawn_app_with(vec![(
        HOST,
        format!("http://127.0.0.1:{port}"),
        Duration::from_secs(10),
    )])
    .await
}

/// What a client read from caje over a raw connection, to the point where
/// caje closed it: a client library might take an early close for the end.
struct Received {
    /// `None` when caje closed the connection before a status line: it
    /// drops what it has not written yet when a body fails.
    status: Option<u16>,
    cache_status: String,
    content_length: Option<u64>,
    chunked: bool,
    /// The body as it crossed the wire (still chunk-encoded when chunked).
    raw: Vec<u8>,
}

impl Received {
    /// The body's bytes, and whether the body was complete: as long as its
    /// `Content-Length`, or chunked up to and including the last chunk.
    fn body(&self) -> (Vec<u8>, bool) {
        if self.chunked {
            return dechunk(&self.raw);
        }
        let complete = self
            .content_length
            .is_some_and(|len| self.raw.len() as u64 >= len);
        (self.raw.clone(), complete)
    }
}

/// Decodes a chunked body as far as it goes; `true` when it ended with the
/// last (empty) chunk.
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else {
            return (data, false);
        };
        let size = std::str::from_utf8(&rest[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok());
        let Some(size) = size else {
            return (data, false);
        };
        rest = &rest[eol + 2..];
        if size == 0 {
            return (data, rest.starts_with(b"\r\n"));
        }
        if rest.len() < size + 2 {
            data.extend_from_slice(&rest[..rest.len().min(size)]);
            return (data, false);
        }
        data.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// GETs `path` for [`HOST`] and reads until caje closes the connection (or
/// resets it); notifies `after_first_bytes` once body bytes have arrived (a
/// resetting origin waits for that).
async fn receive(app: &TestApp, path: &str, after_first_bytes: Option<&Notify>) -> Received {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect to caje");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    socket
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let head = read_head(&mut socket).await;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut raw = Vec::new();
    let mut notify = after_first_bytes;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buf))
            .await
            .expect("caje ends the response within 30 s");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                if let Some(go) = notify.take() {
                    go.notify_one();
                }
            }
        }
    }
    Received {
        status,
        cache_status: header("cache-status").unwrap_or_default(),
        content_length: header("content-length").and_then(|v| v.parse().ok()),
        chunked: header("transfer-encoding").is_some_and(|v| v.contains("chunked")),
        raw,
    }
}

/// The client got the origin's status and some of the bytes it sent, then
/// the connection closed (or it closed before any answer): never a body
/// that looks complete.
fn assert_cut_off(received: &Received, sent: &[u8]) {
    let (body, complete) = received.body();
    if received.status.is_none() {
        assert!(received.raw.is_empty());
        return;
    }
    assert_eq!(received.status, Some(200));
    assert!(
        !complete,
        "the body looks complete: {:?}",
        String::from_utf8_lossy(&received.raw)
    );
    assert!(
        sent.starts_with(&body),
        "{:?}",
        String::from_utf8_lossy(&received.raw)
    );
}

#[actix_web::test]
async fn a_hanging_origin_times_out_while_other_hosts_are_served() {
    let hanging = spawn_faulty_origin(b"", Ending::Hang).await;
    let hanging_url = format!("http://127.0.0.1:{}", hanging.port);
    let origin = spawn_origin().await;
    let app = spawn_app_with(vec![
        (HOST, origin.url(), Duration::from_secs(10)),
        ("stuck.test", hanging_url.clone(), Duration::from_secs(600)),
        (
            "short.test",
            hanging_url.clone(),
            Duration::from_millis(300),
        ),
        (
            "refused.test",
            format!("http://127.0.0.1:{}", closed_port()),
            Duration::from_secs(5),
        ),
    ])
    .await;
    let url = app.url("/cache/stuck");
    let stuck = actix_web::rt::spawn(async move {
        request(&test_client(), &url, "GET", "stuck.test", &[]).await
    });
    eventually(|| async { (hanging.requests.lock().expect("lock").len() == 1).then_some(()) })
        .await;

    // While that request waits for its origin, the node answers others:
    // a miss, a hit, a timeout and a refusal.
    let miss = app.get("/cache/meanwhile").await;
    assert_eq!(
        (miss.status, miss.body.as_str()),
        (200, "/cache/meanwhile #1")
    );
    app.stored(1).await;
    assert!(app
        .get("/cache/meanwhile")
        .await
        .cache_status()
        .contains("hit"));
    let timed_out = app.request("GET", "short.test", "/cache/x", &[]).await;
    assert_eq!(timed_out.status, 504);
    assert_eq!(
        timed_out.body,
        format!("caje: origin {hanging_url} for short.test did not answer within 300ms\n")
    );
    let refused = app.request("GET", "refused.test", "/cache/x", &[]).await;
    assert_eq!(refused.status, 502);
    assert!(!stuck.is_finished(), "the hanging request was answered");

    // Neither failure was stored: each is asked again.
    let again = app.request("GET", "short.test", "/cache/x", &[]).await;
    assert_eq!(again.status, 504);
    assert_eq!(hanging.requests.lock().expect("lock").len(), 3);
    assert_eq!(
        app.request("GET", "refused.test", "/cache/x", &[])
            .await
            .status,
        502
    );
    let (entries, temp) = cache_files(&app);
    assert_eq!(entries, [app.entry_path("/cache/meanwhile")]);
    assert!(temp.is_empty(), "{temp:?}");
}

#[actix_web::test]
async fn an_origin_reset_mid_body_cuts_the_response_off_and_stores_nothing() {
    const SENT: &[u8] = b"the first part";
    let prefixes: [&'static [u8]; 2] = [
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 1000\r\n\r\nthe first part",
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: chunked\r\n\r\ne\r\nthe first part\r\n",
    ];
    for prefix in prefixes {
        let go = Arc::new(Notify::new());
        let origin = spawn_faulty_origin(prefix, Ending::ResetWhen(go.clone())).await;
        let app = app_for(origin.port).await;
        for n in 1..=2 {
            let received = receive(&app, "/reset", Some(&go)).await;
            // The prefix reached the client before the reset (it was waited for).
            assert_eq!(received.status, Some(200));
            assert_cut_off(&received, SENT);
            assert!(
                received.cache_status.starts_with("caje; fwd=uri-miss"),
                "{}",
                received.cache_status
            );
            assert_eq!(origin.requests.lock().expect("lock").len(), n);
            assert_nothing_stored(&app).await;
        }
    }
}

#[actix_web::test]
async fn a_body_shorter_than_its_content_length_is_cut_off_and_not_stored() {
    let origin = spawn_raw_origin(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 1000\r\n\r\nonly this much",
    )
    .await;
    let app = app_for(origin.port).await;
    for n in 1..=2 {
        let received = receive(&app, "/short", None).await;
        assert_cut_off(&received, b"only this much");
        // Asked again: the short body was not kept.
        assert_eq!(origin.requests.lock().expect("lock").len(), n);
        assert_nothing_stored(&app).await;
    }
}

#[actix_web::test]
async fn a_chunked_body_cut_off_by_a_close_is_cut_off_and_not_stored() {
    // One chunk, then the connection closes without the last (empty) chunk.
    let origin = spawn_raw_origin(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await;
    let app = app_for(origin.port).await;
    for n in 1..=2 {
        let received = receive(&app, "/chunked-cut", None).await;
        assert_cut_off(&received, b"hello");
        assert_eq!(origin.requests.lock().expect("lock").len(), n);
        assert_nothing_stored(&app).await;
    }
}
