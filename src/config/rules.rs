//! An origin's caching rules as written in the config file: `default_ttl`,
//! `[[origin.rule]]` tables, `ignore_query` and `sort_query`, checked and
//! turned into the types `cache/` decides with.

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::cache::freshness_rules::{FreshnessRules, Ignored, PathRule, RuleAction, StatusTtls};
use crate::cache::glob::Glob;
use crate::cache::query::KeyRules;

/// A TTL as written: one duration, or a table of durations by status.
#[derive(Debug, Clone)]
pub(super) enum RawTtls {
    One(String),
    ByStatus(Vec<(String, Spanned<String>)>),
}

impl<'de> Deserialize<'de> for RawTtls {
    // By hand, not `untagged`: the table's values keep their spans (and
    // so their lines) only when read straight from the TOML deserializer.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TtlsVisitor;
        impl<'de> Visitor<'de> for TtlsVisitor {
            type Value = RawTtls;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like \"10m\", or a table by status like { 200 = \"10m\", 404 = \"1m\" }")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawTtls, E> {
                Ok(RawTtls::One(text.to_owned()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTtls, A::Error> {
                let mut entries = Vec::new();
                while let Some(status) = map.next_key::<String>()? {
                    entries.push((status, map.next_value::<Spanned<String>>()?));
                }
                Ok(RawTtls::ByStatus(entries))
            }
        }
        deserializer.deserialize_any(TtlsVisitor)
    }
}

/// One `[[origin.rule]]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    path: Spanned<String>,
    ttl: Option<Spanned<RawTtls>>,
    bypass: Option<Spanned<bool>>,
    ignore: Option<Spanned<Vec<Spanned<String>>>>,
}

/// Builds a config error from a key (below the origin), a span and a message.
pub(super) type Invalid<'a, E> = &'a dyn Fn(&str, Range<usize>, String) -> E;

/// The statuses a single duration gives a TTL to: the successful and
/// permanent ones a cache may store by default (RFC 9110 §15.1); errors
/// and temporary redirects get one only when named.
pub const SINGLE_TTL_STATUSES: [u16; 6] = [200, 203, 204, 300, 301, 308];

/// The statuses caje can store at all (those `http-cache-semantics`
/// understands).
pub const TTL_STATUSES: [u16; 14] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// `default_ttl` and the path rules of one origin.
pub(super) fn freshness<E>(
    default_ttl: Option<&Spanned<RawTtls>>,
    rules: &[RawRule],
    invalid: Invalid<'_, E>,
) -> Result<FreshnessRules, E> {
    let default_ttl = match default_ttl {
        None => StatusTtls::default(),
        Some(ttls) => status_ttls("default_ttl", ttls, invalid)?,
    };
    let mut checked: Vec<PathRule> = Vec::with_capacity(rules.len());
    for (i, rule) in rules.iter().enumerate() {
        let field = |name: &str| format!("rule[{i}].{name}");
        let path = rule.path.get_ref();
        let path_error = |message: String| invalid(&field("path"), rule.path.span(), message);
        if !path.starts_with(['/', '*']) {
            return Err(path_error(format!(
                "{path:?} is not a path: it starts with \"/\" (e.g. \"/static/*\")"
            )));
        }
        if !path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(path_error(format!(
                "{path:?} has a space or a character that is not ASCII: write it percent-encoded, as in a URL"
            )));
        }
        if let Some(earlier) = checked.iter().position(|r| r.path.as_str() == path) {
            return Err(path_error(format!(
                "rule[{earlier}] has the same path, so this rule would never apply (the first matching rule wins)"
            )));
        }
        let bypass = rule.bypass.as_ref().is_some_and(|b| *b.get_ref());
        let action = if bypass {
            let conflict = rule
                .ttl
                .as_ref()
                .map(|t| ("ttl", t.span()))
                .or(rule.ignore.as_ref().map(|t| ("ignore", t.span())));
            if let Some((name, span)) = conflict {
                return Err(invalid(
                    &field(name),
                    span,
                    "a rule with bypass = true never stores, so it takes no ttl or ignore"
                        .to_owned(),
                ));
            }
            RuleAction::Bypass
        } else {
            if rule.ttl.is_none() && rule.ignore.is_none() {
                return Err(invalid(
                    &format!("rule[{i}]"),
                    rule.path.span(),
                    "a rule needs ttl, bypass = true, or ignore".to_owned(),
                ));
            }
            let ttl = match &rule.ttl {
                None => None,
                Some(ttl) => Some(status_ttls(&field("ttl"), ttl, invalid)?),
            };
            let ignore = match &rule.ignore {
                None => Vec::new(),
                Some(list) => ignored(&field("ignore"), list, invalid)?,
            };
            RuleAction::Cache { ttl, ignore }
        };
        checked.push(PathRule {
            path: Glob::new(path),
            action,
        });
    }
    Ok(FreshnessRules {
        default_ttl,
        rules: checked,
    })
}

