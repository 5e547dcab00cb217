//! Kept-alive connections: a miss is streamed as head, then body, in
//! separate writes; with Nagle's algorithm on, each one after the first on a
//! reused connection waited for the client's delayed ACK (40 ms on Linux).

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::helpers::{spawn_app, spawn_origin, HOST};

/// Linux's delayed-ACK timer is 40 ms at least: a request that waited for it
/// cannot take less. A loaded 2-core machine answers a miss within a few ms.
const FAR_BELOW_DELAYED_ACK: Duration = Duration::from_millis(20);

/// Sends a GET for `path` on `conn` and reads the whole answer; returns its
/// `Cache-Status`.
async fn get(conn: &mut BufReader<TcpStream>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    conn.get_mut()
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let (mut length, mut cache_status) = (0usize, String::new());
    let mut line = String::new();
    loop {
        line.clear();
        conn.read_line(&mut line).await.expect("read head");
        assert!(!line.is_empty(), "connection closed in the head of {path}");
        if line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().expect("content-length"),
            "cache-status" => cache_status = value.trim().to_owned(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    conn.read_exact(&mut body).await.expect("read body");
    cache_status
}

#[actix_web::test]
async fn storable_misses_on_one_kept_alive_connection_wait_for_no_delayed_ack() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let mut conn = BufReader::new(
        TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect"),
    );
    let mut times = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let cache_status = get(&mut conn, &format!("/cache/keepalive-{i}")).await;
        times.push(started.elapsed());
        assert!(cache_status.contains("stored"), "{i}: {cache_status}");
    }
    assert_eq!(origin.counter.total(), 20);
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < FAR_BELOW_DELAYED_ACK,
        "median {median:?} per miss on one connection: {times:?}"
    );
}

/// Whether `TCP_NODELAY` is set on every socket of this process (the test
/// and the node share it) whose local and peer ports `want` accepts.
pub(crate) fn nodelay_of_sockets(want: impl Fn(u16, u16) -> bool) -> Vec<bool> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("fd list")
        .flatten()
    {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        let (Some(local), Some(peer)) = (port(fd, libc::getsockname), port(fd, libc::getpeername))
        else {
            continue;
        };
        if want(local, peer) {
            let mut on: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `on` and `len` are live locals of the sizes passed.
            let got = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&mut on as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            if got == 0 {
                found.push(on != 0);
            }
        }
    }
    found
}

type NameFn =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

/// The IPv4 port `name` (getsockname or getpeername) gives for `fd`.
fn port(fd: libc::c_int, name: NameFn) -> Option<u16> {
    // SAFETY: an all-zero sockaddr_storage is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is large enough for any address and `len` says so.
    let got = unsafe {
        name(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if got != 0 || libc::c_int::from(addr.ss_family) != libc::AF_INET {
        return None;
    }
    // SAFETY: the family is AF_INET, so the storage holds a sockaddr_in.
    let inet = unsafe { &*(&addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
    Some(u16::from_be(inet.sin_port))
}

#[actix_web::test]
async fn client_and_origin_connections_have_tcp_nodelay() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let mut conn = BufReader::new(
        TcpStream::connect(("127.0.0.1", app.port))
            .await
            .expect("connect"),
    );
    get(&mut conn, "/cache/nodelay").await;
    let client_port = conn.get_ref().local_addr().expect("client addr").port();

    let accepted = nodelay_of_sockets(|local, peer| local == app.port && peer == client_port);
    assert_eq!(accepted, [true], "caje's side of the client connection");
    // awc keeps the connection to the origin for the next request.
    let to_origin = nodelay_of_sockets(|_, peer| peer == origin.port);
    assert!(!to_origin.is_empty(), "no connection to the origin is open");
    assert!(
        to_origin.iter().all(|on| *on),
        "caje's connections to the origin: {to_origin:?}"
    );
}
