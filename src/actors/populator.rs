//! `Populator`: warms this node's cache with the pages the shared manifest
//! lists and this node lacks (or holds only stale), so a page first seen in
//! one region is soon a hit in every region. `ManifestWatch` sends it the
//! pages that changed (`Warm`) within `sync_interval`; a full reconcile,
//! streaming the whole manifest a page at a time, runs every
//! `populate_interval` as a safety net, and on demand. It fetches with
//! bounded concurrency and a per-origin rate limit, never fetches one page
//! twice at once, backs off from failing origins, and stores only what the
//! origin's answer allows (the same decision as the proxy's).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use actix_web::http::header::HeaderMap;
use futures_util::StreamExt;

use super::cache_store::{CacheStore, GetCacheStats, HoldsFresh};
use super::manifest::{Manifest, ManifestError, PageHolder, PagesAfter};
use super::{Mailbox, NotAnswering};
use crate::cache::CacheKey;
use crate::config::{Origin, PeerFetch};
use crate::metrics::{ActorMeter, PopulatorMetrics, ProxyMetrics};
use crate::reload::{LiveConfig, Snapshot};
use crate::upstream::fetch::store_fully;
use crate::upstream::peer::{self, Peer};
use crate::upstream::send::NoBody;
use crate::upstream::{self, OriginClients, OriginRequest, RequestBody, Upstream};

/// The longest a failing origin is left alone.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Share of `max_size` above which a run queues nothing: filling a nearly
/// full cache would only evict what traffic keeps there, and evicted pages
/// would be fetched back by the next run, for ever.
const FULL_PERCENT: u64 = 90;
/// A page this node fetched is not fetched again for a change within this
/// long: its own store changes the manifest row, and a page that is never
/// fresh (no `max-age`) would otherwise bounce between nodes for ever.
const REWARM_AFTER: Duration = Duration::from_secs(60);
/// `fetched_at` is pruned at most this often: pruning scans it whole, and a
/// reconcile queues a slice of 500 pages at a time (a million pages, 2,000
/// slices: pruned on each, the run took 21 s).
const PRUNE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum PopulateError {
    #[error("cannot read the manifest: {0}")]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    NotAnswering(#[from] NotAnswering),
}

/// What one run queued.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PopulateReport {
    /// URLs queued for fetching, as `http://host/path`.
    pub queued: Vec<String>,
    /// Missing pages already being fetched by an earlier run.
    pub already_in_flight: usize,
    /// The cache is nearly at `max_size`, so nothing was queued.
    pub cache_full: bool,
    /// Missing pages not queued because `populate_pending` pages already
    /// are: a later run (or change) queues them once those are done.
    pub left_for_later: usize,
}

/// The populator's progress.
#[derive(Debug, Clone, serde::Serialize, MessageResponse)]
pub struct PopulatorStatus {
    pub queued: i64,
    pub in_flight: i64,
    pub fetched: u64,
    pub failed: u64,
    pub deferred: u64,
    pub runs: u64,
    /// HTTP date of the last run.
    pub last_run: Option<String>,
}

/// Pacing of requests to one origin.
struct OriginPace {
    next_slot: Instant,
    failures: u32,
    backoff_until: Option<Instant>,
}

/// What the actor and its fetches (on the same thread) share.
#[derive(Default)]
struct Shared {
    /// Pages queued or being fetched.
    pending: HashSet<CacheKey>,
    origins: HashMap<String, OriginPace>,
    last_run: Option<SystemTime>,
    /// When this node last fetched each page (for `REWARM_AFTER`), pruned
    /// every `PRUNE_EVERY`: about as many as fetched within `REWARM_AFTER`.
    fetched_at: HashMap<CacheKey, Instant>,
    /// When `fetched_at` was last pruned.
    pruned_at: Option<Instant>,
}

/// Everything one run needs, cheap to clone into its futures.
#[derive(Clone)]
struct Runner {
    /// Read afresh by each run and each fetch: a reload's origins apply.
    config: LiveConfig,
    cache: Mailbox<CacheStore>,
    manifest: Mailbox<Manifest>,
    client: OriginClients,
    /// Its origin requests are counted with the proxy's.
    origin_metrics: ProxyMetrics,
    metrics: PopulatorMetrics,
    shared: Rc<RefCell<Shared>>,
    /// `populate_concurrency` fetches at once for the whole node: every
    /// slice of a run and every `Warm` spawns its own fetch stream.
    permits: Rc<tokio::sync::Semaphore>,
}

