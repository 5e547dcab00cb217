//! Conditional requests answered from a stored response (RFC 9110 §13):
//! entity-tag comparison and the `If-None-Match` / `If-Modified-Since`
//! evaluation that lets a cache answer 304 Not Modified itself.

use std::time::SystemTime;

/// An entity-tag: `"xyz"` (strong) or `W/"xyz"` (weak).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag<'a> {
    pub weak: bool,
    /// The opaque tag, quotes included.
    pub opaque: &'a str,
}

impl<'a> EntityTag<'a> {
    pub fn parse(text: &'a str) -> Option<Self> {
        let text = text.trim();
        let (weak, opaque) = match text.strip_prefix("W/") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let valid = opaque.len() >= 2
            && opaque.starts_with('"')
            && opaque.ends_with('"')
            && !opaque[1..opaque.len() - 1].contains('"');
        valid.then_some(Self { weak, opaque })
    }

    /// Strong comparison: both strong and the same tag (RFC 9110 §8.8.3.2).
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same tag, weak or not.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// The request's validators that a cache evaluates.
#[derive(Debug, Default, Clone, Copy)]
pub struct Preconditions<'a> {
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
}

/// What the stored response offers to compare with.
#[derive(Debug, Default, Clone, Copy)]
pub struct Validators<'a> {
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    /// The stored `Date`, used when there is no `Last-Modified`.
    pub date: Option<&'a str>,
}

/// Whether a GET or HEAD with these preconditions may be answered 304
/// from the stored response (RFC 9110 §13.2.2: `If-None-Match` first, with
/// weak comparison; `If-Modified-Since` only without it).
pub fn not_modified(pre: Preconditions<'_>, stored: Validators<'_>) -> bool {
    if let Some(list) = pre.if_none_match {
        if list.trim() == "*" {
            return true;
        }
        let Some(current) = stored.etag.and_then(EntityTag::parse) else {
            return false;
        };
        return list
            .split(',')
            .filter_map(EntityTag::parse)
            .any(|tag| tag.weak_eq(&current));
    }
    let Some(since) = pre.if_modified_since.and_then(parse_date) else {
        return false;
    };
    match stored.last_modified.or(stored.date).and_then(parse_date) {
        Some(modified) => modified <= since,
        None => false,
    }
}

fn parse_date(text: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inm(list: &str, etag: &str) -> bool {
        not_modified(
            Preconditions {
                if_none_match: Some(list),
                ..Default::default()
            },
            Validators {
                etag: Some(etag),
                ..Default::default()
            },
        )
    }

    #[test]
    fn entity_tags_parse_and_compare() {
        let strong = EntityTag::parse("\"a\"").expect("strong");
        let weak = EntityTag::parse("W/\"a\"").expect("weak");
        assert!(!strong.weak && weak.weak);
        assert!(strong.strong_eq(&EntityTag::parse(" \"a\" ").expect("tag")));
        assert!(!strong.strong_eq(&weak) && !weak.strong_eq(&weak));
        assert!(strong.weak_eq(&weak) && weak.weak_eq(&weak));
        assert!(!strong.weak_eq(&EntityTag::parse("\"b\"").expect("tag")));
        for bad in ["a", "\"a", "W/a", "\"a\"b\"", ""] {
            assert_eq!(EntityTag::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn if_none_match_uses_weak_comparison() {
        assert!(inm("\"a\"", "\"a\""));
        assert!(inm("W/\"a\"", "\"a\""));
        assert!(inm("\"x\", W/\"a\"", "W/\"a\""));
        assert!(inm("*", "\"anything\""));
        assert!(!inm("\"b\"", "\"a\""));
        assert!(!inm("a", "a"), "unquoted tags are not tags");
        assert!(!not_modified(
            Preconditions {
                if_none_match: Some("\"a\""),
                ..Default::default()
            },
            Validators::default()
        ));
    }

    #[test]
    fn if_modified_since_compares_dates_and_yields_to_if_none_match() {
        let lm = "Mon, 01 Jan 2024 00:00:00 GMT";
        let stored = Validators {
            etag: Some("\"a\""),
            last_modified: Some(lm),
            date: None,
        };
        let ims = |since| Preconditions {
            if_none_match: None,
            if_modified_since: Some(since),
        };
        assert!(not_modified(ims(lm), stored));
        assert!(not_modified(ims("Tue, 02 Jan 2024 00:00:00 GMT"), stored));
        assert!(!not_modified(ims("Sun, 31 Dec 2023 00:00:00 GMT"), stored));
        assert!(!not_modified(ims("yesterday"), stored));
        // If-None-Match present: If-Modified-Since is not looked at.
        let both = Preconditions {
            if_none_match: Some("\"other\""),
            if_modified_since: Some(lm),
        };
        assert!(!not_modified(both, stored));
        // Without Last-Modified, the stored Date stands in.
        let dated = Validators {
            date: Some(lm),
            ..Default::default()
        };
        assert!(not_modified(ims(lm), dated));
    }
}
