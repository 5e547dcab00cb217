//! Prometheus metrics of one node, in a registry of its own (so nodes in one
//! process, as in tests, never mix their figures). Each actor gets the
//! handles of its part; `/_caje/metrics` renders the registry.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets for lock waits and holds: a HALT costs a round trip to the
/// primary, from under a millisecond in-region to tens across regions.
const LOCK_SECONDS: [f64; 10] = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0, 10.0];
const BATCH_ROWS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0];

/// The manifest writer's figures, including the LiteFS HALT lock.
#[derive(Clone)]
pub struct ManifestMetrics {
    pub rows_written: IntCounter,
    pub write_errors: IntCounter,
    pub batches: IntCounter,
    pub batch_rows: Histogram,
    pub halt_acquisitions: IntCounter,
    pub halt_failures: IntCounter,
    pub halt_wait_seconds: Histogram,
    pub halt_hold_seconds: Histogram,
    /// 1 for the node's current role (`primary` or `replica`), 0 for the other.
    pub role: IntGaugeVec,
    pub lag_ms: IntGauge,
}

impl ManifestMetrics {
    fn register(registry: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            rows_written: IntCounter::new(
                "caje_manifest_rows_written_total",
                "Manifest rows inserted or touched.",
            )?,
            write_errors: IntCounter::new(
                "caje_manifest_write_errors_total",
                "Manifest write batches that failed (their rows are kept for the next batch).",
            )?,
            batches: IntCounter::new(
                "caje_manifest_batches_total",
                "Manifest write transactions committed.",
            )?,
            batch_rows: Histogram::with_opts(
                HistogramOpts::new(
                    "caje_manifest_batch_rows",
                    "Rows per manifest write transaction.",
                )
                .buckets(BATCH_ROWS.to_vec()),
            )?,
            halt_acquisitions: IntCounter::new(
                "caje_litefs_halt_acquisitions_total",
                "LiteFS HALT locks taken for a manifest write on a replica.",
            )?,
            halt_failures: IntCounter::new(
                "caje_litefs_halt_failures_total",
                "LiteFS HALT locks that could not be taken.",
            )?,
            halt_wait_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "caje_litefs_halt_wait_seconds",
                    "Time spent waiting for the LiteFS HALT lock.",
                )
                .buckets(LOCK_SECONDS.to_vec()),
            )?,
            halt_hold_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "caje_litefs_halt_hold_seconds",
                    "Time the LiteFS HALT lock was held for one write.",
                )
                .buckets(LOCK_SECONDS.to_vec()),
            )?,
            role: IntGaugeVec::new(
                Opts::new(
                    "caje_litefs_role",
                    "1 for this node's LiteFS role (primary or replica).",
                ),
                &["role"],
            )?,
            lag_ms: IntGauge::new(
                "caje_litefs_lag_milliseconds",
                "Replication lag LiteFS last reported (-1 before initial replication).",
            )?,
        };
        registry.register(Box::new(m.rows_written.clone()))?;
        registry.register(Box::new(m.write_errors.clone()))?;
        registry.register(Box::new(m.batches.clone()))?;
        registry.register(Box::new(m.batch_rows.clone()))?;
        registry.register(Box::new(m.halt_acquisitions.clone()))?;
        registry.register(Box::new(m.halt_failures.clone()))?;
        registry.register(Box::new(m.halt_wait_seconds.clone()))?;
        registry.register(Box::new(m.halt_hold_seconds.clone()))?;
        registry.register(Box::new(m.role.clone()))?;
        registry.register(Box::new(m.lag_ms.clone()))?;
        Ok(m)
    }
}

/// Every metric of one node.
pub struct Metrics {
    registry: Registry,
    pub manifest: ManifestMetrics,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let manifest = ManifestMetrics::register(&registry)?;
        Ok(Self { registry, manifest })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