pub struct Populator {
    runner: Runner,
    meter: ActorMeter,
}

impl Populator {
    /// Must be built on the thread the actor runs on: `client` is `!Send`.
    pub fn new(
        config: LiveConfig,
        cache: Mailbox<CacheStore>,
        manifest: Mailbox<Manifest>,
        client: OriginClients,
        origin_metrics: ProxyMetrics,
        metrics: PopulatorMetrics,
        meter: ActorMeter,
    ) -> Self {
        let concurrency = config.settings().populate_concurrency.max(1);
        Self {
            runner: Runner {
                config,
                cache,
                manifest,
                client,
                origin_metrics,
                metrics,
                shared: Rc::default(),
                permits: Rc::new(tokio::sync::Semaphore::new(concurrency)),
            },
            meter,
        }
    }
}

impl Actor for Populator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let interval = self.runner.config.settings().populate_interval;
        // A random first delay, so nodes started together do not all ask
        // the origin for the same pages at the same moment.
        let first = interval.mul_f64(rand::random::<f64>());
        ctx.run_later(first, move |populator, ctx| {
            populator.spawn_run();
            ctx.run_interval(interval, |populator, _| populator.spawn_run());
        });
    }
}

impl Populator {
    fn spawn_run(&self) {
        let runner = self.runner.clone();
        actix_web::rt::spawn(async move {
            if let Err(e) = runner.run().await {
                tracing::warn!(error = %e, "populator run failed");
            }
        });
    }
}

impl Runner {
    /// Queues what this node lacks and starts fetching it in the background.
    #[tracing::instrument(name = "populator.run", skip_all)]
    async fn run(self) -> Result<PopulateReport, PopulateError> {
        let now = SystemTime::now();
        self.metrics.runs.inc();
        self.metrics.last_run_seconds.set(
            now.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        );
        self.shared.borrow_mut().last_run = Some(now);

        let mut report = PopulateReport {
            queued: Vec::new(),
            already_in_flight: 0,
            cache_full: false,
            left_for_later: 0,
        };
        let mut after = 0;
        let limit = self.config.settings().manifest_page_size;
        loop {
            let slice = self.manifest.send(PagesAfter { after, limit }).await??;
            let Some((last, _)) = slice.last() else {
                break;
            };
            after = *last;
            let full = slice.len() >= limit;
            let keys = slice.into_iter().map(|(_, key)| key).collect();
            let part = self.clone().queue(keys, false).await?;
            report.queued.extend(part.queued);
            report.already_in_flight += part.already_in_flight;
            report.cache_full |= part.cache_full;
            report.left_for_later += part.left_for_later;
            // A full queue stops the run: reading on would only count.
            if !full || part.cache_full || part.left_for_later > 0 {
                break;
            }
        }
        tracing::info!(
            queued = report.queued.len(),
            already_in_flight = report.already_in_flight,
            cache_full = report.cache_full,
            left_for_later = report.left_for_later,
            "populator queued pages"
        );
        Ok(report)
    }

    /// Checks `keys` against the cache and starts fetching in the
    /// background those it lacks and no fetch is under way for. For a
    /// change (`Warm`), pages this node fetched within `REWARM_AFTER` are
    /// skipped too.
    async fn queue(
        self,
        keys: Vec<CacheKey>,
        for_change: bool,
    ) -> Result<PopulateReport, PopulateError> {
        let settings = self.config.settings();
        let held = self.cache.send(HoldsFresh(keys.clone())).await?;
        let cache_full = match settings.max_size {
            Some(max) => {
                let stats = self.cache.send(GetCacheStats).await?;
                stats.bytes.saturating_mul(100) >= max.saturating_mul(FULL_PERCENT)
            }
            None => false,
        };
        let mut queue = Vec::new();
        let (mut already_in_flight, mut left_for_later) = (0, 0);
        if !cache_full {
            let now = Instant::now();
            let mut shared = self.shared.borrow_mut();
            if shared
                .pruned_at
                .is_none_or(|at| now.duration_since(at) >= PRUNE_EVERY)
            {
                shared
                    .fetched_at
                    .retain(|_, at| now.duration_since(*at) < REWARM_AFTER);
                shared.pruned_at = Some(now);
            }
            let recent = |at: &Instant| now.duration_since(*at) < REWARM_AFTER;
            for (key, held) in keys.into_iter().zip(held) {
                if held || (for_change && shared.fetched_at.get(&key).is_some_and(recent)) {
                    continue;
                }
                if shared.pending.contains(&key) {
                    already_in_flight += 1;
                } else if shared.pending.len() >= settings.populate_pending {
                    left_for_later += 1;
                } else {
                    shared.pending.insert(key.clone());
                    queue.push(key);
                }
            }
        }
        self.metrics.queued.add(queue.len() as i64);
        let report = PopulateReport {
            queued: queue
                .iter()
                .map(|k| format!("http://{}{}", k.host(), k.path_and_query()))
                .collect(),
            already_in_flight,
            cache_full,
            left_for_later,
        };
        let concurrency = settings.populate_concurrency;
        actix_web::rt::spawn(async move {
            futures_util::stream::iter(queue)
                .for_each_concurrent(concurrency, |key| self.clone().populate(key))
                .await;
        });
        Ok(report)
    }

