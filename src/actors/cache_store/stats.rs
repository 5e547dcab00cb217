//! The store's counters, as one snapshot.

use actix::prelude::*;

use super::actor::CacheStore;

/// A snapshot of the store's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, MessageResponse)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub lookups: u64,
    pub hits: u64,
    pub stored: u64,
    pub stores_aborted: u64,
    pub writes_cancelled: u64,
    /// Stores and head rewrites under way now.
    pub writes_in_flight: u64,
    pub corrupt: u64,
    pub io_errors: u64,
    pub temp_files_cleaned: u64,
}

/// The store's counters; also an "are you there" for health checks.
#[derive(Message)]
#[rtype(result = "CacheStats")]
pub struct GetCacheStats;

impl Handler<GetCacheStats> for CacheStore {
    type Result = CacheStats;

    fn handle(&mut self, _msg: GetCacheStats, _ctx: &mut Self::Context) -> CacheStats {
        let _handling = self.meter.handling("get_cache_stats");
        let _span = tracing::debug_span!("cache_store.get_cache_stats").entered();
        let m = &self.metrics;
        CacheStats {
            entries: m.entries.get().max(0) as u64,
            bytes: m.bytes.get().max(0) as u64,
            lookups: m.lookups.get(),
            hits: m.hits.get(),
            stored: m.stored.get(),
            stores_aborted: m.stores_aborted.get(),
            writes_cancelled: m.writes_cancelled.get(),
            writes_in_flight: self.in_flight.len() as u64,
            corrupt: m.corrupt.get(),
            io_errors: m.io_errors.get(),
            temp_files_cleaned: m.temp_files_cleaned.get(),
        }
    }
}
