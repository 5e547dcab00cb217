//! Which paths an origin could take for one under `/_caje`, decided in time
//! linear in the path: repeated percent-decoding is followed a bounded
//! number of rounds (each one pass), and a path still encoded deeper than
//! that is refused rather than decoded further, so no nesting depth can
//! make a request cost more than a few passes over its path.

/// Percent-decoding rounds followed. Real clients encode at most twice
/// (`%255F`); an origin that decodes more often than this sees a path
/// caje refuses anyway.
pub const MAX_DECODE_ROUNDS: usize = 4;

/// What a path is to the admin guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminPath {
    /// An ordinary path, for the proxy.
    Plain,
    /// Reads as under `/_caje` at some decoding depth: never forwarded.
    Admin,
    /// Still percent-encoded after [`MAX_DECODE_ROUNDS`] rounds: refused,
    /// since an origin decoding that often could read anything into it.
    TooDeep,
}

/// How `path` is to be treated; see [`AdminPath`].
pub fn classify(path: &str) -> AdminPath {
    scan(path.as_bytes()).0
}

/// The verdict and how many bytes were scanned to reach it: at most
/// `(MAX_DECODE_ROUNDS + 1) * path.len()` plus the quick check.
fn scan(path: &[u8]) -> (AdminPath, usize) {
    let mut scanned = path.len();
    // Most paths have neither a `%` nor a `_` (where `_caje` would start):
    // one search for both answers them.
    let plain = memchr::memchr2(b'%', b'_', path).is_none()
        || (!path.contains(&b'%') && !path.windows(5).any(|w| w.eq_ignore_ascii_case(b"_caje")));
    if plain {
        return (AdminPath::Plain, scanned);
    }
    let mut text = path.to_vec();
    for _ in 0..MAX_DECODE_ROUNDS {
        scanned += text.len();
        if names_admin(&text) {
            return (AdminPath::Admin, scanned);
        }
        match percent_decode(&text) {
            Some(next) => text = next,
            None => return (AdminPath::Plain, scanned),
        }
    }
    scanned += text.len();
    let verdict = if names_admin(&text) {
        AdminPath::Admin
    } else if percent_decode(&text).is_some() {
        AdminPath::TooDeep
    } else {
        AdminPath::Plain
    };
    (verdict, scanned)
}

/// Whether an origin could take `path`, as it stands, for one under
/// `/_caje`: its first segment is `_caje` in any case, before or after dot
/// segments are resolved, with `\` read as `/`, empty segments skipped and
/// `;` parameters dropped.
fn names_admin(path: &[u8]) -> bool {
    let segments: Vec<&[u8]> = path
        .split(|b| matches!(b, b'/' | b'\\'))
        .map(|s| s.split(|b| *b == b';').next().unwrap_or_default())
        .filter(|s| !s.is_empty())
        .collect();
    let is_caje = |s: &&[u8]| s.eq_ignore_ascii_case(b"_caje");
    if segments.iter().find(|s| **s != b".").is_some_and(is_caje) {
        return true;
    }
    let mut resolved = Vec::with_capacity(segments.len());
    for segment in &segments {
        match *segment {
            b"." => {}
            b".." => {
                resolved.pop();
            }
            other => resolved.push(other),
        }
    }
    resolved.first().is_some_and(is_caje)
}

/// One pass decoding every `%XX` (two hex digits, nothing else: not `%+f`);
/// anything else, an invalid escape included, kept. `None` when there was
/// nothing to decode.
fn percent_decode(text: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
    let mut out = Vec::with_capacity(text.len());
    let mut decoded = false;
    let mut i = 0;
    while let Some(&byte) = text.get(i) {
        if byte == b'%' {
            if let (Some(high), Some(low)) = (hex(text.get(i + 1)), hex(text.get(i + 2))) {
                out.push((high * 16 + low) as u8);
                decoded = true;
                i += 3;
                continue;
            }
        }
        out.push(byte);
        i += 1;
    }
    decoded.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_lookalikes_are_recognised() {
        for path in [
            "/_caje",
            "/_CAJE/list",
            "//_caje/list",
            "/%5Fcaje/list",
            "/%255fcaje/list",
            "/%25255fcaje/list",
            "/%2525255fcaje/list",
            "/_caje%2Flist",
            "/_caje;x=1/purge",
            "/./_caje/list",
            "/x/%2e%2e/_caje/list",
            "/_caje/../x",
            "/_caje/../../%",
            "\\_caje\\list",
            // Read as `/_caje` one decoding deep, though not when decoded to the end.
            "/a%252Fb/%2e%2e/_caje/list",
        ] {
            assert_eq!(classify(path), AdminPath::Admin, "{path}");
        }
        for path in [
            "/",
            "/x/_caje",
            "/_cajex/list",
            "/caje/list",
            "/%zz/_cajé",
            "/%+f_caje",
            "/100%25",
        ] {
            assert_eq!(classify(path), AdminPath::Plain, "{path}");
        }
    }

    #[test]
    fn nesting_deeper_than_the_rounds_followed_is_refused() {
        // `_` encoded five times: deeper than the four rounds followed.
        assert_eq!(classify("/%252525255Fcaje/list"), AdminPath::TooDeep);
        assert_eq!(classify("/%2525252525"), AdminPath::TooDeep);
        // Four rounds deep is followed to the end.
        assert_eq!(classify("/%25252525"), AdminPath::Plain);
    }

    /// The work is linear in the path, whatever its nesting: the old
    /// decode-until-unchanged loop scanned `/%25` + `25`×n about n²/2 bytes.
    #[test]
    fn the_work_is_linear_in_the_path() {
        // A fixed factor: the quick check and at most five rounds.
        let bound = |len: usize| 6 * len;
        for n in [1, 10, 1_000, 32_000] {
            let nested = format!("/%25{}", "25".repeat(n));
            let (verdict, scanned) = scan(nested.as_bytes());
            assert!(
                scanned <= bound(nested.len()),
                "{n}: {scanned} bytes scanned"
            );
            if n >= MAX_DECODE_ROUNDS {
                assert_eq!(verdict, AdminPath::TooDeep, "{n}");
            }
            let caje = format!("/{}5Fcaje/list", "%25".repeat(n));
            let (_, scanned) = scan(caje.as_bytes());
            assert!(scanned <= bound(caje.len()), "{n}: {scanned} bytes scanned");
            let mixed = format!("/{}", "%2525%5F_caje%2e%2E/".repeat(n));
            let (_, scanned) = scan(mixed.as_bytes());
            assert!(
                scanned <= bound(mixed.len()),
                "{n}: {scanned} bytes scanned"
            );
        }
    }
}
