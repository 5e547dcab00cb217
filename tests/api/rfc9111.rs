//! RFC 9111 to the letter (issue 17): the corners of field syntax where a
//! lenient or naive reading would store, reuse or split what it should not.

use std::time::{Duration, SystemTime};

use crate::date_forms::date_forms;
use crate::helpers::{spawn_app, spawn_origin, Reply};

fn stored(reply: &Reply) -> bool {
    reply.cache_status().contains("stored")
}

fn hit(reply: &Reply) -> bool {
    reply.cache_status().starts_with("caje; hit")
}

/// A field value as a query value for the scripted origin's `/headers/`.
fn q(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)]).expect("encodes")[2..].to_owned()
}

#[actix_web::test]
async fn age_is_read_by_its_first_member() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let cases = [
        (
            "/headers/age1?cache-control=max-age%3D3600&age=7200%2C%200",
            false,
        ),
        (
            "/headers/age2?cache-control=max-age%3D3600&age=0%2C%207200",
            true,
        ),
        (
            "/headers/age3?cache-control=max-age%3D3600&age=7200&age=0",
            false,
        ),
        (
            "/headers/age4?cache-control=max-age%3D3600&age=0&age=7200",
            true,
        ),
    ];
    for (path, fresh) in cases {
        let reply = app.get(path).await;
        assert_eq!(stored(&reply), fresh, "{path}: {}", reply.cache_status());
    }
}

#[actix_web::test]
async fn an_invalid_expires_is_already_expired() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(600));
    let doubled = later.replacen(' ', "  ", 1);
    let numeric_zone = later.replace("GMT", "+0000");
    for (n, invalid) in [doubled, numeric_zone].iter().enumerate() {
        let path = format!("/headers/exp{n}?expires={}", q(invalid));
        for _ in 0..2 {
            let reply = app.get(&path).await;
            assert!(!stored(&reply), "{invalid:?}: {}", reply.cache_status());
        }
        assert_eq!(origin.counter.get(&format!("/headers/exp{n}")), 2);
    }
    // With a validator it may be kept only to be validated on every use.
    let path = format!(
        "/headers/expv?cache-control=no-cache&etag=%22a%22&expires={}",
        q(&later.replacen(' ', "  ", 1))
    );
    assert!(stored(&app.get(&path).await));
    app.stored(1).await;
    let again = app.get(&path).await;
    assert!(!hit(&again), "{}", again.cache_status());
    assert_eq!(origin.counter.get("/headers/expv"), 2);
}

#[actix_web::test]
async fn an_invalid_cdn_cache_control_is_ignored() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    for (n, invalid) in [
        "max-age=\"10000\"",
        "max-age=-1",
        "max-age=1.5",
        "max-age=10000, no-store=5",
        "max-age=10000,,",
        "Max-Age=10000",
    ]
    .iter()
    .enumerate()
    {
        let path = format!(
            "/headers/cdn{n}?cache-control=max-age%3D60&cdn-cache-control={}",
            q(invalid)
        );
        let reply = app.get(&path).await;
        assert!(
            stored(&reply) && reply.cache_status().ends_with("ttl=60"),
            "{invalid:?}: {}",
            reply.cache_status()
        );
    }
    let valid = "/headers/cdnv?cache-control=max-age%3D60&cdn-cache-control=max-age%3D600%3Bx%3D1";
    let reply = app.get(valid).await;
    assert!(
        reply.cache_status().ends_with("ttl=600"),
        "{}",
        reply.cache_status()
    );
}

#[actix_web::test]
async fn obsolete_date_forms_are_accepted() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let later = SystemTime::now() + Duration::from_secs(600);
    for (n, form) in date_forms(later).iter().enumerate() {
        let path = format!("/headers/date{n}?expires={}", q(form));
        let reply = app.get(&path).await;
        assert!(stored(&reply), "{form:?}: {}", reply.cache_status());
        app.stored(n as u64 + 1).await;
        assert!(hit(&app.get(&path).await), "{form:?}");
    }
}

#[actix_web::test]
async fn if_modified_since_without_last_modified_compares_the_date() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let path = "/headers/ims?cache-control=max-age%3D60";
    let first = app.get(path).await;
    assert!(stored(&first), "{}", first.cache_status());
    assert!(first.header("last-modified").is_none());
    let date = first.header("date").expect("the origin's Date").to_owned();
    app.stored(1).await;
    let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(60));
    for since in [date.as_str(), later.as_str()] {
        let reply = app.get_with(path, &[("if-modified-since", since)]).await;
        assert_eq!(reply.status, 304, "{since}: {}", reply.cache_status());
        assert!(hit(&reply), "{}", reply.cache_status());
    }
    let earlier = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(3600));
    let reply = app.get_with(path, &[("if-modified-since", &earlier)]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(origin.counter.get("/headers/ims"), 1);
}

#[actix_web::test]
async fn vary_accept_language_is_normalised_by_case_spacing_and_weight() {
    let origin = spawn_origin().await;
    let app = spawn_app(&origin).await;
    let first = app
        .get_with("/vary", &[("accept-language", "en-US, fr;q=0.5")])
        .await;
    assert!(stored(&first), "{}", first.cache_status());
    app.stored(1).await;
    for same in [
        "en-us,fr;q=0.5",
        "EN-us , fr ; q=0.50",
        "en-US;q=1.0, FR;q=0.500",
    ] {
        let reply = app.get_with("/vary", &[("accept-language", same)]).await;
        assert!(hit(&reply), "{same}: {}", reply.cache_status());
        assert_eq!(reply.body, first.body);
    }
    let other = app
        .get_with("/vary", &[("accept-language", "en-US, fr;q=0.6")])
        .await;
    assert!(
        other.cache_status().contains("fwd=vary-miss"),
        "{}",
        other.cache_status()
    );
    assert_eq!(origin.counter.get("/vary"), 2);
}
