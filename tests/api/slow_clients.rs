//! A client that reads a large miss slowly, or not at all, or goes away
//! holds up no one: the entry fills at the origin's pace, requests
//! coalesced behind it are answered from it, and the slow client still gets
//! every byte once it reads.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{deterministic_body, eventually, spawn_app, spawn_origin, HOST};

/// A connection that takes little before its sender must wait: a 4 KiB
/// receive buffer, so a body it does not read stops at the sender.
pub(crate) async fn narrow_connection(port: u16) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    socket
        .connect(([127, 0, 0, 1], port).into())
        .await
        .expect("connect")
}

pub(crate) async fn ask(conn: &mut TcpStream, path: &str, close: bool) {
    let connection = if close { "Connection: close\r\n" } else { "" };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n{connection}\r\n");
    conn.write_all(request.as_bytes()).await.expect("write");
}

/// One answer's head and body (by its Content-Length).
pub(crate) async fn answer(conn: &mut TcpStream) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut piece = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .expect("a Content-Length");
            let body_at = end + 4;
            while got.len() < body_at + length {
                let n = conn.read(&mut piece).await.expect("read");
                assert!(
                    n > 0,
                    "closed after {} of {length} body bytes: {head}",
                    got.len() - body_at
                );
                got.extend_from_slice(&piece[..n]);
            }
            return (head, got[body_at..body_at + length].to_vec());
        }
        let n = conn.read(&mut piece).await.expect("read");
        assert!(n > 0, "closed before a whole head");
        got.extend_from_slice(&piece[..n]);
    }
}

/// `GET path` on a connection of its own, read whole.
pub(crate) async fn get_whole(port: u16, path: &str) -> (String, Vec<u8>) {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    ask(&mut conn, path, true).await;
    answer(&mut conn).await
}

#[actix_web::test]
async fn a_client_that_does_not_read_holds_up_neither_the_entry_nor_those_coalesced_behind_it() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/det/16384/0/slow-reader";
    let expected = deterministic_body(path).expect("a /det/ path");

    let mut stalled = narrow_connection(app.port).await;
    ask(&mut stalled, path, true).await;
    eventually(|| async { (origin.counter.get(path) == 1).then_some(()) }).await;

    // Asked while the first client reads nothing: answered whole, from the
    // one origin request, well before the coalescing timeout (10 s) would
    // let it ask the origin itself.
    let (head, body) = get_whole(app.port, path).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == expected, "the second client's body differs");
    assert_eq!(origin.counter.get(path), 1, "{head}");

    // The first client reads at last, and gets every byte.
    let (head, body) = answer(&mut stalled).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == expected, "the slow client's body differs");
    assert_eq!(origin.counter.get(path), 1);
}

#[actix_web::test]
async fn a_client_that_goes_away_mid_body_leaves_the_entry_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/det/16384/0/gone";
    let expected = deterministic_body(path).expect("a /det/ path");

    let mut leaving = narrow_connection(app.port).await;
    ask(&mut leaving, path, true).await;
    let mut some = [0u8; 1024];
    let n = leaving.read(&mut some).await.expect("read");
    assert!(some[..n].starts_with(b"HTTP/1.1 200"));
    drop(leaving);

    // The fill went on without it: the next request is a hit.
    let (head, body) = eventually(|| async {
        let (head, body) = get_whole(app.port, path).await;
        head.to_ascii_lowercase()
            .contains("cache-status: caje; hit")
            .then_some((head, body))
    })
    .await;
    assert!(body == expected, "the stored body differs: {head}");
    assert_eq!(origin.counter.get(path), 1);
}

#[actix_web::test]
async fn a_body_of_unknown_length_is_not_fetched_on_for_a_client_gone() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;

    let mut leaving = narrow_connection(app.port).await;
    ask(&mut leaving, "/endless", true).await;
    let mut some = [0u8; 1024];
    let n = leaving.read(&mut some).await.expect("read");
    assert!(some[..n].starts_with(b"HTTP/1.1 200"));
    drop(leaving);

    // It might never end: caje lets the origin go with its client.
    eventually(|| async { (origin.counter.get("ended /endless") == 1).then_some(()) }).await;
}
