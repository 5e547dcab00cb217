//! Typed settings: read from a TOML file, overridden by `CAJE_*` variables,
//! validated so that every error names the file, the key and the line.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix_web::http::Uri;
use serde::Deserialize;
use toml::Spanned;

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    #[serde(default = "default_cache_dir")]
    cache_dir: PathBuf,
    #[serde(default = "default_database")]
    database: PathBuf,
    #[serde(default)]
    litefs: LiteFsMode,
    workers: Option<Spanned<usize>>,
    manifest_batch_window: Option<Spanned<String>>,
    halt_timeout: Option<Spanned<String>>,
    populate_interval: Option<Spanned<String>>,
    stale_if_error: Option<Spanned<String>>,
    coalesce_timeout: Option<Spanned<String>>,
    purge_poll_interval: Option<Spanned<String>>,
    shutdown_timeout: Option<Spanned<String>>,
    max_size: Option<Spanned<String>>,
    memory_cache_size: Option<Spanned<String>>,
    memory_cache_max_object: Option<Spanned<String>>,
    populate_concurrency: Option<Spanned<usize>>,
    populate_rate: Option<Spanned<u32>>,
    max_request_body: Option<Spanned<String>>,
    client_request_timeout: Option<Spanned<String>>,
    admin_session_lifetime: Option<Spanned<String>>,
    client_scheme_header: Option<Spanned<String>>,
    client_ip_header: Option<Spanned<String>>,
    #[serde(default)]
    origin: Vec<RawOrigin>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrigin {
    host: Spanned<String>,
    upstream: Spanned<String>,
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    cache_set_cookie: bool,
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
/// How long an origin may take to answer when its `timeout` is not set.
const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long manifest rows gather before one write (and, on a replica, one HALT).
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(100);
const DEFAULT_POPULATE_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_POPULATE_CONCURRENCY: usize = 4;
const DEFAULT_POPULATE_RATE: u32 = 10;
/// Larger request bodies get 413 (uploads through a CDN are rare and small).
const DEFAULT_MAX_REQUEST_BODY: u64 = 10 * 1024 * 1024;
/// How long a client may take to send a request head (actix-web's default).
const DEFAULT_CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_COALESCE_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PURGE_POLL: Duration = Duration::from_secs(2);
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
    pub cache_dir: PathBuf,
    pub database: PathBuf,
    pub litefs: LiteFsMode,
    /// actix-web worker threads; `None` means one per core.
    pub workers: Option<usize>,
    /// How long manifest rows gather before they are written in one transaction.
    pub manifest_batch_window: Duration,
    /// How long a manifest write waits for the LiteFS HALT lock.
    pub halt_timeout: Duration,
    /// How often the populator looks for manifest pages this node lacks.
    pub populate_interval: Duration,
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
    /// How often a node applies purges logged by any node.
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
    pub origins: Vec<Origin>,
    pub admin_token: Option<String>,
}

/// One proxied site: requests whose `Host` is `host` go to `upstream`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Lower-case host name, without a port.
    pub host: String,
    /// `http://authority` of the origin server, without a trailing slash.
    pub upstream: String,
    pub timeout: Duration,
    /// Whether a response with `Set-Cookie` that the origin marks `public`
    /// or `s-maxage` may be stored (always without its `Set-Cookie`).
    pub cache_set_cookie: bool,
}

