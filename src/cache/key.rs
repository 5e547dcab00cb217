//! Cache keys. A URL (method, host, path and query) is the primary key; the
//! request's values of the headers the response's `Vary` names select one
//! variant under it. Files are named by hashes, so no user text reaches a path.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use actix_web::http::header::HeaderMap;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{encoding, recent_hashes};

pub type Hash = [u8; 32];

/// The URL part of a cache key. Stored entries always carry `GET`: a `HEAD`
/// is answered from the stored `GET`. Its three parts are kept back to back
/// in one buffer: a key is made for every miss and kept with every stored
/// entry, and one allocation costs less than three. It is written (entry
/// heads, snapshots, the admin API) as the struct of three strings it was.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The method, the host, then the path and query.
    text: Box<str>,
    /// Where the host starts.
    host_at: usize,
    /// Where the path and query start.
    path_at: usize,
}

impl CacheKey {
    pub fn new(method: &str, host: &str, path_and_query: &str) -> Self {
        let mut text = String::with_capacity(method.len() + host.len() + path_and_query.len());
        text.push_str(method);
        text.push_str(host);
        text.push_str(path_and_query);
        Self {
            text: text.into_boxed_str(),
            host_at: method.len(),
            path_at: method.len() + host.len(),
        }
    }

    pub fn method(&self) -> &str {
        &self.text[..self.host_at]
    }

    pub fn host(&self) -> &str {
        &self.text[self.host_at..self.path_at]
    }

    pub fn path_and_query(&self) -> &str {
        &self.text[self.path_at..]
    }

    /// Hash of the URL alone: every variant of a URL shares it.
    pub fn primary_hash(&self) -> Hash {
        self.view().primary_hash()
    }

    /// The key's parts, borrowed.
    pub fn view(&self) -> KeyView<'_> {
        KeyView {
            method: self.method(),
            host: self.host(),
            path_and_query: self.path_and_query(),
        }
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("method", &self.method())
            .field("host", &self.host())
            .field("path_and_query", &self.path_and_query())
            .finish()
    }
}

impl Serialize for CacheKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut key = serializer.serialize_struct("CacheKey", 3)?;
        key.serialize_field("method", self.method())?;
        key.serialize_field("host", self.host())?;
        key.serialize_field("path_and_query", self.path_and_query())?;
        key.end()
    }
}

/// A key as written: its parts borrowed from the input where they can be.
#[derive(Deserialize)]
#[serde(rename = "CacheKey")]
struct WrittenKey<'a> {
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    host: Cow<'a, str>,
    #[serde(borrow)]
    path_and_query: Cow<'a, str>,
}

impl<'de> Deserialize<'de> for CacheKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let key = WrittenKey::deserialize(deserializer)?;
        Ok(Self::new(&key.method, &key.host, &key.path_and_query))
    }
}

/// A cache key's parts borrowed from where they are: a fresh hit is found
/// and judged without a copy of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyView<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path_and_query: &'a str,
}

impl KeyView<'_> {
    /// [`CacheKey::primary_hash`]: each part after its length.
    pub fn primary_hash(&self) -> Hash {
        let parts = [self.method, self.host, self.path_and_query];
        // Most URLs fit on the stack and are hashed at once, which costs
        // less than feeding a hasher part by part; the bytes are the same.
        let mut buffer = [0u8; 512];
        let mut len = 0;
        for part in parts {
            let end = len + 8 + part.len();
            let Some(room) = buffer.get_mut(len..end) else {
                return Self::hash_parts(parts);
            };
            room[..8].copy_from_slice(&(part.len() as u64).to_le_bytes());
            room[8..].copy_from_slice(part.as_bytes());
            len = end;
        }
        recent_hashes::remembered(&buffer[..len], |text| *blake3::hash(text).as_bytes())
    }

    fn hash_parts(parts: [&str; 3]) -> Hash {
        let mut h = blake3::Hasher::new();
        for part in parts {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        *h.finalize().as_bytes()
    }

    /// The owned key, for what outlives the request's borrow.
    pub fn to_key(&self) -> CacheKey {
        CacheKey::new(self.method, self.host, self.path_and_query)
    }
}

impl<'a> From<&'a CacheKey> for KeyView<'a> {
    fn from(key: &'a CacheKey) -> Self {
        key.view()
    }
}

/// The request header values a response varies on, in the order of its
/// (normalised) `Vary` names; `None` where the request lacked the header.
/// Values are bytes: field values need not be UTF-8, and two that differ
/// in any byte select different variants.
pub type VaryValues = Vec<(String, Option<Vec<u8>>)>;

