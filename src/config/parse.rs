//! The config file as TOML: the raw types, with the span of each value, and
//! their conversion into [`Settings`], where every error is a
//! [`ConfigError`] naming the file, the line and the key.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::origin::{
    read_ca_file, validate_fraction, validate_host, validate_upstream, DEFAULT_HEURISTIC_FRACTION,
    DEFAULT_HEURISTIC_MAX, DEFAULT_ORIGIN_TIMEOUT,
};
use super::{
    default_cache_dir, default_database, default_listen, ConfigError, LiteFsMode, Origin, Settings,
    DEFAULT_ADMIN_SESSION_LIFETIME, DEFAULT_BATCH_WINDOW, DEFAULT_CLIENT_REQUEST_TIMEOUT,
    DEFAULT_COALESCE_TIMEOUT, DEFAULT_MANIFEST_PAGE_SIZE, DEFAULT_MAX_REQUEST_BODY,
    DEFAULT_MEMORY_CACHE_MAX_OBJECT, DEFAULT_MEMORY_CACHE_SIZE, DEFAULT_POPULATE_CONCURRENCY,
    DEFAULT_POPULATE_INTERVAL, DEFAULT_POPULATE_PENDING, DEFAULT_POPULATE_RATE, DEFAULT_PURGE_POLL,
    DEFAULT_SHUTDOWN_TIMEOUT, DEFAULT_SYNC_INTERVAL,
};
use crate::cache::policy::Heuristic;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    #[serde(default = "default_listen")]
    listen: SocketAddr,
    metrics_listen: Option<Spanned<String>>,
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
    sync_interval: Option<Spanned<String>>,
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
    node_name: Option<Spanned<String>>,
    peer_url: Option<Spanned<String>>,
    #[serde(default)]
    peer_fetch: super::PeerFetch,
    peer_timeout: Option<Spanned<String>>,
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
    #[serde(default)]
    heuristic_freshness: bool,
    #[serde(default)]
    cache_client_errors: bool,
    heuristic_fraction: Option<Spanned<f64>>,
    heuristic_max: Option<Spanned<String>>,
    ca_file: Option<Spanned<String>>,
    tls_verify: Option<Spanned<bool>>,
    max_connections: Option<Spanned<i64>>,
    #[serde(default)]
    host_header: super::origin::HostHeader,
    default_ttl: Option<Spanned<super::rules::RawTtls>>,
    #[serde(default)]
    rule: Vec<super::rules::RawRule>,
    ignore_query: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    sort_query: bool,
    compress: Option<bool>,
    compress_min_size: Option<Spanned<i64>>,
}

