//! Builds a caje node: prepares the manifest database, starts the actors and
//! binds the HTTP server. Tests build one on port 0 exactly as `main` does.

use std::cell::Cell;
use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;

use actix::{Actor, Arbiter, SyncArbiter};
use actix_web::dev::Server;
use actix_web::rt::signal::unix::{signal, Signal, SignalKind};
use actix_web::{web, App, HttpServer};

use crate::actors::cache_store::{CacheStore, WriteSnapshot};
use crate::actors::manifest::{self, Holder, LiteFsWrites, Manifest, ManifestError};
use crate::actors::manifest_batcher::{Flush, ManifestBatcher};
use crate::actors::manifest_watch::{tick_every, ManifestWatch, NotifyPurges};
use crate::actors::populator::Populator;
use crate::actors::purge_sync::PurgeSync;
use crate::actors::Mailbox;
use crate::admin::{self, auth::AdminAuth, AdminState};
use crate::cache::memory_tier::MemoryTier;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::proxy::{proxy, Front, ProxyState};
use crate::reload::{LiveConfig, Reloader};
use crate::upstream::OriginClients;

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
    #[error("cannot listen for stop signals: {0}")]
    Signals(std::io::Error),
}

/// A running node: its server and the addresses of its actors.
pub struct Application {
    port: u16,
    server: Server,
    /// The private metrics listener's port and server, when `metrics_listen` is set.
    metrics_port: Option<u16>,
    metrics_server: Option<Server>,
    cache: Mailbox<CacheStore>,
    manifest: Mailbox<Manifest>,
    populator: Mailbox<Populator>,
    metrics: Arc<Metrics>,
    batcher: Mailbox<ManifestBatcher>,
    reloader: Reloader,
    stop_signals: StopSignals,
}

