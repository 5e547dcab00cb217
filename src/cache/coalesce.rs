//! Request coalescing: concurrent misses for one URL send one request to
//! the origin. The first becomes the leader; the others wait (bounded) for
//! its response to be stored and are then answered from the cache. When the
//! response turns out not storable for any client (not merely for the
//! leader's own request), the URL is remembered as uncacheable for a while,
//! so later misses go straight to the origin instead of queueing behind
//! each other (Varnish's hit-for-miss). Background refreshes of stale
//! entries (stale-while-revalidate) are one per URL at a time here too: one
//! mechanism owns "one fetch per key".

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify};

use super::CacheKey;

/// How long a URL whose response could not be stored skips coalescing.
const HIT_FOR_MISS: Duration = Duration::from_secs(10);
/// How often expired hit-for-miss marks are swept out. A lookup checks its
/// own mark's time, so the sweep only bounds the map: done on every miss,
/// it cost each one a pass over every mark.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How a leader's fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Stored: followers find it in the cache.
    Stored,
    /// Not stored this time (the leader's request forbade it, the store
    /// failed or was purged): followers fetch themselves.
    NotStored,
    /// The response may be stored for no client: followers fetch
    /// themselves, and so do later misses for a while.
    Uncacheable,
}

/// Keyed by client URLs: the hasher is seeded per process (no crafted
/// URLs piling into one bucket) and faster than the standard one, which
/// hashed every miss's key.
type Seeded = foldhash::fast::RandomState;

#[derive(Default)]
struct Inner {
    flights: HashMap<CacheKey, Followed, Seeded>,
    uncacheable: HashMap<CacheKey, Instant, Seeded>,
    /// When `uncacheable` is next swept; `None`: at the next miss.
    next_sweep: Option<Instant>,
    refreshing: HashSet<CacheKey, Seeded>,
}

#[derive(Default)]
pub struct Coalescer {
    inner: Mutex<Inner>,
}

/// What a missing request does.
pub enum Role {
    /// Fetch, and report through the flight.
    Leader(Flight),
    /// Wait for the leader's outcome.
    Follower(watch::Receiver<Option<Outcome>>),
    /// Fetch alone: the URL is known to be uncacheable, or the request may
    /// not lead.
    Alone,
}

impl Coalescer {
    /// A request that `may_lead` starts a flight when none is under way;
    /// any request follows one that is.
    pub fn join(self: &Arc<Self>, key: &CacheKey, may_lead: bool) -> Role {
        let Ok(mut inner) = self.inner.lock() else {
            return Role::Alone;
        };
        let now = Instant::now();
        if inner.next_sweep.is_none_or(|at| at <= now) {
            inner.uncacheable.retain(|_, until| *until > now);
            inner.next_sweep = Some(now + SWEEP_EVERY);
        }
        if inner.uncacheable.get(key).is_some_and(|until| *until > now) {
            return Role::Alone;
        }
        if let Some(flight) = inner.flights.get(key) {
            flight.joined.notify_one();
            return Role::Follower(flight.outcome.clone());
        }
        if !may_lead {
            return Role::Alone;
        }
        let (tx, rx) = watch::channel(None);
        let joined = Arc::new(Notify::new());
        let followed = Followed {
            outcome: rx,
            joined: joined.clone(),
        };
        inner.flights.insert(key.clone(), followed);
        Role::Leader(Flight {
            key: key.clone(),
            tx,
            joined,
            coalescer: Arc::clone(self),
        })
    }
}

impl Coalescer {
    /// Starts a background refresh of `key`, unless one is under way.
    pub fn refresh(self: &Arc<Self>, key: &CacheKey) -> Option<Refresh> {
        let mut inner = self.inner.lock().ok()?;
        inner.refreshing.insert(key.clone()).then(|| Refresh {
            key: key.clone(),
            coalescer: Arc::clone(self),
        })
    }
}

/// A background refresh under way; dropped when it is over.
pub struct Refresh {
    key: CacheKey,
    coalescer: Arc<Coalescer>,
}

impl Drop for Refresh {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.coalescer.inner.lock() {
            inner.refreshing.remove(&self.key);
        }
    }
}

/// A flight as its followers find it.
struct Followed {
    outcome: watch::Receiver<Option<Outcome>>,
    /// Signalled as each follower joins.
    joined: Arc<Notify>,
}

/// A leader's fetch in progress. Dropped without an outcome (the fetch
/// failed or the client went away), it releases its followers to fetch.
pub struct Flight {
    key: CacheKey,
    tx: watch::Sender<Option<Outcome>>,
    joined: Arc<Notify>,
    coalescer: Arc<Coalescer>,
}

impl Flight {
    /// Signalled when a request joins as a follower (remembered until
    /// awaited, so one that joined already counts).
    pub fn joined(&self) -> Arc<Notify> {
        self.joined.clone()
    }

