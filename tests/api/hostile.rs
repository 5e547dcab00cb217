//! Malformed and hostile requests: oversized heads and bodies, odd paths and
//! hosts, absolute-form targets, request smuggling and slow clients. Each is
//! refused by caje (or by actix-http's parser under it) without the origin
//! ever seeing it, and caje keeps serving everyone else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{
    eventually, spawn_app, spawn_app_in, spawn_origin, Counter, TestOrigin, HOST,
};

/// What a server answered on one connection.
struct Answer {
    text: String,
    /// The server closed the connection (rather than the read giving up).
    closed: bool,
}

impl Answer {
    /// The status of the first response; 0 when nothing came back.
    fn status(&self) -> u16 {
        self.text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }

    /// How many responses came back.
    fn responses(&self) -> usize {
        self.text.matches("HTTP/1.1 ").count()
    }
}

/// Writes `request` while reading, so a server that answers early and
/// closes never blocks the writer, and reads until the server closes.
async fn exchange(port: u16, request: Vec<u8>) -> Answer {
    let socket = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut reader, mut writer) = socket.into_split();
    // The write half is kept open until the answer is read: closing it
    // would tell the server the client has gone.
    let writing = actix_web::rt::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let answer = read_until_closed(&mut reader).await;
    drop(writing.await);
    answer
}

/// Reads until the peer closes (or resets) the connection; gives up after 10 s.
async fn read_until_closed(reader: &mut (impl AsyncReadExt + Unpin)) -> Answer {
    let mut out = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut out))
        .await
        .is_ok();
    Answer {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed,
    }
}

/// A one-shot `GET` of `target` with the given `Host` line (or none).
async fn get(port: u16, target: &str, host_lines: &str) -> Answer {
    let request = format!("GET {target} HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n");
    exchange(port, request.into_bytes()).await
}

/// A listener that never answers: it counts the connections made to it and
/// keeps every byte that arrives on them.
struct Recorder {
    port: u16,
    connections: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<u8>>>,
}

async fn spawn_recorder() -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let (counted, ended, kept) = (connections.clone(), closed.clone(), received.clone());
    actix_web::rt::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let (ended, kept) = (ended.clone(), kept.clone());
            actix_web::rt::spawn(async move {
                let mut buf = [0u8; 16 * 1024];
                while let Ok(n @ 1..) = socket.read(&mut buf).await {
                    kept.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Recorder {
        port,
        connections,
        closed,
        received,
    }
}

#[actix_web::test]
async fn oversized_request_heads_get_431_and_never_reach_the_origin() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let head = |fields: String| {
        format!("GET /cache/big HTTP/1.1\r\nHost: {HOST}\r\n{fields}Connection: close\r\n\r\n")
            .into_bytes()
    };
    let kib = |n: usize| "a".repeat(n * 1024);
    // actix-http's limits: 128 KiB for the whole head, 96 fields.
    let cases = [
        ("one huge field", format!("X-Big: {}\r\n", kib(130))),
        (
            "many large fields",
            (0..40)
                .map(|i| format!("X-Big-{i}: {}\r\n", kib(4)))
                .collect(),
        ),
        (
            "too many fields",
            (0..100).map(|i| format!("X-Field-{i}: v\r\n")).collect(),
        ),
    ];
    for (case, fields) in cases {
        let answer = exchange(app.port, head(fields)).await;
        assert_eq!(answer.status(), 431, "{case}: {}", answer.text);
        assert!(answer.closed, "{case}: connection left open");
    }
    assert_eq!(origin.counter.total(), 0);

    // A large head within both limits is served.
    let fields: String = (0..80)
        .map(|i| format!("X-Big-{i}: {}\r\n", kib(1)))
        .collect();
    let answer = exchange(app.port, head(fields)).await;
    assert_eq!(answer.status(), 200, "{}", answer.text);
    assert_eq!(origin.counter.get("/cache/big"), 1);
}

#[actix_web::test]
async fn a_declared_body_over_max_request_body_gets_413_without_the_origin() {
    const LIMIT: u64 = 64 * 1024;
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| s.max_request_body = LIMIT).await;
    let post = |length: u64, fields: &str, body: &[u8]| {
        let mut request = format!(
            "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {length}\r\n{fields}\r\n"
        )
        .into_bytes();
        request.extend_from_slice(body);
        request
    };
    // Declared, not sent: caje must answer from the header alone, and
    // closes rather than read what follows.
    let answer = exchange(app.port, post(LIMIT + 1, "", b"only the start")).await;
    assert_eq!(answer.status(), 413, "{}", answer.text);
    assert!(answer.closed, "connection left open");
    assert!(
        answer.text.contains("larger than 65536 bytes"),
        "{}",
        answer.text
    );
    assert_eq!(origin.counter.total(), 0);

    let body = vec![b'b'; LIMIT as usize];
    let answer = exchange(app.port, post(LIMIT, "Connection: close\r\n", &body)).await;
    assert_eq!(answer.status(), 200, "{}", answer.text);
    assert!(
        answer.text.ends_with(&"b".repeat(1000)),
        "the body passed whole"
    );
    assert_eq!(origin.counter.get("POST /echo"), 1);
}

