//! The per-request log line, handed to the log writer's own thread: every
//! request's line reaches stderr, the last ones too when caje stops, and a
//! URL's query never does.

use std::time::Duration;

use crate::helpers::{process_config, spawn_origin, CajeProcess, HOST};

#[actix_web::test]
async fn every_request_is_logged_and_the_last_lines_are_written_when_caje_stops() {
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &origin.url(), "");
    let mut caje = CajeProcess::start(&config).await;
    let client = awc::Client::default();
    const REQUESTS: usize = 50;
    for i in 0..REQUESTS {
        let reply = client
            .get(caje.url(&format!("/cache/logged-{i}?token=hush")))
            .insert_header(("host", HOST))
            .send()
            .await
            .expect("an answer");
        assert_eq!(reply.status(), 200);
    }
    caje.signal(libc::SIGTERM);
    assert!(caje.wait_exit(Duration::from_secs(30)).await.success());
    let log = caje.log();
    for i in 0..REQUESTS {
        assert!(
            log.contains(&format!("http.target=/cache/logged-{i} ")),
            "no line for request {i}:\n{log}"
        );
    }
    assert_eq!(log.matches("request done").count(), REQUESTS, "{log}");
    assert!(!log.contains("hush"), "a query reached the log:\n{log}");
}
