//! Cache directives as caje reads them, before `http-cache-semantics` sees
//! them: names are case-insensitive (RFC 9111 §5.2), `CDN-Cache-Control`
//! takes precedence over `Cache-Control` and `Expires` (RFC 9213 §2.2), and
//! a request's `Pragma: no-cache` counts only without `Cache-Control`
//! (RFC 9111 §5.4).

use std::borrow::Cow;

use actix_web::http::header::{self, AsHeaderName, HeaderMap, HeaderName};
use smallvec::SmallVec;

/// Directives of one message, names lower-cased, in order. A name caje
/// knows is held as its constant, with no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives(Vec<(Cow<'static, str>, Option<String>)>);

/// The name `name` is read as: its known lower-case constant, else its
/// lower-cased copy.
fn lower_case(name: &str) -> Cow<'static, str> {
    match SECONDS
        .iter()
        .chain(&FLAGS)
        .chain(&REQUEST_ONLY)
        .find(|known| known.eq_ignore_ascii_case(name))
    {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(name.to_ascii_lowercase()),
    }
}

impl Directives {
    /// Parses `Cache-Control`-style field values.
    pub fn parse<'a>(values: impl IntoIterator<Item = &'a str>) -> Self {
        let mut directives = Vec::new();
        for value in values {
            for member in value.split(',') {
                let (name, arg) = match member.split_once('=') {
                    Some((name, arg)) => (name, Some(arg.trim().trim_matches('"').to_owned())),
                    None => (member, None),
                };
                let name = name.trim();
                if !name.is_empty() {
                    directives.push((lower_case(name), arg));
                }
            }
        }
        Self(directives)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// A delta-seconds argument (the first occurrence); `None` when absent
    /// or not a number.
    pub fn seconds(&self, name: &str) -> Option<u64> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, arg)| arg.as_deref())
            .and_then(|arg| arg.parse().ok())
    }

    /// The same directives but `name`.
    pub fn without(&self, name: &str) -> Self {
        Self(self.0.iter().filter(|(n, _)| n != name).cloned().collect())
    }

    /// The same directives and `name` (without argument), once.
    pub fn with(&self, name: &str) -> Self {
        let mut more = self.without(name);
        more.0.push((lower_case(name), None));
        more
    }

    /// The directives as one normalised field value. An argument that is not
    /// a token is quoted, so that [`Directives::parse`] (and
    /// `http-cache-semantics`) read back exactly this argument: unquoted,
    /// `max-age=" 60"` would be read as a valid `60`.
    pub fn to_field(&self) -> String {
        let members: Vec<String> = self
            .0
            .iter()
            .map(|(name, arg)| match arg {
                Some(arg) if is_token(arg) => format!("{name}={arg}"),
                Some(arg) => format!("{name}=\"{arg}\""),
                None => name.to_string(),
            })
            .collect();
        members.join(", ")
    }
}

/// RFC 9110 §5.6.2 `token`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

