//! Properties easier to state over generated values than to fuzz: cache file
//! names, `Cache-Control` parsing against a model, ranges against a model,
//! entry files, and the numbers an origin controls (`Age`, `max-age`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use caje::cache::directives::{self, Directives};
use caje::cache::entry::{self, EntryError, PREFIX_LEN};
use caje::cache::http_compat;
use caje::cache::key::VaryValues;
use caje::cache::range::{self, ByteRange, RangeAnswer};
use caje::cache::{freshness, policy, CacheKey, CacheStatus, EntryHead, VariantKey};
use http_cache_semantics::CachePolicy;
use proptest::prelude::*;

#[path = "support/date_forms.rs"]
mod date_forms;
use date_forms::date_forms;

/// Numbers as an origin may write them: any `u64` (half of them beyond
/// `i64`), or digit strings of any length (leading zeros, overflowing).
fn delta_seconds() -> impl Strategy<Value = String> {
    prop_oneof![any::<u64>().prop_map(|n| n.to_string()), "[0-9]{1,30}"]
}

/// `cases` cases; a failure is shrunk and printed, not saved to a file.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn vary_values() -> impl Strategy<Value = VaryValues> {
    let value = prop::collection::vec(any::<u8>(), 0..8);
    prop::collection::vec((".*", prop::option::of(value)), 0..4)
}

