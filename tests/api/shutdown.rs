//! Every way of running the `caje` binary stops on the first SIGINT
//! (Ctrl-C) or SIGTERM: it exits 0 within seconds and frees its ports, also
//! while a client holds a kept-alive connection open.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{eventually, process_config, spawn_origin};

/// Generous: each mode stops in well under a second when it works.
const EXIT_WITHIN: Duration = Duration::from_secs(10);

/// A `caje` process with its stdout collected line by line.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_caje"))
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("caje binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let kept = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                kept.lock().expect("stdout lock").push(line);
            }
        });
        Running {
            child,
            stdout: lines,
        }
    }

    /// The port announced on the line starting with `prefix`.
    async fn announced(&self, prefix: &str) -> u16 {
        eventually(|| async {
            let lines = self.stdout.lock().expect("stdout lock");
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
        })
        .await
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in pid_t");
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        assert_eq!(
            unsafe { libc::kill(pid, signal) },
            0,
            "kill({pid}, {signal})"
        );
    }

    /// Polls until the process has exited; fails the test after [`EXIT_WITHIN`].
    async fn exited(&mut self, what: &str) -> ExitStatus {
        let deadline = std::time::Instant::now() + EXIT_WITHIN;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what} still runs {EXIT_WITHIN:?} after the signal"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Opens a connection to `port`, asks `GET path` for `host` on it and reads
/// the answer's status line; the connection stays open, as a browser's would.
async fn kept_alive(port: u16, host: &str, path: &str) -> TcpStream {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.write_all(request.as_bytes()).await.expect("write");
    let mut head = [0u8; 12];
    conn.read_exact(&mut head).await.expect("answer");
    assert_eq!(&head, b"HTTP/1.1 200", "GET {path} on port {port}");
    conn
}

fn assert_free(port: u16, what: &str) {
    if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", port)) {
        panic!("{what}'s port {port} is still taken after the exit: {e}");
    }
}

/// The demo (`caje` without a config) with its files in `dir`, and the
/// ports of its slow server and of caje.
async fn start_demo(dir: &std::path::Path) -> (Running, u16, u16) {
    let (cache, db) = (dir.join("cache"), dir.join("manifest.db"));
    let env = HashMap::from([
        ("CAJE_DEMO_ORIGIN", "127.0.0.1:0".to_owned()),
        ("CAJE_LISTEN", "127.0.0.1:0".to_owned()),
        ("CAJE_CACHE_DIR", cache.display().to_string()),
        ("CAJE_DATABASE", db.display().to_string()),
        ("CAJE_LITEFS", "off".to_owned()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let demo = Running::start(&[], &env);
    let origin_port = demo.announced("demo origin listening on port ").await;
    let caje_port = demo.announced("caje listening on port ").await;
    (demo, origin_port, caje_port)
}

const SIGNALS: [(libc::c_int, &str); 2] = [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")];

#[actix_web::test]
async fn the_demo_stops_on_sigint_and_on_sigterm_and_frees_both_ports() {
    for (signal, name) in SIGNALS {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut demo, origin_port, caje_port) = start_demo(dir.path()).await;
        // Through caje, so caje holds a pooled connection to the origin too.
        let _browser = kept_alive(caje_port, "localhost", "/").await;

        demo.signal(signal);
        let status = demo.exited(&format!("the demo after {name}")).await;
        assert_eq!(status.code(), Some(0), "the demo after {name}: {status}");
        assert_free(origin_port, "the demo origin");
        assert_free(caje_port, "caje");
    }
}

/// Sends `GET path` on a new connection and leaves the answer unread.
async fn asked(port: u16, path: &str) -> TcpStream {
    let mut conn = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn.write_all(request.as_bytes()).await.expect("write");
    conn
}

/// Everything `conn` receives until its peer closes it.
async fn rest_of(mut conn: TcpStream) -> String {
    let mut got = Vec::new();
    // A reset is a close too.
    let _ = actix_web::rt::time::timeout(EXIT_WITHIN, conn.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[actix_web::test]
async fn ctrl_c_drops_the_demos_answers_in_flight_and_its_origins_too() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut demo, origin_port, caje_port) = start_demo(dir.path()).await;
    // `/slow` answers after 5 s: one asked through caje, one of the origin
    // itself, both still waiting when Ctrl-C comes.
    let through_caje = asked(caje_port, "/slow").await;
    let of_origin = asked(origin_port, "/slow").await;

    demo.signal(libc::SIGINT);
    let status = demo.exited("the demo after SIGINT").await;
    assert_eq!(status.code(), Some(0), "the demo after SIGINT: {status}");
    for (what, conn) in [("caje", through_caje), ("the demo origin", of_origin)] {
        let answer = rest_of(conn).await;
        assert!(
            !answer.contains("HTTP/1.1"),
            "{what} answered after Ctrl-C instead of dropping the request: {answer}"
        );
    }
}

#[actix_web::test]
async fn a_node_stops_on_sigint_and_on_sigterm_with_a_client_connected() {
    let origin = spawn_origin().await;
    for (signal, name) in SIGNALS {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = process_config(dir.path(), &origin.url(), "");
        let config = config.display().to_string();
        let mut node = Running::start(&["--config", &config], &[]);
        let port = node.announced("caje listening on port ").await;
        let _client = kept_alive(port, crate::helpers::HOST, "/cache/x").await;

        node.signal(signal);
        let status = node.exited(&format!("caje --config after {name}")).await;
        assert_eq!(
            status.code(),
            Some(0),
            "caje --config after {name}: {status}"
        );
        assert_free(port, "caje");
    }
}

#[actix_web::test]
async fn the_demo_origin_command_stops_on_sigint_and_on_sigterm() {
    for (signal, name) in SIGNALS {
        let mut origin = Running::start(&["demo-origin", "--listen", "127.0.0.1:0"], &[]);
        let port = origin.announced("demo origin listening on port ").await;
        let _client = kept_alive(port, "localhost", "/").await;

        origin.signal(signal);
        let status = origin
            .exited(&format!("caje demo-origin after {name}"))
            .await;
        assert_eq!(
            status.code(),
            Some(0),
            "caje demo-origin after {name}: {status}"
        );
        assert_free(port, "the demo origin");
    }
}
