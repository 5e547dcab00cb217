//! Typed settings: read from a TOML file, overridden by `CAJE_*` variables,
//! validated so that every error names the file, the key and the line.
//!
//! This module holds the [`Settings`] type with its defaults, [`LiteFsMode`],
//! [`ConfigError`], [`Settings::load`], [`Settings::origin_for`] and
//! [`normalize_host`]; the parts live beside it:
//! - `parse`: the raw TOML types with their spans and [`Settings::parse`],
//!   which turns them into `Settings` or a line-numbered `ConfigError`
//! - `env`: the `CAJE_*` overrides ([`Settings::apply_env`])
//! - `origin`: the [`Origin`] type and the checks of its `host` and `upstream`
//! - `rules`: an origin's `default_ttl`, path rules and query keys

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

mod env;
mod origin;
mod parse;
mod peers;
mod rules;
#[cfg(test)]
mod tests;

pub use origin::{Compress, HostHeader, Origin, Transport};
pub use peers::{PeerFetch, CDN_LOOP_ID, DEFAULT_PEER_TIMEOUT};

/// Where the admin token comes from; never read from the file, so it is never committed.
pub const ADMIN_TOKEN_ENV: &str = "CAJE_ADMIN_TOKEN";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: line {line}: {}{message}", key.as_deref().map(|k| format!("key `{k}`: ")).unwrap_or_default())]
    Invalid {
        file: String,
        line: usize,
        key: Option<String>,
        message: String,
    },
    #[error("{file}: {message}")]
    Missing { file: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: &'static str, message: String },
}

/// Whether manifest writes go through the LiteFS HALT lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LiteFsMode {
    /// On when the database's directory shows LiteFS's `.primary` or `.lag` file.
    #[default]
    Auto,
    On,
    Off,
}

impl std::str::FromStr for LiteFsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "on" => Ok(Self::On),
            "off" => Ok(Self::Off),
            other => Err(format!(
                "expected \"auto\", \"on\" or \"off\", got {other:?}"
            )),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 3001))
}
fn default_cache_dir() -> PathBuf {
    PathBuf::from("./.caje/cache")
}
fn default_database() -> PathBuf {
    PathBuf::from("./.caje/manifest.db")
}
/// How long manifest rows gather before one write (and, on a replica, one HALT).
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(100);
/// The full reconcile is a slow safety net: change-driven sync warms new pages.
const DEFAULT_POPULATE_INTERVAL: Duration = Duration::from_secs(600);
/// How often `ManifestWatch` checks the manifest for changes.
const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_millis(50);
/// Manifest rows read per query by the watch and the full reconcile.
pub const DEFAULT_MANIFEST_PAGE_SIZE: usize = 500;
/// Pages the populator holds queued or in flight at most.
pub const DEFAULT_POPULATE_PENDING: usize = 10_000;
const DEFAULT_POPULATE_CONCURRENCY: usize = 4;
const DEFAULT_POPULATE_RATE: u32 = 10;
/// Larger request bodies get 413 (uploads through a CDN are rare and small).
const DEFAULT_MAX_REQUEST_BODY: u64 = 10 * 1024 * 1024;
/// How long a client may take to send a request head (actix-web's default).
const DEFAULT_CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_COALESCE_TIMEOUT: Duration = Duration::from_secs(10);
/// A safety net too: `ManifestWatch` pokes `PurgeSync` when a purge is logged.
const DEFAULT_PURGE_POLL: Duration = Duration::from_secs(30);
/// How long a stopping node lets requests in flight finish.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MEMORY_CACHE_SIZE: u64 = 32 * 1024 * 1024;
const DEFAULT_MEMORY_CACHE_MAX_OBJECT: u64 = 256 * 1024;
/// How long a dashboard login lasts: a working day.
const DEFAULT_ADMIN_SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// Validated settings for one caje node.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// A second listener serving only `GET /_caje/metrics`, without the
    /// token (for a scraper on a private network); `None`: no such port.
    pub metrics_listen: Option<SocketAddr>,
    pub cache_dir: PathBuf,
    pub database: PathBuf,
    pub litefs: LiteFsMode,
    /// actix-web worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// How long manifest rows gather before they are written in one transaction.
    pub manifest_batch_window: Duration,
    /// How long a manifest write waits for the LiteFS HALT lock.
    pub halt_timeout: Duration,
    /// How often the populator's full reconcile looks for manifest pages
    /// this node lacks (changed pages are warmed within `sync_interval`).
    pub populate_interval: Duration,
    /// How often the manifest is checked for new pages and purges
    /// (`PRAGMA data_version`); zero: never (only the slow polls remain).
    pub sync_interval: Duration,
    /// Manifest rows read per query by the watch and the full reconcile
    /// (not a file setting; tests make it small).
    pub manifest_page_size: usize,
    /// Pages the populator holds queued or in flight at most, so its memory
    /// stays bounded however many pages this node lacks; the rest wait for
    /// a later run (not a file setting; tests make it small).
    pub populate_pending: usize,
    /// Pages the populator fetches at once.
    pub populate_concurrency: usize,
    /// Populator requests per second to any one origin.
    pub populate_rate: u32,
    /// How long past freshness a stored response may be served when its
    /// origin fails, if the response itself says nothing (`stale-if-error`).
    pub stale_if_error: Duration,
    /// How long a request for a URL already being fetched waits for that
    /// fetch before asking the origin itself.
    pub coalesce_timeout: Duration,
    /// How often a node applies purges logged by any node even when the
    /// watch saw none (a safety net).
    pub purge_poll_interval: Duration,
    /// How long requests in flight may finish after SIGTERM before they are
    /// dropped (whole seconds; a fraction rounds up).
    pub shutdown_timeout: Duration,
    /// Bound on the file cache's total size in bytes; `None`: unbounded.
    pub max_size: Option<u64>,
    /// Bytes the memory tier of small hot entries may hold (0: off).
    pub memory_cache_size: u64,
    /// Largest body the memory tier holds.
    pub memory_cache_max_object: u64,
    /// Largest request body forwarded to an origin, in bytes.
    pub max_request_body: u64,
    /// How long a client may take to send a request head before it gets 408.
    pub client_request_timeout: Duration,
    /// How long a dashboard session cookie is honoured (whole seconds, at least 1).
    pub admin_session_lifetime: Duration,
    /// A header, set by a TLS-terminating proxy in front of caje, naming the
    /// client's scheme (`fly-forwarded-proto` on Fly.io); `None`: the scheme
    /// is that of caje's own listener (http). Decides the session cookie's
    /// `Secure` and the origin the dashboard's requests must come from.
    pub client_scheme_header: Option<actix_web::http::header::HeaderName>,
    /// A header, set by that proxy, holding the client's address
    /// (`fly-client-ip` on Fly.io); `None`: the connection's peer. caje
    /// passes the address on in `X-Forwarded-For`, never the header itself.
    pub client_ip_header: Option<actix_web::http::header::HeaderName>,
    /// This node's name in `Cache-Status` (`caje-<name>`), `CDN-Loop` and
    /// the manifest; `None`: plain `caje` (see `peers.rs` for Fly's default).
    pub node_name: Option<String>,
    /// How peers reach this node (`http://host:port`); `None`: it is not
    /// offered as a peer.
    pub peer_url: Option<String>,
    /// When a page is asked of the peer that stored it before its origin.
    pub peer_fetch: PeerFetch,
    /// How long a peer may take before the origin is asked instead.
    pub peer_timeout: Duration,
    pub origins: Vec<Origin>,
    pub admin_token: Option<String>,
}