proptest! {
    #![proptest_config(config(256))]

    /// Any key and vary values: the file name is 129 characters of
    /// lower-case hex and one dash (no user text reaches a path), and
    /// parses back to the same key.
    #[test]
    fn file_names_round_trip(method in ".*", host in ".*", path in ".*", vary in vary_values()) {
        let vk = VariantKey::new(&CacheKey::new(&method, &host, &path), &vary);
        let name = vk.file_name();
        prop_assert_eq!(name.len(), 129);
        prop_assert!(name.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f' | '-')));
        prop_assert_eq!(VariantKey::from_file_name(&name), Some(vk));
    }

    /// Moving text across a part boundary gives another key and another
    /// hash: the parts are length-prefixed, not just concatenated.
    #[test]
    fn keys_hash_their_parts_apart(a in "[a-z/]{0,6}", b in "[a-z/]{1,6}", c in "[a-z/]{0,6}") {
        let whole = CacheKey::new("GET", &a, &format!("{b}{c}"));
        let moved = CacheKey::new("GET", &format!("{a}{b}"), &c);
        prop_assert_ne!(whole.primary_hash(), moved.primary_hash());
        let one = VariantKey::new(&whole, &vec![(a.clone(), Some(b.clone().into_bytes()))]);
        let other = VariantKey::new(&whole, &vec![(format!("{a}{b}"), None)]);
        prop_assert_ne!(one.variant, other.variant);
    }
}

/// One directive as a generator writes it, and what it means.
#[derive(Debug, Clone)]
struct Member {
    name: String,
    arg: Option<String>,
    text: String,
}

fn member() -> impl Strategy<Value = Member> {
    let name = prop_oneof![
        Just("max-age".to_owned()),
        Just("s-maxage".to_owned()),
        Just("no-cache".to_owned()),
        Just("stale-if-error".to_owned()),
        "[A-Za-z][A-Za-z0-9_-]{0,8}",
    ];
    // Arguments as origins write them: numbers, tokens, quoted text with
    // spaces inside and white space around.
    let arg = prop_oneof![
        Just(None),
        "[0-9]{1,20}".prop_map(|n| Some((n.clone(), n))),
        "[a-z0-9-]{1,8}".prop_map(|t| Some((t.clone(), t))),
        "[a-z0-9 ]{0,8}".prop_map(|q| Some((format!("\"{q}\""), q))),
    ];
    (name, arg, " {0,2}", " {0,2}").prop_map(|(name, arg, before, after)| {
        let (text, arg) = match arg {
            None => (format!("{before}{name}{after}"), None),
            Some((written, meant)) => (format!("{before}{name}={written}{after}"), Some(meant)),
        };
        Member {
            name: name.to_ascii_lowercase(),
            arg,
            text,
        }
    })
}

proptest! {
    #![proptest_config(config(256))]

    /// `Directives::parse` reads what a model of the members says (first
    /// occurrence counts, names case-insensitive, quotes removed, a number
    /// with spaces inside its quotes is no number), and
    /// `parse(to_field(d)) == d`.
    #[test]
    fn directives_parse_as_modelled_and_print_back(members in prop::collection::vec(member(), 0..6), split in any::<prop::sample::Index>()) {
        let texts: Vec<String> = members.iter().map(|m| m.text.clone()).collect();
        // Spread over two field lines, as repeated header fields are.
        let at = split.index(texts.len() + 1);
        let lines = [texts[..at].join(","), texts[at..].join(",")];
        let d = Directives::parse(lines.iter().map(String::as_str));
        for m in &members {
            prop_assert!(d.has(&m.name));
            let first = members.iter().find(|o| o.name == m.name).and_then(|o| o.arg.clone());
            let seconds = first.and_then(|a| a.parse::<u64>().ok());
            prop_assert_eq!(d.seconds(&m.name), seconds, "{}", &m.name);
        }
        let field = d.to_field();
        prop_assert_eq!(Directives::parse([field.as_str()]), d.clone());
        prop_assert!(HeaderValue::from_str(&field).is_ok());
        // What the library is handed means the same as what caje read.
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(&lines.join(",")) {
            headers.insert(HeaderName::from_static("cache-control"), value);
        }
        let parts = http_compat::policy_response(StatusCode::OK, &headers);
        let handed: Vec<&str> = parts.headers.get_all("cache-control").iter().filter_map(|v| v.to_str().ok()).collect();
        let read = Directives::parse(handed);
        for name in ["max-age", "s-maxage", "stale-if-error"] {
            prop_assert_eq!(read.seconds(name), d.seconds(name));
        }
    }
}

/// One range-spec and the answer a model gives for it alone.
#[derive(Debug, Clone, Copy)]
enum Spec {
    Int(u64, Option<u64>),
    Suffix(u64),
}

impl Spec {
    fn text(self) -> String {
        match self {
            Spec::Int(first, Some(last)) => format!("{first}-{last}"),
            Spec::Int(first, None) => format!("{first}-"),
            Spec::Suffix(n) => format!("-{n}"),
        }
    }

    /// The bytes this spec selects of a `len`-byte body, if any (RFC 9110 §14.1.2).
    fn resolve(self, len: u64) -> Option<ByteRange> {
        match self {
            Spec::Int(first, _) if first >= len => None,
            Spec::Int(first, last) => Some(ByteRange {
                first,
                last: last.map_or(len - 1, |l| l.min(len - 1)),
            }),
            Spec::Suffix(0) => None,
            Spec::Suffix(_) if len == 0 => None,
            Spec::Suffix(n) => Some(ByteRange {
                first: len - n.min(len),
                last: len - 1,
            }),
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    let n = prop_oneof![0u64..2_000, any::<u64>()];
    prop_oneof![
        (n.clone(), prop::option::of(0u64..2_000))
            .prop_map(|(first, span)| Spec::Int(first, span.map(|s| first.saturating_add(s)))),
        n.prop_map(Spec::Suffix),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// A `Range` on a stored body: a 206 names only bytes of the body, and
    /// covers exactly the bytes of the satisfiable specs when they
    /// coalesce into one; 416 only when no spec is satisfiable; the whole
    /// body otherwise.
    #[test]
    fn ranges_never_leave_the_body(specs in prop::collection::vec(spec(), 1..5), len in prop_oneof![0u64..3_000, any::<u64>()]) {
        let texts: Vec<String> = specs.iter().map(|s| s.text()).collect();
        let value = format!("bytes={}", texts.join(", "));
        let answer = range::answer(Some(&value), None, len, None, None);
        let parts: Vec<ByteRange> = specs.iter().filter_map(|s| s.resolve(len)).collect();
        match answer {
            RangeAnswer::Partial(r) => {
                prop_assert!(r.first <= r.last && r.last < len, "{:?} of {}", r, len);
                prop_assert_eq!(r.first, parts.iter().map(|p| p.first).min().unwrap_or(u64::MAX));
                prop_assert_eq!(r.last, parts.iter().map(|p| p.last).max().unwrap_or(0));
                let covered = parts.iter().map(ByteRange::len).fold(0u64, u64::saturating_add);
                prop_assert!(covered >= r.len(), "no gap inside one part");
            }
            RangeAnswer::Unsatisfiable => {
                prop_assert!(parts.is_empty());
                let suffix_on_empty = len == 0 && specs.iter().any(|s| matches!(s, Spec::Suffix(n) if *n > 0));
                prop_assert!(!suffix_on_empty);
            }
            RangeAnswer::Full => {
                if let [only] = specs.as_slice() {
                    let empty_suffix = len == 0 && matches!(only, Spec::Suffix(n) if *n > 0);
                    prop_assert!(empty_suffix, "one valid spec is partial or 416");
                }
            }
        }
    }
}

fn head_strategy() -> impl Strategy<Value = (EntryHead, Vec<u8>)> {
    let key = (".{0,20}", ".{0,20}", ".{0,40}").prop_map(|(m, h, p)| CacheKey::new(&m, &h, &p));
    let headers = prop::collection::vec(
        ("[a-z-]{1,12}", prop::collection::vec(any::<u8>(), 0..40)),
        0..8,
    );
    let cache_control = prop_oneof![
        Just("max-age=60"),
        Just("no-cache"),
        Just("s-maxage=5, stale-while-revalidate=30"),
        Just("public, max-age=31536000, immutable"),
    ];
    (
        key,
        vary_values(),
        100u16..600,
        headers,
        cache_control,
        any::<u64>(),
        prop::collection::vec(".{0,10}", 0..4),
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(
            |(key, vary, status, headers, cc, stored_at_ms, tags, invalidated, body)| {
                let req = http1::Request::get("/x").body(()).expect("request");
                let res = http1::Response::builder()
                    .header("cache-control", cc)
                    .body(())
                    .expect("response");
                let at = UNIX_EPOCH + Duration::from_millis(stored_at_ms % 4_102_444_800_000);
                let head = EntryHead {
                    key,
                    vary,
                    status,
                    headers,
                    policy: CachePolicy::new_options(&req, &res, at, policy::options()),
                    stored_at_ms,
                    tags,
                    invalidated,
                };
                (head, body)
            },
        )
}

proptest! {
    #![proptest_config(config(128))]

    /// Any head and body written as an entry file read back equal; any
    /// shorter or longer file is refused as the wrong length.
    #[test]
    fn entries_round_trip((head, body) in head_strategy(), cut in any::<prop::sample::Index>()) {
        let bytes = caje::fuzzing::entry_bytes(&head, &body);
        let decoded = entry::decode_head(&mut &bytes[..], bytes.len() as u64).expect("decodes");
        prop_assert_eq!(&decoded.head.key, &head.key);
        prop_assert_eq!(&decoded.head.vary, &head.vary);
        prop_assert_eq!(decoded.head.status, head.status);
        prop_assert_eq!(&decoded.head.headers, &head.headers);
        prop_assert_eq!(decoded.head.stored_at_ms, head.stored_at_ms);
        prop_assert_eq!(&decoded.head.tags, &head.tags);
        prop_assert_eq!(decoded.head.invalidated, head.invalidated);
        prop_assert_eq!(&bytes[decoded.body_offset as usize..], &body[..]);
        let now = SystemTime::now();
        prop_assert_eq!(decoded.head.policy.time_to_live(now), head.policy.time_to_live(now));

        let short = &bytes[..cut.index(bytes.len())];
        let refused = entry::decode_head(&mut &short[..], short.len() as u64);
        prop_assert!(matches!(refused, Err(EntryError::Length { .. })), "{:?}", refused.map(|_| ()));
        let mut long = bytes.clone();
        long.push(0);
        let refused = entry::decode_head(&mut &long[..], long.len() as u64);
        let wrong_length = matches!(refused, Err(EntryError::Length { .. }));
        prop_assert!(wrong_length);
        prop_assert!(bytes.len() as u64 >= PREFIX_LEN);
    }

    /// Whatever `Age` and `max-age` an origin sends, every later hit can
    /// compute the age (no overflow), the `Cache-Status` ttl has the sign of
    /// the freshness left, and its header is a valid structured field.
    #[test]
    fn origin_numbers_never_overflow(age in delta_seconds(), max_age in delta_seconds(), later in any::<u64>()) {
        let mut headers = HeaderMap::new();
        for (name, value) in [("age", age.clone()), ("cache-control", format!("max-age={max_age}")), ("etag", "\"v\"".to_owned())] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_str(&value).expect("value"));
        }
        let key = CacheKey::new("GET", "example.com", "/");
        let now = SystemTime::now();
        let policy = CachePolicy::new_options(
            &http_compat::policy_request(&key, &HeaderMap::new(), &Vec::new()),
            &http_compat::policy_response(StatusCode::OK, &headers),
            now,
            policy::options(),
        );
        let stored_at_ms = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let then = now + Duration::from_secs(later % (1 << 40));
        let significant = age.trim_start_matches('0');
        let sent_age = if significant.is_empty() { 0 } else { significant.parse::<u64>().unwrap_or(u64::MAX) };
        let elapsed = then.duration_since(now).unwrap_or_default();
        prop_assert_eq!(policy.age(then), Duration::from_secs(sent_age.min(policy::MAX_AGE_SECONDS)) + elapsed);
        let ttl = freshness::signed_ttl(&policy, stored_at_ms, then);
        prop_assert_eq!(ttl > 0, policy.time_to_live(then).as_secs() > 0);
        let status = CacheStatus::hit(ttl).to_string();
        prop_assert!(HeaderValue::from_str(&status).is_ok());
        let digits = status.rsplit('=').next().unwrap_or("").trim_start_matches('-');
        prop_assert!(digits.len() <= 15, "{}", status);
    }
}

/// Strings shaped like `CDN-Cache-Control` (directive names caje knows,
/// Structured Field values of every type, stray punctuation) or anything.
fn targeted_field() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("max-age".to_owned()),
        Just("s-maxage".to_owned()),
        Just("no-store".to_owned()),
        Just("public".to_owned()),
        Just("stale-if-error".to_owned()),
        "[a-zA-Z*][a-z0-9_.*-]{0,6}",
    ];
    let value = prop_oneof![
        Just(String::new()),
        "=-?[0-9]{1,17}",
        "=-?[0-9]{1,3}\\.[0-9]{0,4}",
        "=\"[ -~]{0,6}\"",
        "=\\?[01]",
        "=[a-z*][a-z0-9:/]{0,4}",
        "=\\([a-z0-9 ]{0,6}\\)",
        "=[ -~]{0,4}",
    ];
    let member =
        (name, value, "(;[a-z]{1,3}(=[0-9a-z]{1,3})?)?").prop_map(|(n, v, p)| format!("{n}{v}{p}"));
    prop_oneof![
        prop::collection::vec(member, 0..5).prop_map(|m| m.join(", ")),
        ".*",
    ]
}

/// The policy's time to live at `now` for a response with these fields.
fn ttl(fields: &[(&'static str, &str)], now: SystemTime) -> Duration {
    let mut headers = HeaderMap::new();
    for (name, value) in fields {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).expect("value"),
        );
    }
    let key = CacheKey::new("GET", "example.com", "/");
    CachePolicy::new_options(
        &http_compat::policy_request(&key, &HeaderMap::new(), &Vec::new()),
        &http_compat::policy_response(StatusCode::OK, &headers),
        now,
        policy::options(),
    )
    .time_to_live(now)
}

proptest! {
    #![proptest_config(config(512))]

    /// Any `CDN-Cache-Control` either parses to directives caje uses whole
    /// (every delta-seconds directive with a number, printed and read back
    /// unchanged) or is ignored so that `Cache-Control` decides; never a panic.
    #[test]
    fn cdn_cache_control_is_used_whole_or_ignored(field in targeted_field()) {
        let Ok(value) = HeaderValue::from_str(&field) else { return Ok(()) };
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("cache-control"), HeaderValue::from_static("max-age=7"));
        headers.insert(HeaderName::from_static("cdn-cache-control"), value);
        let (used, targeted) = directives::response(&headers);
        match directives::targeted(&[field.as_str()]) {
            Some(d) => {
                prop_assert!(targeted);
                prop_assert_eq!(&used, &d);
                for name in ["max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"] {
                    prop_assert_eq!(d.has(name), d.seconds(name).is_some(), "{}", name);
                }
                prop_assert_eq!(Directives::parse([d.to_field().as_str()]), d);
            }
            None => {
                prop_assert!(!targeted);
                prop_assert_eq!(used.seconds("max-age"), Some(7));
            }
        }
    }

    /// IMF-fixdate, RFC 850 and asctime renderings of one `Expires` instant
    /// give the same freshness, counted from the response's `Date`.
    #[test]
    fn every_http_date_form_means_the_same_freshness(
        expires in 0u64..3_155_760_000,
        date in 0u64..3_155_760_000,
    ) {
        let now = UNIX_EPOCH + Duration::from_secs(date);
        let expires = UNIX_EPOCH + Duration::from_secs(expires);
        let expected = expires.duration_since(now).unwrap_or_default();
        let dates = date_forms(now);
        for form in date_forms(expires) {
            for date_form in &dates {
                let fields = [("expires", form.as_str()), ("date", date_form.as_str())];
                prop_assert_eq!(ttl(&fields, now), expected, "{} / {}", form, date_form);
            }
        }
    }
}

