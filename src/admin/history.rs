//! The last minutes of the node's figures, for the dashboard's charts: a
//! timer reads the metrics every [`SAMPLE_EVERY`] and keeps what changed
//! in that interval (requests by cache status, the hit ratio, origin
//! latency) and each actor's mailbox depth, in a ring of [`KEPT`] samples.
//! This is the only writer of the ring; pages read copies of it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use serde::Serialize;

use crate::metrics::Metrics;

/// How often the figures are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Samples kept: ten minutes.
pub const KEPT: usize = 300;
/// The cache status that counts as a hit in the hit ratio.
const HIT: &str = "hit";

/// What happened in one interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// When the interval ended, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// Requests answered in the interval, by cache status.
    pub requests: BTreeMap<String, u64>,
    /// Hits among the requests answered in the interval; `None` without any.
    pub hit_ratio: Option<f64>,
    /// Time to the origins' response heads in the interval; `None` without any.
    pub origin_ms: Option<Latency>,
    /// Each actor's mailbox depth when the interval ended.
    pub mailbox: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    pub count: u64,
    pub mean: f64,
    /// Estimated from the histogram's buckets, as `histogram_quantile` does.
    pub p95: f64,
}

/// The counters a sample is the difference of.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    requests: BTreeMap<String, u64>,
    origin_count: u64,
    origin_sum: f64,
    /// Upper bound in seconds and cumulative count, every origin added up.
    origin_buckets: Vec<(f64, u64)>,
}

impl Totals {
    pub fn read(metrics: &Metrics) -> Self {
        let mut totals = Self::default();
        for family in metrics.proxy.requests_by.collect() {
            for m in family.get_metric() {
                if let Some(status) = m.get_label().first() {
                    let count = m.get_counter().get_value() as u64;
                    *totals
                        .requests
                        .entry(status.value().to_owned())
                        .or_default() += count;
                }
            }
        }
        for family in metrics.proxy.origin_seconds.collect() {
            for m in family.get_metric() {
                let h = m.get_histogram();
                totals.origin_count += h.get_sample_count();
                totals.origin_sum += h.get_sample_sum();
                for (i, b) in h.get_bucket().iter().enumerate() {
                    match totals.origin_buckets.get_mut(i) {
                        Some((_, count)) => *count += b.cumulative_count(),
                        None => totals
                            .origin_buckets
                            .push((b.upper_bound(), b.cumulative_count())),
                    }
                }
            }
        }
        totals
    }
}

impl Sample {
    /// What changed from `before` to `now`.
    pub fn between(
        before: &Totals,
        now: &Totals,
        at_ms: u64,
        mailbox: BTreeMap<String, i64>,
    ) -> Self {
        let requests: BTreeMap<String, u64> = now
            .requests
            .iter()
            .map(|(status, n)| {
                let was = before.requests.get(status).copied().unwrap_or(0);
                (status.clone(), n.saturating_sub(was))
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        let answered: u64 = requests.values().sum();
        let hits = requests.get(HIT).copied().unwrap_or(0);
        let hit_ratio = (answered > 0).then(|| hits as f64 / answered as f64);
        let count = now.origin_count.saturating_sub(before.origin_count);
        let origin_ms = (count > 0).then(|| {
            let sum = (now.origin_sum - before.origin_sum).max(0.0);
            let buckets: Vec<(f64, u64)> = now
                .origin_buckets
                .iter()
                .enumerate()
                .map(|(i, (bound, n))| {
                    let was = before.origin_buckets.get(i).map_or(0, |(_, n)| *n);
                    (*bound, n.saturating_sub(was))
                })
                .collect();
            Latency {
                count,
                mean: sum / count as f64 * 1000.0,
                p95: quantile(0.95, &buckets, count) * 1000.0,
            }
        });
        Self {
            at_ms,
            requests,
            hit_ratio,
            origin_ms,
            mailbox,
        }
    }
}

/// The `q` quantile of `count` observations in cumulative `buckets`,
/// interpolated linearly within its bucket; past the last bound, the last
/// bound (as Prometheus does for the `+Inf` bucket).
fn quantile(q: f64, buckets: &[(f64, u64)], count: u64) -> f64 {
    let rank = q * count as f64;
    let (mut lower, mut below) = (0.0, 0);
    for &(upper, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let inside = cumulative.saturating_sub(below);
            if inside == 0 {
                return upper;
            }
            return lower + (upper - lower) * (rank - below as f64) / inside as f64;
        }
        (lower, below) = (upper, cumulative);
    }
    lower
}

/// The ring of samples, and the totals the next sample starts from.
pub struct History {
    state: Mutex<Ring>,
}

struct Ring {
    samples: VecDeque<Sample>,
    last: Option<Totals>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            state: Mutex::new(Ring {
                samples: VecDeque::with_capacity(KEPT),
                last: None,
            }),
        }
    }
}

