//! The properties the fuzz targets in `fuzz/` check, one function per target.
//! `tests/fuzz_corpora.rs` replays every seed and corpus file
//! (`fuzz/seeds/<target>/`, `fuzz/corpus/<target>/`) through the same
//! function, so the checks live in one place and a crash once found stays
//! fixed. Each function panics when a property fails and ignores input it
//! cannot use.
//!
//! Inputs are text where the code under test reads text, so corpora can be
//! seeded with real header values and config files (`input.rs` says how
//! header blocks are written).
//!
//! Built only with the `fuzzing` feature: the fuzz crate and caje's own
//! tests (through its dev-dependency on itself) turn it on, so the `caje`
//! binary never carries the oracles or their allocator. One file per fuzz
//! target, named as the target in `fuzz/fuzz_targets/`.

use std::time::Duration;

use actix_web::http::header::HeaderValue;

mod allocation;
mod cache_control;
mod cache_status;
mod config;
mod entry;
mod input;
mod range;
mod vary;

pub use allocation::{peak_allocation, CountingAllocator};
pub use cache_control::cache_control;
pub use cache_status::cache_status;
pub use config::config;
pub use entry::{entry, entry_allocation_limit, entry_bytes};
pub use range::range;
pub use vary::vary;

/// A fixed "now" (2025-01-01), so that a failing input fails every time.
const NOW: Duration = Duration::from_secs(1_735_689_600);

/// What caje renders into a header must be a valid field value, or the
/// answer carrying it cannot be sent.
fn assert_header_value(text: &str) {
    assert!(
        HeaderValue::from_str(text).is_ok(),
        "{text:?} is not a valid header value"
    );
}
