//! Real parts for every test, one file for each kind of thing a test starts:
//! the scripted origin (`origin`), raw TCP origins (`raw_origin`), a caje
//! node in the test process (`node`), a caje process (`process`); plus the
//! client side (`client`) and a manifest database read from outside
//! (`database`). What tests name is re-exported here, so they use
//! `crate::helpers::…` whichever file it lives in.

use std::net::TcpListener;
use std::sync::Once;
use std::time::Duration;

mod client;
mod database;
mod node;
mod origin;
mod process;
mod raw_origin;
mod tls_origin;

pub use client::{admin_request, request, request_with_form, test_client, Reply};
pub use database::{
    integrity_check, last_purge_id, log_purge_as_another_node, manifest_paths,
    store_page_as_another_node,
};
pub use node::{
    spawn_admin_app, spawn_app, spawn_app_for, spawn_app_in, spawn_app_with, TestApp, HOST, TOKEN,
};
pub use origin::{deterministic_body, serve, spawn_origin, Counter, TestOrigin};
pub use process::{cpu_time_of, process_config, CajeProcess};
pub use raw_origin::{
    raw_request, read_head, spawn_faulty_origin, spawn_raw_origin, Ending, RawOrigin,
};
pub use tls_origin::{
    spawn_gated_tls_origin, spawn_tls_origin, spawn_tls_origin_answering, TestCa,
};

/// Logs go to the terminal only when `TEST_LOG` is set.
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            // The writer thread lives as long as the test process.
            std::mem::forget(caje::telemetry::init(caje::telemetry::LogFormat::Text));
        }
    });
}

/// Polls `check` every 20 ms until it yields a value; fails the test after 10 s.
pub async fn eventually<T, F, Fut>(mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within 10 s"
        );
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}
/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}
