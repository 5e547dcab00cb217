//! The admin token never reaches the logs.

use crate::helpers::{
    eventually, process_config, request, spawn_origin, test_client, CajeProcess, HOST, TOKEN,
};

#[actix_web::test]
async fn the_admin_token_never_reaches_the_logs() {
    const WRONG: &str = "wrong-admin-token-9876543210";
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &origin.url(), "workers = 1");
    let caje = CajeProcess::start_with(
        "caje",
        &config,
        &[("CAJE_ADMIN_TOKEN", TOKEN), ("RUST_LOG", "trace")],
    )
    .await;
    let client = test_client();
    let (bearer, wrong) = (format!("Bearer {TOKEN}"), format!("Bearer {WRONG}"));
    let (bearer, wrong) = (bearer.as_str(), wrong.as_str());
    let session = format!("caje_session_{}={TOKEN}", caje.port);
    let session = session.as_str();
    let cookies = format!("token={TOKEN}; other={WRONG}");
    let cookies = cookies.as_str();
    let requests = vec![
        ("GET", "/_caje/list".into(), vec![("authorization", bearer)]),
        ("GET", "/_caje/list".into(), vec![("authorization", wrong)]),
        ("GET", "/_caje/metrics".into(), vec![("cookie", session)]),
        ("GET", format!("/_caje/list?token={TOKEN}"), vec![]),
        ("GET", format!("/_caje/list?token={WRONG}"), vec![]),
        ("GET", format!("/_caje/nope?token={TOKEN}"), vec![]),
        (
            "POST",
            format!("/_caje/populate?t={TOKEN}"),
            vec![("authorization", bearer)],
        ),
        (
            "POST",
            "/_caje/clear_fs".into(),
            vec![("authorization", wrong), ("cookie", cookies)],
        ),
        (
            "GET",
            "/cache/logged".into(),
            vec![("authorization", bearer), ("cookie", cookies)],
        ),
        (
            "GET",
            "/echo".into(),
            vec![("authorization", wrong), ("cookie", session)],
        ),
        (
            "PURGE",
            "/cache/logged".into(),
            vec![("authorization", wrong)],
        ),
        (
            "PURGE",
            "/cache/logged".into(),
            vec![("authorization", bearer)],
        ),
        (
            "PURGE",
            format!("/cache/other?token={TOKEN}"),
            vec![("cookie", session)],
        ),
    ];
    let mut answered = 0;
    for (method, path, headers) in &requests {
        let reply = request(&client, &caje.url(path), method, HOST, headers).await;
        assert!(reply.status < 500, "{method} {path}: {}", reply.status);
        answered += 1;
    }
    for token in [TOKEN, WRONG] {
        let res = client
            .post(caje.url("/_caje/login"))
            .send_form(&[("token", token)])
            .await
            .expect("login answers");
        assert!(res.status().as_u16() < 500);
        answered += 1;
    }
    // Every request has been logged (at trace, with its spans and headers'
    // neighbours) before the output is searched.
    let output = eventually(|| async {
        let output = caje.output();
        (output.matches("request done").count() >= answered).then_some(output)
    })
    .await;
    assert!(output.contains("TRACE"), "not logging at trace:\n{output}");
    for secret in [TOKEN, WRONG] {
        assert!(
            !output.contains(secret),
            "{secret} is in the output:\n{}",
            output
                .lines()
                .filter(|l| l.contains(secret))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
