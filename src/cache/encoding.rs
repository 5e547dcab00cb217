//! Compression at the edge, as decisions: which content coding a client
//! gets (its `Accept-Encoding` reduced to one of the four caje makes, so
//! the header selects at most four variants), whether a stored response
//! may be compressed, and the head of a compressed variant (its coding,
//! its `Vary`, its validator made weak: RFC 9110 §8.8.3). The codecs
//! themselves are in `crate::codec`.

use actix_web::http::header::{self, HeaderMap, HeaderValue};

use super::key::{self, CacheKey, VariantKey, VaryValues};
use super::{directives, EntryHead};

/// The `Vary` name caje adds to the responses it may compress.
pub const VARY_NAME: &str = "accept-encoding";

/// The content codings caje stores a response in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Brotli,
    Zstd,
    Gzip,
    Identity,
}

impl Encoding {
    /// The compressed codings, in the order that breaks a tie in weight.
    pub const COMPRESSED: [Encoding; 3] = [Self::Brotli, Self::Zstd, Self::Gzip];

    /// Its content-coding token (RFC 9110 §8.4.1).
    pub fn token(self) -> &'static str {
        match self {
            Self::Brotli => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
            Self::Identity => "identity",
        }
    }

    /// The coding a `Content-Encoding` or `Accept-Encoding` token names
    /// (`x-gzip` is `gzip`, RFC 9110 §8.4.1.3); `None` for any other.
    fn from_token(token: &[u8]) -> Option<Self> {
        // Compared without case, not lowered into a copy: read per request.
        const TOKENS: [(&[u8], Encoding); 5] = [
            (b"br", Encoding::Brotli),
            (b"zstd", Encoding::Zstd),
            (b"gzip", Encoding::Gzip),
            (b"x-gzip", Encoding::Gzip),
            (b"identity", Encoding::Identity),
        ];
        TOKENS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(token))
            .map(|(_, coding)| *coding)
    }

    /// The coding a stored head's `Accept-Encoding` vary value names.
    pub fn of_vary(vary: &VaryValues) -> Option<Self> {
        vary.iter()
            .find(|(name, _)| name == VARY_NAME)
            .and_then(|(_, value)| value.as_deref())
            .and_then(Self::from_token)
    }
}

/// The coding a client gets, from its `Accept-Encoding` field lines
/// (RFC 9110 §12.5.3): the compressed coding of highest weight, ties broken
/// br > zstd > gzip, unless `identity` weighs more; `identity` when the
/// field is absent or empty or accepts none of them. An item that does not
/// parse is ignored, so no header can make this fail.
pub fn preferred<'a>(accept_encoding: impl Iterator<Item = &'a [u8]>) -> Encoding {
    // Weights in thousandths; `None`: the coding is not named.
    let mut named: [Option<u16>; 4] = [None; 4];
    let mut star: Option<u16> = None;
    let mut any = false;
    for value in accept_encoding {
        for item in value.split(|&b| b == b',') {
            let mut parts = item.split(|&b| b == b';').map(<[u8]>::trim_ascii);
            let coding = parts.next().unwrap_or_default();
            if coding.is_empty() {
                continue;
            }
            let Some(weight) = weight(parts) else {
                continue;
            };
            any = true;
            let slot = if coding == b"*" {
                &mut star
            } else {
                match Encoding::from_token(coding) {
                    Some(e) => &mut named[e as usize],
                    None => continue,
                }
            };
            // Named twice: the higher weight counts.
            *slot = Some(slot.map_or(weight, |w| w.max(weight)));
        }
    }
    if !any {
        return Encoding::Identity;
    }
    let weight_of = |e: Encoding| named[e as usize].or(star).unwrap_or(0);
    // identity is acceptable unless excluded (by name or by `*;q=0`), but
    // beats an acceptable compressed coding only when weighted above it.
    let identity = named[Encoding::Identity as usize]
        .or(star)
        .unwrap_or(1)
        .max(1);
    let best = Encoding::COMPRESSED
        .into_iter()
        .filter(|&e| weight_of(e) > 0)
        .max_by(|&a, &b| {
            // `max_by` keeps the last of equals: compare reversed ranks on ties.
            weight_of(a)
                .cmp(&weight_of(b))
                .then((b as usize).cmp(&(a as usize)))
        });
    match best {
        Some(e) if weight_of(e) >= identity => e,
        _ => Encoding::Identity,
    }
}