impl Application {
    /// Must be called inside a running actix `System`. Its config cannot
    /// be reloaded: it comes from no file.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with(settings, None).await
    }

    /// [`Application::build`] for `settings` read from `file`, which
    /// [`Application::reloader`] reads again.
    pub async fn build_reloadable(
        settings: Settings,
        file: std::path::PathBuf,
    ) -> Result<Self, StartupError> {
        Self::build_with(settings, Some(file)).await
    }

    async fn build_with(
        mut settings: Settings,
        file: Option<std::path::PathBuf>,
    ) -> Result<Self, StartupError> {
        let addr = settings.listen;
        let listen_error = |source| StartupError::Listen { addr, source };
        let listener = TcpListener::bind(settings.listen).map_err(listen_error)?;
        let port = listener.local_addr().map_err(listen_error)?.port();
        // Bound now, so a bad or taken address stops the start.
        let metrics_listener = match settings.metrics_listen {
            None => None,
            Some(addr) => {
                let error = |source| StartupError::Listen { addr, source };
                let listener = TcpListener::bind(addr).map_err(error)?;
                let port = listener.local_addr().map_err(error)?.port();
                Some((listener, port, addr))
            }
        };
        settings.peer_url = settings.peer_url.map(|url| with_port(url, port));
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
            // A replica waits (serving) while the primary has not created
            // and migrated the manifest; the manifest actor logs what for.
            manifest::prepare(&prepared.database, &prepared_litefs)?;
            Ok(())
        })
        .await
        .map_err(|e| StartupError::Task(e.to_string()))??;

        let actors = &metrics.actors;
        let database = settings.database.clone();
        let manifest_metrics = metrics.manifest.clone();
        let manifest_meter = actors.meter("manifest");
        let manifest = Mailbox::new(
            SyncArbiter::start(1, move || {
                Manifest::new(
                    database.clone(),
                    litefs.clone(),
                    manifest_metrics.clone(),
                    manifest_meter.clone(),
                )
            }),
            actors.meter("manifest"),
        );
        manifest::watch_readiness(manifest.clone());
        let batcher = Mailbox::new(
            ManifestBatcher::new(
                manifest.clone(),
                settings.manifest_batch_window,
                Holder {
                    stored_by: Some(settings.stored_by()),
                    peer_url: settings.peer_url.clone(),
                },
                actors.meter("manifest_batcher"),
            )
            .start(),
            actors.meter("manifest_batcher"),
        );
        let flushed_at_stop = batcher.clone();
        let memory = Arc::new(MemoryTier::new(
            settings.memory_cache_size,
            settings.memory_cache_max_object,
            metrics.cache.clone(),
        ));
        let (cache_dir, max_size, cache_memory, cache_metrics, cache_meter) = (
            settings.cache_dir.clone(),
            settings.max_size,
            memory.clone(),
            metrics.cache.clone(),
            actors.meter("cache_store"),
        );
        let cache = Mailbox::new(
            CacheStore::start_in_arbiter(&Arbiter::new().handle(), move |_| {
                CacheStore::new(
                    cache_dir,
                    max_size,
                    cache_memory,
                    cache_metrics,
                    cache_meter,
                    Some(batcher),
                )
            }),
            actors.meter("cache_store"),
        );
        // The config requests read, with each origin's TLS config (built,
        // and `tls_verify = false` warned about, once; every worker builds
        // its own clients from it); a reload swaps both.
        let live = LiveConfig::new(settings.clone());
        let reloader = Reloader::new(live.clone(), file, port);
        // Background work (populating, applying purges) shares one thread.
        let background = Arbiter::new().handle();
        let populator = {
            let (live, cache, manifest) = (live.clone(), cache.clone(), manifest.clone());
            let (populator_metrics, meter) = (metrics.populator.clone(), actors.meter("populator"));
            let origin_metrics = metrics.proxy.clone();
            Mailbox::new(
                Populator::start_in_arbiter(&background, move |_| {
                    Populator::new(
                        live,
                        cache,
                        manifest,
                        OriginClients::new(),
                        origin_metrics,
                        populator_metrics,
                        meter,
                    )
                }),
                actors.meter("populator"),
            )
        };
        // Always started: `PurgeSync` reads the purge log through it.
        let watch = start_watch(&settings, &metrics, populator.clone());
        let purge_sync = Mailbox::new(
            PurgeSync::start_in_arbiter(&background, {
                let (cache_dir, log, cache) =
                    (settings.cache_dir.clone(), watch.clone(), cache.clone());
                let interval = settings.purge_poll_interval;
                let (sync_metrics, meter) = (metrics.sync.clone(), actors.meter("purge_sync"));
                move |_| {
                    PurgeSync::new(cache_dir, log, cache, interval)
                        .with_metrics(sync_metrics, meter)
                }
            }),
            actors.meter("purge_sync"),
        );
        watch.do_send(NotifyPurges(Box::new(purge_sync)));
        if !settings.sync_interval.is_zero() {
            let interval = settings.sync_interval;
            background.spawn(async move { tick_every(watch, interval) });
        }

        let state = web::Data::new(ProxyState::new(
            live.clone(),
            cache.clone(),
            memory,
            manifest.clone(),
            metrics.proxy.clone(),
        ));
        let history = Arc::new(admin::history::History::default());
        admin::history::sample_every(history.clone(), metrics.clone());
        let admin_state = web::Data::new(AdminState {
            config: live,
            reloader: reloader.clone(),
            cache: cache.clone(),
            manifest: manifest.clone(),
            populator: populator.clone(),
            metrics: metrics.clone(),
            history,
            started: std::time::Instant::now(),
        });
        let auth = web::Data::new(AdminAuth::new(
            settings.admin_token.clone(),
            port,
            settings.admin_session_lifetime,
            settings.client_scheme_header.clone(),
        ));
        let mut server = HttpServer::new(move || {
            let app = App::new()
                .app_data(state.clone())
                .app_data(admin_state.clone())
                .app_data(auth.clone())
                // awc::Client is !Send: one per worker, built here.
                .app_data(web::Data::new(OriginClients::new()))
                .service(admin::scope())
                .service(admin::lookalikes())
                .default_service(web::to(proxy));
            // Requests are logged, and fresh hits answered, before the app.
            Front::new(state.clone(), app)
        });
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        // A streamed response goes out as head, then body chunks: with Nagle's
        // algorithm each small write after the first waits for the client's
        // delayed ACK (40 ms on Linux) on a kept-alive connection.
        server = server.tcp_nodelay(true);
        // A client that trickles its request head gets 408 and is dropped.
        server = server.client_request_timeout(settings.client_request_timeout);
        // actix-web takes whole seconds: a fraction rounds up, never down to "drop at once".
        let shutdown = settings.shutdown_timeout;
        let shutdown_secs = shutdown.as_secs() + u64::from(shutdown.subsec_nanos() > 0);
        server = server.shutdown_timeout(shutdown_secs);
        // Stop signals are handled in `run_until_stopped`: actix-web's own
        // handling stops every arbiter (the cache store's too) as the
        // server stops, before the store could write its index snapshot.
        server = server.disable_signals();
        let stop_signals = StopSignals::listen().map_err(StartupError::Signals)?;
        let server = server.listen(listener).map_err(listen_error)?.run();
        let (metrics_server, metrics_port) = match metrics_listener {
            None => (None, None),
            Some((listener, port, addr)) => {
                let server = private_metrics_server(listener, addr, metrics.clone())?;
                tracing::info!(%addr, port, "serving GET /_caje/metrics without a token");
                (Some(server), Some(port))
            }
        };
        Ok(Self {
            port,
            server,
            metrics_port,
            metrics_server,
            cache,
            manifest,
            populator,
            metrics,
            batcher: flushed_at_stop,
            reloader,
            stop_signals,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the private metrics listener, when `metrics_listen` is set.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    pub fn cache(&self) -> Mailbox<CacheStore> {
        self.cache.clone()
    }

    pub fn manifest(&self) -> Mailbox<Manifest> {
        self.manifest.clone()
    }

    pub fn populator(&self) -> Mailbox<Populator> {
        self.populator.clone()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Reloads this node's config from its file.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until SIGTERM (requests in flight finish, up to
    /// `shutdown_timeout`) or SIGINT / SIGQUIT (they are dropped), then
    /// writes the manifest rows still gathering and the cache's index
    /// snapshot: the process exits without stopping its actors. Says which
    /// of the two stops it was, for servers that stop with it.
    /// The private metrics listener serves until the main server has stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<Stopped> {
        let metrics = self.metrics_server.map(|server| {
            let handle = server.handle();
            (handle, actix_web::rt::spawn(server))
        });
        let handle = self.server.handle();
        let stop = self.stop_signals;
        let stopped = Rc::new(Cell::new(Stopped::Gracefully));
        let stopped_by_signal = stopped.clone();
        actix_web::rt::spawn(async move {
            let graceful = stop.received().await;
            if !graceful {
                stopped_by_signal.set(Stopped::Now);
            }
            handle.stop(graceful).await;
        });
        let served = self.server.await;
        if let Some((handle, running)) = metrics {
            handle.stop(false).await;
            if let Ok(Err(e)) = running.await {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        }
        tracing::info!("stopped serving; writing the manifest rows still gathering");
        if let Err(e) = self.batcher.send(Flush).await {
            tracing::warn!(error = %e, "pending manifest rows lost at shutdown");
        }
        // Lets the next start skip walking the shards left unchanged (the
        // store logs what it wrote).
        let error = match self.cache.send(WriteSnapshot).await {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = error {
            tracing::warn!(%error, "no index snapshot: the next start walks every shard");
        }
        tracing::info!("shut down");
        served.map(|()| stopped.get())
    }
}

/// How a node stopped serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// On SIGTERM (or not by a signal): requests in flight were let finish.
    Gracefully,
    /// On SIGINT or SIGQUIT: requests in flight were dropped.
    Now,
}

/// SIGTERM, SIGINT and SIGQUIT, listened for from the start.
struct StopSignals {
    term: Signal,
    int: Signal,
    quit: Signal,
}

impl StopSignals {
    fn listen() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
        })
    }

    /// The first of them to come: whether the stop is graceful (SIGTERM).
    async fn received(mut self) -> bool {
        tokio::select! {
            _ = self.term.recv() => {
                tracing::info!("SIGTERM received; stopping gracefully");
                true
            }
            _ = self.int.recv() => {
                tracing::info!("SIGINT received; stopping now");
                false
            }
            _ = self.quit.recv() => {
                tracing::info!("SIGQUIT received; stopping now");
                false
            }
        }
    }
}

