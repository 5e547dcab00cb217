//! The `config` target: config files parsed from arbitrary text.

use crate::config::{ConfigError, Settings};

/// Config files: [`Settings::parse`] never panics; what it accepts is
/// valid throughout, and every error on a file with an `[[origin]]` names a
/// line of the file.
pub fn config(data: &[u8]) {
    // caje reads config files with `read_to_string`: other bytes never get here.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Settings::parse("fuzz.toml", text) {
        Ok(settings) => check_settings(&settings),
        Err(ConfigError::Invalid {
            line, key, message, ..
        }) => {
            let lines = text.matches('\n').count() + 1;
            assert!(
                (1..=lines).contains(&line),
                "line {line} of a {lines}-line file"
            );
            assert!(key.is_none_or(|k| !k.is_empty()), "empty key");
            assert!(!message.is_empty(), "empty message");
        }
        Err(ConfigError::Missing { .. }) => {
            let origins = text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("origin").and_then(|o| o.as_array()).map(Vec::len));
            assert!(
                origins.is_none_or(|n| n == 0),
                "a file with {origins:?} origins reported as having none"
            );
        }
        Err(e) => panic!("parsing text cannot fail with {e}"),
    }
}

fn check_settings(s: &Settings) {
    assert!(!s.origins.is_empty());
    for (i, o) in s.origins.iter().enumerate() {
        assert!(!o.host.is_empty());
        assert_eq!(o.host, o.host.to_ascii_lowercase());
        assert_eq!(crate::config::normalize_host(&o.host), o.host, "no port");
        assert!(
            s.origins[..i].iter().all(|p| p.host != o.host),
            "duplicate host"
        );
        assert_eq!(s.origin_for(&o.host), Some(o));
        assert_eq!(
            s.origin_for(&format!("{}:8080", o.host.to_ascii_uppercase())),
            Some(o)
        );
        let https = o.upstream.starts_with("https://");
        let rest = o
            .upstream
            .strip_prefix("http://")
            .or_else(|| o.upstream.strip_prefix("https://"));
        assert!(
            rest.is_some_and(|r| !r.is_empty() && !r.contains('/')),
            "{}",
            o.upstream
        );
        assert!(!o.timeout.is_zero());
        let t = &o.transport;
        assert!(t.max_connections > 0);
        assert!(
            https || (t.tls_verify && t.ca_file.is_none()),
            "TLS keys on http://"
        );
        assert_eq!(t.ca_file.is_some(), !t.ca_certs.is_empty());
        check_rules(&o.freshness);
    }
    for d in [
        s.manifest_batch_window,
        s.halt_timeout,
        s.populate_interval,
        s.coalesce_timeout,
        s.purge_poll_interval,
    ] {
        assert!(!d.is_zero());
    }
    assert!(s.workers.is_none_or(|w| w > 0));
    assert!(s.populate_concurrency > 0 && s.populate_rate > 0);
    assert!(s.max_size.is_none_or(|m| m > 0));
    assert!(
        s.admin_token.is_none(),
        "the token never comes from the file"
    );
}

/// What any accepted `default_ttl` and `[[origin.rule]]` hold: TTLs of a
/// whole second or more, and rule paths that are paths, each given once
/// (a second one would never apply).
fn check_rules(freshness: &crate::cache::freshness_rules::FreshnessRules) {
    use crate::cache::freshness_rules::RuleAction;
    let mut tables = vec![&freshness.default_ttl];
    for (i, rule) in freshness.rules.iter().enumerate() {
        let path = rule.path.as_str();
        assert!(path.starts_with(['/', '*']), "{path}");
        assert!(path.bytes().all(|b| b.is_ascii_graphic()), "{path}");
        assert!(
            freshness.rules[..i].iter().all(|r| r.path != rule.path),
            "{path} twice"
        );
        if let RuleAction::Cache { ttl: Some(ttl), .. } = &rule.action {
            tables.push(ttl);
        }
    }
    for (status, ttl) in tables.iter().flat_map(|t| t.0.iter()) {
        assert!(ttl.as_secs() >= 1, "{status}: {ttl:?}");
    }
}
