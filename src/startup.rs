//! Builds a caje node: prepares the manifest database, starts the actors and
//! binds the HTTP server. Tests build one on port 0 exactly as `main` does.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, SyncArbiter};
use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use tracing_actix_web::TracingLogger;

use crate::actors::cache_store::CacheStore;
use crate::actors::manifest::{self, LiteFsWrites, Manifest, ManifestError};
use crate::actors::manifest_batcher::ManifestBatcher;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::proxy::{proxy, ProxyState};
use crate::telemetry::RequestSpan;

/// How long connecting to an origin may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("cannot create the cache directory {dir}: {source}")]
    CacheDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("start-up task failed: {0}")]
    Task(String),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// A running node: its server and the addresses of its actors.
pub struct Application {
    port: u16,
    server: Server,
    cache: Addr<CacheStore>,
    manifest: Addr<Manifest>,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Must be called inside a running actix `System`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let metrics = Arc::new(Metrics::new()?);
        let litefs = LiteFsWrites::new(settings.litefs, &settings.database, settings.halt_timeout);
        let prepared = settings.clone();
        let prepared_litefs = litefs.clone();
        actix_web::rt::task::spawn_blocking(move || -> Result<(), StartupError> {
            std::fs::create_dir_all(&prepared.cache_dir).map_err(|source| {
                StartupError::CacheDir {
                    dir: prepared.cache_dir.clone(),
                    source,
                }
            })?;
            manifest::prepare(&prepared.database, &prepared_litefs)?;
            Ok(())
        })
        .await
        .map_err(|e| StartupError::Task(e.to_string()))??;

        let database = settings.database.clone();
        let manifest_metrics = metrics.manifest.clone();
        let manifest = SyncArbiter::start(1, move || {
            Manifest::new(database.clone(), litefs.clone(), manifest_metrics.clone())
        });
        let batcher =
            ManifestBatcher::new(manifest.clone(), settings.manifest_batch_window).start();
        let cache_dir = settings.cache_dir.clone();
        let on_store = batcher.recipient();
        let cache = CacheStore::start_in_arbiter(&Arbiter::new().handle(), move |_| {
            CacheStore::new(cache_dir, Some(on_store))
        });

        let listen_error = |source| StartupError::Listen {
            addr: settings.listen,
            source,
        };
        let listener = TcpListener::bind(settings.listen).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        let state = web::Data::new(ProxyState {
            settings: settings.clone(),
            cache: cache.clone(),
        });
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(TracingLogger::<RequestSpan>::new())
                .app_data(state.clone())
                // awc::Client is !Send: one per worker, built here.
                .app_data(web::Data::new(origin_client()))
                .default_service(web::to(proxy))
        });
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        let server = server.listen(listener).map_err(listen_error)?.run();
        Ok(Self {
            port,
            server,
            cache,
            manifest,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn cache(&self) -> Addr<CacheStore> {
        self.cache.clone()
    }

    pub fn manifest(&self) -> Addr<Manifest> {
        self.manifest.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The client for origin requests: it adds no headers of its own and follows
/// no redirects, so the client sees exactly what the origin said.
fn origin_client() -> awc::Client {
    awc::Client::builder()
        .no_default_headers()
        .disable_redirects()
        .connector(awc::Connector::new().timeout(CONNECT_TIMEOUT))
        .finish()
}
