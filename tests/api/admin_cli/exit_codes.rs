//! The exit codes scripts rely on, each with its message on stderr:
//! 1 the node refused or failed, 2 usage, 3 unreachable, 4 no token.

use std::net::TcpListener;

use super::{absolute, caje_admin, on, stderr, stdout};
use crate::helpers::{closed_port, spawn_admin_app, spawn_origin};

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[actix_web::test]
async fn a_wrong_token_exits_1_with_the_nodes_refusal() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let node = app.url("");
    for command in [
        &["list"][..],
        &["purge", "--tag", "t"],
        &["populate"],
        &["clear-cache"],
    ] {
        let mut args = command.to_vec();
        args.extend(["--node", node.as_str()]);
        let out = caje_admin(&args, Some("not-the-token")).await;
        assert_eq!(code(&out), Some(1), "{command:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("caje admin: the node answered 401: caje: this admin endpoint needs the admin token"),
            "{command:?}: {err}"
        );
        assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    }
}

#[actix_web::test]
async fn a_request_the_node_rejects_exits_1_with_its_message() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let out = on(&app, "purge", &["http://elsewhere.test/x"]).await;
    assert_eq!(code(&out), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "caje admin: the node answered 400: no origin is configured for host \"elsewhere.test\"\n"
    );
}

#[actix_web::test]
async fn no_token_exits_4_and_says_so() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let node = app.url("");
    for token in [None, Some(""), Some("  ")] {
        let out = caje_admin(&["list", "--node", &node], token).await;
        assert_eq!(code(&out), Some(4), "{token:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("CAJE_ADMIN_TOKEN is not set"),
            "{}",
            stderr(&out)
        );
    }
    let out = caje_admin(&["purge", &absolute("/x"), "--node", &node], None).await;
    assert_eq!(code(&out), Some(4));
}

#[actix_web::test]
async fn a_node_that_cannot_be_reached_exits_3() {
    let closed = format!("http://127.0.0.1:{}", closed_port());
    for command in ["list", "health", "populate"] {
        let out = caje_admin(&[command, "--node", &closed], Some("t")).await;
        assert_eq!(code(&out), Some(3), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with(&format!("caje admin: cannot reach the node at {closed}: ")),
            "{err}"
        );
    }

    // Accepts (the kernel does, into the backlog) but never answers.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let node = format!("http://{}", silent.local_addr().expect("addr"));
    let started = std::time::Instant::now();
    let out = caje_admin(&["health", "--timeout", "300ms", "--node", &node], None).await;
    assert_eq!(code(&out), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no answer within 300ms"),
        "{}",
        stderr(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[actix_web::test]
async fn usage_errors_exit_2() {
    for args in [
        &["purge"][..],
        &["purge", "http://a.test/", "--tag", "t"],
        &["list", "--node", "https://127.0.0.1:3001"],
        &["list", "--node", "127.0.0.1:3001"],
        &["health", "--timeout", "soon"],
        &["restart"],
    ] {
        let out = caje_admin(args, Some("t")).await;
        assert_eq!(code(&out), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}
