//! The "slow server": a small origin for trying caje out. `/` answers at
//! once, `/fast` after 1 s, `/slow` after 5 s; each says when it answered
//! and may be cached for 60 s.

use std::net::TcpListener;
use std::time::{Duration, SystemTime};

use actix_web::dev::Server;
use actix_web::{web, App, HttpResponse, HttpServer};

/// The slowest answer (`/slow`).
const SLOWEST: Duration = Duration::from_secs(5);

async fn page(delay: Duration, name: &'static str) -> HttpResponse {
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "{name}: answered by the slow server at {}\n",
            httpdate::fmt_http_date(SystemTime::now())
        ))
}

/// Serves the demo origin on `listener` until the server is stopped, or,
/// with `on_signals`, until SIGINT or SIGTERM. SIGTERM lets answers in
/// flight finish: the slowest takes 5 s.
pub fn run(listener: TcpListener, on_signals: bool) -> std::io::Result<Server> {
    let mut server = HttpServer::new(|| {
        App::new()
            .route("/", web::get().to(|| page(Duration::ZERO, "/")))
            .route(
                "/fast",
                web::get().to(|| page(Duration::from_secs(1), "/fast")),
            )
            .route("/slow", web::get().to(|| page(SLOWEST, "/slow")))
    })
    .workers(1)
    .shutdown_timeout(SLOWEST.as_secs() + 1);
    if !on_signals {
        server = server.disable_signals();
    }
    Ok(server.listen(listener)?.run())
}
