//! The variants: one per coding, what each answers (bytes, length,
//! validator, ranges, HEAD, 304), and what is never compressed.

use caje::actors::cache_store::{GetCacheStats, Purge};
use caje::cache::encoding::Encoding;
use caje::cache::CacheKey;
use caje::codec;
use caje::config::Compress;

use super::{entries, fetch, get, page, spawn_site, BROWSER, PAGE_LEN};
use crate::helpers::HOST;

#[actix_web::test]
async fn a_text_page_is_stored_once_per_coding_and_decodes_to_the_origin_s_bytes() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let origin_bytes = page(PAGE_LEN);

    let first = get(app, "/page/a", Some(BROWSER)).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-encoding"), Some("br"));
    assert!(first.varies_on_coding());
    assert_eq!(first.content_length(), Some(first.body.len() as u64));
    assert!(
        first.body.len() * 3 < PAGE_LEN,
        "{} bytes",
        first.body.len()
    );
    assert_eq!(first.decoded(), origin_bytes);
    assert_eq!(first.header("etag"), Some("W/\"p1\""));

    // The second br request (any header string that means br) is a hit with the same bytes.
    for ae in [BROWSER, "br", "br;q=1.0, gzip;q=0.5", "*"] {
        let again = get(app, "/page/a", Some(ae)).await;
        assert!(again.hit(), "{ae}: {:?}", again.header("cache-status"));
        assert_eq!(again.header("content-encoding"), Some("br"));
        assert_eq!(again.body, first.body, "{ae}");
    }

    for (ae, token) in [
        ("zstd, gzip", "zstd"),
        ("gzip", "gzip"),
        ("x-gzip;q=0.5", "gzip"),
    ] {
        let made = get(app, "/page/a", Some(ae)).await;
        assert_eq!(made.header("content-encoding"), Some(token), "{ae}");
        assert_eq!(made.content_length(), Some(made.body.len() as u64));
        assert_eq!(made.decoded(), origin_bytes, "{ae}");
        assert_eq!(made.header("etag"), Some("W/\"p1\""));
        let again = get(app, "/page/a", Some(ae)).await;
        assert!(again.hit(), "{ae}");
        assert_eq!(again.body, made.body, "{ae}");
    }

    // Identity clients get the origin's bytes and validator as they were.
    let identity = get(app, "/page/a", None).await;
    assert!(identity.hit(), "{:?}", identity.header("cache-status"));
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(identity.body, origin_bytes);
    assert_eq!(identity.header("etag"), Some("\"p1\""));
    assert!(identity.varies_on_coding());

    // One origin request, asked with the one coding caje normalised to.
    assert_eq!(site.seen.count("/page/a"), 1);
    assert_eq!(*site.seen.accept_encoding.lock().expect("lock"), ["br"]);
    assert_eq!(entries(app).await, 4, "identity, br, zstd, gzip");

    // A purge of the URL removes every coding.
    app.cache
        .send(Purge(CacheKey::new("GET", HOST, "/page/a")))
        .await
        .expect("purge");
    assert_eq!(entries(app).await, 0);
}

#[actix_web::test]
async fn any_accept_encoding_is_one_of_four_variants_and_never_a_bypass() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let long = "gzip;q=0.5, ".repeat(600);
    let hostile = [
        "identity",
        "",
        "br;q=0, gzip;q=0, zstd;q=0",
        "x;;;q=abc,,,",
        "*;q=0",
        "br;q=2",
        "compress, deflate",
        long.as_str(),
        "GZIP",
        "zstd;q=0.9, br;q=0.1",
    ];
    for ae in hostile {
        let reply = get(app, "/page/h", Some(ae)).await;
        assert_eq!(reply.status, 200, "{ae:?}");
        assert_eq!(reply.decoded(), page(PAGE_LEN), "{ae:?}");
    }
    let none = get(app, "/page/h", None).await;
    assert_eq!(none.header("content-encoding"), None);
    assert!(none.hit());
    assert_eq!(
        site.seen.count("/page/h"),
        1,
        "every value was served from the cache"
    );
    assert_eq!(entries(app).await, 3, "identity, gzip and zstd");
    let seen = site.seen.accept_encoding.lock().expect("lock").clone();
    assert_eq!(seen, ["identity"]);
}

