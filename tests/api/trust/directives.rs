//! Request directives never remove what is stored, never beat a response
//! that forbids serving stale, and never switch off coalescing for others.

use super::origin::spawn_trust_origin;
use super::{is_hit, node};
use crate::helpers::{eventually, spawn_app, spawn_origin, HOST};

#[actix_web::test]
async fn request_directives_never_remove_what_is_stored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let asks: [&[(&str, &str)]; 3] = [
        &[("cache-control", "no-cache, no-store")],
        &[("cache-control", "no-cache"), ("authorization", "Bearer x")],
        &[("cache-control", "no-store, max-age=0")],
    ];
    for (n, headers) in asks.into_iter().enumerate() {
        let path = format!("/etag/60/keep{n}");
        app.get(&path).await;
        app.stored(n as u64 + 1).await;
        let validated = app.get_with(&path, headers).await;
        assert!(
            validated.cache_status().contains("fwd-status=304"),
            "{headers:?}: {}",
            validated.cache_status()
        );
        let after = app.get(&path).await;
        assert!(
            is_hit(after.cache_status()),
            "{headers:?} removed the stored copy: {}",
            after.cache_status()
        );
        assert_eq!(origin.counter.get(&path), 2, "{headers:?}");
    }
}

#[actix_web::test]
async fn max_stale_never_beats_a_response_that_forbids_serving_stale() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let headers = |cc: &str| {
        serde_urlencoded::to_string([("cache-control", cc), ("etag", "\"e\"")]).expect("query")
    };
    let paths = [
        "/etag-nc/a".to_owned(),
        format!("/headers/b?{}", headers("no-cache, max-age=1")),
        format!(
            "/headers/c?{}",
            headers("no-cache=\"Set-Cookie\", max-age=60")
        ),
    ];
    for (n, path) in paths.iter().enumerate() {
        app.get(path).await;
        app.stored(n as u64 + 1).await;
        let counted = path.split('?').next().unwrap_or(path);
        for asked in ["max-stale", "max-stale=3600"] {
            let before = origin.counter.get(counted);
            let reply = app.get_with(path, &[("cache-control", asked)]).await;
            assert!(
                reply.cache_status().contains("fwd=stale"),
                "{path} with {asked}: {}",
                reply.cache_status()
            );
            assert_eq!(
                origin.counter.get(counted),
                before + 1,
                "{path} with {asked}"
            );
        }
    }
    // must-revalidate's siblings for a shared cache, once stale.
    for (n, cc) in ["s-maxage=1", "max-age=1, proxy-revalidate"]
        .into_iter()
        .enumerate()
    {
        let path = format!("/headers/strict{n}?{}", headers(cc));
        app.get(&path).await;
        app.stored(paths.len() as u64 + n as u64 + 1).await;
        let counted = format!("/headers/strict{n}");
        eventually(|| async {
            app.get_with(&path, &[("cache-control", "max-stale=3600")])
                .await;
            (origin.counter.get(&counted) > 1).then_some(())
        })
        .await;
    }
}

#[actix_web::test]
async fn one_no_store_request_does_not_switch_off_coalescing() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let asks: [&[(&str, &str)]; 2] = [
        &[("cache-control", "no-store")],
        &[("authorization", "Bearer x")],
    ];
    for (n, headers) in asks.into_iter().enumerate() {
        let counted = format!("/headers/slow{n}");
        let path = format!("{counted}?cache-control=max-age%3D60&x-delay-ms=300");
        let first = app.get_with(&path, headers).await;
        assert!(
            !first.cache_status().contains("stored"),
            "{}",
            first.cache_status()
        );
        let burst = (0..5).map(|_| app.get(&path));
        let replies = futures_util::future::join_all(burst).await;
        let collapsed = replies
            .iter()
            .filter(|r| r.cache_status().contains("collapsed"))
            .count();
        assert_eq!(collapsed, 4, "{headers:?}");
        assert_eq!(origin.counter.get(&counted), 2, "{headers:?}");
    }
}

#[actix_web::test]
async fn a_conditional_first_request_does_not_switch_off_coalescing() {
    let origin = spawn_trust_origin().await;
    let app = node(&origin).await;
    // The origin answers this client's own validator with a 304, which is
    // not stored; it says nothing of whether the page may be.
    let path = "/slowtag/x";
    let first = app.get_with(path, &[("if-none-match", "\"s1\"")]).await;
    assert_eq!(first.status, 304, "{}", first.cache_status());
    let replies = futures_util::future::join_all((0..5).map(|_| app.get(path))).await;
    let collapsed = replies
        .iter()
        .filter(|r| r.cache_status().contains("collapsed"))
        .count();
    assert_eq!(collapsed, 4);
    assert_eq!(origin.count("GET", path), 2);
}

#[actix_web::test]
async fn a_no_store_request_under_way_leads_no_flight() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let counted = "/headers/slow-lead";
    let path = format!("{counted}?cache-control=max-age%3D60&x-delay-ms=300");
    // The no-store request reaches the origin first and is still waiting
    // for its answer when the others miss.
    let no_store = {
        let (client, url) = (app.client.clone(), app.url(&path));
        actix_web::rt::spawn(async move {
            client
                .get(url)
                .insert_header(("host", HOST))
                .insert_header(("cache-control", "no-store"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    eventually(|| async { (origin.counter.get(counted) == 1).then_some(()) }).await;
    let replies = futures_util::future::join_all((0..4).map(|_| app.get(&path))).await;
    let collapsed = replies
        .iter()
        .filter(|r| r.cache_status().contains("collapsed"))
        .count();
    assert_eq!(collapsed, 3);
    assert_eq!(origin.counter.get(counted), 2);
    assert_eq!(no_store.await.expect("task").expect("answer"), 200);
}
