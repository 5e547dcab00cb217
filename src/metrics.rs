//! Prometheus metrics of one node, in a registry of its own (so nodes in one
//! process, as in tests, never mix their figures). Each part of caje gets the
//! handles of its own figures; `/_caje/metrics` renders the registry.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Buckets for lock waits and holds: a HALT costs a round trip to the
/// primary, from under a millisecond in-region to tens across regions.
const LOCK_SECONDS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0, 10.0];
const BATCH_ROWS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0];
/// Buckets for actor message handling: most take microseconds.
const HANDLE_SECONDS: [f64; 9] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.1, 1.0,
];
/// Buckets for origin answers: up to the default 30 s timeout.
const ORIGIN_SECONDS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0];

/// Creates metrics and registers them in one go.
struct Register<'a>(&'a Registry);

impl Register<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: prometheus::Result<M>,
    ) -> prometheus::Result<M> {
        let metric = metric?;
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> prometheus::Result<IntCounter> {
        self.add(IntCounter::new(name, help))
    }

    fn counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntCounterVec> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels))
    }

    fn gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        self.add(IntGauge::new(name, help))
    }

    fn gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> prometheus::Result<IntGaugeVec> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels))
    }

    fn histogram(&self, name: &str, help: &str, buckets: &[f64]) -> prometheus::Result<Histogram> {
        self.add(Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        ))
    }

    fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> prometheus::Result<HistogramVec> {
        self.add(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        ))
    }
}

/// Figures every actor reports under its name.
#[derive(Clone)]
pub struct ActorMetrics {
    messages: IntCounterVec,
    mailbox: IntGaugeVec,
    handle_seconds: HistogramVec,
    errors: IntCounterVec,
}

impl ActorMetrics {
    fn register(r: &Register) -> prometheus::Result<Self> {
        Ok(Self {
            messages: r.counter_vec(
                "caje_actor_messages_total",
                "Messages an actor has handled, by actor and message type.",
                &["actor", "message"],
            )?,
            mailbox: r.gauge_vec(
                "caje_actor_mailbox_depth",
                "Messages sent to an actor and not yet handled.",
                &["actor"],
            )?,
            handle_seconds: r.histogram_vec(
                "caje_actor_handle_seconds",
                "Time an actor spent handling one message, by actor and message type.",
                &["actor", "message"],
                &HANDLE_SECONDS,
            )?,
            errors: r.counter_vec(
                "caje_actor_errors_total",
                "Messages whose handling failed, by actor and message type.",
                &["actor", "message"],
            )?,
        })
    }

    /// Each actor's mailbox depth now, by actor name.
    pub fn mailbox_depths(&self) -> Vec<(String, i64)> {
        use prometheus::core::Collector;
        self.mailbox
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter_map(|m| {
                let actor = m.get_label().first()?.value().to_owned();
                Some((actor, m.get_gauge().get_value() as i64))
            })
            .collect()
    }

    /// The meter of one actor.
    pub fn meter(&self, actor: &'static str) -> ActorMeter {
        ActorMeter {
            actor,
            depth: self.mailbox.with_label_values(&[actor]),
            metrics: self.clone(),
        }
    }
}

/// Counts one actor's messages: senders call [`ActorMeter::queued`] (through
/// `actors::Mailbox`), the handler [`ActorMeter::handling`].
#[derive(Clone)]
pub struct ActorMeter {
    actor: &'static str,
    depth: IntGauge,
    metrics: ActorMetrics,
}

impl ActorMeter {
    /// The actor's name, as its metrics are labelled.
    pub fn actor(&self) -> &'static str {
        self.actor
    }

    pub fn queued(&self) {
        self.depth.inc();
    }

    /// Marks a message taken from the mailbox; the returned guard records
    /// the handling time when dropped.
    pub fn handling(&self, message: &'static str) -> Handling {
        self.depth.dec();
        self.metrics
            .messages
            .with_label_values(&[self.actor, message])
            .inc();
        Handling {
            timer: self
                .metrics
                .handle_seconds
                .with_label_values(&[self.actor, message]),
            started: Instant::now(),
        }
    }

    pub fn error(&self, message: &'static str) {
        self.metrics
            .errors
            .with_label_values(&[self.actor, message])
            .inc();
    }
}

/// Records how long one message took, when dropped.
pub struct Handling {
    timer: Histogram,
    started: Instant,
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.timer.observe(self.started.elapsed().as_secs_f64());
    }
}