    pub fn finish(self, outcome: Outcome) {
        if outcome == Outcome::Uncacheable {
            if let Ok(mut inner) = self.coalescer.inner.lock() {
                inner
                    .uncacheable
                    .insert(self.key.clone(), Instant::now() + HIT_FOR_MISS);
            }
        }
        let _ = self.tx.send(Some(outcome));
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.coalescer.inner.lock() {
            inner.flights.remove(&self.key);
        }
        self.tx.send_if_modified(|outcome| {
            let unset = outcome.is_none();
            if unset {
                *outcome = Some(Outcome::NotStored);
            }
            unset
        });
    }
}

/// Waits for a leader's outcome, at most `timeout`; `None` when it did
/// not come in time.
pub async fn wait(mut rx: watch::Receiver<Option<Outcome>>, timeout: Duration) -> Option<Outcome> {
    let outcome = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
    match outcome {
        Ok(Ok(outcome)) => *outcome,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKey {
        CacheKey::new("GET", "a", "/x")
    }

    #[actix_web::test]
    async fn followers_get_the_leaders_outcome() {
        let coalescer = Arc::new(Coalescer::default());
        let Role::Leader(flight) = coalescer.join(&key(), true) else {
            panic!("the first is the leader")
        };
        let Role::Follower(rx) = coalescer.join(&key(), true) else {
            panic!("the second follows")
        };
        flight.finish(Outcome::Stored);
        assert_eq!(
            wait(rx, Duration::from_secs(1)).await,
            Some(Outcome::Stored)
        );
        assert!(
            matches!(coalescer.join(&key(), true), Role::Leader(_)),
            "the flight is over"
        );
    }

    #[actix_web::test]
    async fn an_abandoned_flight_releases_followers_and_not_storable_skips_coalescing() {
        let coalescer = Arc::new(Coalescer::default());
        let Role::Leader(flight) = coalescer.join(&key(), true) else {
            panic!("leader")
        };
        let Role::Follower(rx) = coalescer.join(&key(), true) else {
            panic!("follower")
        };
        drop(flight);
        assert_eq!(
            wait(rx, Duration::from_secs(1)).await,
            Some(Outcome::NotStored)
        );
        assert!(
            matches!(coalescer.join(&key(), true), Role::Leader(_)),
            "abandoned is not uncacheable"
        );

        let coalescer = Arc::new(Coalescer::default());
        let Role::Leader(flight) = coalescer.join(&key(), true) else {
            panic!("leader")
        };
        flight.finish(Outcome::NotStored);
        assert!(
            matches!(coalescer.join(&key(), true), Role::Leader(_)),
            "not stored this time is not uncacheable"
        );
        let Role::Leader(flight) = coalescer.join(&key(), true) else {
            panic!("leader")
        };
        flight.finish(Outcome::Uncacheable);
        assert!(
            matches!(coalescer.join(&key(), true), Role::Alone),
            "hit-for-miss"
        );
    }

    #[test]
    fn an_expired_hit_for_miss_mark_is_ignored_then_swept() {
        let coalescer = Arc::new(Coalescer::default());
        let other = CacheKey::new("GET", "a", "/other");
        {
            let mut inner = coalescer.inner.lock().expect("lock");
            inner.uncacheable.insert(key(), Instant::now());
            inner
                .uncacheable
                .insert(other.clone(), Instant::now() + HIT_FOR_MISS);
            // Not swept before the next lookup: that lookup checks the time.
            inner.next_sweep = Some(Instant::now() + HIT_FOR_MISS);
        }
        assert!(matches!(coalescer.join(&key(), true), Role::Leader(_)));
        assert!(matches!(coalescer.join(&other, true), Role::Alone));
        assert_eq!(coalescer.inner.lock().expect("lock").uncacheable.len(), 2);
        coalescer.inner.lock().expect("lock").next_sweep = None;
        assert!(matches!(coalescer.join(&other, true), Role::Alone));
        let inner = coalescer.inner.lock().expect("lock");
        assert_eq!(inner.uncacheable.len(), 1, "the expired mark is swept");
        assert!(inner.uncacheable.contains_key(&other));
    }

    #[actix_web::test]
    async fn a_request_that_may_not_lead_follows_or_goes_alone() {
        let coalescer = Arc::new(Coalescer::default());
        assert!(matches!(coalescer.join(&key(), false), Role::Alone));
        let Role::Leader(_flight) = coalescer.join(&key(), true) else {
            panic!("leader")
        };
        assert!(matches!(coalescer.join(&key(), false), Role::Follower(_)));
    }

    #[test]
    fn one_refresh_per_key_at_a_time() {
        let coalescer = Arc::new(Coalescer::default());
        let refresh = coalescer.refresh(&key());
        assert!(refresh.is_some());
        assert!(coalescer.refresh(&key()).is_none(), "under way");
        assert!(coalescer
            .refresh(&CacheKey::new("GET", "a", "/y"))
            .is_some());
        drop(refresh);
        assert!(coalescer.refresh(&key()).is_some(), "over");
    }

    #[actix_web::test]
    async fn waiting_is_bounded() {
        let coalescer = Arc::new(Coalescer::default());
        let _leader = coalescer.join(&key(), true);
        let Role::Follower(rx) = coalescer.join(&key(), true) else {
            panic!("follower")
        };
        assert_eq!(wait(rx, Duration::from_millis(20)).await, None);
    }
}