#[actix_web::test]
async fn what_is_not_compressible_is_passed_as_it_is() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;

    // The origin's own compression: its bytes and validator, untouched.
    let gz = get(app, "/gz/a", Some("gzip")).await;
    let mut origin_gz = Vec::new();
    codec::compress(Encoding::Gzip, &mut &page(PAGE_LEN)[..], &mut origin_gz).expect("gzip");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.body, origin_gz);
    assert_eq!(gz.header("etag"), Some("\"gz1\""));
    let again = get(app, "/gz/a", Some("gzip")).await;
    assert!(again.hit());
    assert_eq!(again.body, origin_gz);
    assert_eq!(again.header("etag"), Some("\"gz1\""));

    for path in ["/small/a", "/png/a", "/no-transform/a"] {
        let first = get(app, path, Some(BROWSER)).await;
        assert_eq!(first.header("content-encoding"), None, "{path}");
        let second = get(app, path, Some(BROWSER)).await;
        assert!(second.hit(), "{path}");
        assert_eq!(second.header("content-encoding"), None, "{path}");
        assert_eq!(second.body, first.body, "{path}");
        assert_eq!(site.seen.count(path), 1, "{path}");
    }
    assert!(!get(app, "/png/a", None).await.varies_on_coding());
}

#[actix_web::test]
async fn ranges_and_head_are_answered_from_the_variant_they_ask_for() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let br = get(app, "/page/r", Some("br")).await;
    assert_eq!(br.header("content-encoding"), Some("br"));
    let len = br.body.len();

    let part = fetch(
        app,
        "GET",
        "/page/r",
        &[("accept-encoding", "br"), ("range", "bytes=10-49")],
    )
    .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-encoding"), Some("br"));
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-49/{len}").as_str())
    );
    assert_eq!(part.body, br.body.slice(10..50));

    // A weak validator never satisfies If-Range: the whole variant.
    let if_range = fetch(
        app,
        "GET",
        "/page/r",
        &[
            ("accept-encoding", "br"),
            ("range", "bytes=10-49"),
            ("if-range", "W/\"p1\""),
        ],
    )
    .await;
    assert_eq!(if_range.status, 200);
    assert_eq!(if_range.body, br.body);

    let plain = fetch(app, "GET", "/page/r", &[("range", "bytes=0-9")]).await;
    assert_eq!(plain.status, 206);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(&plain.body[..], &page(PAGE_LEN)[..10]);

    let head = fetch(app, "HEAD", "/page/r", &[("accept-encoding", "br")]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-encoding"), Some("br"));
    assert_eq!(head.content_length(), Some(len as u64));
    assert!(head.body.is_empty());
    assert_eq!(site.seen.count("/page/r"), 1);
}

#[actix_web::test]
async fn a_304_carries_the_variant_s_validator() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let br = get(app, "/page/v", Some("br")).await;
    assert_eq!(br.header("etag"), Some("W/\"p1\""));
    let not_modified = fetch(
        app,
        "GET",
        "/page/v",
        &[("accept-encoding", "br"), ("if-none-match", "W/\"p1\"")],
    )
    .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("etag"), Some("W/\"p1\""));
    assert!(not_modified.varies_on_coding());

    // Revalidated with the origin (no-cache): its 304 keeps the variant's
    // validator weak, and the stored compressed bytes are served.
    let first = get(app, "/nc/v", Some("br")).await;
    assert_eq!(first.header("content-encoding"), Some("br"));
    for _ in 0..2 {
        let again = get(app, "/nc/v", Some("br")).await;
        assert_eq!(again.status, 200);
        assert_eq!(again.header("content-encoding"), Some("br"));
        assert_eq!(again.header("etag"), Some("W/\"p1\""));
        assert_eq!(again.body, first.body);
        assert!(
            again
                .header("cache-status")
                .is_some_and(|s| s.contains("fwd-status=304")),
            "{:?}",
            again.header("cache-status")
        );
    }
    let identity = get(app, "/nc/v", None).await;
    assert_eq!(identity.header("etag"), Some("\"p1\""));
    assert_eq!(identity.body, page(PAGE_LEN));
}

