//! The line a request leaves at `info` (target `caje::access`), as text or
//! JSON shaped like the rest of the log. It is written by hand, not through
//! the `tracing` formatter: with the request span that formatter needed,
//! a logged 1 KiB hit cost 1.47× the CPU of an unlogged one (BENCHMARKS.md).

use std::cell::RefCell;
use std::io::Write as _;
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What one answered request is logged with. Nothing here can carry a
/// secret: the target is the path without its query, no header but
/// `User-Agent` and `Host` is read, and the client is the connection's.
pub struct AccessLine<'a> {
    pub id: u64,
    /// A token (RFC 9110 §9.1, as the request parser checked it): no
    /// quote, `=`, backslash, space or control, so written as it is.
    pub method: &'a str,
    /// `Host` and `User-Agent` as the request carried them: a value that is
    /// not visible ASCII is logged empty (as `HeaderValue::to_str` reads
    /// it). Bytes, so that a value is checked once, as it is written.
    pub host: &'a [u8],
    pub target: &'a str,
    pub status: u16,
    /// How the cache answered (`hit`, `uri-miss`…); `-` for caje's own
    /// endpoints and refusals. caje's own words, written as they are.
    pub cache: &'static str,
    /// From the request's arrival to its response head.
    pub elapsed: Duration,
    pub origin_ms: Option<u64>,
    pub client: Option<IpAddr>,
    pub user_agent: &'a [u8],
}

impl AccessLine<'_> {
    /// Appends the line as `tracing`'s text format writes an event. Numbers
    /// go through `itoa` and the date is formatted once a second: `fmt`'s
    /// machinery was most of the line's cost.
    pub fn write_text(&self, now: SystemTime, out: &mut Vec<u8>) {
        let mut numbers = itoa::Buffer::new();
        timestamp(now, out);
        out.extend_from_slice(b"  INFO caje::access: request done id=");
        out.extend_from_slice(numbers.format(self.id).as_bytes());
        out.extend_from_slice(b" method=");
        out.extend_from_slice(self.method.as_bytes());
        out.extend_from_slice(b" host=");
        logfmt_value(out, self.host, field_text);
        out.extend_from_slice(b" target=");
        logfmt_value(out, self.target.as_bytes(), |target| {
            std::str::from_utf8(target).unwrap_or_default()
        });
        out.extend_from_slice(b" status=");
        out.extend_from_slice(numbers.format(self.status).as_bytes());
        out.extend_from_slice(b" cache=");
        out.extend_from_slice(self.cache.as_bytes());
        // Under 584,000 years: a `u64` (a `u128` divides slowly).
        let micros = self.elapsed.as_micros() as u64;
        out.extend_from_slice(b" ms=");
        out.extend_from_slice(numbers.format(micros / 1000).as_bytes());
        out.push(b'.');
        zero_padded(out, (micros % 1000) as u32, 3);
        if let Some(ms) = self.origin_ms {
            out.extend_from_slice(b" origin_ms=");
            out.extend_from_slice(numbers.format(ms).as_bytes());
        }
        if let Some(ip) = self.client {
            out.extend_from_slice(b" client=");
            // Writes to a `Vec` cannot fail.
            let _ = crate::ip_text::write(out, ip);
        }
        out.extend_from_slice(b" ua=");
        quoted(out, self.user_agent);
        out.push(b'\n');
    }

    /// Appends the line as `tracing`'s JSON format writes an event.
    pub fn write_json(&self, now: SystemTime, out: &mut Vec<u8>) {
        let micros = self.elapsed.as_micros();
        let line = serde_json::json!({
            "timestamp": humantime::format_rfc3339_micros(now).to_string(),
            "level": "INFO",
            "fields": {
                "message": "request done",
                "id": self.id,
                "method": self.method,
                "host": field_text(self.host),
                "target": self.target,
                "status": self.status,
                "cache": self.cache,
                "ms": format!("{}.{:03}", micros / 1000, micros % 1000),
                "origin_ms": self.origin_ms,
                "client": self.client.map(|ip| ip.to_string()),
                "ua": field_text(self.user_agent),
            },
            "target": "caje::access",
        });
        let _ = serde_json::to_writer(&mut *out, &line);
        let _ = out.write_all(b"\n");
    }
}