/// An item's weight in thousandths from its parameters (`q=1` when it has
/// none); `None` when a `q` is not a valid qvalue (RFC 9110 §12.4.2).
fn weight<'a>(params: impl Iterator<Item = &'a [u8]>) -> Option<u16> {
    let mut weight = 1000;
    for param in params {
        let Some((name, value)) = split_once(param, b'=') else {
            continue;
        };
        if !name.trim_ascii().eq_ignore_ascii_case(b"q") {
            continue;
        }
        weight = qvalue(value.trim_ascii())?;
    }
    Some(weight)
}

fn split_once(bytes: &[u8], at: u8) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == at)?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

/// `0[.ddd]` or `1[.000]` in thousandths.
fn qvalue(text: &[u8]) -> Option<u16> {
    let (int, frac) = split_once(text, b'.').unwrap_or((text, b""));
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The coding a request gets (see [`preferred`]); identity when the
/// request says `no-transform` (RFC 9111 §5.2.1.6): a coding caje made
/// would be a transformation.
pub fn for_request(request_headers: &HeaderMap) -> Encoding {
    if request_headers.contains_key(header::CACHE_CONTROL)
        && directives::request(request_headers).has("no-transform")
    {
        return Encoding::Identity;
    }
    preferred(
        request_headers
            .get_all(header::ACCEPT_ENCODING)
            .map(HeaderValue::as_bytes),
    )
}

/// The normalised `Accept-Encoding` of a request: the token of the coding
/// it gets. Both the cache key and the origin see only this.
pub fn normalised(request_headers: &HeaderMap) -> &'static str {
    for_request(request_headers).token()
}

/// Whether a media type is worth compressing: text, JSON, JavaScript,
/// XML (SVG among them) and WebAssembly.
pub fn compressible_type(content_type: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(content_type) else {
        return false;
    };
    let essence = text.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || subtype.ends_with("+json")
        || subtype.ends_with("+xml")
        || matches!(
            (kind, subtype),
            ("application", "json")
                | ("application", "javascript")
                | ("application", "x-javascript")
                | ("application", "ecmascript")
                | ("application", "xml")
                | ("application", "wasm")
        )
}

/// Whether caje may compress a stored response whose body is `len` bytes
/// long (`None`: not known yet) when its origin compresses from `min_len`
/// bytes: a 200 in no content coding yet, of a compressible type, whose
/// origin did not forbid transforming it (`no-transform`, RFC 9110 §7.7).
pub fn may_compress(head: &EntryHead, len: Option<u64>, min_len: u64) -> bool {
    let coded = head
        .field("content-encoding")
        .is_some_and(|c| !c.trim_ascii().eq_ignore_ascii_case(b"identity"));
    let (cache_control, _) = directives::response(&head.header_map());
    head.status == 200
        && !coded
        && head.field("content-range").is_none()
        && head.field("content-type").is_some_and(compressible_type)
        && !cache_control.has("no-transform")
        && len.is_none_or(|len| len >= min_len)
}

/// Marks an admitted head as the identity variant of a response caje will
/// compress: it varies on `Accept-Encoding` (added to the origin's `Vary`,
/// never replacing it) and is selected by `identity`, whichever coding the
/// client that fetched it prefers.
pub fn mark_compressible(head: &mut EntryHead) {
    add_vary(&mut head.headers);
    set_coding(&mut head.vary, Encoding::Identity);
}

/// `Vary` with `Accept-Encoding` named, merged into the fields' own.
fn add_vary(headers: &mut Vec<(String, Vec<u8>)>) {
    let named = headers.iter().any(|(name, value)| {
        name == "vary"
            && value
                .split(|&b| b == b',')
                .any(|n| n.trim_ascii().eq_ignore_ascii_case(VARY_NAME.as_bytes()))
    });
    if !named {
        headers.push(("vary".to_owned(), b"Accept-Encoding".to_vec()));
    }
}

/// The `Vary` fields of a response caje marked, for the answer streamed to
/// the client that fetched it.
pub fn vary_field(headers: &mut HeaderMap) {
    let named = key::vary_names(headers).is_none_or(|n| n.iter().any(|n| n == VARY_NAME));
    if !named {
        headers.append(
            actix_web::http::header::VARY,
            HeaderValue::from_static("Accept-Encoding"),
        );
    }
}

/// The vary values with `Accept-Encoding` set to `coding`, in the sorted
/// place of its name.
fn set_coding(vary: &mut VaryValues, coding: Encoding) {
    let value = Some(coding.token().as_bytes().to_vec());
    match vary.binary_search_by(|(name, _)| name.as_str().cmp(VARY_NAME)) {
        Ok(i) => vary[i].1 = value,
        Err(i) => vary.insert(i, (VARY_NAME.to_owned(), value)),
    }
}