impl Settings {
    /// Settings with every default and the given origins.
    pub fn with_origins(origins: Vec<Origin>) -> Self {
        Self {
            listen: default_listen(),
            cache_dir: default_cache_dir(),
            database: default_database(),
            litefs: LiteFsMode::default(),
            workers: None,
            manifest_batch_window: DEFAULT_BATCH_WINDOW,
            halt_timeout: crate::litefs::DEFAULT_HALT_TIMEOUT,
            populate_interval: DEFAULT_POPULATE_INTERVAL,
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

    /// Parses and validates config text; `file` is only used in error messages.
    pub fn parse(file: &str, text: &str) -> Result<Self, ConfigError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError::Invalid {
            file: file.to_owned(),
            line: e.span().map_or(1, |s| line_of(s.start)),
            key: None,
            message: e.message().to_owned(),
        })?;
        let raw: RawSettings = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::Invalid {
                file: file.to_owned(),
                line: inner.span().map_or(1, |s| line_of(s.start)),
                key: (path != ".").then_some(path),
                message: inner.message().to_owned(),
            }
        })?;
        if raw.origin.is_empty() {
            return Err(ConfigError::Missing {
                file: file.to_owned(),
                message: "no [[origin]] table: caje proxies only configured hosts, so at least one is needed".to_owned(),
            });
        }
        let mut seen = HashSet::new();
        let mut origins = Vec::with_capacity(raw.origin.len());
        for (i, o) in raw.origin.iter().enumerate() {
            let invalid =
                |field: &str, span: std::ops::Range<usize>, message: String| ConfigError::Invalid {
                    file: file.to_owned(),
                    line: line_of(span.start),
                    key: Some(format!("origin[{i}].{field}")),
                    message,
                };
            let host =
                validate_host(o.host.get_ref()).map_err(|m| invalid("host", o.host.span(), m))?;
            if !seen.insert(host.clone()) {
                return Err(invalid(
                    "host",
                    o.host.span(),
                    format!("host {host:?} is configured twice"),
                ));
            }
            let upstream = validate_upstream(o.upstream.get_ref())
                .map_err(|m| invalid("upstream", o.upstream.span(), m))?;
            let timeout = match &o.timeout {
                None => DEFAULT_ORIGIN_TIMEOUT,
                Some(t) => {
                    parse_duration(t.get_ref()).map_err(|m| invalid("timeout", t.span(), m))?
                }
            };
            origins.push(Origin {
                host,
                upstream,
                timeout,
                cache_set_cookie: o.cache_set_cookie,
            });
        }
        let duration = |key: &str, value: &Option<Spanned<String>>, default: Duration| {
            let Some(value) = value else {
                return Ok(default);
            };
            parse_duration(value.get_ref()).map_err(|message| ConfigError::Invalid {
                file: file.to_owned(),
                line: line_of(value.span().start),
                key: Some(key.to_owned()),
                message,
            })
        };
        // Zero is a meaningful value here ("off"), unlike for the other durations.
        let duration_or_zero = |key: &str, value: &Option<Spanned<String>>| match value {
            Some(v) if v.get_ref().trim() == "0" || v.get_ref().trim() == "0s" => {
                Ok(Duration::ZERO)
            }
            other => duration(key, other, Duration::ZERO),
        };
        let manifest_batch_window = duration(
            "manifest_batch_window",
            &raw.manifest_batch_window,
            DEFAULT_BATCH_WINDOW,
        )?;
        let halt_timeout = duration(
            "halt_timeout",
            &raw.halt_timeout,
            crate::litefs::DEFAULT_HALT_TIMEOUT,
        )?;
        let populate_interval = duration(
            "populate_interval",
            &raw.populate_interval,
            DEFAULT_POPULATE_INTERVAL,
        )?;
        let stale_if_error = duration_or_zero("stale_if_error", &raw.stale_if_error)?;
        let size = |key: &str, value: &Option<Spanned<String>>| -> Result<Option<u64>, _> {
            let Some(text) = value else {
                return Ok(None);
            };
            let parsed = match text.get_ref().trim() {
                "0" => Some(0),
                other => other.parse::<bytesize::ByteSize>().ok().map(|s| s.as_u64()),
            };
            parsed.map(Some).ok_or_else(|| ConfigError::Invalid {
                file: file.to_owned(),
                line: line_of(text.span().start),
                key: Some(key.to_owned()),
                message: format!(
                    "{:?} is not a size like \"10 GiB\" or \"500MB\"",
                    text.get_ref()
                ),
            })
        };
        let max_size = match size("max_size", &raw.max_size)? {
            Some(0) => {
                return Err(ConfigError::Invalid {
                    file: file.to_owned(),
                    line: raw.max_size.as_ref().map_or(1, |s| line_of(s.span().start)),
                    key: Some("max_size".to_owned()),
                    message: "must be more than 0 (leave it out for an unbounded cache)".to_owned(),
                })
            }
            other => other,
        };
        let memory_cache_size =
            size("memory_cache_size", &raw.memory_cache_size)?.unwrap_or(DEFAULT_MEMORY_CACHE_SIZE);
        let memory_cache_max_object =
            size("memory_cache_max_object", &raw.memory_cache_max_object)?
                .unwrap_or(DEFAULT_MEMORY_CACHE_MAX_OBJECT);
        let purge_poll_interval = duration(
            "purge_poll_interval",
            &raw.purge_poll_interval,
            DEFAULT_PURGE_POLL,
        )?;
        let coalesce_timeout = duration(
            "coalesce_timeout",
            &raw.coalesce_timeout,
            DEFAULT_COALESCE_TIMEOUT,
        )?;
        // Zero is meaningful: stop at once, dropping requests in flight.
        let shutdown_timeout = match &raw.shutdown_timeout {
            None => DEFAULT_SHUTDOWN_TIMEOUT,
            value => duration_or_zero("shutdown_timeout", value)?,
        };
        let at_least_one = |key: &str, value: Option<(usize, std::ops::Range<usize>)>| match value {
            Some((0, span)) => Err(ConfigError::Invalid {
                file: file.to_owned(),
                line: line_of(span.start),
                key: Some(key.to_owned()),
                message: "must be at least 1".to_owned(),
            }),
            other => Ok(other.map(|(n, _)| n)),
        };
        let workers = at_least_one(
            "workers",
            raw.workers.as_ref().map(|w| (*w.get_ref(), w.span())),
        )?;
        let populate_concurrency = at_least_one(
            "populate_concurrency",
            raw.populate_concurrency
                .as_ref()
                .map(|c| (*c.get_ref(), c.span())),
        )?
        .unwrap_or(DEFAULT_POPULATE_CONCURRENCY);
        let populate_rate = at_least_one(
            "populate_rate",
            raw.populate_rate
                .as_ref()
                .map(|r| (*r.get_ref() as usize, r.span())),
        )?
        .map_or(DEFAULT_POPULATE_RATE, |r| r as u32);
        // Zero is meaningful: no request bodies at all.
        let max_request_body =
            size("max_request_body", &raw.max_request_body)?.unwrap_or(DEFAULT_MAX_REQUEST_BODY);
        let client_request_timeout = duration(
            "client_request_timeout",
            &raw.client_request_timeout,
            DEFAULT_CLIENT_REQUEST_TIMEOUT,
        )?;
        let admin_session_lifetime = duration(
            "admin_session_lifetime",
            &raw.admin_session_lifetime,
            DEFAULT_ADMIN_SESSION_LIFETIME,
        )?;
        if let (Some(value), true) = (
            &raw.admin_session_lifetime,
            admin_session_lifetime.as_secs() == 0,
        ) {
            return Err(ConfigError::Invalid {
                file: file.to_owned(),
                line: line_of(value.span().start),
                key: Some("admin_session_lifetime".to_owned()),
                message: "must be at least 1s (a cookie's Max-Age is in whole seconds)".to_owned(),
            });
        }
        let header_name = |key: &str, name: &Option<Spanned<String>>| match name {
            None => Ok(None),
            Some(name) => {
                actix_web::http::header::HeaderName::from_bytes(name.get_ref().trim().as_bytes())
                    .map(Some)
                    .map_err(|_| ConfigError::Invalid {
                        file: file.to_owned(),
                        line: line_of(name.span().start),
                        key: Some(key.to_owned()),
                        message: format!("{:?} is not a header name", name.get_ref()),
                    })
            }
        };
        let client_scheme_header = header_name("client_scheme_header", &raw.client_scheme_header)?;
        let client_ip_header = header_name("client_ip_header", &raw.client_ip_header)?;
        Ok(Self {
            listen: raw.listen,
            cache_dir: raw.cache_dir,
            database: raw.database,
            litefs: raw.litefs,
            workers,
            manifest_batch_window,
            halt_timeout,
            populate_interval,
            populate_concurrency,
            populate_rate,
            max_request_body,
            client_request_timeout,
            stale_if_error,
            coalesce_timeout,
            purge_poll_interval,
            shutdown_timeout,
            max_size,
            memory_cache_size,
            memory_cache_max_object,
            admin_session_lifetime,
            client_scheme_header,
            client_ip_header,
            origins,
            admin_token: None,
        })
    }

    /// Applies `CAJE_LISTEN`, `CAJE_CACHE_DIR`, `CAJE_DATABASE`, `CAJE_LITEFS`,
    /// `CAJE_WORKERS` and `CAJE_ADMIN_TOKEN`; `get` reads one variable.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("CAJE_LISTEN") {
            self.listen = v.parse().map_err(|e| ConfigError::Env {
                var: "CAJE_LISTEN",
                message: format!("{e}: {v:?}"),
            })?;
        }
        if let Some(v) = get("CAJE_CACHE_DIR") {
            self.cache_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CAJE_DATABASE") {
            self.database = PathBuf::from(v);
        }
        if let Some(v) = get("CAJE_LITEFS") {
            self.litefs = v.parse().map_err(|message| ConfigError::Env {
                var: "CAJE_LITEFS",
                message,
            })?;
        }
        if let Some(v) = get("CAJE_WORKERS") {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => self.workers = Some(n),
                _ => {
                    return Err(ConfigError::Env {
                        var: "CAJE_WORKERS",
                        message: format!("expected a whole number of at least 1, got {v:?}"),
                    })
                }
            }
        }
        self.admin_token = get(ADMIN_TOKEN_ENV).filter(|t| !t.is_empty());
        Ok(())
    }

    /// The origin serving a request's host, if any (the port is ignored).
    pub fn origin_for(&self, host: &str) -> Option<&Origin> {
        let host = normalize_host(host);
        self.origins.iter().find(|o| o.host == host)
    }
}

