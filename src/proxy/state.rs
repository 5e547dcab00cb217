//! What every worker's proxy handler shares.

use std::sync::Arc;

use crate::actors::cache_store::CacheStore;
use crate::actors::manifest::Manifest;
use crate::actors::Mailbox;
use crate::cache::coalesce::Coalescer;
use crate::cache::memory_tier::MemoryTier;
use crate::metrics::ProxyMetrics;
use crate::reload::LiveConfig;

pub struct ProxyState {
    /// Read once by each request, which keeps what it read to its end.
    pub config: LiveConfig,
    /// `cache_name()` of the settings, made once (`node_name` is not
    /// reloaded): every response names it.
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
        config: LiveConfig,
        cache: Mailbox<CacheStore>,
        memory: Arc<MemoryTier>,
        manifest: Mailbox<Manifest>,
        metrics: ProxyMetrics,
    ) -> Self {
        Self {
            cache_name: config.settings().cache_name(),
            config,
            cache,
            memory,
            manifest,
            metrics,
            coalescer: Arc::default(),
        }
    }
}