    #[tracing::instrument(name = "populator.fetch", skip_all, fields(host = %key.host(), path = %key.path_and_query()))]
    async fn populate(self, key: CacheKey) {
        // Taken before the origin's rate slot is reserved, so slots are
        // reserved only by fetches about to be made. The semaphore is
        // never closed.
        let permit = self.permits.acquire().await.ok();
        let outcome = self.fetch(&key).await;
        drop(permit);
        self.metrics.queued.dec();
        let mut shared = self.shared.borrow_mut();
        shared.pending.remove(&key);
        // A deferred page was not asked for (its origin is backing off).
        if !matches!(outcome, FetchResult::Deferred) {
            shared.fetched_at.insert(key.clone(), Instant::now());
        }
        drop(shared);
        match outcome {
            FetchResult::Stored => self.metrics.fetched.inc(),
            FetchResult::Deferred => self.metrics.deferred.inc(),
            FetchResult::Failed(reason) => {
                self.metrics.failed.inc();
                tracing::warn!(host = %key.host(), path = %key.path_and_query(), %reason, "populator could not store a page");
            }
        }
    }

    async fn fetch(&self, key: &CacheKey) -> FetchResult {
        let live = self.config.current();
        let Some(origin) = live.settings.origin_for(key.host()) else {
            return FetchResult::Failed(format!("no origin is configured for {}", key.host()));
        };
        let Some(wait) = self.reserve_slot(origin, live.settings.populate_rate) else {
            return FetchResult::Deferred;
        };
        actix_web::rt::time::sleep(wait).await;
        self.metrics.in_flight.inc();
        let outcome = self.fetch_now(key, origin, &live).await;
        self.metrics.in_flight.dec();
        let origin_failed = matches!(&outcome, Err(OriginFailure(_)));
        self.record_origin_health(origin, origin_failed);
        match outcome {
            Ok(true) => FetchResult::Stored,
            Ok(false) => FetchResult::Failed("the origin's answer may not be stored".to_owned()),
            Err(OriginFailure(reason)) => FetchResult::Failed(reason),
        }
    }

    /// How long to wait for this origin's next request slot; `None` while
    /// the origin is backing off after failures.
    fn reserve_slot(&self, origin: &Origin, rate: u32) -> Option<Duration> {
        let now = Instant::now();
        let mut shared = self.shared.borrow_mut();
        let pace = shared
            .origins
            .entry(origin.host.clone())
            .or_insert(OriginPace {
                next_slot: now,
                failures: 0,
                backoff_until: None,
            });
        if pace.backoff_until.is_some_and(|until| until > now) {
            return None;
        }
        let slot = pace.next_slot.max(now);
        pace.next_slot = slot + Duration::from_secs_f64(1.0 / f64::from(rate));
        Some(slot - now)
    }

    fn record_origin_health(&self, origin: &Origin, failed: bool) {
        let mut shared = self.shared.borrow_mut();
        let Some(pace) = shared.origins.get_mut(&origin.host) else {
            return;
        };
        if failed {
            pace.failures = pace.failures.saturating_add(1);
            let backoff = Duration::from_secs(1u64 << pace.failures.min(9)).min(MAX_BACKOFF);
            pace.backoff_until = Some(Instant::now() + backoff);
        } else {
            pace.failures = 0;
            pace.backoff_until = None;
        }
    }