/// A chunked body of `chunks` chunks of 16 KiB, after the extra `fields`;
/// the last chunk is for the caller to add.
fn chunked_post(chunks: usize, fields: &str) -> Vec<u8> {
    let mut request = format!(
        "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n{fields}\r\n"
    )
    .into_bytes();
    for _ in 0..chunks {
        request.extend_from_slice(b"4000\r\n");
        request.extend_from_slice(&[b'c'; 16 * 1024]);
        request.extend_from_slice(b"\r\n");
    }
    request
}

#[actix_web::test]
async fn a_chunked_body_over_max_request_body_is_cut_off_with_413() {
    const LIMIT: u64 = 64 * 1024;
    let recorder = spawn_recorder().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let upstream = TestOrigin {
        port: recorder.port,
        counter: Counter::default(),
    };
    let app = spawn_app_in(&upstream, dir, |s| s.max_request_body = LIMIT).await;
    // The body never ends: caje must not wait for (or drain) the rest.
    let answer = exchange(app.port, chunked_post(16, "")).await;
    assert_eq!(answer.status(), 413, "{}", answer.text);
    assert!(answer.closed, "connection left open");
    // The origin request was aborted, with no more than the limit sent.
    eventually(|| async { (recorder.closed.load(Ordering::SeqCst) == 1).then_some(()) }).await;
    let received = recorder.received.lock().expect("lock").clone();
    let body_start = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(received.len(), |end| end + 4);
    let body_bytes = received[body_start..]
        .iter()
        .filter(|&&b| b == b'c')
        .count() as u64;
    assert!(
        body_bytes <= LIMIT,
        "{body_bytes} body bytes reached the origin"
    );
}

#[actix_web::test]
async fn a_chunked_body_within_max_request_body_is_forwarded() {
    const LIMIT: u64 = 64 * 1024;
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| s.max_request_body = LIMIT).await;
    let mut request = chunked_post(4, "Connection: close\r\n");
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(app.port, request).await;
    assert_eq!(answer.status(), 200, "{}", answer.text);
    assert!(
        answer.text.ends_with(&"c".repeat(64 * 1024)),
        "the body passed whole"
    );
    assert_eq!(origin.counter.get("POST /echo"), 1);
}

#[actix_web::test]
async fn bad_percent_encoding_and_dot_segments_get_400_and_are_never_forwarded() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let host = format!("Host: {HOST}\r\n");
    for target in [
        "/cache/a%zz",
        "/cache/a%2",
        "/cache/a%",
        "/cache/../private",
        "/cache/./x",
        "/cache/..",
        "/cache/%2e%2e/private",
        "/cache/%2E./private",
        "/cache/..%2Fprivate",
        "/cache/..%5cprivate",
        "/cache/a%00b",
        "*",
    ] {
        let answer = get(app.port, target, &host).await;
        assert_eq!(answer.status(), 400, "{target}: {}", answer.text);
    }
    assert_eq!(origin.counter.total(), 0);
}

