//! Freshness caje gives when the origin gives none: an origin's
//! `default_ttl` by status, and its path rules (`[[origin.rule]]`), which
//! set their own TTLs, bypass the cache, or override named parts of what
//! the origin said.
//!
//! A given TTL is written into the fields the caching decision reads, as
//! a `max-age` (never `s-maxage`, which would let responses to requests
//! with `Authorization` be stored): the stored policy then carries it, so
//! hits, `Age`, revalidation and every later judgement see one consistent
//! lifetime, and the fields sent to clients stay the origin's own. The
//! origin's explicit freshness (`max-age`, `s-maxage`, `Expires`), and its
//! `no-store`, `no-cache`, `private` and `Set-Cookie`, win unless the path
//! rule names them in `ignore`.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};

use super::directives;
use super::glob::{percent_decode, Glob};
use super::policy;

/// TTLs by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTtls(pub Vec<(u16, Duration)>);

impl StatusTtls {
    pub fn for_status(&self, status: u16) -> Option<Duration> {
        self.0.iter().find(|(s, _)| *s == status).map(|(_, d)| *d)
    }
}

/// What a path rule may override of what the origin said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ignored {
    NoStore,
    NoCache,
    Private,
    SetCookie,
    /// The origin's explicit freshness: `max-age`, `s-maxage`, `Expires`.
    MaxAge,
}

impl Ignored {
    /// Every value, by its name in the config file.
    pub const ALL: [(&'static str, Ignored); 5] = [
        ("no-store", Ignored::NoStore),
        ("no-cache", Ignored::NoCache),
        ("private", Ignored::Private),
        ("set-cookie", Ignored::SetCookie),
        ("max-age", Ignored::MaxAge),
    ];

    /// The response directives it removes.
    fn directives(self) -> &'static [&'static str] {
        match self {
            Self::NoStore => &["no-store"],
            Self::NoCache => &["no-cache"],
            Self::Private => &["private"],
            Self::SetCookie => &[],
            Self::MaxAge => &["max-age", "s-maxage"],
        }
    }
}

/// One `[[origin.rule]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub path: Glob,
    pub action: RuleAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleAction {
    /// Never looked up nor stored: straight to the origin.
    Bypass,
    /// Stored as the origin says, with `ttl` (when set) instead of the
    /// origin's `default_ttl`, and the `ignore`d parts of the origin's
    /// answer overridden.
    Cache {
        ttl: Option<StatusTtls>,
        ignore: Vec<Ignored>,
    },
}

/// An origin's `default_ttl` and path rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreshnessRules {
    pub default_ttl: StatusTtls,
    /// In the config file's order: the first that matches a path applies.
    pub rules: Vec<PathRule>,
}

/// Where a response's treatment comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    DefaultTtl,
    Rule(&'a Glob),
}

impl Source<'_> {
    /// The `Cache-Status` `detail`: the token `default-ttl`, or the rule
    /// as a string (`"rule /static/*"`; the config keeps its path to
    /// visible ASCII, so only `"` and `\` need escaping).
    pub fn detail(self) -> Cow<'static, str> {
        match self {
            Source::DefaultTtl => Cow::Borrowed("default-ttl"),
            Source::Rule(glob) => {
                let escaped = glob.as_str().replace('\\', "\\\\").replace('"', "\\\"");
                Cow::Owned(format!("\"rule {escaped}\""))
            }
        }
    }
}

/// What the rules do for one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied<'a> {
    /// The lifetime caje gives it, when the origin gave none (or the rule
    /// ignores the origin's).
    pub ttl: Option<Duration>,
    pub ignore: &'a [Ignored],
    pub source: Source<'a>,
}

impl FreshnessRules {
    /// The same as an origin with no rules; what tests and the demo use.
    pub const NONE: FreshnessRules = FreshnessRules {
        default_ttl: StatusTtls(Vec::new()),
        rules: Vec::new(),
    };

    pub fn is_empty(&self) -> bool {
        self.default_ttl.0.is_empty() && self.rules.is_empty()
    }

    /// The first rule matching the path of `path_and_query` (see
    /// [`rule_path`] for what is matched).
    pub fn rule_for(&self, path_and_query: &str) -> Option<&PathRule> {
        if self.rules.is_empty() {
            return None;
        }
        let path = rule_path(path_and_query);
        self.rules.iter().find(|rule| rule.path.matches(&path))
    }

    /// The rule that makes requests for this URL bypass the cache.
    pub fn bypass(&self, path_and_query: &str) -> Option<&Glob> {
        self.rule_for(path_and_query)
            .filter(|rule| rule.action == RuleAction::Bypass)
            .map(|rule| &rule.path)
    }