#[actix_web::test]
async fn a_compressed_hit_is_a_memory_tier_hit() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let made = get(app, "/page/m", Some("br")).await;
    // The first hit reads it from disk into the memory tier.
    get(app, "/page/m", Some("br")).await;
    let before = app.metrics.cache.memory_hits.get();
    let hot = get(app, "/page/m", Some("br")).await;
    assert!(hot.hit());
    assert_eq!(hot.body, made.body);
    assert_eq!(app.metrics.cache.memory_hits.get(), before + 1);
}

#[actix_web::test]
async fn concurrent_requests_compress_a_variant_once() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    // Stored as identity first, by a client that takes nothing else.
    let identity = get(app, "/big/c", None).await;
    assert_eq!(identity.body.len(), 2_000_000);
    app.stored(1).await;
    let replies =
        futures_util::future::join_all((0..8).map(|_| get(app, "/big/c", Some("br")))).await;
    let first = &replies[0];
    assert_eq!(first.header("content-encoding"), Some("br"));
    for reply in &replies {
        assert_eq!(reply.body, first.body);
    }
    assert_eq!(first.decoded(), identity.body);
    let stats = app.cache.send(GetCacheStats).await.expect("store");
    assert_eq!(stats.stored, 2, "the identity entry and one br variant");
    assert_eq!(site.seen.count("/big/c"), 1);
}

#[actix_web::test]
async fn a_chunked_answer_is_compressed_from_the_second_request() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let first = get(app, "/chunked/a", Some("br")).await;
    assert_eq!(first.header("content-encoding"), None);
    assert!(first.varies_on_coding());
    assert_eq!(first.body, page(PAGE_LEN));
    app.stored(1).await;
    let second = get(app, "/chunked/a", Some("br")).await;
    assert_eq!(second.header("content-encoding"), Some("br"));
    assert_eq!(second.decoded(), page(PAGE_LEN));
    assert_eq!(site.seen.count("/chunked/a"), 1);
}

#[actix_web::test]
async fn compression_off_sends_identity_to_everyone() {
    let off = Compress {
        enabled: false,
        ..Compress::default()
    };
    let site = spawn_site(off).await;
    let app = &site.app;
    let first = get(app, "/page/o", Some(BROWSER)).await;
    assert_eq!(first.header("content-encoding"), None);
    assert!(!first.varies_on_coding());
    let second = get(app, "/page/o", Some(BROWSER)).await;
    assert!(second.hit());
    assert_eq!(second.body, page(PAGE_LEN));
    assert_eq!(entries(app).await, 1);
}

#[actix_web::test]
async fn a_no_transform_request_gets_the_origin_s_bytes() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    let first = get(app, "/page/nt", Some(BROWSER)).await;
    assert_eq!(first.header("content-encoding"), Some("br"));
    // RFC 9111 §5.2.1.6: a coding caje made is a transformation.
    let asked = [
        ("accept-encoding", BROWSER),
        ("cache-control", "no-transform"),
    ];
    let plain = fetch(app, "GET", "/page/nt", &asked).await;
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.body, page(PAGE_LEN));
    assert_eq!(plain.header("etag"), Some("\"p1\""));
    assert!(plain.hit(), "{:?}", plain.header("cache-status"));
}

#[actix_web::test]
async fn a_miss_relayed_as_the_origin_sent_it_tells_the_client_it_varies_on_the_coding() {
    let site = spawn_site(Compress::default()).await;
    let app = &site.app;
    // An identity client: nothing to compress, the origin's answer is
    // relayed while stored as the identity variant.
    let first = get(app, "/page/relayed", None).await;
    assert_eq!(first.status, 200);
    assert!(!first.hit(), "{:?}", first.header("cache-status"));
    assert_eq!(first.header("content-encoding"), None);
    assert_eq!(first.body, page(PAGE_LEN));
    assert!(first.varies_on_coding(), "{:?}", first.header("vary"));
    assert_eq!(first.header("etag"), Some("\"p1\""));
    let again = get(app, "/page/relayed", None).await;
    assert!(again.hit(), "{:?}", again.header("cache-status"));
    assert!(again.varies_on_coding());
}
