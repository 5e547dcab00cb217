//! The file cache: broken entries are misses, bodies stream both ways, and
//! the index survives a restart.

use std::io::Write;

use caje::actors::cache_store::{GetCacheStats, Purge};
use caje::cache::CacheKey;
use futures_util::StreamExt;

use crate::helpers::{eventually, process_config, spawn_app, spawn_origin, CajeProcess, HOST};

#[actix_web::test]
async fn a_broken_entry_is_a_miss_and_is_replaced() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("/cache/garbage", |b| b.iter_mut().for_each(|x| *x = 0x5a)),
        ("/cache/truncated", |b| {
            b.pop();
        }),
        ("/cache/version", |b| b[4] = 99),
        ("/cache/empty", |b| b.clear()),
    ];
    for (i, (path, damage)) in damages.iter().enumerate() {
        app.get(path).await;
        // Each earlier path was stored twice: first, and again after its damage.
        app.stored(2 * i as u64 + 1).await;
        let file = app.entry_path(path);
        let mut bytes = std::fs::read(&file).expect("entry file exists");
        damage(&mut bytes);
        std::fs::File::create(&file)
            .and_then(|mut f| f.write_all(&bytes))
            .expect("damage entry");

        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.body, format!("{path} #2"), "{path}");
        assert!(
            reply.cache_status().starts_with("caje; fwd=miss"),
            "{path}: {}",
            reply.cache_status()
        );
    }
    let stats = app.cache.send(GetCacheStats).await.expect("stats");
    assert_eq!(stats.corrupt, 4);

    // The refetched copies were stored again and are served.
    app.stored(8).await;
    for (path, _) in damages {
        let reply = app.get(path).await;
        assert!(
            reply.cache_status().contains("hit"),
            "{path}: {}",
            reply.cache_status()
        );
        assert_eq!(reply.body, format!("{path} #2"));
    }
}

#[actix_web::test]
async fn a_chunked_body_is_stored_with_its_length() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let first = app.get("/chunked/100").await;
    assert_eq!(first.body.len(), 100 * 1024);
    assert!(first.cache_status().contains("stored"));
    app.stored(1).await;
    let hit = app.get("/chunked/100").await;
    assert!(hit.cache_status().contains("hit"));
    assert_eq!(hit.header("content-length"), Some("102400"));
    assert_eq!(hit.body, first.body);
}

#[actix_web::test]
async fn a_restarted_node_serves_what_it_stored_and_cleans_temp_files() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    app.get("/cache/kept").await;
    app.stored(1).await;
    let leftover = app.cache_dir().join("tmp").join("12345-1.tmp");
    std::fs::write(&leftover, b"half an entry").expect("write leftover");

    let restarted = app.restarted().await;
    let reply = restarted.get("/cache/kept").await;
    assert!(
        reply.cache_status().contains("hit"),
        "{}",
        reply.cache_status()
    );
    assert_eq!(reply.body, "/cache/kept #1");
    assert!(!leftover.exists());
    let stats = restarted.cache.send(GetCacheStats).await.expect("stats");
    assert_eq!((stats.entries, stats.temp_files_cleaned), (1, 1));
}

/// Reads a response to the end without keeping it, returning its length.
async fn drain(client: &awc::Client, url: &str) -> (u64, String) {
    let mut res = client
        .get(url)
        .insert_header(("host", HOST))
        .send()
        .await
        .expect("caje answers");
    let status = res
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut total = 0u64;
    while let Some(chunk) = res.next().await {
        total += chunk.expect("chunk").len() as u64;
    }
    (total, status)
}

#[actix_web::test]
async fn a_body_larger_than_memory_allows_is_streamed_on_miss_and_hit() {
    const MIB: u64 = 80;
    let origin = spawn_origin().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = process_config(dir.path(), &origin.url(), "workers = 1");
    let caje = CajeProcess::start(&config).await;
    let client = awc::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .finish();
    let url = format!("http://127.0.0.1:{}/big/{MIB}", caje.port);

    let (len, status) = drain(&client, &url).await;
    assert_eq!(len, MIB * 1024 * 1024);
    assert!(status.contains("stored"), "{status}");
    eventually(|| async {
        let res = client
            .head(&url)
            .insert_header(("host", HOST))
            .send()
            .await
            .ok()?;
        let status = res.headers().get("cache-status")?.to_str().ok()?;
        status.contains("hit").then_some(())
    })
    .await;
    let (len, status) = drain(&client, &url).await;
    assert_eq!(len, MIB * 1024 * 1024);
    assert!(status.contains("hit"), "{status}");
    assert_eq!(origin.counter.get(&format!("/big/{MIB}")), 1);

    let peak_mib = caje.peak_rss_kib() / 1024;
    assert!(
        peak_mib < MIB / 2,
        "caje's peak RSS was {peak_mib} MiB for an {MIB} MiB body"
    );
}

#[actix_web::test]
async fn small_hot_entries_are_served_from_memory_until_their_url_changes() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let memory_hits = || app.metrics.cache.memory_hits.get();
    app.get("/cache/hot").await;
    app.stored(1).await;
    // The first hit reads the file and fills the memory tier; the second
    // is answered from memory.
    for _ in 0..2 {
        let hit = app.get("/cache/hot").await;
        assert_eq!(hit.body, "/cache/hot #1");
        assert!(hit.cache_status().starts_with("caje; hit"));
    }
    assert_eq!(memory_hits(), 1);
    let ranged = app.get_with("/cache/hot", &[("range", "bytes=1-5")]).await;
    assert_eq!((ranged.status, ranged.body.as_str()), (206, "cache"));
    assert_eq!(memory_hits(), 2);

    // A purge goes through the store, which forgets the URL in memory too.
    let key = CacheKey::new("GET", HOST, "/cache/hot");
    app.cache.send(Purge(key)).await.expect("store answers");
    let after = app.get("/cache/hot").await;
    assert_eq!(after.body, "/cache/hot #2");
    assert!(after.cache_status().starts_with("caje; fwd=uri-miss"));
    assert_eq!(origin.counter.get("/cache/hot"), 2);

    // Bodies over `memory_cache_max_object` are always read from the file.
    for _ in 0..3 {
        assert_eq!(app.get("/big/1").await.body.len(), 1024 * 1024);
    }
    assert_eq!(memory_hits(), 2);
    assert_eq!(app.metrics.cache.memory_bytes.get(), 0);
    app.get("/cache/hot").await;
    assert!(app.metrics.cache.memory_bytes.get() > 0);
}

#[actix_web::test]
async fn an_entry_in_memory_that_the_request_must_validate_is_looked_up_once() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let counts = || {
        let cache = &app.metrics.cache;
        (cache.lookups.get(), cache.memory_hits.get())
    };
    app.get("/cache/validate").await;
    app.stored(1).await;
    // Read from the file, and held in memory from then on.
    app.get("/cache/validate").await;
    let (lookups, memory_hits) = counts();
    let hit = app.get("/cache/validate").await;
    assert!(hit.cache_status().starts_with("caje; hit"));
    assert_eq!(counts(), (lookups + 1, memory_hits + 1));

    // Found in memory before the handler's flow, validated by the flow:
    // one lookup, not two.
    let validated = app
        .get_with("/cache/validate", &[("cache-control", "no-cache")])
        .await;
    assert!(
        validated.cache_status().starts_with("caje; fwd=request"),
        "{}",
        validated.cache_status()
    );
    assert_eq!(validated.body, "/cache/validate #2");
    assert_eq!(counts(), (lookups + 2, memory_hits + 2));
    assert_eq!(origin.counter.get("/cache/validate"), 2);
}
