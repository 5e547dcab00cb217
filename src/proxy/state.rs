//! What every worker's proxy handler shares.

use std::sync::Arc;

use crate::actors::cache_store::CacheStore;
use crate::actors::manifest::Manifest;
use crate::actors::Mailbox;
use crate::cache::coalesce::Coalescer;
use crate::cache::memory_tier::MemoryTier;
use crate::config::Settings;
use crate::metrics::ProxyMetrics;

pub struct ProxyState {
    pub settings: Arc<Settings>,
    /// `settings.cache_name()`, made once: every response names it.
    pub cache_name: String,
    pub cache: Mailbox<CacheStore>,
    /// Read here, without a message; the `CacheStore` keeps it current.
    pub memory: Arc<MemoryTier>,
    pub manifest: Mailbox<Manifest>,
    pub metrics: ProxyMetrics,
    /// One fetch per URL: misses and background refreshes.
    pub coalescer: Arc<Coalescer>,
}

impl ProxyState {
    pub fn new(
        settings: Arc<Settings>,
        cache: Mailbox<CacheStore>,
        memory: Arc<MemoryTier>,
        manifest: Mailbox<Manifest>,
        metrics: ProxyMetrics,
    ) -> Self {
        Self {
            cache_name: settings.cache_name(),
            settings,
            cache,
            memory,
            manifest,
            metrics,
            coalescer: Arc::default(),
        }
    }
}