/// Lower-cased, de-duplicated, sorted header names from a response's `Vary`
/// headers; `None` for `Vary: *`, which no request can match.
pub fn vary_names(response_headers: &HeaderMap) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for value in response_headers.get_all("vary") {
        let text = value.to_str().unwrap_or("*");
        for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if name == "*" {
                return None;
            }
            names.push(name.to_ascii_lowercase());
        }
    }
    names.sort();
    names.dedup();
    Some(names)
}

/// The request's values of the named headers, normalised only in ways that
/// keep their meaning (RFC 9110 §5.3, §5.6.1): all field lines of a header
/// joined with ", " and optional white space around list items removed
/// (never inside a quoted string). Every other byte is kept as it is, but
/// in `Accept-Language` (see [`language_range`]) and `Accept-Encoding`,
/// which is reduced to the one coding the client gets (present or not:
/// see [`encoding::normalised`]), so it selects at most four variants.
pub fn vary_values(names: &[String], request_headers: &HeaderMap) -> VaryValues {
    names
        .iter()
        .map(|name| {
            let value = vary_value(name, request_headers).map(Cow::into_owned);
            (name.clone(), value)
        })
        .collect()
}

/// Whether the request selects the variant stored with `stored` (its
/// [`vary_values`]), found without building the request's values: a hit
/// on a variant of the memory tier makes none.
pub fn vary_matches(stored: &VaryValues, request_headers: &HeaderMap) -> bool {
    stored
        .iter()
        .all(|(name, value)| vary_value(name, request_headers).as_deref() == value.as_deref())
}

/// The request's value of the header `name`, as [`vary_values`] has it.
fn vary_value(name: &str, request_headers: &HeaderMap) -> Option<Cow<'static, [u8]>> {
    if name == encoding::VARY_NAME {
        let token = encoding::normalised(request_headers);
        return Some(Cow::Borrowed(token.as_bytes()));
    }
    let mut joined: Option<Vec<u8>> = None;
    for value in request_headers.get_all(name) {
        for item in list_items(value.as_bytes()) {
            let out = match &mut joined {
                Some(out) => {
                    out.extend_from_slice(b", ");
                    out
                }
                None => joined.insert(Vec::new()),
            };
            let item = item.trim_ascii();
            if name == "accept-language" {
                out.extend_from_slice(&language_range(item));
            } else {
                out.extend_from_slice(item);
            }
        }
    }
    joined.map(Cow::Owned)
}

/// One `Accept-Language` item in a form that keeps its meaning: lower case
/// (language ranges and the `q` name are case-insensitive, RFC 4647 §2,
/// RFC 9110 §12.4.2), no white space around `;` and `=`, and the weight
/// spelled the shortest way (`q=0.50` is `q=0.5`, `q=1.000` is no weight at
/// all). Items are never reordered. An item that is not
/// `range *(OWS ";" OWS "q=" qvalue)` is only lower-cased.
fn language_range(item: &[u8]) -> Vec<u8> {
    let lower = item.to_ascii_lowercase();
    let mut parts = lower.split(|&b| b == b';').map(<[u8]>::trim_ascii);
    let range = parts.next().unwrap_or_default().to_vec();
    let mut out = range;
    for param in parts {
        let weight = param
            .strip_prefix(b"q")
            .map(<[u8]>::trim_ascii_start)
            .and_then(|rest| rest.strip_prefix(b"="))
            .map(<[u8]>::trim_ascii)
            .and_then(qvalue);
        match weight {
            Some(q) if q.is_empty() => {}
            Some(q) => {
                out.extend_from_slice(b";q=");
                out.extend_from_slice(&q);
            }
            None => return lower,
        }
    }
    out
}

/// A qvalue (RFC 9110 §12.4.2: `0[.ddd]` or `1[.000]`) in its shortest
/// spelling; empty for 1, the default weight; `None` when invalid.
fn qvalue(text: &[u8]) -> Option<Vec<u8>> {
    let (int, frac) = match text.iter().position(|&b| b == b'.') {
        Some(dot) => (&text[..dot], &text[dot + 1..]),
        None => (text, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let frac = &frac[..frac.len() - frac.iter().rev().take_while(|&&b| b == b'0').count()];
    match (int, frac.is_empty()) {
        (b"1", true) => Some(Vec::new()),
        (b"0", true) => Some(b"0".to_vec()),
        (b"0", false) => Some([b"0.", frac].concat()),
        _ => None,
    }
}

/// A field value split at the commas that separate list items: those
/// outside quoted strings (RFC 9110 §5.6.4, with `\` escapes).
fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (mut quoted, mut escaped) = (false, false);
    value.split(move |&b| {
        match (quoted, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (_, false, b'"') => quoted = !quoted,
            (false, _, b',') => return true,
            _ => {}
        }
        false
    })
}

/// Identifies one stored variant: the URL's hash and the hash of its vary values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VariantKey {
    pub primary: Hash,
    pub variant: Hash,
}

