//! What a cached response is: its key, its on-disk format, the caching
//! decision and the `Cache-Status` it is reported with.

pub mod conditional;
pub mod directives;
pub mod entry;
pub mod key;
pub mod policy;
pub mod range;
pub mod stale;
pub mod status;

pub use entry::{EntryError, EntryHead};
pub use key::{CacheKey, VariantKey};
pub use status::{CacheStatus, Forward};
