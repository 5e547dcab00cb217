//! One proxied site, [`Origin`], and the checks of its `host` and
//! `upstream` as written in the config file.

use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::Uri;

use super::normalize_host;
use crate::cache::admit::AdmitRules;
use crate::cache::freshness_rules::FreshnessRules;
use crate::cache::policy::Heuristic;
use crate::cache::query::KeyRules;
use crate::cache::{CacheKey, KeyView};

/// One proxied site: requests whose `Host` is `host` go to `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Lower-case host name, without a port.
    pub host: String,
    /// `http://authority` or `https://authority` of the origin server, without a trailing slash.
    pub upstream: String,
    pub timeout: Duration,
    /// Whether a response with `Set-Cookie` that the origin marks `public`
    /// or `s-maxage` may be stored (always without its `Set-Cookie`).
    pub cache_set_cookie: bool,
    /// Heuristic freshness for responses with `Last-Modified` and no
    /// explicit freshness (`heuristic_freshness`); `None`: off.
    pub heuristic: Option<Heuristic>,
    /// Whether a 400, 413, 414 or 431 with explicit freshness may be stored
    /// (`cache_client_errors`; off: one bad request would deny everyone).
    pub cache_client_errors: bool,
    /// How caje connects to the origin: TLS, pool size, `Host` field.
    pub transport: Transport,
    /// TTLs caje gives when the origin gives none (`default_ttl`), and
    /// path rules (`[[origin.rule]]`).
    pub freshness: FreshnessRules,
    /// How its cache keys are built (`ignore_query`, `sort_query`).
    pub key_rules: KeyRules,
    /// Compression at the edge (`compress`, `compress_min_size`).
    pub compress: Compress,
}

impl Origin {
    /// `host` (lower-case, no port) proxied to `upstream` with every other
    /// setting at its default, as an `[[origin]]` naming only these two.
    pub fn new(host: impl Into<String>, upstream: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            upstream: upstream.into(),
            timeout: DEFAULT_ORIGIN_TIMEOUT,
            cache_set_cookie: false,
            heuristic: None,
            cache_client_errors: false,
            transport: Transport::default(),
            freshness: FreshnessRules::default(),
            key_rules: KeyRules::default(),
            compress: Compress::default(),
        }
    }

    /// What admission follows for this origin's responses.
    pub fn admit_rules(&self) -> AdmitRules<'_> {
        AdmitRules {
            cache_set_cookie: self.cache_set_cookie,
            heuristic: self.heuristic,
            freshness: &self.freshness,
            cache_client_errors: self.cache_client_errors,
            compress_from: self.compress.enabled.then_some(self.compress.min_size),
        }
    }

    /// The cache key of a `GET` for `path_and_query` on this origin (as a
    /// request, a purge or an invalidation names it).
    pub fn key(&self, path_and_query: &str) -> CacheKey {
        self.key_view(&self.key_rules.normalise(path_and_query))
            .to_key()
    }

    /// The same key borrowed, for a path and query already normalised.
    pub fn key_view<'a>(&'a self, normalised: &'a str) -> KeyView<'a> {
        KeyView {
            method: "GET",
            host: &self.host,
            path_and_query: normalised,
        }
    }
}

/// Whether caje compresses this origin's uncompressed text for clients
/// that accept it, and from what body size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compress {
    pub enabled: bool,
    /// Smaller bodies are sent as they are: compressing them saves little.
    pub min_size: u64,
}

/// The smallest body compressed when `compress_min_size` is not set.
pub const DEFAULT_COMPRESS_MIN_SIZE: u64 = 1024;

impl Default for Compress {
    fn default() -> Self {
        Self {
            enabled: true,
            min_size: DEFAULT_COMPRESS_MIN_SIZE,
        }
    }
}

/// How an origin is connected to (`ca_file`, `tls_verify`,
/// `max_connections`, `host_header` in the config file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    /// A private CA (PEM) trusted for this origin besides the web roots.
    pub ca_file: Option<PathBuf>,
    /// The certificates read from `ca_file` when the config was parsed.
    pub ca_certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// `false` only when the config says so: any certificate is accepted.
    pub tls_verify: bool,
    /// Connections to the origin per worker (each worker has its own pool).
    pub max_connections: usize,
    pub host_header: HostHeader,
}

impl Default for Transport {
    fn default() -> Self {
        Self {
            ca_file: None,
            ca_certs: Vec::new(),
            tls_verify: true,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            host_header: HostHeader::Upstream,
        }
    }
}

/// The fraction of its age a heuristically fresh response is fresh for,
/// when `heuristic_fraction` is not set (RFC 9111 §4.2.2's example).
pub(super) const DEFAULT_HEURISTIC_FRACTION: f32 = 0.1;
/// The longest heuristic freshness when `heuristic_max` is not set.
pub(super) const DEFAULT_HEURISTIC_MAX: Duration = Duration::from_secs(24 * 3600);

pub(super) fn validate_fraction(fraction: f64) -> Result<f32, String> {
    if fraction > 0.0 && fraction <= 1.0 {
        Ok(fraction as f32)
    } else {
        Err(format!(
            "{fraction} is not a fraction in (0, 1] (e.g. 0.1: fresh for 10% of the time since Last-Modified)"
        ))
    }
}

/// The `Host` an origin is asked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostHeader {
    /// The upstream's own authority, as in its URL.
    #[default]
    Upstream,
    /// The origin's configured public `host` (never the client's spelling).
    Client,
}

/// An origin's connection pool per worker when `max_connections` is not set.
pub(super) const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Reads the PEM certificates of a `ca_file`: at least one is needed.
pub(super) fn read_ca_file(
    path: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let text = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path:?} is not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{path:?} holds no PEM certificate (\"-----BEGIN CERTIFICATE-----\")"
        ));
    }
    Ok(certs)
}

/// How long an origin may take to answer when its `timeout` is not set.
pub(super) const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn validate_host(host: &str) -> Result<String, String> {
    // Brackets only around a whole IPv6 literal: `[a` could never match a
    // request's Host once its port is dropped.
    let name = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    if !valid {
        return Err(format!(
            "{host:?} is not a host name (write only the name, e.g. \"www.example.com\")"
        ));
    }
    let normalized = normalize_host(host);
    if normalized != host.to_ascii_lowercase() {
        return Err(format!(
            "{host:?} has a port; the port of incoming requests is ignored, so write only the name"
        ));
    }
    Ok(normalized)
}

pub(super) fn validate_upstream(upstream: &str) -> Result<String, String> {
    let uri: Uri = upstream
        .parse()
        .map_err(|e| format!("{upstream:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(format!(
            "scheme {other:?} is not supported; use \"http://host:port\" or \"https://host:port\""
        ))
        }
        None => {
            return Err(format!(
                "{upstream:?} needs a scheme: \"http://{upstream}\""
            ))
        }
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{upstream:?} has no host"))?;
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "{upstream:?} has a path; the request's own path is appended, so give only \"http://host:port\""
        ));
    }
    Ok(format!(
        "{}://{authority}",
        uri.scheme_str().unwrap_or("http")
    ))
}