    /// What applies to a response with `status` and `headers` (as the origin
    /// sent them) for `path_and_query`; `None` when nothing does.
    pub fn applied(
        &self,
        path_and_query: &str,
        status: u16,
        headers: &HeaderMap,
    ) -> Option<Applied<'_>> {
        if self.is_empty() {
            return None;
        }
        let (ttls, ignore, source) = match self.rule_for(path_and_query) {
            Some(PathRule {
                action: RuleAction::Bypass,
                ..
            }) => return None,
            Some(PathRule {
                path,
                action: RuleAction::Cache { ttl, ignore },
            }) => (
                ttl.as_ref().unwrap_or(&self.default_ttl),
                ignore.as_slice(),
                Source::Rule(path),
            ),
            None => (&self.default_ttl, &[][..], Source::DefaultTtl),
        };
        let origin_gave = policy::explicit_freshness(headers) && !ignore.contains(&Ignored::MaxAge);
        let ttl = ttls.for_status(status).filter(|_| !origin_gave);
        (ttl.is_some() || !ignore.is_empty()).then_some(Applied {
            ttl,
            ignore,
            source,
        })
    }
}

impl Applied<'_> {
    pub fn ignores(&self, what: Ignored) -> bool {
        self.ignore.contains(&what)
    }

    /// The response's fields as the caching decision reads them: the
    /// ignored directives gone and the given TTL a `max-age`, in one
    /// `Cache-Control` that replaces `CDN-Cache-Control` too (whose
    /// precedence it keeps: a targeted field's `Expires` and `Pragma` stay
    /// ignored).
    pub fn judged_fields(&self, headers: &HeaderMap) -> HeaderMap {
        let (mut directives, targeted) = directives::response(headers);
        for ignored in self.ignore {
            for name in ignored.directives() {
                directives = directives.without(name);
            }
        }
        let mut field = directives.to_field();
        if let Some(ttl) = self.ttl {
            if !field.is_empty() {
                field.push_str(", ");
            }
            field.push_str(&format!("max-age={}", ttl.as_secs()));
        }
        let mut judged = headers.clone();
        judged.remove(header::CACHE_CONTROL);
        judged.remove("cdn-cache-control");
        if targeted || self.ignores(Ignored::MaxAge) {
            judged.remove(header::EXPIRES);
        }
        if targeted || self.ignores(Ignored::NoCache) {
            judged.remove(header::PRAGMA);
        }
        if let (false, Ok(value)) = (field.is_empty(), HeaderValue::from_str(&field)) {
            judged.insert(header::CACHE_CONTROL, value);
        }
        judged
    }
}