fn field_values(headers: &HeaderMap, name: impl AsHeaderName) -> SmallVec<[&str; 2]> {
    headers
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// Directives whose argument is delta-seconds: in `CDN-Cache-Control` a
/// non-negative Structured Field Integer, nothing else.
const SECONDS: [&str; 4] = [
    "max-age",
    "s-maxage",
    "stale-while-revalidate",
    "stale-if-error",
];

/// Directives without an argument: in `CDN-Cache-Control` a Boolean (a bare
/// key is `?1`; `?0` leaves the directive out).
const FLAGS: [&str; 8] = [
    "no-store",
    "no-cache",
    "private",
    "public",
    "must-revalidate",
    "proxy-revalidate",
    "immutable",
    "no-transform",
];

/// Request directives with no place in `CDN-Cache-Control`.
const REQUEST_ONLY: [&str; 3] = ["max-stale", "min-fresh", "only-if-cached"];

/// `CDN-Cache-Control` read as the Structured Field Dictionary it is
/// (RFC 9213 §2.1, RFC 8941 §4.2, all field lines joined with ", "). `None`,
/// so the whole field is ignored, when it fails to parse, is empty, or a
/// directive caje knows has the wrong type (`max-age="60"`, `max-age=-1`,
/// `max-age=1.5`, `no-store=60`). Unknown directives are kept when their
/// value is a token, integer, Boolean or a string without `"`, `\\` or `,`;
/// parameters are ignored.
pub fn targeted(values: &[&str]) -> Option<Directives> {
    if values.is_empty() {
        return None;
    }
    let joined = values.join(", ");
    let dictionary: sfv::Dictionary = sfv::Parser::new(joined.as_str()).parse().ok()?;
    let mut directives = Vec::new();
    for (key, entry) in &dictionary {
        let name = key.as_str();
        let bare = match entry {
            sfv::ListEntry::Item(item) => Some(&item.bare_item),
            sfv::ListEntry::InnerList(_) => None,
        };
        let known_seconds = SECONDS.contains(&name);
        let known_flag = FLAGS.contains(&name);
        let arg = match bare {
            Some(sfv::BareItem::Integer(n)) if !known_flag => {
                let n = i64::from(*n);
                if n < 0 {
                    return None;
                }
                Some(Some(n.to_string()))
            }
            Some(sfv::BareItem::Boolean(flag)) if !known_seconds => flag.then_some(None),
            Some(sfv::BareItem::Token(t)) if !known_seconds && !known_flag => {
                Some(Some(t.as_str().to_owned()))
            }
            // Kept only where `to_field` prints it back unchanged.
            Some(sfv::BareItem::String(t))
                if !known_seconds && !known_flag && !t.as_str().contains(['"', '\\', ',']) =>
            {
                Some(Some(t.as_str().to_owned()))
            }
            _ if known_seconds || known_flag => return None,
            _ => None,
        };
        if let Some(arg) = arg {
            directives.push((lower_case(name), arg));
        }
    }
    (!dictionary.is_empty()).then_some(Directives(directives))
}

/// The response's cache directives for caje, and whether they came from
/// `CDN-Cache-Control` (then `Cache-Control` and `Expires` are ignored).
pub fn response(headers: &HeaderMap) -> (Directives, bool) {
    const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");
    if let Some(directives) = targeted(&field_values(headers, CDN_CACHE_CONTROL)) {
        return (directives, true);
    }
    (
        Directives::parse(field_values(headers, header::CACHE_CONTROL)),
        false,
    )
}

/// The request's cache directives, with `Pragma: no-cache` standing for
/// `Cache-Control: no-cache` when there is no `Cache-Control`.
pub fn request(headers: &HeaderMap) -> Directives {
    if headers.contains_key(header::CACHE_CONTROL) {
        return Directives::parse(field_values(headers, header::CACHE_CONTROL));
    }
    // Most requests have neither field: nothing is collected for them.
    let pragma_no_cache = headers.get_all(header::PRAGMA).any(|p| {
        p.to_str()
            .is_ok_and(|p| p.to_ascii_lowercase().contains("no-cache"))
    });
    if pragma_no_cache {
        return Directives::parse(["no-cache"]);
    }
    Directives::default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as headers;

    #[test]
    fn names_are_case_insensitive_and_values_unquoted() {
        let d = Directives::parse([
            "Max-Age=60, PUBLIC",
            "s-maxage=\"30\", no-cache=\"set-cookie\"",
        ]);
        assert_eq!(d.seconds("max-age"), Some(60));
        assert_eq!(d.seconds("s-maxage"), Some(30));
        assert!(d.has("public") && d.has("no-cache"));
        assert_eq!(d.seconds("public"), None);
        assert_eq!(
            d.to_field(),
            "max-age=60, public, s-maxage=30, no-cache=set-cookie"
        );
        assert_eq!(Directives::parse(["max-age=soon"]).seconds("max-age"), None);
    }

    #[test]
    fn cdn_cache_control_takes_precedence_when_valid() {
        let h = headers(&[
            ("cache-control", "no-store"),
            ("cdn-cache-control", "max-age=60"),
        ]);
        let (d, targeted) = response(&h);
        assert!(targeted);
        assert_eq!(d.seconds("max-age"), Some(60));
        assert!(!d.has("no-store"));
        for invalid in [
            "",
            "Max-Age=60",
            "max-age=60, ??",
            "max-age=\"60",
            "max-age=\"10000\"",
            "max-age=-1",
            "max-age=1.5",
            "no-store=60",
            "max-age=(60)",
        ] {
            let h = headers(&[
                ("cache-control", "max-age=5"),
                ("cdn-cache-control", invalid),
            ]);
            let (d, targeted) = response(&h);
            assert!(!targeted, "{invalid:?}");
            assert_eq!(d.seconds("max-age"), Some(5));
        }
    }

    #[test]
    fn cdn_cache_control_is_a_structured_dictionary() {
        let d = targeted(&["max-age=60;x=1, no-store=?0, public", "ext=\"a b\""]).expect("valid");
        assert_eq!(d.to_field(), "max-age=60, public, ext=\"a b\"");
        // RFC 8941: of duplicated keys the last counts.
        let d = targeted(&["max-age=5, max-age=60"]).expect("valid");
        assert_eq!(d.seconds("max-age"), Some(60));
        assert_eq!(targeted(&[]), None);
    }

    #[test]
    fn pragma_counts_only_without_cache_control() {
        assert!(request(&headers(&[("pragma", "no-cache")])).has("no-cache"));
        let both = request(&headers(&[
            ("pragma", "no-cache"),
            ("cache-control", "max-age=60"),
        ]));
        assert!(!both.has("no-cache"));
        assert!(request(&headers(&[])).is_empty());
    }
}