/// Queries from the bytes that matter to `ignore_query` / `sort_query`:
/// separators, escapes (`%26` is an encoded `&`), `+`, and names that the
/// globs below match or nearly match.
fn query() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("utm_a"),
        Just("utm"),
        Just("id"),
        Just("%75tm_b"),
        Just("x"),
        Just("="),
        Just("&"),
        Just("%26"),
        Just("%3D"),
        Just("+"),
        Just("1"),
    ];
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(config(2_000))]

    /// Normalised keys are a fixed point (keys travel between nodes and
    /// are normalised again), never hold an ignored parameter, and keep
    /// every kept pair byte for byte: two URLs share a key only if their
    /// kept pairs are the same up to `sort_query`'s order.
    #[test]
    fn query_keys_are_stable_and_unambiguous(a in query(), b in query(), sort in any::<bool>()) {
        use caje::cache::glob::Glob;
        use caje::cache::query::KeyRules;
        let rules = KeyRules { ignore: vec![Glob::new("utm_*")], sort };
        let key = |q: &str| rules.normalise(&format!("/p?{q}")).into_owned();
        let (ka, kb) = (key(&a), key(&b));
        prop_assert_eq!(rules.normalise(&ka).into_owned(), ka.clone());
        let pairs = |k: &str| -> Vec<String> {
            let mut pairs: Vec<String> = k
                .split_once('?')
                .map(|(_, q)| q.split('&').map(str::to_owned).collect())
                .unwrap_or_default();
            pairs.sort();
            pairs
        };
        for pair in pairs(&ka) {
            let name = pair.split('=').next().unwrap_or_default();
            prop_assert!(!(name.starts_with("utm_") || name.starts_with("%75tm_")), "{}", ka);
        }
        let kept = |q: &str| -> Vec<String> {
            let mut kept: Vec<String> = q
                .split('&')
                .filter(|p| {
                    let name = p.split('=').next().unwrap_or_default();
                    !(name.starts_with("utm_") || name.starts_with("%75tm_"))
                })
                .map(str::to_owned)
                .collect();
            if kept.iter().all(String::is_empty) && kept.len() <= 1 {
                kept.clear();
            }
            kept.sort();
            kept
        };
        if ka == kb {
            prop_assert_eq!(kept(&a), kept(&b), "{} and {} share {}", a, b, ka);
        }
    }
}