fn status_ttls<E>(
    key: &str,
    ttls: &Spanned<RawTtls>,
    invalid: Invalid<'_, E>,
) -> Result<StatusTtls, E> {
    match ttls.get_ref() {
        RawTtls::One(text) => {
            let ttl = duration(text).map_err(|m| invalid(key, ttls.span(), m))?;
            Ok(StatusTtls(
                SINGLE_TTL_STATUSES.iter().map(|s| (*s, ttl)).collect(),
            ))
        }
        RawTtls::ByStatus(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (status, text) in entries {
                let entry_key = format!("{key}.{status}");
                let code = status
                    .parse::<u16>()
                    .ok()
                    .filter(|code| TTL_STATUSES.contains(code))
                    .ok_or_else(|| {
                        invalid(
                            &entry_key,
                            text.span(),
                            format!(
                                "{status:?} is not a status caje can store; give one of {}",
                                TTL_STATUSES.map(|s| s.to_string()).join(", ")
                            ),
                        )
                    })?;
                let ttl =
                    duration(text.get_ref()).map_err(|m| invalid(&entry_key, text.span(), m))?;
                out.push((code, ttl));
            }
            if out.is_empty() {
                return Err(invalid(
                    key,
                    ttls.span(),
                    "no status given: write e.g. { 200 = \"10m\", 404 = \"1m\" }".to_owned(),
                ));
            }
            Ok(StatusTtls(out))
        }
    }
}

fn ignored<E>(
    key: &str,
    list: &Spanned<Vec<Spanned<String>>>,
    invalid: Invalid<'_, E>,
) -> Result<Vec<Ignored>, E> {
    let mut out = Vec::with_capacity(list.get_ref().len());
    for item in list.get_ref() {
        let name = item.get_ref().to_ascii_lowercase();
        let Some((_, what)) = Ignored::ALL.iter().find(|(n, _)| *n == name) else {
            let known: Vec<String> = Ignored::ALL.iter().map(|(n, _)| format!("{n:?}")).collect();
            return Err(invalid(
                key,
                item.span(),
                format!(
                    "{:?} is not something a rule can ignore; give any of {}",
                    item.get_ref(),
                    known.join(", ")
                ),
            ));
        };
        if !out.contains(what) {
            out.push(*what);
        }
    }
    if out.is_empty() {
        return Err(invalid(
            key,
            list.span(),
            "empty: name what the rule overrides, e.g. [\"private\"]".to_owned(),
        ));
    }
    Ok(out)
}

/// `ignore_query` and `sort_query` of one origin.
pub(super) fn key_rules<E>(
    ignore_query: Option<&Spanned<Vec<Spanned<String>>>>,
    sort_query: bool,
    invalid: Invalid<'_, E>,
) -> Result<KeyRules, E> {
    let mut ignore = Vec::new();
    for glob in ignore_query.map_or(&[][..], |list| list.get_ref()) {
        if glob.get_ref().is_empty() {
            return Err(invalid(
                "ignore_query",
                glob.span(),
                "an empty name: give parameter names or globs like \"utm_*\"".to_owned(),
            ));
        }
        ignore.push(Glob::new(glob.get_ref()));
    }
    Ok(KeyRules {
        ignore,
        sort: sort_query,
    })
}

