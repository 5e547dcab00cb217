//! The benchmark's floor (`bench/run.sh`, contender "bare"): actix-web
//! alone, one worker, answering `/1k`, `/100k` and `/10m` from memory with
//! the same header fields a caje hit carries, so that the difference between
//! the two is what caje adds on top of the framework. Given an ORIGIN, it
//! relays any other path there with awc (caje's origin client) and no more:
//! the floor of a miss that cannot be stored.
//!
//!     cargo run --release --example bench_bare -- 127.0.0.1:8090 DIR [ORIGIN]
//!
//! DIR holds the files `1k`, `100k` and `10m` (the origin's); ORIGIN is
//! an `http://host:port` base.

use std::collections::HashMap;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;

/// A caje hit's fields besides `content-length` and `date` (actix adds
/// those two): the origin's, caje's `age`, `accept-ranges`, `cache-status`
/// and `via`, with values of the same length.
const FIELDS: [(HeaderName, &str); 9] = [
    (header::ACCEPT_RANGES, "bytes"),
    (header::LAST_MODIFIED, "Mon, 30 Nov 2026 07:28:04 GMT"),
    (
        HeaderName::from_static("cache-status"),
        "caje; hit; ttl=3599",
    ),
    (header::AGE, "0"),
    (header::ETAG, "\"6b0d2584-400\""),
    (header::CONTENT_TYPE, "text/plain"),
    (header::CACHE_CONTROL, "public, max-age=3600"),
    (header::SERVER, "nginx/1.22.1"),
    (header::VIA, "1.1 caje"),
];

/// Where paths without a body of their own are relayed.
struct Origin(Option<String>);

async fn answer(
    req: HttpRequest,
    bodies: web::Data<HashMap<String, Bytes>>,
    origin: web::Data<Origin>,
) -> HttpResponse {
    let Some(body) = bodies.get(req.path()) else {
        return match &origin.0 {
            Some(base) => relay(&req, base).await,
            None => HttpResponse::NotFound().finish(),
        };
    };
    let mut response = HttpResponse::Ok();
    for (name, value) in &FIELDS {
        response.insert_header((name.clone(), HeaderValue::from_static(value)));
    }
    response.body(body.clone())
}

thread_local! {
    /// awc's client is `!Send`: one per worker, as caje has.
    static CLIENT: awc::Client = awc::Client::builder()
        .no_default_headers()
        .disable_redirects()
        .finish();
}

/// The origin's answer to the same path, its body read whole, its fields
/// passed on but for those about the connection and the body's length.
async fn relay(req: &HttpRequest, base: &str) -> HttpResponse {
    let client = CLIENT.with(awc::Client::clone);
    let url = format!("{base}{}", req.uri());
    let sent = client
        .request(req.method().clone(), url)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await;
    let mut answer = match sent {
        Ok(answer) => answer,
        Err(_) => return HttpResponse::BadGateway().finish(),
    };
    let Ok(body) = answer.body().await else {
        return HttpResponse::BadGateway().finish();
    };
    let mut response = HttpResponse::build(answer.status());
    let not_passed = [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::CONTENT_LENGTH,
    ];
    for (name, value) in answer.headers() {
        if !not_passed.contains(name) {
            response.append_header((name.clone(), value.clone()));
        }
    }
    response.body(body)
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(dir)) = (args.next(), args.next()) else {
        eprintln!("usage: bench_bare LISTEN_ADDR DIR [ORIGIN]");
        std::process::exit(2);
    };
    let origin = web::Data::new(Origin(args.next()));
    let mut bodies = HashMap::new();
    for name in ["1k", "100k", "10m"] {
        let bytes = std::fs::read(format!("{dir}/{name}"))?;
        bodies.insert(format!("/{name}"), Bytes::from(bytes));
    }
    let bodies = web::Data::new(bodies);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(bodies.clone())
            .app_data(origin.clone())
            .default_service(web::to(answer))
    })
    .workers(1)
    // As caje sets it (see `startup.rs`).
    .tcp_nodelay(true)
    .bind(&listen)?;
    eprintln!("bench_bare listening on {listen}");
    server.run().await
}
