//! The settings of peer fetch (tiered cache): what this node is called,
//! where peers reach it, and when it asks them. See README, "How regions
//! cooperate".

use std::time::Duration;

use actix_web::http::header::HeaderValue;
use serde::Deserialize;

use super::origin::validate_upstream;
use super::Settings;

/// How long a peer may take before the origin is asked instead.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_millis(500);

/// The `CDN-Loop` pseudonym every caje node sends (RFC 8586). A request
/// carrying it came from a caje node: it is never sent on to a peer.
pub const CDN_LOOP_ID: &str = "caje";

/// When this node asks a peer for a page before its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerFetch {
    /// Never: every page comes from its origin.
    Off,
    /// When the populator warms a page another node stored.
    #[default]
    Warm,
    /// Also on an ordinary miss for a page another node stored.
    All,
}

impl std::str::FromStr for PeerFetch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" => Ok(Self::Off),
            "warm" => Ok(Self::Warm),
            "all" => Ok(Self::All),
            other => Err(format!(
                "expected \"off\", \"warm\" or \"all\", got {other:?}"
            )),
        }
    }
}

/// A `peer_url`: `http://host[:port]`, no path.
pub(super) fn validate_peer_url(url: &str) -> Result<String, String> {
    validate_upstream(url)
}

/// A `node_name`: a non-empty token (letters, digits, `-`, `_`, `.`), so it
/// fits a `Cache-Status` cache name and a `CDN-Loop` parameter as it is.
pub(super) fn validate_node_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    let fits = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 64 || !name.chars().all(fits) {
        return Err(format!(
            "{name:?} is not a node name (1 to 64 letters, digits, '-', '_' or '.')"
        ));
    }
    Ok(name.to_owned())
}

impl Settings {
    /// The name this node gives itself in `Cache-Status`: `caje-<node_name>`,
    /// or `caje` when no `node_name` is set.
    pub fn cache_name(&self) -> String {
        match &self.node_name {
            Some(name) => format!("{CDN_LOOP_ID}-{name}"),
            None => CDN_LOOP_ID.to_owned(),
        }
    }

    /// This node's `CDN-Loop` member: `caje; node=<node_name>`, or `caje`.
    pub fn cdn_loop(&self) -> HeaderValue {
        let member = match &self.node_name {
            Some(name) => format!("{CDN_LOOP_ID}; node={name}"),
            None => CDN_LOOP_ID.to_owned(),
        };
        HeaderValue::from_str(&member).unwrap_or(HeaderValue::from_static(CDN_LOOP_ID))
    }

    /// Whether `url` is where peers reach this very node.
    pub fn is_own_peer_url(&self, url: &str) -> bool {
        self.peer_url.as_deref() == Some(url)
    }

    /// On Fly.io, what the machine's variables say when the file did not:
    /// `node_name` from `FLY_REGION` (and `FLY_MACHINE_ID`, since a region
    /// may run several machines), `peer_url` from `FLY_MACHINE_ID`,
    /// `FLY_APP_NAME` and the listen port (the 6PN private address).
    pub(super) fn apply_fly(&mut self, get: &impl Fn(&str) -> Option<String>) {
        let region = get("FLY_REGION").filter(|v| !v.is_empty());
        let machine = get("FLY_MACHINE_ID").filter(|v| !v.is_empty());
        let app = get("FLY_APP_NAME").filter(|v| !v.is_empty());
        if self.node_name.is_none() {
            let name = match (&region, &machine) {
                (Some(region), Some(machine)) => Some(format!("{region}-{machine}")),
                (Some(region), None) => Some(region.clone()),
                _ => None,
            };
            self.node_name = name.and_then(|n| validate_node_name(&n).ok());
        }
        if self.peer_url.is_none() {
            if let (Some(machine), Some(app)) = (machine, app) {
                let url = format!("http://{machine}.vm.{app}.internal:{}", self.listen.port());
                self.peer_url = validate_peer_url(&url).ok();
            }
        }
    }

    /// The name recorded in the manifest as the page's holder: `node_name`,
    /// else the host name, else `caje`.
    pub fn stored_by(&self) -> String {
        self.node_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
            .unwrap_or_else(|| CDN_LOOP_ID.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGIN: &str = "[[origin]]\nhost = \"a.test\"\nupstream = \"http://127.0.0.1:3000\"\n";

    #[test]
    fn defaults_leave_the_node_unnamed_and_warm_from_peers() {
        let s = Settings::parse("c.toml", ORIGIN).expect("valid");
        assert_eq!(s.node_name, None);
        assert_eq!(s.peer_url, None);
        assert_eq!(s.peer_fetch, PeerFetch::Warm);
        assert_eq!(s.peer_timeout, DEFAULT_PEER_TIMEOUT);
        assert_eq!(s.cache_name(), "caje");
        assert_eq!(s.cdn_loop(), "caje");
    }

    #[test]
    fn parses_and_checks_the_peer_settings() {
        let text = format!(
            "node_name = \"lhr\"\npeer_url = \"http://lhr.internal:3001\"\npeer_fetch = \"all\"\npeer_timeout = \"200ms\"\n{ORIGIN}"
        );
        let s = Settings::parse("c.toml", &text).expect("valid");
        assert_eq!(s.cache_name(), "caje-lhr");
        assert_eq!(s.cdn_loop(), "caje; node=lhr");
        assert_eq!(s.peer_url.as_deref(), Some("http://lhr.internal:3001"));
        assert!(s.is_own_peer_url("http://lhr.internal:3001"));
        assert_eq!(s.peer_fetch, PeerFetch::All);
        assert_eq!(s.peer_timeout, Duration::from_millis(200));
        for bad in [
            "node_name = \"a b\"",
            "peer_url = \"lhr:3001\"",
            "peer_fetch = \"some\"",
        ] {
            let err = Settings::parse("c.toml", &format!("{bad}\n{ORIGIN}"));
            assert!(err.is_err(), "{bad}");
        }
    }

    #[test]
    fn on_fly_the_machine_names_the_node_and_its_private_address() {
        let mut s = Settings::parse("c.toml", ORIGIN).expect("valid");
        s.listen = "[::]:8080".parse().expect("addr");
        let env = |var: &str| match var {
            "FLY_REGION" => Some("ams".to_owned()),
            "FLY_MACHINE_ID" => Some("3d8d9e1".to_owned()),
            "FLY_APP_NAME" => Some("caje-demo".to_owned()),
            _ => None,
        };
        s.apply_env(env).expect("applied");
        assert_eq!(s.node_name.as_deref(), Some("ams-3d8d9e1"));
        assert_eq!(
            s.peer_url.as_deref(),
            Some("http://3d8d9e1.vm.caje-demo.internal:8080")
        );
        // What the file or CAJE_* set wins.
        let mut s = Settings::parse("c.toml", ORIGIN).expect("valid");
        s.apply_env(|var: &str| match var {
            "CAJE_NODE_NAME" => Some("edge1".to_owned()),
            "CAJE_PEER_FETCH" => Some("off".to_owned()),
            other => env(other),
        })
        .expect("applied");
        assert_eq!(s.node_name.as_deref(), Some("edge1"));
        assert_eq!(s.peer_fetch, PeerFetch::Off);
    }
}
