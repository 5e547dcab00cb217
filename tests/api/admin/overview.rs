//! `GET /_caje/`: the last minutes of traffic sampled for the charts, and
//! the regions view of the shared manifest.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use caje::actors::manifest::{Holder, PageVisit, WriteBatch};
use caje::cache::CacheKey;
use serde_json::Value;

use crate::helpers::{eventually, spawn_admin_app, spawn_app_in, spawn_origin, HOST, TOKEN};

fn sum(samples: &[Value], value: impl Fn(&Value) -> u64) -> u64 {
    samples.iter().map(value).sum()
}

#[actix_web::test]
async fn the_overview_samples_requests_hit_ratio_latency_and_mailboxes() {
    let origin = spawn_origin().await;
    let app = spawn_admin_app(&origin).await;
    app.get("/cache/charted").await;
    app.stored(1).await;
    for _ in 0..2 {
        assert!(app
            .get("/cache/charted")
            .await
            .cache_status()
            .contains("hit"));
    }

    let samples = eventually(|| async {
        let reply = app.admin("GET", "/_caje/", Some(TOKEN), None).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let samples = reply.json()["samples"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let answered = sum(&samples, |s| {
            s["requests"]
                .as_object()
                .map_or(0, |r| r.values().filter_map(Value::as_u64).sum())
        });
        (answered >= 3).then_some(samples)
    })
    .await;
    assert_eq!(
        sum(&samples, |s| s["requests"]["hit"].as_u64().unwrap_or(0)),
        2
    );
    assert_eq!(
        sum(&samples, |s| s["requests"]["uri-miss"]
            .as_u64()
            .unwrap_or(0)),
        1
    );
    let ratios: Vec<f64> = samples
        .iter()
        .filter_map(|s| s["hit_ratio"].as_f64())
        .collect();
    assert!(
        !ratios.is_empty() && ratios.iter().all(|r| (0.0..=1.0).contains(r)),
        "{ratios:?}"
    );
    assert!(ratios.iter().any(|r| *r > 0.0), "{ratios:?}");
    assert_eq!(
        sum(&samples, |s| s["origin_ms"]["count"].as_u64().unwrap_or(0)),
        1
    );
    let latency = samples
        .iter()
        .find(|s| !s["origin_ms"].is_null())
        .map(|s| &s["origin_ms"])
        .expect("a sample with the origin's answer");
    assert!(
        latency["mean"].as_f64().is_some_and(|ms| ms > 0.0),
        "{latency}"
    );
    assert!(
        latency["p95"].as_f64().is_some_and(|ms| ms > 0.0),
        "{latency}"
    );
    // Every actor's mailbox, in every sample.
    for actor in [
        "cache_store",
        "manifest",
        "manifest_batcher",
        "populator",
        "purge_sync",
    ] {
        assert!(
            samples.iter().all(|s| s["mailbox"][actor].is_i64()),
            "{actor}: {samples:?}"
        );
    }
    let at: Vec<u64> = samples.iter().filter_map(|s| s["at_ms"].as_u64()).collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "oldest first: {at:?}");
}

fn visit(path: &str, node: &str, ago: Duration) -> PageVisit {
    let mut visit = PageVisit::now(CacheKey::new("GET", HOST, path)).by(&Holder {
        stored_by: Some(node.to_owned()),
        peer_url: None,
    });
    let at = SystemTime::now() - ago;
    let ms = at
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    (visit.first_seen, visit.last_seen) = (ms, ms);
    visit
}

#[actix_web::test]
async fn the_regions_view_counts_each_nodes_pages_and_recent_stores() {
    let origin = spawn_origin().await;
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let app = spawn_app_in(&origin, dir, |s| {
        s.admin_token = Some(TOKEN.to_owned());
        s.node_name = Some("ams".to_owned());
    })
    .await;
    app.get("/cache/here").await;
    app.pages(1).await;
    // What two other regions wrote into the shared manifest.
    let hour = Duration::from_secs(3600);
    app.manifest
        .send(WriteBatch(vec![
            visit("/sin/1", "sin", Duration::ZERO),
            visit("/sin/2", "sin", Duration::from_secs(60)),
            visit("/syd/1", "syd", hour),
        ]))
        .await
        .expect("manifest");

    let reply = app.admin("GET", "/_caje/", Some(TOKEN), None).await;
    let regions = &reply.json()["regions"];
    assert_eq!(regions["this_node"], "ams");
    assert!(regions["lag_seconds"].is_null(), "standalone: {regions}");
    let node = |name: &str| -> (u64, u64) {
        let nodes = regions["nodes"].as_array().expect("nodes");
        let n = nodes
            .iter()
            .find(|n| n["stored_by"] == name)
            .unwrap_or_else(|| panic!("no {name} in {nodes:?}"));
        (
            n["pages"].as_u64().unwrap_or(0),
            n["recent"].as_u64().unwrap_or(0),
        )
    };
    assert_eq!(node("ams"), (1, 1));
    assert_eq!(node("sin"), (2, 2));
    assert_eq!(node("syd"), (1, 0));
    assert_eq!(regions["nodes"].as_array().map(Vec::len), Some(3));
    // The node that stored last comes first, the quiet one last.
    assert_eq!(regions["nodes"][2]["stored_by"], "syd");

    let html = crate::helpers::request_with_form(
        &app.client,
        &app.url("/_caje/"),
        "GET",
        &[
            ("authorization", &format!("Bearer {TOKEN}")),
            ("accept", "text/html"),
        ],
        None,
    )
    .await;
    assert_eq!(html.status, 200, "{}", html.body);
    let body = &html.body;
    assert!(body.contains("ams (this node)"), "{body}");
    assert!(body.contains("standalone"), "{body}");
    for chart in [
        "chart-requests",
        "chart-hit-ratio",
        "chart-latency",
        "chart-mailbox",
    ] {
        assert!(body.contains(&format!("id=\"{chart}\"")), "{chart}");
    }
    assert!(body.contains("data-samples=\"["), "{body}");
    // Nothing is loaded from elsewhere: no external script, style or image.
    for refused in ["src=", "<link rel=\"stylesheet\"", "@import", "https://"] {
        assert!(!body.contains(refused), "{refused} in {body}");
    }
    let csp = html.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'nonce-"),
        "{csp}"
    );
}
