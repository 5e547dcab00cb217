//! Keeping the codings right: a new identity body replaces them, an
//! identity variant that cannot be compressed is not tried again, and pages
//! move between nodes by URL while each node makes its own codings.

use actix_web::web;
use caje::config::Compress;

use super::{
    fetch, get, page, serve, site, spawn_site, versioned, Seen, TestApp, BROWSER, PAGE_LEN,
};

#[actix_web::test]
async fn a_new_identity_body_replaces_the_codings_made_from_the_old_one() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let old = get(app, "/ver/a", Some("br")).await;
    assert_eq!(old.decoded(), versioned(1));
    // A client's own `no-cache` fetches (and stores) a newer identity body.
    let newer = fetch(app, "GET", "/ver/a", &[("cache-control", "no-cache")]).await;
    assert_eq!(newer.body, versioned(2));
    app.stored(3).await;
    let br = get(app, "/ver/a", Some("br")).await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    assert_eq!(br.decoded(), versioned(2), "compressed from the new body");
    assert_eq!(br.header("etag"), Some("W/\"v2\""));
    assert_eq!(site.seen.count("/ver/a"), 2);
}

/// How many `Compress` messages the store has handled.
fn compress_messages(app: &TestApp) -> u64 {
    let text = app.metrics.render().expect("metrics");
    text.lines()
        .find(|l| {
            l.starts_with("caje_actor_messages_total")
                && l.contains("actor=\"cache_store\"")
                && l.contains("message=\"compress\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[actix_web::test]
async fn an_identity_variant_found_not_compressible_is_served_without_trying_again() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    // The origin varies on the coding itself, for an image it never compresses.
    let identity = get(app, "/vary-png/a", None).await;
    assert!(identity.varies_on_coding());
    app.stored(1).await;
    for _ in 0..3 {
        let br = get(app, "/vary-png/a", Some("br")).await;
        assert!(br.hit(), "{:?}", br.header("cache-status"));
        assert_eq!(br.header("content-encoding"), None);
        assert_eq!(br.body, identity.body);
    }
    assert_eq!(compress_messages(app), 1, "tried once");
    assert_eq!(site.seen.count("/vary-png/a"), 1);
}

#[actix_web::test]
async fn peers_and_the_populator_move_pages_and_each_node_makes_its_own_codings() {
    use caje::config::PeerFetch;

    use crate::helpers::{Counter, TestOrigin};
    use crate::peers::{node, warm};

    let seen = web::Data::new(Seen::default());
    let origin = TestOrigin {
        port: serve(seen.clone(), site),
        counter: Counter::default(),
    };
    let shared = tempfile::tempdir().expect("temp dir");
    let database = shared.path().join("manifest.db");
    let a = node(&origin, &database, "a", |_| {}).await;
    let b = node(&origin, &database, "b", |s| s.peer_fetch = PeerFetch::All).await;
    let c = node(&origin, &database, "c", |_| {}).await;
    let identity = page(PAGE_LEN);

    let on_a = get(&a, "/page/p", Some(BROWSER)).await;
    assert_eq!(on_a.header("content-encoding"), Some("br"));
    b.pages(1).await;

    // b's br client: a's br variant, stored on b as it is.
    let on_b = get(&b, "/page/p", Some(BROWSER)).await;
    let status = on_b.header("cache-status").unwrap_or("");
    assert!(status.starts_with("caje-a; hit, caje-b; fwd="), "{status}");
    assert_eq!(on_b.body, on_a.body);
    b.stored(1).await;
    let again = get(&b, "/page/p", Some("br")).await;
    assert!(again.hit(), "{:?}", again.header("cache-status"));
    assert_eq!(again.body, on_a.body);
    // b's identity client: a's identity variant, never the br one.
    let plain = get(&b, "/page/p", None).await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, identity);
    // b now holds the page last (the manifest says so): stored whole first.
    b.stored(2).await;

    // c's populator warms the page by URL: the identity variant, from which
    // c makes its codings itself.
    warm(&c, 1).await;
    let on_c = get(&c, "/page/p", Some("gzip")).await;
    assert!(on_c.hit(), "{:?}", on_c.header("cache-status"));
    assert_eq!(on_c.header("content-encoding"), Some("gzip"));
    assert_eq!(on_c.decoded(), identity);
    assert_eq!(seen.count("/page/p"), 1, "one origin fetch in all");
}
