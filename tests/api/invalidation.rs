//! A non-error response to an unsafe method invalidates the stored
//! responses of its target, and of same-host `Location` / `Content-Location`.

use crate::helpers::{spawn_app, spawn_origin, HOST};

#[actix_web::test]
async fn unsafe_methods_invalidate_their_target_and_same_host_locations() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let paths = [
        "/cache/t",
        "/cache/l",
        "/cache/cl",
        "/cache/far",
        "/cache/e",
    ];
    for path in paths {
        app.get(path).await;
    }
    app.stored(paths.len() as u64).await;
    let hit = |reply: &crate::helpers::Reply| reply.cache_status().contains("hit");

    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        app.get("/cache/t").await;
        let reply = app.request(method, HOST, "/cache/t", &[]).await;
        assert_eq!(reply.status, 200, "{method}");
        let after = app.get("/cache/t").await;
        assert!(
            !hit(&after),
            "{method} left /cache/t stored: {}",
            after.cache_status()
        );
    }

    let write = format!("/write?location=/cache/l&content_location=http://{HOST}/cache/cl");
    assert_eq!(app.request("POST", HOST, &write, &[]).await.status, 200);
    assert!(!hit(&app.get("/cache/l").await));
    assert!(!hit(&app.get("/cache/cl").await));

    // Another host's location, and an error response, invalidate nothing.
    let far = "/write?location=http://elsewhere.test/cache/far";
    app.request("POST", HOST, far, &[]).await;
    assert!(hit(&app.get("/cache/far").await));
    let failed = "/write?status=500&location=/cache/e";
    assert_eq!(app.request("POST", HOST, failed, &[]).await.status, 500);
    assert!(hit(&app.get("/cache/e").await));
}
