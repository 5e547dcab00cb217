//! Nothing like an admin path is ever forwarded to an origin.

use crate::helpers::{spawn_admin_app, spawn_origin, HOST, TOKEN};

#[actix_web::test]
async fn nothing_like_an_admin_path_is_ever_forwarded() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    let bearer = format!("Bearer {TOKEN}");
    let paths = [
        "/_caje",
        "/_caje/nope",
        "/_caje/nope?x=1",
        "/_caje/../x",
        "/_caje/./list",
        "/./_caje/list",
        "/x/../_caje/list",
        "/%5Fcaje/list",
        "/%5fcaje/purge",
        "/%5F%63%61%6A%65/list",
        "/%255Fcaje/list",
        "/_caje%2Flist",
        "//_caje/list",
        "///_caje/clear_fs",
        "/_CAJE/list",
        "/_Caje/purge",
        "/%5FCAJE/clear_db",
        "/_caje;jsessionid=1/list",
        "/_caje/",
    ];
    for path in paths {
        for method in ["GET", "POST", "PURGE", "DELETE"] {
            for headers in [vec![], vec![("authorization", bearer.as_str())]] {
                let reply = app.request(method, HOST, path, &headers).await;
                // Answered by caje itself: the admin scope (even 200 for an
                // authorised `/%5Fcaje/list`, which actix-web decodes), 404
                // for a lookalike, or 400 for a dot segment.
                assert!(
                    reply.status < 500,
                    "{method} {path}: {} {}",
                    reply.status,
                    reply.body
                );
            }
        }
        assert_eq!(origin.counter.total(), 0, "{path} was forwarded");
    }
    // Not a lookalike: an origin path that merely contains the name.
    let reply = app.get("/cache/_caje").await;
    assert_eq!(reply.status, 200);
    assert_eq!(origin.counter.total(), 1);
}