impl Settings {
    /// Settings with every default and the given origins.
    pub fn with_origins(origins: Vec<Origin>) -> Self {
        Self {
            listen: default_listen(),
            metrics_listen: None,
            cache_dir: default_cache_dir(),
            database: default_database(),
            litefs: LiteFsMode::default(),
            workers: None,
            manifest_batch_window: DEFAULT_BATCH_WINDOW,
            halt_timeout: crate::litefs::DEFAULT_HALT_TIMEOUT,
            populate_interval: DEFAULT_POPULATE_INTERVAL,
            sync_interval: DEFAULT_SYNC_INTERVAL,
            manifest_page_size: DEFAULT_MANIFEST_PAGE_SIZE,
            populate_pending: DEFAULT_POPULATE_PENDING,
            populate_concurrency: DEFAULT_POPULATE_CONCURRENCY,
            populate_rate: DEFAULT_POPULATE_RATE,
            stale_if_error: Duration::ZERO,
            coalesce_timeout: DEFAULT_COALESCE_TIMEOUT,
            purge_poll_interval: DEFAULT_PURGE_POLL,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            client_request_timeout: DEFAULT_CLIENT_REQUEST_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            max_size: None,
            memory_cache_size: DEFAULT_MEMORY_CACHE_SIZE,
            memory_cache_max_object: DEFAULT_MEMORY_CACHE_MAX_OBJECT,
            admin_session_lifetime: DEFAULT_ADMIN_SESSION_LIFETIME,
            client_scheme_header: None,
            client_ip_header: None,
            node_name: None,
            peer_url: None,
            peer_fetch: PeerFetch::default(),
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            origins,
            admin_token: None,
        }
    }

    /// Reads and validates a config file, then applies `CAJE_*` overrides.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let mut settings = Self::parse(&file, &text)?;
        settings.apply_env(|var| std::env::var(var).ok())?;
        Ok(settings)
    }

    /// The origin serving a request's host, if any (the port is ignored).
    pub fn origin_for(&self, host: &str) -> Option<&Origin> {
        self.origin_at_named(without_port(host.trim()))
            .map(|(_, origin)| origin)
    }

    /// The origin serving a host name (without its port), with its place
    /// in `origins`.
    pub fn origin_at_named(&self, name: &str) -> Option<(usize, &Origin)> {
        // Origin hosts are normalised (lower case): most clients write them
        // so, and bytes compare faster than letters without case.
        self.origins
            .iter()
            .enumerate()
            .find(|(_, o)| o.host == name || o.host.eq_ignore_ascii_case(name))
    }
}

/// Lower-cases a `Host` value and drops its port (`[::1]:80` → `[::1]`).
pub fn normalize_host(host: &str) -> String {
    without_port(host.trim()).to_ascii_lowercase()
}

/// A `Host` value without its port.
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    }
}
