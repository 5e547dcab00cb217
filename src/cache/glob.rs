//! The simple globs of the config file (`utm_*`, `/static/*`): `*` stands
//! for any run of bytes, `/` included, and every other byte for itself; a
//! glob matches a whole text, never a part of it. No `?`, classes or
//! escapes: names and paths are matched as the operator wrote them.

/// A glob as written, matched against bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Self {
        Self(pattern.to_owned())
    }

    /// The glob as written (for `Cache-Status` and error messages).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the glob matches all of `text`.
    pub fn matches(&self, text: &[u8]) -> bool {
        let mut parts = self.0.as_bytes().split(|&b| b == b'*');
        // No `*`: the whole text is the pattern.
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&[u8]> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            return rest.is_empty();
        };
        // Each middle piece taken at its first occurrence leaves the most
        // room for the ones after it (the classic greedy-free glob match).
        for piece in middle {
            match find(rest, piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        rest.ends_with(last)
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `%XX` sequences decoded to their bytes (others kept as they are); with
/// `plus_is_space`, `+` is a space, as in a form-encoded query.
pub fn percent_decode(text: &[u8], plus_is_space: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let decoded = match text[i] {
            b'%' => text
                .get(i + 1..i + 3)
                .and_then(|pair| Some(hex(pair[0])? * 16 + hex(pair[1])?)),
            _ => None,
        };
        match (decoded, text[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(glob: &str, text: &str) -> bool {
        Glob::new(glob).matches(text.as_bytes())
    }

    #[test]
    fn a_glob_matches_the_whole_text() {
        assert!(m("utm_*", "utm_source"));
        assert!(m("utm_*", "utm_"));
        assert!(!m("utm_*", "xutm_source"));
        assert!(m("fbclid", "fbclid"));
        assert!(!m("fbclid", "fbclid2"));
        assert!(!m("fbclid", "fbcli"));
        assert!(m("*", ""));
        assert!(m("/static/*", "/static/a/b.css"));
        assert!(!m("/static/*", "/static"));
        assert!(m("*.css", "/a/b.css"));
        assert!(!m("*.css", "/a/b.css.map"));
        assert!(m("/a/*/b/*.js", "/a/x/y/b/z.js"));
        assert!(!m("/a/*/b/*.js", "/a/x/y/c/z.js"));
        assert!(m("a*a", "aa"));
        assert!(!m("a*a", "a"));
        assert!(m("*ab*ab", "xabyabab"));
        assert!(m("**", "anything"));
        assert!(!m("UTM_*", "utm_source"), "case counts");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode(b"utm%5Fsource", false), b"utm_source");
        assert_eq!(percent_decode(b"a+b%2", true), b"a b%2");
        assert_eq!(percent_decode(b"a+b%zz%", false), b"a+b%zz%");
        assert_eq!(percent_decode(b"%ff%2f", false), b"\xff/");
    }
}