/// The file cache's figures.
#[derive(Clone)]
pub struct CacheMetrics {
    pub entries: IntGauge,
    pub bytes: IntGauge,
    pub lookups: IntCounter,
    pub hits: IntCounter,
    pub stored: IntCounter,
    pub stores_aborted: IntCounter,
    pub writes_cancelled: IntCounter,
    pub corrupt: IntCounter,
    pub io_errors: IntCounter,
    pub temp_files_cleaned: IntCounter,
    pub removed: IntCounter,
    pub evictions: IntCounter,
    pub memory_hits: IntCounter,
    pub memory_bytes: IntGauge,
    /// The configured bound (0: none).
    pub max_bytes: IntGauge,
    pub shards_from_snapshot: IntGauge,
    pub shards_walked: IntGauge,
}

impl CacheMetrics {
    fn register(r: &Register) -> prometheus::Result<Self> {
        Ok(Self {
            entries: r.gauge("caje_cache_entries", "Entries in this node's file cache.")?,
            bytes: r.gauge("caje_cache_bytes", "Bytes of this node's file cache entries.")?,
            lookups: r.counter("caje_cache_lookups_total", "Cache lookups.")?,
            hits: r.counter(
                "caje_cache_lookup_hits_total",
                "Cache lookups that found an entry whole.",
            )?,
            stored: r.counter("caje_cache_stored_total", "Entries committed to the cache.")?,
            stores_aborted: r.counter(
                "caje_cache_stores_aborted_total",
                "Entries abandoned: client gone, origin failed, or a body shorter than announced.",
            )?,
            writes_cancelled: r.counter(
                "caje_cache_writes_cancelled_total",
                "Stores and head rewrites dropped because a purge, an eviction or a newer entry came while they were written.",
            )?,
            corrupt: r.counter(
                "caje_cache_corrupt_total",
                "Entries that failed to decode, had another version or a short body; removed and served as misses.",
            )?,
            io_errors: r.counter(
                "caje_cache_io_errors_total",
                "Disk errors while storing, reading or removing entries.",
            )?,
            temp_files_cleaned: r.counter(
                "caje_cache_temp_files_cleaned_total",
                "Temporary files of interrupted writes removed at start.",
            )?,
            removed: r.counter(
                "caje_cache_removed_total",
                "Entries removed by purge, clear or replacement of their variants.",
            )?,
            evictions: r.counter(
                "caje_cache_evictions_total",
                "Entries evicted (least recently used first) to keep within max_size.",
            )?,
            memory_hits: r.counter(
                "caje_cache_memory_hits_total",
                "Hits served from the memory tier, without a message to the store or a file read.",
            )?,
            memory_bytes: r.gauge(
                "caje_cache_memory_bytes",
                "Bytes held by the memory tier (bodies, headers and overhead).",
            )?,
            max_bytes: r.gauge(
                "caje_cache_max_bytes",
                "The configured bound on the cache's entries (0: unbounded).",
            )?,
            shards_from_snapshot: r.gauge(
                "caje_cache_start_shards_from_snapshot",
                "Shard directories whose entries the last start took from the index snapshot of a graceful stop.",
            )?,
            shards_walked: r.gauge(
                "caje_cache_start_shards_walked",
                "Shard directories the last start walked (each file stat'ed): changed since the snapshot, or none usable.",
            )?,
        })
    }
}