    /// Fetches one page and stores it when allowed: `Ok(true)` when stored.
    /// The node that stored it is asked first (`peer_fetch`), then the origin.
    async fn fetch_now(
        &self,
        key: &CacheKey,
        origin: &Origin,
        live: &Snapshot,
    ) -> Result<bool, OriginFailure> {
        if self.stored_from_peer(key, origin, live).await {
            return Ok(true);
        }
        let (client, target) = self.client.origin(origin, &live.links);
        let upstream = Upstream {
            origin,
            client,
            target,
            client_ip_header: None,
            metrics: &self.origin_metrics,
            cdn_loop: live.cdn_loop.clone(),
        };
        let request = OriginRequest::own_get(key.path_and_query());
        let response = upstream::send(&upstream, request, None::<RequestBody<NoBody>>)
            .await
            .result
            .map_err(|e| OriginFailure(format!("origin {}: {e}", origin.upstream)))?;
        if response.status().is_server_error() {
            return Err(OriginFailure(format!(
                "origin {} answered {}",
                origin.upstream,
                response.status()
            )));
        }
        store_fully(
            &self.cache,
            key,
            &HeaderMap::new(),
            response,
            origin.admit_rules(),
        )
        .await
        .map_err(|e| OriginFailure(format!("origin {} body: {e}", origin.upstream)))
    }

    /// Stores the page from the node that stored it last, when that is
    /// another node offered as a peer and its copy is usable; `true` once
    /// stored. Whatever goes wrong leaves the page to the origin.
    async fn stored_from_peer(&self, key: &CacheKey, origin: &Origin, live: &Snapshot) -> bool {
        let settings = &live.settings;
        if settings.peer_fetch == PeerFetch::Off {
            return false;
        }
        let holder = match self.manifest.send(PageHolder(key.clone())).await {
            Ok(Ok(Some(holder))) => holder,
            Ok(Ok(None)) => return false,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "no page holder; asking the origin");
                return false;
            }
            Err(e) => {
                tracing::debug!(error = %e, "no page holder; asking the origin");
                return false;
            }
        };
        let Some(url) = holder.peer_url.filter(|url| !settings.is_own_peer_url(url)) else {
            return false;
        };
        let peer = Peer {
            url: &url,
            client: self.client.peers(),
            timeout: settings.peer_timeout,
            cdn_loop: &live.cdn_loop,
            metrics: &self.origin_metrics,
        };
        let no_fields = HeaderMap::new();
        let Ok(response) = peer::ask(&peer, key, &no_fields, origin.admit_rules()).await else {
            return false;
        };
        match store_fully(&self.cache, key, &no_fields, response, origin.admit_rules()).await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::info!(error = %e, peer = %url, "peer body failed; asking the origin");
                false
            }
        }
    }
}

struct OriginFailure(String);

/// How fetching one page for the populator ended.
enum FetchResult {
    Stored,
    Deferred,
    Failed(String),
}

/// Runs the populator now; answers what it queued.
#[derive(Message)]
#[rtype(result = "Result<PopulateReport, PopulateError>")]
pub struct RunNow;

impl Handler<RunNow> for Populator {
    type Result = ResponseFuture<Result<PopulateReport, PopulateError>>;

    fn handle(&mut self, _msg: RunNow, _ctx: &mut Self::Context) -> Self::Result {
        let _handling = self.meter.handling("run_now");
        Box::pin(self.runner.clone().run())
    }
}

/// Pages changed in the manifest, sent by `ManifestWatch`: checked against
/// the cache and those this node lacks fetched, with the usual pacing.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Warm(pub Vec<CacheKey>);

impl Handler<Warm> for Populator {
    type Result = ();

    fn handle(&mut self, msg: Warm, _ctx: &mut Self::Context) {
        let _handling = self.meter.handling("warm");
        let runner = self.runner.clone();
        actix_web::rt::spawn(async move {
            match runner.queue(msg.0, true).await {
                Ok(report) if !report.queued.is_empty() => {
                    tracing::debug!(
                        queued = report.queued.len(),
                        "populator warms changed pages"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "populator could not warm changed pages"),
            }
        });
    }
}

/// The populator's progress.
#[derive(Message)]
#[rtype(result = "PopulatorStatus")]
pub struct GetStatus;

impl Handler<GetStatus> for Populator {
    type Result = PopulatorStatus;

    fn handle(&mut self, _msg: GetStatus, _ctx: &mut Self::Context) -> PopulatorStatus {
        let _handling = self.meter.handling("get_status");
        let _span = tracing::debug_span!("populator.get_status").entered();
        let m = &self.runner.metrics;
        PopulatorStatus {
            queued: m.queued.get(),
            in_flight: m.in_flight.get(),
            fetched: m.fetched.get(),
            failed: m.failed.get(),
            deferred: m.deferred.get(),
            runs: m.runs.get(),
            last_run: self
                .runner
                .shared
                .borrow()
                .last_run
                .map(httpdate::fmt_http_date),
        }
    }
}
