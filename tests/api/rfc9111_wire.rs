//! RFC 9111 to the letter (issue 17), on the wire from the origin: interim
//! responses before the final one (item 4) and odd framing or hop-by-hop
//! fields (item 5), written as exact bytes by a raw origin (plain, and over
//! TLS).

use std::io::Write;
use std::time::Duration;

use crate::helpers::{
    eventually, raw_request, read_head, spawn_app_for, spawn_app_with, spawn_raw_origin,
    spawn_tls_origin_answering, RawOrigin, Reply, TestApp, TestCa, HOST,
};

async fn app_for(port: u16) -> TestApp {
    spawn_app_with(vec![(
        HOST,
        format!("http://127.0.0.1:{port}"),
        Duration::from_secs(5),
    )])
    .await
}

fn asked(origin: &RawOrigin) -> usize {
    origin.requests.lock().expect("lock").len()
}

/// Asks for `path` until it is a hit; the origin must have been asked once.
async fn hit_after_one_fetch(app: &TestApp, origin: &RawOrigin, path: &str) -> Reply {
    let hit = eventually(|| async {
        let reply = app.get(path).await;
        reply
            .cache_status()
            .starts_with("caje; hit")
            .then_some(reply)
    })
    .await;
    assert_eq!(asked(origin), 1, "{path}");
    hit
}

/// Response bytes for a raw origin (which wants them for the whole test).
fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip");
    encoder.finish().expect("gzip")
}

#[actix_web::test]
async fn interim_responses_are_dropped_and_never_stored() {
    let origin = spawn_raw_origin(
        b"HTTP/1.1 100 Continue\r\n\r\n\
          HTTP/1.1 102 Processing\r\nx-interim: 102\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\nx-interim: 103\r\n\r\n\
          HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 5\r\nx-final: yes\r\n\r\nfinal",
    )
    .await;
    let app = app_for(origin.port).await;
    let first = app.get("/early").await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.body, "final");
    assert_eq!(first.header("x-final"), Some("yes"));
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    let hit = hit_after_one_fetch(&app, &origin, "/early").await;
    assert_eq!((hit.status, hit.body.as_str()), (200, "final"));
    for interim in ["link", "x-interim"] {
        assert!(first.header(interim).is_none(), "{interim} relayed");
        assert!(hit.header(interim).is_none(), "{interim} stored");
    }
}

/// An origin that answers `100 Continue` to the head, reads the 4-byte
/// body only then, and echoes it in a `201`.
async fn spawn_continue_origin() -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    actix_web::rt::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let head = read_head(&mut socket).await;
            assert!(
                head.to_ascii_lowercase().contains("expect: 100-continue"),
                "{head}"
            );
            let _ = socket.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await;
            let mut body = [0u8; 4];
            let _ = socket.read_exact(&mut body).await;
            let mut answer = b"HTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\n".to_vec();
            answer.extend_from_slice(&body);
            let _ = socket.write_all(&answer).await;
        }
    });
    port
}

#[actix_web::test]
async fn an_awaited_100_continue_still_lets_the_body_through() {
    let port = spawn_continue_origin().await;
    let app = app_for(port).await;
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: {HOST}\r\nExpect: 100-continue\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody"
    );
    let answer = raw_request(app.port, request.as_bytes()).await;
    assert!(answer.contains("HTTP/1.1 201 Created"), "{answer}");
    assert!(answer.ends_with("body"), "{answer}");
}

#[actix_web::test]
async fn a_transfer_coding_before_chunked_is_decoded_relayed_and_stored() {
    let body = gzip(b"decoded once");
    let mut response = format!(
        "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: gzip, chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response.extend_from_slice(b"\r\n0\r\n\r\n");
    let origin = spawn_raw_origin(leak(response)).await;
    let app = app_for(origin.port).await;
    let first = app.get("/gzip-chunked").await;
    assert_eq!((first.status, first.body.as_str()), (200, "decoded once"));
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    let hit = hit_after_one_fetch(&app, &origin, "/gzip-chunked").await;
    assert_eq!(hit.body, "decoded once");
    assert!(hit.header("transfer-encoding").is_none());
}

#[actix_web::test]
async fn a_transfer_coding_without_chunked_ends_at_the_close_and_is_stored() {
    let mut response =
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: gzip\r\n\r\n".to_vec();
    response.extend_from_slice(&gzip(b"read until the close"));
    let origin = spawn_raw_origin(leak(response)).await;
    let app = app_for(origin.port).await;
    let first = app.get("/gzip-close").await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (200, "read until the close")
    );
    let hit = hit_after_one_fetch(&app, &origin, "/gzip-close").await;
    assert_eq!(hit.body, "read until the close");
}

#[actix_web::test]
async fn hop_by_hop_fields_from_an_origin_are_relayed_without_and_never_stored() {
    let origin = spawn_raw_origin(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 2\r\n\
          te: trailers\r\nupgrade: h2c\r\nkeep-alive: timeout=5\r\nconnection: upgrade, x-hop\r\n\
          x-hop: secret\r\nproxy-connection: keep-alive\r\nx-end: kept\r\n\r\nok",
    )
    .await;
    let app = app_for(origin.port).await;
    let first = app.get("/hop").await;
    assert_eq!((first.status, first.body.as_str()), (200, "ok"));
    let hit = hit_after_one_fetch(&app, &origin, "/hop").await;
    for reply in [&first, &hit] {
        for gone in ["te", "upgrade", "keep-alive", "x-hop", "proxy-connection"] {
            assert!(reply.header(gone).is_none(), "{gone}: {:?}", reply.headers);
        }
        assert_eq!(reply.header("x-end"), Some("kept"));
    }
}

#[actix_web::test]
async fn a_transfer_coding_caje_cannot_decode_is_a_clear_502_never_stored() {
    let origin = spawn_raw_origin(
        b"HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: br, chunked\r\n\r\n2\r\nxx\r\n0\r\n\r\n",
    )
    .await;
    let app = app_for(origin.port).await;
    for n in 1..=2 {
        let reply = app.get("/br").await;
        assert_eq!(reply.status, 502);
        assert!(reply.body.contains("\"br\""), "{}", reply.body);
        assert_eq!(asked(&origin), n);
    }
}

#[actix_web::test]
async fn interim_responses_and_transfer_codings_are_handled_over_https_too() {
    let ca = TestCa::new();
    let coded = gzip(b"over tls");
    let mut answer = format!(
        "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n\
         HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ntransfer-encoding: gzip, chunked\r\n\r\n{:x}\r\n",
        coded.len()
    )
    .into_bytes();
    answer.extend_from_slice(&coded);
    answer.extend_from_slice(b"\r\n0\r\n\r\n");
    let tls = spawn_tls_origin_answering(&ca, "localhost", leak(answer)).await;
    let text = format!(
        "[[origin]]\nhost = \"{HOST}\"\nupstream = \"{}\"\nca_file = {:?}\n",
        tls.url(),
        ca.pem_file()
    );
    let origin = caje::config::Settings::parse("test.toml", &text)
        .expect("valid origin")
        .origins
        .remove(0);
    let app = spawn_app_for(vec![origin], |_| {}).await;
    let first = app.get("/tls").await;
    assert_eq!((first.status, first.body.as_str()), (200, "over tls"));
    assert!(first.header("link").is_none());
    app.stored(1).await;
    let hit = app.get("/tls").await;
    assert!(
        hit.cache_status().starts_with("caje; hit"),
        "{}",
        hit.cache_status()
    );
    assert_eq!(hit.body, "over tls");
    assert_eq!(tls.heads().len(), 1);
}