impl VariantKey {
    pub fn new(key: &CacheKey, vary: &VaryValues) -> Self {
        Self {
            primary: key.primary_hash(),
            variant: variant_hash(vary),
        }
    }

    /// `<primary>-<variant>` in hex: the entry's file name.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}",
            blake3::Hash::from(self.primary).to_hex(),
            blake3::Hash::from(self.variant).to_hex()
        )
    }

    /// Parses a name made by [`VariantKey::file_name`].
    pub fn from_file_name(name: &str) -> Option<Self> {
        let (p, v) = name.split_once('-')?;
        Some(Self {
            primary: *blake3::Hash::from_hex(p).ok()?.as_bytes(),
            variant: *blake3::Hash::from_hex(v).ok()?.as_bytes(),
        })
    }
}

/// Hash of a request's vary values: what selects a variant under a URL.
pub fn variant_hash(vary: &VaryValues) -> Hash {
    // Most responses vary on nothing: their variant hash is made once.
    static NO_VARY: LazyLock<Hash> = LazyLock::new(|| *blake3::Hasher::new().finalize().as_bytes());
    if vary.is_empty() {
        return *NO_VARY;
    }
    let mut h = blake3::Hasher::new();
    for (name, value) in vary {
        h.update(&(name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        match value {
            Some(v) => {
                h.update(&[1]);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v);
            }
            None => {
                h.update(&[0]);
            }
        }
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::test_headers as headers;

    /// The key as it was declared: what earlier entry heads hold.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct ThreeStrings {
        method: String,
        host: String,
        path_and_query: String,
    }

    #[test]
    fn a_key_is_written_and_read_as_its_three_strings_were() {
        let key = CacheKey::new("GET", "example.com", "/a?b=ü");
        assert_eq!(
            (key.method(), key.host(), key.path_and_query()),
            ("GET", "example.com", "/a?b=ü")
        );
        let three = ThreeStrings {
            method: "GET".into(),
            host: "example.com".into(),
            path_and_query: "/a?b=ü".into(),
        };
        let written = postcard::to_stdvec(&three).expect("written");
        assert_eq!(postcard::to_stdvec(&key).expect("written"), written);
        let read: CacheKey = postcard::from_bytes(&written).expect("read");
        assert_eq!(read, key);
        let json = serde_json::to_string(&key).expect("json");
        assert_eq!(json, serde_json::to_string(&three).expect("json"));
        assert_eq!(serde_json::from_str::<CacheKey>(&json).expect("read"), key);
        // Parts that run together are still told apart.
        assert_ne!(
            CacheKey::new("GET", "ab", "/c"),
            CacheKey::new("GET", "a", "b/c")
        );
    }

    #[test]
    fn vary_names_are_normalised_and_star_is_none() {
        let h = headers(&[("vary", "Accept-Encoding, accept"), ("vary", "ACCEPT")]);
        assert_eq!(
            vary_names(&h),
            Some(vec!["accept".to_owned(), "accept-encoding".to_owned()])
        );
        assert_eq!(vary_names(&headers(&[("vary", "accept, *")])), None);
        assert_eq!(vary_names(&headers(&[])), Some(vec![]));
    }

    #[test]
    fn variants_differ_by_value_and_presence() {
        let key = CacheKey::new("GET", "a", "/x");
        let names = vec!["accept".to_owned()];
        let html = vary_values(&names, &headers(&[("accept", "text/html ,*/*")]));
        let html2 = vary_values(&names, &headers(&[("Accept", "text/html, */*")]));
        let none = vary_values(&names, &headers(&[]));
        let empty = vary_values(&names, &headers(&[("accept", "")]));
        assert_eq!(VariantKey::new(&key, &html), VariantKey::new(&key, &html2));
        assert_ne!(VariantKey::new(&key, &html), VariantKey::new(&key, &none));
        assert_ne!(VariantKey::new(&key, &none), VariantKey::new(&key, &empty));
    }

    #[test]
    fn accept_encoding_selects_one_of_four_variants() {
        let key = CacheKey::new("GET", "a", "/x");
        let names = vec!["accept-encoding".to_owned()];
        let with = |value: Option<&str>| {
            let pairs: Vec<(&str, &str)> =
                value.map(|v| ("accept-encoding", v)).into_iter().collect();
            vary_values(&names, &headers(&pairs))
        };
        let br = with(Some("br"));
        for same in [
            "gzip, deflate, br",
            "br;q=1, gzip;q=0.9",
            "*",
            "zstd, br, gzip",
        ] {
            assert_eq!(with(Some(same)), br, "{same}");
        }
        assert_eq!(br[0].1.as_deref(), Some(&b"br"[..]));
        assert_eq!(with(None), with(Some("identity")));
        assert_eq!(with(Some("nonsense;q=7")), with(None));
        let all: std::collections::HashSet<_> =
            ["br", "zstd", "gzip", "identity", "x;q=oops", "", "gzip;q=0"]
                .into_iter()
                .map(|v| VariantKey::new(&key, &with(Some(v))))
                .collect();
        assert_eq!(all.len(), 4);
    }

    #[test]
    fn values_that_are_not_utf8_never_share_a_variant() {
        use actix_web::http::header::{HeaderName, HeaderValue};
        let names = vec!["x-user".to_owned()];
        let with = |value: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static("x-user"),
                HeaderValue::from_bytes(value).expect("value"),
            );
            vary_values(&names, &h)
        };
        let (ff, fe) = (with(b"alice\xff"), with(b"alice\xfe"));
        assert_ne!(ff, fe);
        assert_ne!(variant_hash(&ff), variant_hash(&fe));
        assert_eq!(ff[0].1.as_deref(), Some(&b"alice\xff"[..]));
        assert_ne!(variant_hash(&with(b"\xef\xbf\xbd")), variant_hash(&ff));
        // White space around items goes; inside a quoted string it stays.
        assert_eq!(with(b"a ,b"), with(b"a, b"));
        assert_ne!(with(b"\"a , b\""), with(b"\"a, b\""));
        assert_ne!(with(b"\"a\\\" , b\""), with(b"\"a\\\", b\""));
        assert_eq!(with(b"\"x\" ,y")[0].1.as_deref(), Some(&b"\"x\", y"[..]));
    }

    #[test]
    fn accept_language_is_normalised_by_case_spacing_and_weight_spelling() {
        let names = vec!["accept-language".to_owned()];
        let with = |value: &str| vary_values(&names, &headers(&[("accept-language", value)]));
        let canonical = with("en-us,fr;q=0.5");
        assert_eq!(canonical[0].1.as_deref(), Some(&b"en-us, fr;q=0.5"[..]));
        for same in [
            "en-US, fr;q=0.5",
            "EN-us , FR ; Q = 0.50",
            "en-US;q=1.000, fr;q=0.500",
            "en-us;q=1,fr;q=0.5",
        ] {
            assert_eq!(with(same), canonical, "{same}");
        }
        // Order and weights keep their meaning.
        assert_ne!(with("fr;q=0.5, en-us"), canonical);
        assert_ne!(with("en-us, fr;q=0.6"), canonical);
        assert_ne!(with("en-us, fr"), canonical);
        // Not a weight: only lower-cased.
        assert_eq!(with("EN;Q=2")[0].1.as_deref(), Some(&b"en;q=2"[..]));
        assert_eq!(
            with("en;q=0.5000")[0].1.as_deref(),
            Some(&b"en;q=0.5000"[..])
        );
        // Other fields keep their case.
        let accept = vec!["accept".to_owned()];
        assert_ne!(
            vary_values(&accept, &headers(&[("accept", "Text/HTML")])),
            vary_values(&accept, &headers(&[("accept", "text/html")]))
        );
    }

    #[test]
    fn file_names_round_trip_and_hide_user_text() {
        let key = CacheKey::new("GET", "a", "/../../etc/passwd");
        let vk = VariantKey::new(&key, &vec![]);
        let name = vk.file_name();
        assert!(name.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        assert_eq!(VariantKey::from_file_name(&name), Some(vk));
        assert_eq!(VariantKey::from_file_name("x.tmp"), None);
        assert_ne!(
            CacheKey::new("GET", "ab", "/c").primary_hash(),
            CacheKey::new("GET", "a", "b/c").primary_hash()
        );
    }

    #[test]
    fn a_url_hashes_the_same_on_the_stack_or_part_by_part() {
        // Stored files are named by this hash: it never changes with how
        // long the URL is.
        for len in [0, 1, 472, 473, 474, 600, 10_000] {
            let path = format!("/{}", "p".repeat(len));
            let key = CacheKey::new("GET", "example.com", &path);
            let by_parts = KeyView::hash_parts(["GET", "example.com", &path]);
            assert_eq!(key.primary_hash(), by_parts, "{len}");
            assert_eq!(key.view().to_key(), key);
        }
    }
}