/// Admin lookalikes encoded several times over, and nestings deep enough
/// that decoding them until nothing changes took seconds of CPU each: all
/// answered by caje (404 for a lookalike, 400 beyond the decoding rounds
/// followed), none forwarded, and the node keeps serving.
#[actix_web::test]
async fn deeply_nested_encodings_are_answered_by_caje_and_never_forwarded() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let host = format!("Host: {HOST}\r\n");
    let targets = [
        "/%255Fcaje/list".to_owned(),
        "/%25255Fcaje/list".to_owned(),
        "/%2525255Fcaje/purge".to_owned(),
        "/%252525255Fcaje/list".to_owned(),
        // `/_caje` two decodings deep, though not once decoded to the end
        // (`/a/b/../_caje`): an origin decoding twice resolves it there.
        "/a%25252Fb/%252e%252e/_caje/list".to_owned(),
        format!("/%{}5Fcaje/list", "25".repeat(20)),
        format!("/%25{}", "25".repeat(32_000)),
        format!("/{}%255Fcaje/list", "%252e/".repeat(2_000)),
    ];
    for target in &targets {
        let answer = get(app.port, target, &host).await;
        let status = answer.status();
        assert!(
            status == 400 || status == 404,
            "{}…: {}",
            &target[..target.len().min(40)],
            answer.text.lines().next().unwrap_or("")
        );
        assert_eq!(
            origin.counter.total(),
            0,
            "{}… was forwarded",
            &target[..target.len().min(40)]
        );
    }
    assert_eq!(app.get("/cache/after").await.status, 200);
}

#[actix_web::test]
async fn encoded_slashes_are_forwarded_as_sent_and_keyed_apart() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    // The origin answers with the path it saw.
    let encoded = app.get("/cache/a%2Fb").await;
    assert_eq!(encoded.body, "/cache/a%2Fb #1");
    let lower = app.get("/cache/a%2fb").await;
    assert_eq!(lower.body, "/cache/a%2fb #1");
    let plain = app.get("/cache/a/b").await;
    assert_eq!(plain.body, "/cache/a/b #1");
    app.stored(3).await;
    let again = app.get("/cache/a%2Fb").await;
    assert!(
        again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );
    assert_eq!(again.body, "/cache/a%2Fb #1");
    assert_eq!(origin.counter.total(), 3);
}

#[actix_web::test]
async fn an_absolute_form_target_is_routed_by_its_authority_not_host() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    // An authority caje does not serve, even a reachable one: 421, no request to it.
    let elsewhere = spawn_recorder().await;
    let target = format!("http://127.0.0.1:{}/cache/x", elsewhere.port);
    let answer = get(app.port, &target, &format!("Host: {HOST}\r\n")).await;
    assert_eq!(answer.status(), 421, "{}", answer.text);
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
    assert_eq!(origin.counter.total(), 0);

    // A served authority works whatever Host says, keyed like origin-form.
    let target = format!("http://{HOST}/cache/abs");
    let answer = get(app.port, &target, "Host: other.example\r\n").await;
    assert_eq!(answer.status(), 200, "{}", answer.text);
    assert!(answer.text.ends_with("/cache/abs #1"), "{}", answer.text);
    app.stored(1).await;
    let again = app.get("/cache/abs").await;
    assert!(
        again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );

    // No user info, no other scheme, no CONNECT tunnel.
    for (target, host) in [
        (format!("http://user@{HOST}/cache/x"), HOST),
        (format!("ftp://{HOST}/cache/x"), HOST),
        (format!("{HOST}:80"), HOST),
    ] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let answer = exchange(app.port, request.into_bytes()).await;
        assert_eq!(answer.status(), 400, "{target}: {}", answer.text);
    }
    let connect = format!("CONNECT {HOST}:80 HTTP/1.1\r\nHost: {HOST}:80\r\n\r\n");
    let answer = exchange(app.port, connect.into_bytes()).await;
    assert_eq!(answer.status(), 400, "CONNECT: {}", answer.text);
    assert_eq!(origin.counter.total(), 1);
}

#[actix_web::test]
async fn missing_repeated_and_odd_hosts_get_400_and_never_reach_the_origin() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let long = format!("Host: {}.test\r\n", "a".repeat(300));
    for (case, lines) in [
        ("no Host", String::new()),
        ("empty Host", "Host: \r\n".to_owned()),
        ("two Hosts", format!("Host: {HOST}\r\nHost: {HOST}\r\n")),
        (
            "two different Hosts",
            format!("Host: {HOST}\r\nHost: other.test\r\n"),
        ),
        ("space", format!("Host: {HOST} other.test\r\n")),
        ("user info", format!("Host: user@{HOST}\r\n")),
        ("port not a number", format!("Host: {HOST}:http\r\n")),
        ("port out of range", format!("Host: {HOST}:99999\r\n")),
        ("two ports", format!("Host: {HOST}:80:80\r\n")),
        ("open IPv6 literal", "Host: [::1\r\n".to_owned()),
        ("very long", long),
    ] {
        let answer = get(app.port, "/cache/x", &lines).await;
        assert_eq!(answer.status(), 400, "{case}: {}", answer.text);
    }
    // Not UTF-8.
    let mut request =
        b"GET /cache/x HTTP/1.1\r\nHost: site\xe9.test\r\nConnection: close\r\n\r\n".to_vec();
    let answer = exchange(app.port, std::mem::take(&mut request)).await;
    assert_eq!(answer.status(), 400, "{}", answer.text);
    // HTTP/1.0 may leave Host out, but caje then cannot route.
    let answer = exchange(app.port, b"GET /cache/x HTTP/1.0\r\n\r\n".to_vec()).await;
    assert!(answer.text.starts_with("HTTP/1.0 400"), "{}", answer.text);
    assert_eq!(origin.counter.total(), 0);
    // Still serving.
    assert_eq!(app.get("/cache/x").await.status, 200);
}