impl History {
    /// Reads the metrics and keeps what changed since the last reading
    /// (the first reading only sets the start).
    pub fn sample(&self, metrics: &Metrics) {
        let now = Totals::read(metrics);
        let mailbox = metrics.actors.mailbox_depths().into_iter().collect();
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut ring = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(before) = &ring.last {
            let sample = Sample::between(before, &now, at_ms, mailbox);
            if ring.samples.len() == KEPT {
                ring.samples.pop_front();
            }
            ring.samples.push_back(sample);
        }
        ring.last = Some(now);
    }

    /// The samples kept, oldest first.
    pub fn samples(&self) -> Vec<Sample> {
        let ring = self.state.lock().unwrap_or_else(|p| p.into_inner());
        ring.samples.iter().cloned().collect()
    }
}

/// Samples `metrics` into `history` every [`SAMPLE_EVERY`] while the node runs.
pub fn sample_every(history: Arc<History>, metrics: Arc<Metrics>) {
    // The first reading now, not when the task first runs: requests
    // answered before that (a busy start) would be in no sample.
    history.sample(&metrics);
    actix_web::rt::spawn(async move {
        let start = actix_web::rt::time::Instant::now() + SAMPLE_EVERY;
        let mut ticks = actix_web::rt::time::interval_at(start, SAMPLE_EVERY);
        loop {
            ticks.tick().await;
            history.sample(&metrics);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(requests: &[(&str, u64)], origin: (u64, f64, &[(f64, u64)])) -> Totals {
        Totals {
            requests: requests
                .iter()
                .map(|(s, n)| ((*s).to_owned(), *n))
                .collect(),
            origin_count: origin.0,
            origin_sum: origin.1,
            origin_buckets: origin.2.to_vec(),
        }
    }

    #[test]
    fn a_sample_holds_what_changed_in_its_interval() {
        let before = totals(&[("hit", 10), ("miss", 5)], (5, 1.0, &[(0.1, 4), (1.0, 5)]));
        let now = totals(
            &[("hit", 13), ("miss", 6), ("stale", 0)],
            (9, 3.0, &[(0.1, 4), (1.0, 9)]),
        );
        let sample = Sample::between(&before, &now, 42, BTreeMap::new());
        assert_eq!(sample.at_ms, 42);
        assert_eq!(
            sample.requests,
            BTreeMap::from([("hit".to_owned(), 3), ("miss".to_owned(), 1)])
        );
        assert_eq!(sample.hit_ratio, Some(0.75));
        let latency = sample.origin_ms.expect("origin answers");
        assert_eq!(latency.count, 4);
        assert!((latency.mean - 500.0).abs() < 1e-9, "{latency:?}");
        // All four in (0.1, 1] s: the 95th percentile is 0.1 + 0.9 × 3.8 / 4.
        assert!((latency.p95 - 955.0).abs() < 1e-9, "{latency:?}");
    }

    #[test]
    fn an_idle_interval_has_no_ratio_and_no_latency() {
        let same = totals(&[("hit", 1)], (1, 0.5, &[(1.0, 1)]));
        let sample = Sample::between(&same, &same, 0, BTreeMap::new());
        assert!(sample.requests.is_empty());
        assert_eq!(sample.hit_ratio, None);
        assert_eq!(sample.origin_ms, None);
    }

    #[test]
    fn the_quantile_past_the_last_bound_is_the_last_bound() {
        assert_eq!(quantile(0.95, &[(0.1, 0), (1.0, 0)], 3), 1.0);
        assert_eq!(quantile(0.5, &[(0.1, 2), (1.0, 2)], 2), 0.05);
    }

    #[actix_web::test]
    async fn a_request_answered_before_the_sampling_task_runs_is_in_the_first_sample() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let history = Arc::new(History::default());
        sample_every(history.clone(), metrics.clone());
        // Counted before anything yields, so before the task first runs.
        metrics.proxy.requests_by.inc("hit");
        let deadline = std::time::Instant::now() + 5 * SAMPLE_EVERY;
        let first = loop {
            if let Some(first) = history.samples().into_iter().next() {
                break first;
            }
            assert!(std::time::Instant::now() < deadline, "no sample taken");
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(first.requests.get("hit"), Some(&1), "{:?}", first.requests);
    }

    #[test]
    fn the_ring_keeps_the_last_samples_only() {
        let metrics = Metrics::new().expect("metrics");
        let history = History::default();
        history.sample(&metrics);
        assert!(
            history.samples().is_empty(),
            "the first reading is the start"
        );
        for _ in 0..KEPT + 5 {
            metrics.proxy.requests_by.inc("miss");
            history.sample(&metrics);
        }
        let samples = history.samples();
        assert_eq!(samples.len(), KEPT);
        assert!(samples.iter().all(|s| s.requests.get("miss") == Some(&1)));
    }
}
