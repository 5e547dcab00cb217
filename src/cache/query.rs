//! Cache keys an origin's settings shape (`ignore_query`, `sort_query`):
//! the query of a request's URL with the parameters that never change the
//! answer left out and the rest in one order, so that `?utm_source=x&id=1`
//! and `?id=1` are one entry. The origin is still asked the URL the client
//! sent; only the key is normalised.
//!
//! The key stays unambiguous: the query is split on `&` into raw
//! `name=value` pairs and every kept pair is kept byte for byte, still
//! percent-encoded (`?a=1&b=2` and `?a=1%26b=2` stay apart). Only a
//! parameter's name is decoded, and only to match it against the globs.
//! Normalising a normalised URL changes nothing, so a key that travels
//! (purge log, manifest, peers) addresses the same entry on every node.

use std::borrow::Cow;

use super::glob::{percent_decode, Glob};

/// How an origin's cache keys are built from request URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRules {
    /// Parameters, by glob on the decoded name, left out of the key.
    pub ignore: Vec<Glob>,
    /// Parameters sorted by name in the key.
    pub sort: bool,
}

impl KeyRules {
    /// The path and query a request's key holds: `path_and_query` itself
    /// when the rules change nothing.
    pub fn normalise<'a>(&self, path_and_query: &'a str) -> Cow<'a, str> {
        if self.ignore.is_empty() && !self.sort {
            return Cow::Borrowed(path_and_query);
        }
        let Some((path, query)) = path_and_query.split_once('?') else {
            return Cow::Borrowed(path_and_query);
        };
        let mut pairs: Vec<&str> = query
            .split('&')
            .filter(|pair| !self.ignored(name(pair)))
            .collect();
        if self.sort {
            // Stable: repeated names keep their order, which may matter.
            pairs.sort_by(|a, b| name(a).cmp(name(b)));
        }
        let query = pairs.join("&");
        if query.is_empty() {
            return Cow::Owned(path.to_owned());
        }
        let normalised = format!("{path}?{query}");
        if normalised == path_and_query {
            Cow::Borrowed(path_and_query)
        } else {
            Cow::Owned(normalised)
        }
    }

    fn ignored(&self, raw_name: &str) -> bool {
        if self.ignore.is_empty() {
            return false;
        }
        let decoded = percent_decode(raw_name.as_bytes(), true);
        self.ignore.iter().any(|glob| glob.matches(&decoded))
    }
}

/// A raw pair's name: up to its first `=`.
fn name(pair: &str) -> &str {
    pair.split_once('=').map_or(pair, |(name, _)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(ignore: &[&str], sort: bool) -> KeyRules {
        KeyRules {
            ignore: ignore.iter().map(|g| Glob::new(g)).collect(),
            sort,
        }
    }

    #[test]
    fn without_rules_the_url_is_the_key() {
        let none = KeyRules::default();
        for url in ["/a?b=2&a=1", "/a?", "/a", "/a?utm_source=x"] {
            assert_eq!(none.normalise(url), url);
        }
    }

    #[test]
    fn ignored_parameters_leave_the_key() {
        let r = rules(&["utm_*", "fbclid"], false);
        assert_eq!(r.normalise("/p?utm_source=x&id=1"), "/p?id=1");
        assert_eq!(r.normalise("/p?id=1&utm_medium=y&fbclid=z"), "/p?id=1");
        assert_eq!(r.normalise("/p?utm_source=x"), "/p");
        assert_eq!(r.normalise("/p?fbclid"), "/p", "a name without a value");
        assert_eq!(r.normalise("/p?fbclid2=1"), "/p?fbclid2=1");
        // Names are matched decoded; values are never looked at.
        assert_eq!(r.normalise("/p?utm%5Fsource=x&id=1"), "/p?id=1");
        assert_eq!(r.normalise("/p?id=utm_source"), "/p?id=utm_source");
        // Order is kept without `sort_query`.
        assert_eq!(r.normalise("/p?b=2&utm_x=1&a=1"), "/p?b=2&a=1");
    }

    #[test]
    fn the_key_stays_unambiguous() {
        let r = rules(&["utm_*"], true);
        let split = r.normalise("/p?a=1&b=2");
        let encoded = r.normalise("/p?a=1%26b=2");
        assert_ne!(split, encoded);
        assert_eq!(encoded, "/p?a=1%26b=2", "kept still encoded");
        assert_ne!(r.normalise("/p?a=%2B"), r.normalise("/p?a=+"));
        // An ignored name inside an encoded value is not a parameter.
        assert_eq!(r.normalise("/p?a=1%26utm_x%3D2"), "/p?a=1%26utm_x%3D2");
    }

    #[test]
    fn sorting_orders_names_and_keeps_repeated_ones_in_order() {
        let r = rules(&[], true);
        assert_eq!(r.normalise("/p?b=2&a=1"), "/p?a=1&b=2");
        assert_eq!(r.normalise("/p?a=2&b=1&a=1"), "/p?a=2&a=1&b=1");
        assert_eq!(r.normalise("/p"), "/p");
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        let r = rules(&["utm_*", "*clid"], true);
        for url in [
            "/p?utm_source=x&id=1",
            "/p?z=1&&a=2",
            "/p?",
            "/p?gclid=1",
            "/p?b=%26&a=1=2",
        ] {
            let once = r.normalise(url).into_owned();
            assert_eq!(r.normalise(&once), once, "{url}");
        }
    }
}