/// An `Accept-Encoding` item: a coding (or `*`) and its weight in
/// thousandths, written with or without `q`.
fn coding_item() -> impl Strategy<Value = (&'static str, Option<u16>)> {
    let coding = prop::sample::select(vec!["br", "zstd", "gzip", "identity", "*", "deflate", "BR"]);
    (coding, prop::option::of(0u16..=1000))
}

proptest! {
    #![proptest_config(config(512))]

    /// Any field value at all selects one of four variants, and never fails.
    #[test]
    fn any_accept_encoding_is_one_of_four_tokens(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..3)) {
        let mut map = HeaderMap::new();
        for line in &lines {
            if let Ok(value) = HeaderValue::from_bytes(line) {
                map.append(HeaderName::from_static("accept-encoding"), value);
            }
        }
        let values = caje::cache::key::vary_values(&["accept-encoding".to_owned()], &map);
        let token = values[0].1.clone().expect("always a value");
        prop_assert!([&b"br"[..], b"zstd", b"gzip", b"identity"].contains(&token.as_slice()));
    }

    /// The coding chosen has the highest weight among those the client
    /// accepts (its own weight, else `*`'s), and it is acceptable.
    #[test]
    fn the_chosen_coding_weighs_most(items in prop::collection::vec(coding_item(), 0..6)) {
        use caje::cache::encoding::{preferred, Encoding};
        let text: Vec<String> = items
            .iter()
            .map(|(c, q)| match q {
                Some(q) => format!("{c};q={}.{:03}", q / 1000, q % 1000),
                None => (*c).to_owned(),
            })
            .collect();
        let header = text.join(", ");
        let weight = |name: &str| -> Option<u16> {
            let of = |n: &str| items.iter().filter(|(c, _)| c.eq_ignore_ascii_case(n)).map(|(_, q)| q.unwrap_or(1000)).max();
            of(name).or_else(|| of("*"))
        };
        let chosen = preferred([header.as_bytes()].into_iter());
        if chosen != Encoding::Identity {
            let w = weight(chosen.token()).unwrap_or(0);
            prop_assert!(w > 0, "{header}: {chosen:?}");
            for other in Encoding::COMPRESSED {
                prop_assert!(weight(other.token()).unwrap_or(0) <= w, "{header}: {chosen:?}");
            }
            prop_assert!(items.iter().filter(|(c, _)| *c == "identity").all(|(_, q)| q.unwrap_or(1000) <= w), "{header}");
        } else {
            // No compressed coding beats an identity the client weighs more.
            let identity = weight("identity").unwrap_or(1).max(1);
            for other in Encoding::COMPRESSED {
                let w = weight(other.token()).unwrap_or(0);
                prop_assert!(w == 0 || w < identity, "{header}");
            }
        }
    }
}