/// The key of the same variant in another coding.
pub fn sibling(key: &CacheKey, vary: &VaryValues, coding: Encoding) -> (VariantKey, VaryValues) {
    let mut vary = vary.clone();
    set_coding(&mut vary, coding);
    (VariantKey::new(key, &vary), vary)
}

/// The compressed variants an identity variant's newer body makes out of
/// date (none unless the head is one caje compresses).
pub fn derived_from(head: &EntryHead) -> Vec<VariantKey> {
    if Encoding::of_vary(&head.vary) != Some(Encoding::Identity) {
        return Vec::new();
    }
    Encoding::COMPRESSED
        .into_iter()
        .map(|coding| sibling(&head.key, &head.vary, coding).0)
        .collect()
}

/// Fields that digest the bytes sent (or the representation, whose
/// content coding is part of it): the origin's are wrong for caje's bytes.
const DIGESTS: [&str; 4] = ["content-digest", "repr-digest", "digest", "content-md5"];

/// The head of the `coding` variant made from a stored identity head:
/// its digests dropped, `Content-Encoding` set, selected by `coding`, a strong `ETag` made weak
/// (the compressed bytes differ, so no strong validator may be shared;
/// a weak one still matches the origin's in `If-None-Match`). Freshness
/// is the identity variant's: it is the same response.
pub fn compressed_head(identity: &EntryHead, coding: Encoding) -> EntryHead {
    let mut head = identity.clone();
    head.headers
        .retain(|(name, _)| name != "content-encoding" && !DIGESTS.contains(&name.as_str()));
    for (name, value) in &mut head.headers {
        if name == "etag" && !value.starts_with(b"W/") {
            value.splice(0..0, *b"W/");
        }
    }
    head.headers.push((
        "content-encoding".to_owned(),
        coding.token().as_bytes().to_vec(),
    ));
    add_vary(&mut head.headers);
    set_coding(&mut head.vary, coding);
    head
}