#[actix_web::test]
async fn ambiguous_framing_gets_400_closes_and_smuggles_nothing() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let smuggled = format!("GET /cache/smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    // Each head frames the body differently for a reader that trusts the
    // other field: the smuggled request would be read as a second one.
    let chunked_body = format!("0\r\n\r\n{smuggled}");
    for (case, fields, body) in [
        (
            "Content-Length and Transfer-Encoding",
            format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                chunked_body.len()
            ),
            chunked_body.clone(),
        ),
        (
            "Transfer-Encoding and Content-Length",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n".to_owned(),
            chunked_body.clone(),
        ),
        (
            "two different Content-Lengths",
            format!(
                "Content-Length: 0\r\nContent-Length: {}\r\n",
                smuggled.len()
            ),
            smuggled.clone(),
        ),
        (
            "two equal Content-Lengths",
            format!(
                "Content-Length: {0}\r\nContent-Length: {0}\r\n",
                smuggled.len()
            ),
            smuggled.clone(),
        ),
        (
            "Transfer-Encoding not ending in chunked",
            "Transfer-Encoding: chunked, identity\r\n".to_owned(),
            chunked_body.clone(),
        ),
        (
            "space before the colon",
            format!("Content-Length : {}\r\n", smuggled.len()),
            smuggled.clone(),
        ),
    ] {
        let request = format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\n{fields}\r\n{body}");
        let answer = exchange(app.port, request.into_bytes()).await;
        assert_eq!(answer.status(), 400, "{case}: {}", answer.text);
        assert_eq!(answer.responses(), 1, "{case}: {}", answer.text);
        assert!(answer.closed, "{case}: connection left open");
    }
    assert_eq!(origin.counter.total(), 0);

    // The same bytes with honest framing are two requests: the check above
    // would have seen the second one.
    let honest = format!(
        "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 2\r\n\r\nhi{}",
        smuggled.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")
    );
    let answer = exchange(app.port, honest.into_bytes()).await;
    assert_eq!(answer.responses(), 2, "{}", answer.text);
    assert_eq!(origin.counter.get("/cache/smuggled"), 1);
}

#[actix_web::test]
async fn a_trickling_client_is_cut_off_while_others_are_served() {
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| {
        s.client_request_timeout = Duration::from_secs(1)
    })
    .await;
    let socket = TcpStream::connect(("127.0.0.1", app.port))
        .await
        .expect("connect");
    let (mut reader, mut writer) = socket.into_split();
    let (started, mut trickling) = tokio::sync::mpsc::channel(1);
    // One byte every 100 ms: the head would be whole after about 3 s, well
    // past the 1 s allowed (and within actix-web's default of 5 s).
    let trickle = actix_web::rt::spawn(async move {
        let head = format!(
            "GET /cache/slow HTTP/1.1\r\nHost: {HOST}\r\nX-Slow: {}\r\n\r\n",
            "s".repeat(18)
        );
        let (start, rest) = head.split_at(head.find("X-Slow").expect("field"));
        writer.write_all(start.as_bytes()).await?;
        let _ = started.send(()).await;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        for byte in rest.bytes() {
            tick.tick().await;
            writer.write_all(&[byte]).await?;
        }
        Ok::<_, std::io::Error>(writer)
    });
    trickling.recv().await.expect("trickle started");
    // Meanwhile everyone else is served.
    let other = app.get("/cache/other").await;
    assert_eq!(other.status, 200);
    let answer = read_until_closed(&mut reader).await;
    assert!(answer.closed, "the trickling client was not cut off");
    assert_eq!(answer.status(), 408, "{}", answer.text);
    drop(trickle.await);
    assert_eq!(origin.counter.get("/cache/slow"), 0);
}