thread_local! {
    /// The last second formatted (`2026-11-30T10:10:39.`), by its Unix time.
    static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// `now` in RFC 3339 with microseconds, as `tracing`'s formatter writes it.
fn timestamp(now: SystemTime, out: &mut Vec<u8>) {
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs();
    SECOND.with_borrow_mut(|(formatted_second, prefix)| {
        if *formatted_second != second {
            prefix.clear();
            let whole = UNIX_EPOCH + Duration::from_secs(second);
            // `…T10:10:39Z`, its `Z` replaced by the fraction's dot.
            let _ = write!(prefix, "{}", humantime::format_rfc3339_seconds(whole));
            prefix.pop();
            prefix.push(b'.');
            *formatted_second = second;
        }
        out.extend_from_slice(prefix);
    });
    zero_padded(out, since_epoch.subsec_micros(), 6);
    out.push(b'Z');
}

const ZEROS: &[u8] = b"000000";

/// `n` in `width` (at most six) digits, zeros first.
fn zero_padded(out: &mut Vec<u8>, n: u32, width: usize) {
    let mut numbers = itoa::Buffer::new();
    let digits = numbers.format(n).as_bytes();
    let zeros = width.saturating_sub(digits.len()).min(ZEROS.len());
    out.extend_from_slice(&ZEROS[..zeros]);
    out.extend_from_slice(digits);
}

/// A header value as text: empty unless it is visible ASCII (tabs too),
/// as `HeaderValue::to_str` reads it.
fn field_text(value: &[u8]) -> &str {
    let visible = value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    if visible {
        std::str::from_utf8(value).unwrap_or_default()
    } else {
        ""
    }
}

/// A value in double quotes, escaped as Rust escapes a string when it holds
/// a quote, a backslash or a control character.
fn quoted(out: &mut Vec<u8>, value: &[u8]) {
    if quoted_as_is(value) {
        out.push(b'"');
        out.extend_from_slice(value);
        out.push(b'"');
    } else {
        let _ = write!(out, "{:?}", field_text(value));
    }
}

/// A logfmt value: as it is when it cannot be misread, else quoted and
/// escaped, so no client-written value can forge a field or a line.
/// `as_text` reads a value that is not plain.
fn logfmt_value(out: &mut Vec<u8>, value: &[u8], as_text: fn(&[u8]) -> &str) {
    if !value.is_empty() && plain(value) {
        out.extend_from_slice(value);
    } else {
        let _ = write!(out, "{:?}", as_text(value));
    }
}

/// Whether a logfmt value holds only bytes it may hold unquoted: visible
/// ASCII but `"`, `=` and `\`.
fn plain(value: &[u8]) -> bool {
    all_bytes(value, |b| {
        b.is_ascii_graphic() & (b != b'"') & (b != b'=') & (b != b'\\')
    })
}

/// Whether a quoted value holds only bytes it may hold unescaped: ASCII
/// but `"`, `\` and controls.
fn quoted_as_is(value: &[u8]) -> bool {
    all_bytes(value, |b| {
        (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\')
    })
}

/// Whether `ok` holds for every byte. Without the early exit of
/// `Iterator::all` the compiler checks 16 or 32 bytes at a time: a
/// browser's `User-Agent` is over 100 bytes, and every line checks it.
#[inline(always)]
fn all_bytes(value: &[u8], ok: impl Fn(u8) -> bool) -> bool {
    value.iter().fold(true, |all, &b| all & ok(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line<'a>(host: &'a str, target: &'a str, user_agent: &'a str) -> AccessLine<'a> {
        AccessLine {
            id: 7,
            method: "GET",
            host: host.as_bytes(),
            target,
            status: 200,
            cache: "hit",
            elapsed: Duration::from_micros(1_234),
            origin_ms: Some(12),
            client: Some(IpAddr::from([127, 0, 0, 1])),
            user_agent: user_agent.as_bytes(),
        }
    }

    fn text(line: &AccessLine<'_>) -> String {
        let mut out = Vec::new();
        line.write_text(SystemTime::UNIX_EPOCH + Duration::from_secs(1), &mut out);
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn a_text_line_holds_every_field_in_logfmt() {
        assert_eq!(
            text(&line("a.example", "/x/y.css", "curl/8.5.0")),
            "1970-01-01T00:00:01.000000Z  INFO caje::access: request done id=7 method=GET \
             host=a.example target=/x/y.css status=200 cache=hit ms=1.234 origin_ms=12 \
             client=127.0.0.1 ua=\"curl/8.5.0\"\n"
        );
    }

    #[test]
    fn a_client_written_value_cannot_forge_a_field_or_a_line() {
        let forged = text(&line("a b=c", "/p\"q", "x\" status=500 fake"));
        assert_eq!(forged.lines().count(), 1, "{forged}");
        assert!(forged.contains(r#"host="a b=c""#), "{forged}");
        assert!(forged.contains(r#"target="/p\"q""#), "{forged}");
        assert!(forged.contains(r#"ua="x\" status=500 fake""#), "{forged}");
        // The forged field is inside the quoted `ua` value, not one of its own.
        let (fields, _ua) = forged.split_once(" ua=").expect("ua last");
        assert_eq!(fields.matches(" status=").count(), 1, "{forged}");
        let empty = text(&line("", "/", ""));
        assert!(empty.contains(r#"host="" "#), "{empty}");
        // A parser lets no line break into a field; were one there, the
        // value would be logged empty, never as a second line.
        let broken = text(&line("a\nb", "/", "x\nfake"));
        assert_eq!(broken.lines().count(), 1, "{broken}");
    }

    #[test]
    fn a_header_value_that_is_not_visible_ascii_is_logged_empty() {
        let mut odd = line("h\u{e9}te", "/caf\u{e9}", "na\u{ef}ve");
        let logged = text(&odd);
        assert!(logged.contains(r#" host="" "#), "{logged}");
        assert!(logged.contains(" target=\"/caf\u{e9}\" "), "{logged}");
        assert!(logged.ends_with(" ua=\"\"\n"), "{logged}");
        // A tab is visible to `to_str`, and escaped here.
        odd.user_agent = b"a\tb";
        let tabbed = text(&odd);
        assert!(tabbed.ends_with(" ua=\"a\\tb\"\n"), "{tabbed}");
        let mut out = Vec::new();
        line("h\u{e9}te", "/", "na\u{ef}ve").write_json(SystemTime::UNIX_EPOCH, &mut out);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(value["fields"]["host"], "");
        assert_eq!(value["fields"]["ua"], "");
    }

    #[test]
    fn values_are_checked_byte_by_byte_at_every_length_and_place() {
        let unquoted = |b: u8| b.is_ascii_graphic() && !matches!(b, b'"' | b'=' | b'\\');
        let unescaped = |b: u8| b.is_ascii() && !b.is_ascii_control() && !matches!(b, b'"' | b'\\');
        // Lengths either side of the 16- and 32-byte steps, the odd byte
        // first, in the middle and last.
        for len in [1, 7, 15, 16, 17, 31, 32, 33, 64, 120] {
            for at in [0, len / 2, len - 1] {
                for b in 0..=u8::MAX {
                    let mut value = vec![b'a'; len];
                    value[at] = b;
                    assert_eq!(plain(&value), unquoted(b), "{b:#x} at {at} of {len}");
                    assert_eq!(
                        quoted_as_is(&value),
                        unescaped(b),
                        "{b:#x} at {at} of {len}"
                    );
                }
            }
        }
        assert!(plain(b"") && quoted_as_is(b""));
    }

    #[test]
    fn a_json_line_is_one_object_shaped_like_tracing_events() {
        let mut out = Vec::new();
        line("a.example", "/x", "ua \"q\"").write_json(SystemTime::UNIX_EPOCH, &mut out);
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(value["target"], "caje::access");
        assert_eq!(value["level"], "INFO");
        assert_eq!(value["fields"]["message"], "request done");
        assert_eq!(value["fields"]["status"], 200);
        assert_eq!(value["fields"]["ua"], "ua \"q\"");
        assert_eq!(value["fields"]["client"], "127.0.0.1");
        assert_eq!(value["fields"]["ms"], "1.234");
    }

    #[test]
    fn the_date_is_made_again_when_the_second_changes() {
        let at = |micros| {
            let mut out = Vec::new();
            timestamp(
                SystemTime::UNIX_EPOCH + Duration::from_micros(micros),
                &mut out,
            );
            String::from_utf8(out).expect("utf-8")
        };
        assert_eq!(at(1_000_042), "1970-01-01T00:00:01.000042Z");
        assert_eq!(at(1_999_999), "1970-01-01T00:00:01.999999Z");
        assert_eq!(at(86_400_000_001), "1970-01-02T00:00:00.000001Z");
        assert_eq!(at(1_500_000), "1970-01-01T00:00:01.500000Z");
    }
}