/// Lower-cases a `Host` value and drops its port (`[::1]:80` → `[::1]`).
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if let Some(rest) = host.strip_prefix('[') {
        match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    without_port.to_ascii_lowercase()
}

fn validate_host(host: &str) -> Result<String, String> {
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

fn parse_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than zero".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!(
            "{text:?} is not a duration like \"30s\" or \"1m 30s\": {e}"
        )),
    }
}

fn validate_upstream(upstream: &str) -> Result<String, String> {
    let uri: Uri = upstream
        .parse()
        .map_err(|e| format!("{upstream:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "scheme {other:?} is not supported; use \"http://host:port\""
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
    Ok(format!("http://{authority}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
listen = "127.0.0.1:8080"
[[origin]]
host = "Slow.Example.com"
upstream = "http://127.0.0.1:3000/"
timeout = "5s"
"#;

    #[test]
    fn parses_a_good_file() {
        let s = Settings::parse("caje.toml", GOOD).expect("valid");
        assert_eq!(s.listen.port(), 8080);
        assert_eq!(s.origins[0].host, "slow.example.com");
        assert_eq!(s.origins[0].upstream, "http://127.0.0.1:3000");
        assert_eq!(s.origins[0].timeout, Duration::from_secs(5));
        assert_eq!(s.litefs, LiteFsMode::Auto);
        assert_eq!(s.manifest_batch_window, DEFAULT_BATCH_WINDOW);
        assert_eq!(s.halt_timeout, Duration::from_secs(10));
        let text = format!("manifest_batch_window = \"20ms\"\nhalt_timeout = \"2s\"\n{GOOD}");
        let s = Settings::parse("caje.toml", &text).expect("valid");
        assert_eq!(s.manifest_batch_window, Duration::from_millis(20));
        assert_eq!(s.halt_timeout, Duration::from_secs(2));
        let err = Settings::parse("c.toml", &format!("halt_timeout = \"0s\"\n{GOOD}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: key `halt_timeout`"), "{err}");
        let sized =
            Settings::parse("c.toml", &format!("max_size = \"2 MiB\"\n{GOOD}")).expect("valid");
        assert_eq!(sized.max_size, Some(2 * 1024 * 1024));
        assert_eq!(
            Settings::parse("c.toml", GOOD).expect("valid").max_size,
            None
        );
        let err = Settings::parse("c.toml", &format!("max_size = \"lots\"\n{GOOD}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: key `max_size`"), "{err}");
        let err = Settings::parse("c.toml", &format!("max_size = \"0\"\n{GOOD}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: key `max_size`"), "{err}");
        let memory = Settings::parse(
            "c.toml",
            &format!("memory_cache_size = \"0\"\nmemory_cache_max_object = \"1 KiB\"\n{GOOD}"),
        )
        .expect("valid");
        assert_eq!(memory.memory_cache_size, 0);
        assert_eq!(memory.memory_cache_max_object, 1024);
        let err = Settings::parse("c.toml", &format!("\nmemory_cache_size = \"big\"\n{GOOD}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2: key `memory_cache_size`"), "{err}");
    }

    #[test]
    fn admin_session_settings() {
        let parsed = |text: &str| Settings::parse("c.toml", &format!("{text}\n{GOOD}"));
        let s = parsed("").expect("valid");
        assert_eq!(s.admin_session_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(s.client_scheme_header, None);
        let s = parsed(
            "admin_session_lifetime = \"30m\"\nclient_scheme_header = \"Fly-Forwarded-Proto\"\nclient_ip_header = \"Fly-Client-IP\"",
        )
        .expect("valid");
        assert_eq!(s.admin_session_lifetime, Duration::from_secs(1800));
        assert_eq!(
            s.client_scheme_header.as_ref().map(|h| h.as_str()),
            Some("fly-forwarded-proto")
        );
        assert_eq!(
            s.client_ip_header.as_ref().map(|h| h.as_str()),
            Some("fly-client-ip")
        );
        for (bad, key) in [
            (
                "admin_session_lifetime = \"500ms\"",
                "admin_session_lifetime",
            ),
            ("client_ip_header = \"a:b\"", "client_ip_header"),
            (
                "client_scheme_header = \"not a header\"",
                "client_scheme_header",
            ),
        ] {
            let err = parsed(bad).expect_err(bad).to_string();
            assert!(err.contains(&format!("line 1: key `{key}`")), "{err}");
        }
    }

    #[test]
    fn shutdown_timeout_defaults_to_10s_and_may_be_zero() {
        let parsed = |text: &str| Settings::parse("c.toml", &format!("{text}\n{GOOD}"));
        let default = parsed("").expect("valid").shutdown_timeout;
        assert_eq!(default, Duration::from_secs(10));
        let set = parsed("shutdown_timeout = \"2m\"").expect("valid");
        assert_eq!(set.shutdown_timeout, Duration::from_secs(120));
        let zero = parsed("shutdown_timeout = \"0s\"").expect("valid");
        assert_eq!(zero.shutdown_timeout, Duration::ZERO);
        let err = parsed("shutdown_timeout = \"soon\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1: key `shutdown_timeout`"), "{err}");
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = "listen = \"127.0.0.1:1\"\n[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\ntimeot = \"1s\"\n";
        let err = Settings::parse("c.toml", text).unwrap_err().to_string();
        assert!(err.starts_with("c.toml: line 5"), "{err}");
        assert!(err.contains("timeot"), "{err}");
    }

    #[test]
    fn bad_value_names_key_path() {
        let text = "[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\ntimeout = \"soon\"\n";
        let err = Settings::parse("c.toml", text).unwrap_err().to_string();
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("origin[0].timeout"), "{err}");
    }

    #[test]
    fn duplicate_host_and_bad_upstream_are_refused() {
        let dup = "[[origin]]\nhost = \"a\"\nupstream = \"http://b\"\n[[origin]]\nhost = \"A\"\nupstream = \"http://c\"\n";
        let err = Settings::parse("c.toml", dup).unwrap_err().to_string();
        assert!(
            err.contains("line 5") && err.contains("origin[1].host"),
            "{err}"
        );
        let https = "[[origin]]\nhost = \"a\"\nupstream = \"ftp://b\"\n";
        let err = Settings::parse("c.toml", https).unwrap_err().to_string();
        assert!(
            err.contains("line 3") && err.contains("origin[0].upstream"),
            "{err}"
        );
    }

    #[test]
    fn env_overrides_and_token() {
        let mut s = Settings::parse("caje.toml", GOOD).expect("valid");
        s.apply_env(|k| match k {
            "CAJE_LISTEN" => Some("0.0.0.0:9000".into()),
            "CAJE_LITEFS" => Some("off".into()),
            "CAJE_ADMIN_TOKEN" => Some("sekrit".into()),
            _ => None,
        })
        .expect("valid env");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.litefs, LiteFsMode::Off);
        assert_eq!(s.admin_token.as_deref(), Some("sekrit"));
        let err = s
            .apply_env(|k| (k == "CAJE_LITEFS").then(|| "maybe".into()))
            .unwrap_err();
        assert!(err.to_string().contains("CAJE_LITEFS"));
    }

    #[test]
    fn cache_set_cookie_is_off_unless_set_per_origin() {
        assert!(!Settings::parse("c.toml", GOOD).expect("valid").origins[0].cache_set_cookie);
        let on = format!("{GOOD}cache_set_cookie = true\n");
        assert!(Settings::parse("c.toml", &on).expect("valid").origins[0].cache_set_cookie);
        let bad = format!("{GOOD}cache_set_cookie = \"yes\"\n");
        let err = Settings::parse("c.toml", &bad).unwrap_err().to_string();
        assert!(
            err.contains("line 7") && err.contains("origin[0].cache_set_cookie"),
            "{err}"
        );
    }

    #[test]
    fn host_normalization() {
        assert_eq!(normalize_host("LocalHost:3001"), "localhost");
        assert_eq!(normalize_host("[::1]:80"), "[::1]");
        assert_eq!(normalize_host("example.com"), "example.com");
    }

    #[test]
    fn request_limits() {
        let s = Settings::parse("c.toml", GOOD).expect("valid");
        assert_eq!(s.max_request_body, 10 * 1024 * 1024);
        assert_eq!(s.client_request_timeout, Duration::from_secs(5));
        let text = format!("max_request_body = \"1 KiB\"\nclient_request_timeout = \"2s\"\n{GOOD}");
        let s = Settings::parse("c.toml", &text).expect("valid");
        assert_eq!(s.max_request_body, 1024);
        assert_eq!(s.client_request_timeout, Duration::from_secs(2));
        for (text, key) in [
            ("max_request_body = \"huge\"", "max_request_body"),
            ("client_request_timeout = \"0s\"", "client_request_timeout"),
        ] {
            let err = Settings::parse("c.toml", &format!("{text}\n{GOOD}"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("line 1: key `{key}`")), "{err}");
        }
    }
}
