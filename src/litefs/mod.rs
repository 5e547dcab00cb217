//! LiteFS support: the HALT lock that lets a replica write (`halt.rs`), the
//! node's role and replication lag (`node.rs`), and when a manifest write
//! takes HALT (`writes.rs`).
//!
//! LiteFS replicates one SQLite database from the primary to the replicas
//! through a FUSE mount. On a replica a plain write fails ("read only
//! replica"); to write anyway a process takes the HALT lock, while which the
//! primary stops writing and this node's writes are forwarded to it.

mod halt;
mod node;
mod writes;

pub use self::halt::LiteFsError;
pub(crate) use self::halt::{HaltGuard, DEFAULT_HALT_TIMEOUT};
pub(crate) use self::node::{Lag, NodeRole};
pub(crate) use self::writes::is_read_only_refusal;
pub use self::writes::LiteFsWrites;
