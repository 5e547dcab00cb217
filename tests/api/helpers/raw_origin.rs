//! Origins that speak raw TCP, for what a well-behaved HTTP server never
//! sends: fixed bytes, a hang mid-answer, a reset; and a raw client for
//! requests no HTTP client would write.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An origin that answers every connection with fixed bytes and keeps the
/// request heads it received, for checking exactly what crosses the wire.
pub struct RawOrigin {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
}

pub async fn spawn_raw_origin(response: &'static [u8]) -> RawOrigin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind raw origin");
    let port = listener.local_addr().expect("raw origin addr").port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    actix_web::rt::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let head = read_head(&mut socket).await;
            seen.lock().expect("requests lock").push(head);
            let _ = socket.write_all(response).await;
            let _ = socket.shutdown().await;
        }
    });
    RawOrigin { port, requests }
}

/// How a [`spawn_faulty_origin`] ends each answer after its fixed bytes.
#[derive(Clone)]
pub enum Ending {
    /// Keeps the connection open and never sends another byte.
    Hang,
    /// Resets the connection (`SO_LINGER` 0, so an RST rather than a FIN)
    /// once the test notifies: the test first sees the prefix arrive.
    ResetWhen(Arc<tokio::sync::Notify>),
}

/// An origin that answers every connection with `prefix` (which may be
/// empty), then hangs or resets as `ending` says; it keeps the request
/// heads it received.
pub async fn spawn_faulty_origin(prefix: &'static [u8], ending: Ending) -> RawOrigin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind faulty origin");
    let port = listener.local_addr().expect("faulty origin addr").port();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    actix_web::rt::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = seen.clone();
            let ending = ending.clone();
            actix_web::rt::spawn(async move {
                let head = read_head(&mut socket).await;
                seen.lock().expect("requests lock").push(head);
                let _ = socket.write_all(prefix).await;
                match ending {
                    // Held until the test's runtime ends.
                    Ending::Hang => std::future::pending::<()>().await,
                    Ending::ResetWhen(go) => {
                        go.notified().await;
                        let _ = socket.set_zero_linger();
                        drop(socket);
                    }
                }
            });
        }
    });
    RawOrigin { port, requests }
}

/// Reads an HTTP message head (up to the blank line) from a socket.
pub async fn read_head(socket: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Sends raw bytes to a server and returns everything it answers until it closes.
pub async fn raw_request(port: u16, request: &[u8]) -> String {
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    socket.write_all(request).await.expect("write request");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}