/// A counter vector with one label whose children for the values a request
/// uses are resolved on first use and kept: counting is then one atomic
/// add, with no label hashing and no lock. A series still appears only once
/// it is used.
#[derive(Clone)]
pub struct CounterByLabel {
    vec: IntCounterVec,
    known: Arc<[(&'static str, OnceLock<IntCounter>)]>,
}

impl CounterByLabel {
    fn new(vec: IntCounterVec, known: &[&'static str]) -> Self {
        let known = known.iter().map(|v| (*v, OnceLock::new())).collect();
        Self { vec, known }
    }

    /// Counts one for `value` (a value outside the known ones is looked up).
    pub fn inc(&self, value: &str) {
        match self.known.iter().find(|(v, _)| *v == value) {
            Some((_, child)) => child
                .get_or_init(|| self.vec.with_label_values(&[value]))
                .inc(),
            None => self.vec.with_label_values(&[value]).inc(),
        }
    }

    /// Every series counted so far (the dashboard's history reads them).
    pub fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        use prometheus::core::Collector;
        self.vec.collect()
    }
}

/// The outcomes a proxied request is counted under (`hit` first: the
/// most frequent is found first).
const OUTCOMES: [&str; 12] = [
    "hit",
    "uri-miss",
    "vary-miss",
    "miss",
    "method",
    "request",
    "stale",
    "bypass",
    "partial",
    "collapsed",
    "only-if-cached",
    "none",
];

/// The proxy's figures.
#[derive(Clone)]
pub struct ProxyMetrics {
    /// `caje_requests_total` by outcome.
    pub requests_by: CounterByLabel,
    pub origin_requests: IntCounterVec,
    pub origin_seconds: HistogramVec,
    /// `caje_body_bytes_total{source="cache"}` and `{source="origin"}`.
    pub cache_body_bytes: IntCounter,
    pub origin_body_bytes: IntCounter,
    /// Requests to peers (tiered cache) by outcome: `used`, `unusable`
    /// (504, stale, not storable, not a stored answer), `timeout`, `error`.
    pub peer_requests: IntCounterVec,
}

impl ProxyMetrics {
    fn register(r: &Register) -> prometheus::Result<Self> {
        let body_bytes = r.counter_vec(
            "caje_body_bytes_total",
            "Response body bytes sent to clients, by source (cache or origin).",
            &["source"],
        )?;
        Ok(Self {
            requests_by: CounterByLabel::new(
                r.counter_vec(
                    "caje_requests_total",
                    "Proxied requests by cache outcome (hit, or why the origin was asked).",
                    &["cache_status"],
                )?,
                &OUTCOMES,
            ),
            origin_requests: r.counter_vec(
                "caje_origin_requests_total",
                "Requests to origins by origin and response status (or error).",
                &["origin", "status"],
            )?,
            origin_seconds: r.histogram_vec(
                "caje_origin_seconds",
                "Time until an origin's response head arrived, by origin.",
                &["origin"],
                &ORIGIN_SECONDS,
            )?,
            cache_body_bytes: body_bytes.with_label_values(&["cache"]),
            origin_body_bytes: body_bytes.with_label_values(&["origin"]),
            peer_requests: r.counter_vec(
                "caje_peer_requests_total",
                "Requests to peer nodes for a stored page, by outcome (used, unusable, timeout, error).",
                &["outcome"],
            )?,
        })
    }
}

/// The populator's figures.
#[derive(Clone)]
pub struct PopulatorMetrics {
    pub runs: IntCounter,
    pub queued: IntGauge,
    pub in_flight: IntGauge,
    pub fetched: IntCounter,
    pub failed: IntCounter,
    pub deferred: IntCounter,
    pub last_run_seconds: IntGauge,
}

impl PopulatorMetrics {
    fn register(r: &Register) -> prometheus::Result<Self> {
        Ok(Self {
            runs: r.counter("caje_populator_runs_total", "Populator runs.")?,
            queued: r.gauge(
                "caje_populator_queued",
                "Manifest pages this node lacks, waiting to be fetched.",
            )?,
            in_flight: r.gauge(
                "caje_populator_in_flight",
                "Pages being fetched by the populator now.",
            )?,
            fetched: r.counter(
                "caje_populator_fetched_total",
                "Pages the populator fetched and stored.",
            )?,
            failed: r.counter(
                "caje_populator_failed_total",
                "Populator fetches that failed or were not storable.",
            )?,
            deferred: r.counter(
                "caje_populator_deferred_total",
                "Pages skipped because their origin is backing off after failures.",
            )?,
            last_run_seconds: r.gauge(
                "caje_populator_last_run_timestamp_seconds",
                "Unix time of the populator's last run (0 before the first).",
            )?,
        })
    }
}

/// Change-driven sync's figures: `ManifestWatch` and the purges `PurgeSync` applies.
#[derive(Clone)]
pub struct SyncMetrics {
    pub ticks: IntCounter,
    pub changes: IntCounter,
    pub pages_queued: IntCounter,
    pub purges_applied: IntCounter,
}

impl SyncMetrics {
    fn register(r: &Register) -> prometheus::Result<Self> {
        Ok(Self {
            ticks: r.counter(
                "caje_sync_ticks_total",
                "Times the manifest watch checked the manifest's data_version.",
            )?,
            changes: r.counter(
                "caje_sync_changes_total",
                "Ticks that found the manifest changed and read what was new.",
            )?,
            pages_queued: r.counter(
                "caje_sync_pages_queued_total",
                "Changed manifest pages the watch handed to the populator to warm.",
            )?,
            purges_applied: r.counter(
                "caje_sync_purges_applied_total",
                "Entries of the shared purge log this node applied after start.",
            )?,
        })
    }
}

/// The manifest writer's figures, including the LiteFS HALT lock.
#[derive(Clone)]
pub struct ManifestMetrics {
    pub rows_written: IntCounter,
    pub write_errors: IntCounter,
    pub write_retries: IntCounter,
    pub batches: IntCounter,
    pub batch_rows: Histogram,
    pub halt_acquisitions: IntCounter,
    pub halt_failures: IntCounter,
    pub halt_wait_seconds: Histogram,
    pub halt_hold_seconds: Histogram,
    /// 1 for the node's current role (`primary` or `replica`), 0 for the other.
    pub role: IntGaugeVec,
    pub lag_seconds: Gauge,
    /// 1 once the manifest is there and migrated; 0 while a replica waits
    /// for the primary to create or migrate it.
    pub ready: IntGauge,
    /// Gathered rows dropped because too many waited for a write (or for
    /// the manifest to be ready).
    pub rows_dropped: IntCounter,
    /// Gathered rows not written yet (a write failed, or the manifest is not ready).
    pub rows_unwritten: IntGauge,
}

impl ManifestMetrics {
    fn register(r: &Register) -> prometheus::Result<Self> {
        Ok(Self {
            rows_written: r.counter(
                "caje_manifest_rows_written_total",
                "Manifest rows inserted or touched.",
            )?,
            write_errors: r.counter(
                "caje_manifest_write_errors_total",
                "Manifest write batches that failed (their rows are kept for the next batch).",
            )?,
            write_retries: r.counter(
                "caje_manifest_write_retries_total",
                "Writes of rows kept from failed manifest writes, retried with backoff.",
            )?,
            batches: r.counter(
                "caje_manifest_batches_total",
                "Manifest write transactions committed.",
            )?,
            batch_rows: r.histogram(
                "caje_manifest_batch_rows",
                "Rows per manifest write transaction.",
                &BATCH_ROWS,
            )?,
            halt_acquisitions: r.counter(
                "caje_litefs_halt_acquisitions_total",
                "LiteFS HALT locks taken for a manifest write on a replica.",
            )?,
            halt_failures: r.counter(
                "caje_litefs_halt_failures_total",
                "LiteFS HALT locks that could not be taken.",
            )?,
            halt_wait_seconds: r.histogram(
                "caje_litefs_halt_wait_seconds",
                "Time spent waiting for the LiteFS HALT lock.",
                &LOCK_SECONDS,
            )?,
            halt_hold_seconds: r.histogram(
                "caje_litefs_halt_hold_seconds",
                "Time the LiteFS HALT lock was held for one write.",
                &LOCK_SECONDS,
            )?,
            role: r.gauge_vec(
                "caje_litefs_role",
                "1 for this node's LiteFS role (primary or replica).",
                &["role"],
            )?,
            lag_seconds: r.add(Gauge::new(
                "caje_litefs_lag_seconds",
                "Replication lag LiteFS last reported (-1 before initial replication).",
            ))?,
            ready: r.gauge(
                "caje_manifest_ready",
                "1 when the manifest database exists and is migrated; 0 while a replica waits for the primary.",
            )?,
            rows_dropped: r.counter(
                "caje_manifest_rows_dropped_total",
                "Gathered manifest rows dropped because too many were waiting to be written.",
            )?,
            rows_unwritten: r.gauge(
                "caje_manifest_rows_unwritten",
                "Gathered manifest rows kept for a later write (a failed write, or a replica waiting for the manifest).",
            )?,
        })
    }
}

/// Every metric of one node.
pub struct Metrics {
    registry: Registry,
    pub actors: ActorMetrics,
    pub cache: CacheMetrics,
    pub proxy: ProxyMetrics,
    pub populator: PopulatorMetrics,
    pub manifest: ManifestMetrics,
    pub sync: SyncMetrics,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let r = Register(&registry);
        let actors = ActorMetrics::register(&r)?;
        let cache = CacheMetrics::register(&r)?;
        let proxy = ProxyMetrics::register(&r)?;
        let populator = PopulatorMetrics::register(&r)?;
        let manifest = ManifestMetrics::register(&r)?;
        let sync = SyncMetrics::register(&r)?;
        Ok(Self {
            registry,
            actors,
            cache,
            proxy,
            populator,
            manifest,
            sync,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