impl Settings {
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
            // `Spanned` shows in the path as a field of its own: not a key.
            let path = e
                .path()
                .to_string()
                .replace(".$__serde_spanned_private_value", "");
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
            let fraction = match &o.heuristic_fraction {
                None => DEFAULT_HEURISTIC_FRACTION,
                Some(f) => validate_fraction(*f.get_ref())
                    .map_err(|m| invalid("heuristic_fraction", f.span(), m))?,
            };
            let max = match &o.heuristic_max {
                None => DEFAULT_HEURISTIC_MAX,
                Some(t) => match parse_duration(t.get_ref()) {
                    Ok(d) if d.as_secs() >= 1 => d,
                    Ok(_) => {
                        let m = "must be at least \"1s\"".to_owned();
                        return Err(invalid("heuristic_max", t.span(), m));
                    }
                    Err(m) => return Err(invalid("heuristic_max", t.span(), m)),
                },
            };
            let https = upstream.starts_with("https://");
            let mut transport = super::origin::Transport {
                host_header: o.host_header,
                ..Default::default()
            };
            if let Some(ca) = &o.ca_file {
                if !https {
                    return Err(invalid(
                        "ca_file",
                        ca.span(),
                        "only an \"https://\" upstream uses a CA file".to_owned(),
                    ));
                }
                transport.ca_certs =
                    read_ca_file(ca.get_ref()).map_err(|m| invalid("ca_file", ca.span(), m))?;
                transport.ca_file = Some(ca.get_ref().into());
            }
            if let Some(verify) = &o.tls_verify {
                if !https {
                    return Err(invalid(
                        "tls_verify",
                        verify.span(),
                        "only an \"https://\" upstream has certificates to verify".to_owned(),
                    ));
                }
                transport.tls_verify = *verify.get_ref();
            }
            if let Some(max) = &o.max_connections {
                transport.max_connections = usize::try_from(*max.get_ref())
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        invalid(
                            "max_connections",
                            max.span(),
                            format!(
                                "{} is not a number of connections (1 or more)",
                                max.get_ref()
                            ),
                        )
                    })?;
            }
            let freshness = super::rules::freshness(o.default_ttl.as_ref(), &o.rule, &invalid)?;
            let key_rules =
                super::rules::key_rules(o.ignore_query.as_ref(), o.sort_query, &invalid)?;
            let mut compress = super::origin::Compress::default();
            compress.enabled = o.compress.unwrap_or(compress.enabled);
            if let Some(min) = &o.compress_min_size {
                compress.min_size = u64::try_from(*min.get_ref()).map_err(|_| {
                    let m = format!("{} is not a size in bytes (0 or more)", min.get_ref());
                    invalid("compress_min_size", min.span(), m)
                })?;
            }
            origins.push(Origin {
                host,
                upstream,
                timeout,
                cache_set_cookie: o.cache_set_cookie,
                heuristic: o.heuristic_freshness.then_some(Heuristic { fraction, max }),
                cache_client_errors: o.cache_client_errors,
                transport,
                freshness,
                key_rules,
                compress,
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
        // Zero is meaningful: no change-driven sync.
        let sync_interval = match &raw.sync_interval {
            None => DEFAULT_SYNC_INTERVAL,
            value => duration_or_zero("sync_interval", value)?,
        };
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
        let checked = |key: &str,
                       value: &Option<Spanned<String>>,
                       check: fn(&str) -> Result<String, String>| match value
        {
            None => Ok(None),
            Some(v) => check(v.get_ref())
                .map(Some)
                .map_err(|message| ConfigError::Invalid {
                    file: file.to_owned(),
                    line: line_of(v.span().start),
                    key: Some(key.to_owned()),
                    message,
                }),
        };
        let node_name = checked(
            "node_name",
            &raw.node_name,
            super::peers::validate_node_name,
        )?;
        let peer_url = checked("peer_url", &raw.peer_url, super::peers::validate_peer_url)?;
        let metrics_listen = match &raw.metrics_listen {
            None => None,
            Some(addr) => {
                Some(
                    parse_listen(addr.get_ref()).map_err(|message| ConfigError::Invalid {
                        file: file.to_owned(),
                        line: line_of(addr.span().start),
                        key: Some("metrics_listen".to_owned()),
                        message,
                    })?,
                )
            }
        };
        let peer_timeout = duration(
            "peer_timeout",
            &raw.peer_timeout,
            super::DEFAULT_PEER_TIMEOUT,
        )?;
        Ok(Self {
            listen: raw.listen,
            metrics_listen,
            cache_dir: raw.cache_dir,
            database: raw.database,
            litefs: raw.litefs,
            workers,
            manifest_batch_window,
            halt_timeout,
            populate_interval,
            sync_interval,
            manifest_page_size: DEFAULT_MANIFEST_PAGE_SIZE,
            populate_pending: DEFAULT_POPULATE_PENDING,
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
            node_name,
            peer_url,
            peer_fetch: raw.peer_fetch,
            peer_timeout,
            origins,
            admin_token: None,
        })
    }
}

/// An address and port to listen on: `127.0.0.1:9091`, `[::]:9091`.
pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse().map_err(|_| {
        format!("{text:?} is not an address and port like \"127.0.0.1:9091\" or \"[::]:9091\"")
    })
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