/// The path rules match: the path of `path_and_query` (no query) with
/// `%XX` decoded and `.` and `..` segments resolved, as an origin reads
/// it, so that no spelling of a URL (`/static/..%2Fapi/me` is `/api/me`)
/// puts it under another path's rule.
pub fn rule_path(path_and_query: &str) -> Vec<u8> {
    let path = path_and_query
        .split_once('?')
        .map_or(path_and_query, |(path, _)| path);
    let decoded = percent_decode(path.as_bytes(), false);
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut parts = decoded.split(|&b| b == b'/').peekable();
    // The empty segment before the leading `/`.
    parts.next();
    while let Some(segment) = parts.next() {
        let last = parts.peek().is_none();
        match segment {
            b"." => {}
            b".." => {
                segments.pop();
            }
            _ => {
                segments.push(segment);
                continue;
            }
        }
        // `/a/..` is the directory `/`: it keeps its trailing slash.
        if last {
            segments.push(b"");
        }
    }
    let mut out = Vec::with_capacity(decoded.len());
    for segment in segments {
        out.push(b'/');
        out.extend_from_slice(segment);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as map;

    const MINUTE: Duration = Duration::from_secs(60);

    fn rules() -> FreshnessRules {
        FreshnessRules {
            default_ttl: StatusTtls(vec![(200, 10 * MINUTE), (404, MINUTE)]),
            rules: vec![
                PathRule {
                    path: Glob::new("/api/*"),
                    action: RuleAction::Bypass,
                },
                PathRule {
                    path: Glob::new("/static/*"),
                    action: RuleAction::Cache {
                        ttl: Some(StatusTtls(vec![(200, 60 * MINUTE)])),
                        ignore: vec![],
                    },
                },
                PathRule {
                    path: Glob::new("/avatars/*"),
                    action: RuleAction::Cache {
                        ttl: None,
                        ignore: vec![Ignored::Private, Ignored::SetCookie],
                    },
                },
            ],
        }
    }

    fn ttl(path: &str, status: u16, fields: &[(&str, &str)]) -> Option<Duration> {
        rules().applied(path, status, &map(fields))?.ttl
    }

    #[test]
    fn default_ttl_is_by_status_for_responses_without_freshness() {
        assert_eq!(ttl("/a", 200, &[]), Some(10 * MINUTE));
        assert_eq!(ttl("/a", 404, &[]), Some(MINUTE));
        assert_eq!(ttl("/a", 301, &[]), None);
        assert_eq!(ttl("/a", 200, &[("cache-control", "max-age=5")]), None);
        assert_eq!(ttl("/a", 200, &[("expires", "0")]), None);
        // `public` or `no-cache` are no freshness: the TTL is given (and
        // `no-cache` still makes every use a revalidation).
        assert_eq!(
            ttl("/a", 200, &[("cache-control", "public")]),
            Some(10 * MINUTE)
        );
        let r = rules();
        let applied = r.applied("/a", 200, &map(&[])).expect("applies");
        assert_eq!(applied.source, Source::DefaultTtl);
        assert_eq!(applied.source.detail(), "default-ttl");
    }

    #[test]
    fn the_first_matching_rule_wins_over_the_origin() {
        assert_eq!(ttl("/static/app.js", 200, &[]), Some(60 * MINUTE));
        // The rule's table replaces the origin's.
        assert_eq!(ttl("/static/missing.js", 404, &[]), None);
        // Without `ttl` the origin's table stays.
        assert_eq!(ttl("/avatars/1.png", 404, &[]), Some(MINUTE));
        let r = rules();
        assert_eq!(r.bypass("/api/me?x=1").map(Glob::as_str), Some("/api/*"));
        assert_eq!(r.applied("/api/me", 200, &map(&[])), None);
        assert_eq!(r.bypass("/static/a"), None);
        let applied = r.applied("/static/a", 200, &map(&[])).expect("applies");
        assert_eq!(applied.source.detail(), "\"rule /static/*\"");
    }

    #[test]
    fn rules_match_the_path_an_origin_reads() {
        let r = rules();
        for sneaky in [
            "/static/..%2Fapi/me",
            "/static/%2e%2e/api/me",
            "/static/../api/me",
            "/./api/me",
            "/%61pi/me",
        ] {
            assert!(r.bypass(sneaky).is_some(), "{sneaky}");
        }
        assert_eq!(rule_path("/a/b/.."), b"/a/");
        assert_eq!(rule_path("/.."), b"/");
        assert_eq!(rule_path("/a//b?x=/c"), b"/a//b");
        assert_eq!(rule_path("/"), b"/");
    }

    #[test]
    fn judged_fields_carry_the_ttl_and_drop_only_what_is_ignored() {
        let r = rules();
        let origin = map(&[("cache-control", "public"), ("etag", "\"a\"")]);
        let applied = r.applied("/a", 200, &origin).expect("applies");
        let judged = applied.judged_fields(&origin);
        assert_eq!(
            judged.get("cache-control").expect("cache-control"),
            "public, max-age=600"
        );
        assert_eq!(judged.get("etag").expect("etag"), "\"a\"");

        let private = map(&[("cache-control", "private, no-store")]);
        let applied = r.applied("/avatars/1", 200, &private).expect("applies");
        assert!(applied.ignores(Ignored::SetCookie));
        let judged = applied.judged_fields(&private);
        assert_eq!(
            judged.get("cache-control").expect("cache-control"),
            "no-store, max-age=600"
        );

        // A targeted field keeps its precedence over Expires.
        let targeted = map(&[("cdn-cache-control", "public"), ("expires", "0")]);
        let applied = r.applied("/a", 200, &targeted).expect("applies");
        let judged = applied.judged_fields(&targeted);
        assert_eq!(judged.get("expires"), None);
        assert_eq!(judged.get("cdn-cache-control"), None);
        assert_eq!(
            judged.get("cache-control").expect("cache-control"),
            "public, max-age=600"
        );
    }

    #[test]
    fn max_age_in_ignore_replaces_the_origin_s_freshness() {
        let r = FreshnessRules {
            default_ttl: StatusTtls::default(),
            rules: vec![PathRule {
                path: Glob::new("*"),
                action: RuleAction::Cache {
                    ttl: Some(StatusTtls(vec![(200, MINUTE)])),
                    ignore: vec![Ignored::MaxAge],
                },
            }],
        };
        let origin = map(&[("cache-control", "s-maxage=5, max-age=3"), ("expires", "0")]);
        let applied = r.applied("/x", 200, &origin).expect("applies");
        assert_eq!(applied.ttl, Some(MINUTE));
        let judged = applied.judged_fields(&origin);
        assert_eq!(
            judged.get("cache-control").expect("cache-control"),
            "max-age=60"
        );
        assert_eq!(judged.get("expires"), None);
    }
}
