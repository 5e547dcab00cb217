//! No cache poisoning through a client's forwarding or override headers.

use std::time::Duration;

use super::origin::spawn_gullible_origin;
use crate::helpers::{spawn_app_with, HOST};

#[actix_web::test]
async fn forwarding_and_override_headers_never_poison_the_cache() {
    let origin = spawn_gullible_origin().await;
    let app = spawn_app_with(vec![(HOST, origin.url(), Duration::from_secs(10))]).await;
    let poison = [
        ("x-forwarded-host", "evil.test"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-scheme", "gopher"),
        ("x-forwarded-port", "4443"),
        ("x-forwarded-prefix", "/prefixed"),
        ("x-forwarded-for", "203.0.113.66"),
        ("x-forwarded-server", "server.evil.test"),
        ("forwarded", "for=203.0.113.67;host=fwd.evil.test;proto=wss"),
        ("x-original-url", "/original-url"),
        ("x-rewrite-url", "/rewrite-url"),
        ("x-original-host", "original.evil.test"),
        ("x-host", "xhost.evil.test"),
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "PATCH"),
        ("x-method-override", "PUT"),
        ("x-real-ip", "203.0.113.68"),
        ("x-url-scheme", "ftp"),
    ];
    let clean = format!("GET http://{HOST}/page for 127.0.0.1");
    let poisoned = app.get_with("/page", &poison).await;
    assert_eq!(poisoned.body, clean);
    assert!(
        poisoned.cache_status().contains("stored"),
        "{}",
        poisoned.cache_status()
    );
    app.stored(1).await;
    assert!(app.entry_path("/page").exists(), "not under the plain key");
    let after = app.get("/page").await;
    assert!(
        after.cache_status().contains("hit"),
        "{}",
        after.cache_status()
    );
    assert_eq!(after.body, clean);
    let heads = origin.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    for (name, value) in poison {
        assert!(
            !heads[0].contains(value),
            "the origin saw the client's {name}: {value}\n{}",
            heads[0]
        );
    }
}
