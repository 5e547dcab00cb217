//! One proxied site, [`Origin`], and the checks of its `host` and
//! `upstream` as written in the config file.

use std::time::Duration;

use actix_web::http::Uri;

use super::normalize_host;

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