/// A TTL: at least one second, as `max-age` counts.
fn duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.as_secs() >= 1 => Ok(d),
        Ok(_) => Err("must be at least \"1s\"".to_owned()),
        Err(e) => Err(format!(
            "{text:?} is not a duration like \"10m\" or \"1h 30m\": {e}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::cache::freshness_rules::{Ignored, RuleAction, StatusTtls};
    use crate::config::{Origin, Settings};
    use std::time::Duration;

    const ORIGIN: &str = "[[origin]]\nhost = \"a.test\"\nupstream = \"http://127.0.0.1:3000\"\n";
    const MINUTE: Duration = Duration::from_secs(60);

    fn origin(extra: &str) -> Result<Origin, String> {
        Settings::parse("c.toml", &format!("{ORIGIN}{extra}"))
            .map(|mut s| s.origins.remove(0))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn without_the_keys_nothing_changes() {
        let o = origin("").expect("valid");
        assert!(o.freshness.is_empty());
        assert_eq!(o.key_rules, Default::default());
        assert_eq!(o.key("/a?utm_source=x").path_and_query(), "/a?utm_source=x");
    }

    #[test]
    fn default_ttl_by_status_or_one_duration() {
        let o = origin("default_ttl = { 200 = \"10m\", 404 = \"1m\" }\n").expect("valid");
        assert_eq!(
            o.freshness.default_ttl,
            StatusTtls(vec![(200, 10 * MINUTE), (404, MINUTE)])
        );
        let table = origin("[origin.default_ttl]\n301 = \"1h\"\n").expect("valid");
        assert_eq!(
            table.freshness.default_ttl,
            StatusTtls(vec![(301, 60 * MINUTE)])
        );
        let one = origin("default_ttl = \"5m\"\n").expect("valid");
        assert_eq!(one.freshness.default_ttl.for_status(200), Some(5 * MINUTE));
        assert_eq!(one.freshness.default_ttl.for_status(308), Some(5 * MINUTE));
        assert_eq!(one.freshness.default_ttl.for_status(404), None);
        assert_eq!(one.freshness.default_ttl.for_status(302), None);
    }

    #[test]
    fn path_rules_in_order() {
        let text = "[[origin.rule]]\npath = \"/api/*\"\nbypass = true\n\
                    [[origin.rule]]\npath = \"/static/*\"\nttl = \"1d\"\n\
                    [[origin.rule]]\npath = \"/me/*\"\nignore = [\"Private\", \"set-cookie\"]\nttl = { 200 = \"1m\" }\n";
        let o = origin(text).expect("valid");
        let rules = &o.freshness.rules;
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].action, RuleAction::Bypass);
        assert_eq!(rules[1].path.as_str(), "/static/*");
        assert_eq!(
            rules[2].action,
            RuleAction::Cache {
                ttl: Some(StatusTtls(vec![(200, MINUTE)])),
                ignore: vec![Ignored::Private, Ignored::SetCookie],
            }
        );
    }

    #[test]
    fn query_keys() {
        let o =
            origin("ignore_query = [\"utm_*\", \"fbclid\"]\nsort_query = true\n").expect("valid");
        assert_eq!(
            o.key("/p?utm_source=x&id=1&fbclid=2&a=3").path_and_query(),
            "/p?a=3&id=1"
        );
    }

    #[test]
    fn bad_rules_are_line_numbered_errors() {
        for (extra, line, key) in [
            ("default_ttl = \"soon\"\n", 4, "origin[0].default_ttl"),
            ("default_ttl = \"0s\"\n", 4, "origin[0].default_ttl"),
            ("default_ttl = 600\n", 4, "origin[0].default_ttl"),
            ("default_ttl = {}\n", 4, "origin[0].default_ttl"),
            ("[origin.default_ttl]\n200 = \"1m\"\n500 = \"1m\"\n", 6, "origin[0].default_ttl.500"),
            ("[origin.default_ttl]\n200 = \"later\"\n", 5, "origin[0].default_ttl.200"),
            ("[origin.default_ttl]\nok = \"1m\"\n", 5, "origin[0].default_ttl.ok"),
            ("[[origin.rule]]\npath = \"static/*\"\nttl = \"1m\"\n", 5, "origin[0].rule[0].path"),
            ("[[origin.rule]]\npath = \"/a b\"\nttl = \"1m\"\n", 5, "origin[0].rule[0].path"),
            ("[[origin.rule]]\npath = \"/a\"\n", 5, "origin[0].rule[0]"),
            ("[[origin.rule]]\npath = \"/a\"\nbypass = true\nttl = \"1m\"\n", 7, "origin[0].rule[0].ttl"),
            ("[[origin.rule]]\npath = \"/a\"\nignore = [\"cookies\"]\n", 6, "origin[0].rule[0].ignore"),
            ("[[origin.rule]]\npath = \"/a\"\nignore = []\n", 6, "origin[0].rule[0].ignore"),
            ("[[origin.rule]]\npath = \"/a\"\nttl = \"1m\"\n[[origin.rule]]\npath = \"/a\"\nbypass = true\n", 8, "origin[0].rule[1].path"),
            ("[[origin.rule]]\npath = \"/a\"\nttl = \"1m\"\nstale = true\n", 7, "origin[0].rule[0].stale"),
            ("ignore_query = [\"\"]\n", 4, "origin[0].ignore_query"),
            ("ignore_query = \"utm_*\"\n", 4, "origin[0].ignore_query"),
            ("sort_query = \"yes\"\n", 4, "origin[0].sort_query"),
        ] {
            let err = origin(extra).expect_err(extra);
            assert!(
                err.contains(&format!("line {line}:")) && err.contains(&format!("key `{key}`")),
                "{extra}: {err}"
            );
        }
    }
}