/// The server of `metrics_listen`: one worker, no signal handling of its
/// own (it is stopped when the main server stops), only the metrics route.
fn private_metrics_server(
    listener: TcpListener,
    addr: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<Server, StartupError> {
    let metrics = web::Data::from(metrics);
    Ok(HttpServer::new(move || {
        App::new()
            .app_data(metrics.clone())
            .configure(admin::private_metrics)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .map_err(|source| StartupError::Listen { addr, source })?
    .run())
}

/// Starts `ManifestWatch` on a thread of its own (its read-only connection
/// blocks); it is ticked every `sync_interval` (unless 0) and answers
/// `PurgeSync`'s reads of the purge log.
fn start_watch(
    settings: &Settings,
    metrics: &Metrics,
    populator: Mailbox<Populator>,
) -> Mailbox<ManifestWatch> {
    let (database, page_size) = (settings.database.clone(), settings.manifest_page_size);
    let (sync_metrics, meter) = (metrics.sync.clone(), metrics.actors.meter("manifest_watch"));
    Mailbox::new(
        SyncArbiter::start(1, move || {
            ManifestWatch::new(
                database.clone(),
                Some(populator.clone()),
                sync_metrics.clone(),
                meter.clone(),
            )
            .with_page_size(page_size)
        }),
        metrics.actors.meter("manifest_watch"),
    )
}

/// A `peer_url` ending in port 0 (a node listening on port 0, as in tests)
/// names the port actually bound.
pub(crate) fn with_port(url: String, port: u16) -> String {
    match url.strip_suffix(":0") {
        Some(base) => format!("{base}:{port}"),
        None => url,
    }
}