/// After a 304, a validator the stored variant held weak stays weak: the
/// origin's strong tag is for its own bytes, not for caje's compressed ones.
pub fn keep_weak(stored: &EntryHead, headers: &mut [(String, Vec<u8>)]) {
    let stored_weak = stored
        .field("etag")
        .is_some_and(|tag| tag.starts_with(b"W/"));
    if !stored_weak {
        return;
    }
    for (name, value) in headers {
        if name == "etag" && !value.starts_with(b"W/") {
            value.splice(0..0, *b"W/");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(values: &[&str]) -> &'static str {
        preferred(values.iter().map(|v| v.as_bytes())).token()
    }

    #[test]
    fn the_client_s_preference_then_br_zstd_gzip() {
        assert_eq!(pick(&["gzip, deflate, br, zstd"]), "br");
        assert_eq!(pick(&["gzip, deflate"]), "gzip");
        assert_eq!(pick(&["gzip;q=1.0, br;q=0.5"]), "gzip");
        assert_eq!(pick(&["zstd, gzip"]), "zstd");
        assert_eq!(pick(&["gzip", "br"]), "br");
        assert_eq!(pick(&["X-GZIP"]), "gzip");
        assert_eq!(pick(&["BR ; Q=0.9, gzip;q=0.8"]), "br");
        assert_eq!(pick(&["*"]), "br");
        assert_eq!(pick(&["*;q=0.5, br;q=0"]), "zstd");
    }

    #[test]
    fn identity_when_nothing_else_is_wanted() {
        assert_eq!(pick(&[]), "identity");
        assert_eq!(pick(&[""]), "identity");
        assert_eq!(pick(&["identity"]), "identity");
        assert_eq!(pick(&["deflate, compress"]), "identity");
        assert_eq!(pick(&["br;q=0, gzip;q=0"]), "identity");
        assert_eq!(pick(&["gzip;q=0.5, identity"]), "identity");
        // Excluding identity never leaves a client with nothing.
        assert_eq!(pick(&["identity;q=0"]), "identity");
        assert_eq!(pick(&["gzip, identity;q=0"]), "gzip");
        assert_eq!(pick(&["*;q=0"]), "identity");
    }

    #[test]
    fn hostile_values_are_ignored_never_an_error() {
        assert_eq!(pick(&["br;q=2"]), "identity");
        assert_eq!(pick(&["br;q=0.0001, gzip"]), "gzip");
        assert_eq!(pick(&["br;q=abc, gzip;q=0.1"]), "gzip");
        assert_eq!(pick(&[",,,;;;==="]), "identity");
        assert_eq!(pick(&["br;q=1;q=0"]), "identity");
        assert_eq!(pick(&["\u{1}br\u{2}"]), "identity");
        let long = "gzip;q=0.5,".repeat(10_000);
        assert_eq!(pick(&[&long]), "gzip");
        let bytes: &[u8] = b"br\xff, gzip";
        assert_eq!(preferred([bytes].into_iter()).token(), "gzip");
    }

    #[test]
    fn compressible_types() {
        for yes in [
            "text/html; charset=utf-8",
            "TEXT/CSS",
            "application/json",
            "application/ld+json",
            "application/javascript",
            "image/svg+xml",
            "application/wasm",
            "application/xml",
        ] {
            assert!(compressible_type(yes.as_bytes()), "{yes}");
        }
        for no in [
            "image/png",
            "application/octet-stream",
            "video/mp4",
            "",
            "text",
        ] {
            assert!(!compressible_type(no.as_bytes()), "{no}");
        }
    }

    fn head(fields: &[(&str, &str)]) -> EntryHead {
        let key = CacheKey::new("GET", "a", "/x");
        let map = crate::cache::test_headers(fields);
        let answer = crate::cache::admit::OriginAnswer {
            status: actix_web::http::StatusCode::OK,
            headers: &map,
            passed_on: &map,
        };
        let rules = crate::cache::admit::AdmitRules {
            cache_set_cookie: false,
            heuristic: None,
            cache_client_errors: false,
            freshness: &crate::cache::freshness_rules::FreshnessRules::NONE,
            compress_from: None,
        };
        crate::cache::admit::admit(&key, &HeaderMap::new(), &answer, rules)
            .expect("stored")
            .0
    }

    #[test]
    fn only_plain_compressible_answers_are_compressed() {
        let text = [
            ("cache-control", "max-age=60"),
            ("content-type", "text/html"),
        ];
        assert!(may_compress(&head(&text), Some(2000), 1024));
        assert!(may_compress(&head(&text), None, 1024));
        assert!(!may_compress(&head(&text), Some(100), 1024));
        let coded = [
            ("cache-control", "max-age=60"),
            ("content-type", "text/html"),
            ("content-encoding", "gzip"),
        ];
        assert!(!may_compress(&head(&coded), Some(2000), 1024));
        let no_transform = [
            ("cache-control", "max-age=60, no-transform"),
            ("content-type", "text/html"),
        ];
        assert!(!may_compress(&head(&no_transform), Some(2000), 1024));
        let image = [
            ("cache-control", "max-age=60"),
            ("content-type", "image/png"),
        ];
        assert!(!may_compress(&head(&image), Some(2000), 1024));
    }

    #[test]
    fn a_compressed_head_merges_vary_and_weakens_its_etag() {
        let mut identity = head(&[
            ("cache-control", "max-age=60"),
            ("content-type", "text/html"),
            ("etag", "\"v1\""),
            ("vary", "Accept-Language"),
            ("content-digest", "sha-256=:AAAA:"),
        ]);
        mark_compressible(&mut identity);
        assert_eq!(Encoding::of_vary(&identity.vary), Some(Encoding::Identity));
        let br = compressed_head(&identity, Encoding::Brotli);
        assert_eq!(br.field("etag"), Some(&b"W/\"v1\""[..]));
        assert_eq!(br.field("content-encoding"), Some(&b"br"[..]));
        assert_eq!(br.field("content-digest"), None);
        assert!(identity.field("content-digest").is_some());
        let varies: Vec<&[u8]> = br
            .headers
            .iter()
            .filter(|(n, _)| n == "vary")
            .map(|(_, v)| v.as_slice())
            .collect();
        assert_eq!(varies, [&b"Accept-Language"[..], b"Accept-Encoding"]);
        assert_eq!(Encoding::of_vary(&br.vary), Some(Encoding::Brotli));
        assert_eq!(
            key::vary_names(&br.header_map()),
            Some(vec!["accept-encoding".into(), "accept-language".into()])
        );
        assert!(derived_from(&identity).contains(&VariantKey::new(&br.key, &br.vary)));
        assert!(derived_from(&br).is_empty());
        // A 304's strong tag does not make it strong again.
        let mut after = vec![("etag".to_owned(), b"\"v1\"".to_vec())];
        keep_weak(&br, &mut after);
        assert_eq!(after[0].1, b"W/\"v1\"");
        let mut plain = vec![("etag".to_owned(), b"\"v1\"".to_vec())];
        keep_weak(&identity, &mut plain);
        assert_eq!(plain[0].1, b"\"v1\"");
    }
}
