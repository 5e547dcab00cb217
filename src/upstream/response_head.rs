//! What an origin connection's reader does with a response head before the
//! origin client (awc) parses it: awc takes any `1xx` for the final answer
//! and refuses a `Transfer-Encoding` other than a lone `chunked`, so
//! interim responses are dropped (RFC 9110 §15.2: a client may ignore
//! them) and odd transfer codings are decoded here (see `transfer_coding`).

use std::io;
use std::mem::MaybeUninit;
use std::sync::LazyLock;

use memchr::memmem::Finder;

use super::transfer_coding::{BodyDecoder, Coding};

/// Header fields read in one head (awc reads at most 96).
const MAX_FIELDS: usize = 128;

/// The request a response answers, as far as its head matters.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked {
    /// A `HEAD`: the response has no body whatever its fields say.
    pub head: bool,
    /// It carried `Expect: 100-continue`: awc waits for the `100`.
    pub expects_continue: bool,
}

impl Asked {
    /// Reads a request head as written to the origin.
    pub fn from_request(head: &[u8]) -> Self {
        // Made once: a searcher costs more to make than a head to search.
        static CONTINUE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"100-"));
        // Only the starts of lines are compared, and only in a head with
        // `100-` in it (digits have no case): a request head is read once
        // per origin request.
        let maybe_continue = CONTINUE.find(head).is_some();
        let expect = maybe_continue
            && memchr::memchr_iter(b'\n', head).any(|at| {
                head.get(at + 1..at + 8)
                    .is_some_and(|name| name.eq_ignore_ascii_case(b"expect:"))
            });
        let continues = || {
            head.windows(b"100-continue".len())
                .any(|w| w.eq_ignore_ascii_case(b"100-continue"))
        };
        Self {
            head: head
                .get(..5)
                .is_some_and(|m| m.eq_ignore_ascii_case(b"head ")),
            expects_continue: expect && continues(),
        }
    }
}

/// What to do with the head at the start of a buffer.
pub enum Action {
    /// Not all of it has arrived.
    Partial,
    /// An interim response the client does not wait for: its `len` bytes
    /// are dropped and the next head read.
    DropInterim { len: usize, status: u16 },
    /// Handed on as it is (`len` bytes); what follows is its body,
    /// `chunked` (only followed, to tell a cut-off one) or not.
    Pass {
        len: usize,
        interim: bool,
        chunked: bool,
    },
    /// Replaced (its first `len` bytes) by `head`, its body decoded by
    /// `body` (none: it has no body).
    Rewrite {
        len: usize,
        head: Vec<u8>,
        body: Option<BodyDecoder>,
    },
}

/// Decides for the head at the start of `buffer`. An error means a body
/// caje cannot decode (an unknown transfer coding): the exchange fails.
pub fn action(buffer: &[u8], asked: Asked) -> io::Result<Action> {
    if let Some(len) = usual_head_len(buffer) {
        return Ok(Action::Pass {
            len,
            interim: false,
            chunked: false,
        });
    }
    parsed_action(buffer, asked)
}

/// [`action`] for a head that is parsed.
fn parsed_action(buffer: &[u8], asked: Asked) -> io::Result<Action> {
    // Left unset until parsed: setting 128 fields first cost more than
    // reading a usual head.
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_FIELDS];
    let mut response = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buffer,
        &mut fields,
    );
    let len = match parsed {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Action::Partial),
        // Left to awc, which reports it as it always has.
        Err(_) => {
            return Ok(Action::Pass {
                len: 0,
                interim: false,
                chunked: false,
            })
        }
    };
    let status = response.code.unwrap_or_default();
    if (100..200).contains(&status) {
        let awaited = status == 101 || (status == 100 && asked.expects_continue);
        return Ok(if awaited {
            Action::Pass {
                len,
                interim: true,
                chunked: false,
            }
        } else {
            Action::DropInterim { len, status }
        });
    }
    let transfer_encoding: Vec<&[u8]> = response
        .headers
        .iter()
        .filter(|f| f.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|f| f.value)
        .collect();
    // HTTP/1.0 has no transfer codings: awc ignores the field there.
    let plain = response.version != Some(1)
        || transfer_encoding.is_empty()
        || (transfer_encoding.len() == 1
            && transfer_encoding[0]
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked"));
    let bodyless = asked.head || status == 204 || status == 304;
    if plain {
        return Ok(Action::Pass {
            len,
            interim: false,
            chunked: response.version == Some(1) && !transfer_encoding.is_empty() && !bodyless,
        });
    }
    let body = if bodyless {
        None
    } else {
        Some(decoder(&transfer_encoding)?)
    };
    let mut head = status_line(&buffer[..len]).to_vec();
    for field in response.headers.iter() {
        // The decoded body is chunked, so no length the origin gave holds.
        let dropped = field.name.eq_ignore_ascii_case("transfer-encoding")
            || (body.is_some() && field.name.eq_ignore_ascii_case("content-length"));
        if !dropped {
            head.extend_from_slice(field.name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(field.value);
            head.extend_from_slice(b"\r\n");
        }
    }
    if body.is_some() {
        // Rare enough that the connection is not worth keeping.
        head.extend_from_slice(b"transfer-encoding: chunked\r\nconnection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    Ok(Action::Rewrite { len, head, body })
}

/// The length of a usual head, found without parsing it: complete, with a
/// final status, and with no line that could name `Transfer-Encoding` or
/// continue the one before. Such a head is handed on as it is, which the
/// full parse would decide too (a malformed one is then awc's to refuse,
/// as after the parse). `None`: the full parse decides.
fn usual_head_len(buffer: &[u8]) -> Option<usize> {
    // `HTTP/1.x NNN`, NNN not 1xx (an interim response).
    let status = buffer.get(..13)?;
    let usual = status.starts_with(b"HTTP/1.")
        && matches!(status[7], b'0' | b'1')
        && status[8] == b' '
        && status[9..12].iter().all(u8::is_ascii_digit)
        && status[9] != b'1'
        && matches!(status[12], b' ' | b'\r' | b'\n');
    if !usual {
        return None;
    }
    const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
    let mut at = memchr::memchr(b'\n', buffer)? + 1;
    loop {
        let line = &buffer[at..];
        match line.first()? {
            b'\n' => return Some(at + 1),
            b'\r' => return (line.get(1) == Some(&b'\n')).then_some(at + 2),
            b' ' | b'\t' => return None,
            b't' | b'T'
                if line
                    .get(..TRANSFER_ENCODING.len())
                    .is_none_or(|name| name.eq_ignore_ascii_case(TRANSFER_ENCODING)) =>
            {
                return None
            }
            _ => {}
        }
        at += memchr::memchr(b'\n', line)? + 1;
    }
}

/// The decoder for a body with these `Transfer-Encoding` values: `chunked`
/// last means chunked framing, otherwise the body ends with the connection
/// (RFC 9112 §6.3); the other codings must be ones caje can undo.
fn decoder(values: &[&[u8]]) -> io::Result<BodyDecoder> {
    let mut names: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(|&b| b == b','))
        .map(|name| String::from_utf8_lossy(name.trim_ascii()).to_ascii_lowercase())
        .filter(|name| !name.is_empty() && name != "identity")
        .collect();
    let chunked = names.last().is_some_and(|n| n == "chunked");
    if chunked {
        names.pop();
    }
    let codings = names
        .iter()
        .map(|name| {
            Coding::named(name).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the origin's transfer coding {name:?} is not one caje can decode"),
                )
            })
        })
        .collect::<io::Result<Vec<_>>>()?;
    Ok(BodyDecoder::new(&codings, chunked))
}

/// The status line of a head, with its CRLF.
fn status_line(head: &[u8]) -> &[u8] {
    let end = head
        .iter()
        .position(|&b| b == b'\n')
        .map_or(head.len(), |at| at + 1);
    &head[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(head: &str, asked: Asked) -> Action {
        action(head.as_bytes(), asked).expect("an action")
    }

    #[test]
    fn interim_responses_are_dropped_unless_awaited() {
        let early = "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert!(matches!(
            act(early, Asked::default()),
            Action::DropInterim {
                len: 40,
                status: 103
            }
        ));
        let cont = "HTTP/1.1 100 Continue\r\n\r\n";
        assert!(matches!(
            act(cont, Asked::default()),
            Action::DropInterim { status: 100, .. }
        ));
        let asked = Asked::from_request(b"POST / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n");
        assert!(matches!(
            act(cont, asked),
            Action::Pass { interim: true, .. }
        ));
        assert!(matches!(act("HTTP/1.1 200", asked), Action::Partial));
    }

    #[test]
    fn a_request_head_is_read_for_its_method_and_expectation() {
        let asked = Asked::from_request(b"head / HTTP/1.1\r\nHost: o\r\n\r\n");
        assert!(asked.head && !asked.expects_continue);
        let asked = Asked::from_request(b"PUT / HTTP/1.1\r\nEXPECT: 100-Continue\r\n\r\n");
        assert!(!asked.head && asked.expects_continue);
        // Only a field named `Expect` counts, not the text in another's value.
        let asked = Asked::from_request(b"PUT / HTTP/1.1\r\nX-A: expect: 100-continue\r\n\r\n");
        assert!(!asked.expects_continue);
    }

    #[test]
    fn odd_transfer_codings_are_rewritten_to_chunked() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\nX-A: b\r\n\r\n";
        let Action::Rewrite {
            len,
            head: new,
            body,
        } = act(head, Asked::default())
        else {
            panic!("rewritten");
        };
        assert_eq!(len, head.len());
        assert!(body.is_some());
        let new = String::from_utf8(new).expect("utf8");
        assert_eq!(
            new,
            "HTTP/1.1 200 OK\r\nX-A: b\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
        );
        let plain = "HTTP/1.1 200 OK\r\ntransfer-encoding:  Chunked \r\n\r\n";
        assert!(matches!(act(plain, Asked::default()), Action::Pass { .. }));
        let old = "HTTP/1.0 200 OK\r\ntransfer-encoding: gzip\r\n\r\n";
        assert!(matches!(act(old, Asked::default()), Action::Pass { .. }));
    }

    #[test]
    fn a_response_without_a_body_keeps_no_transfer_coding() {
        let head =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 9\r\n\r\n";
        let asked = Asked::from_request(b"HEAD / HTTP/1.1\r\n\r\n");
        let Action::Rewrite {
            head: new, body, ..
        } = act(head, asked)
        else {
            panic!("rewritten");
        };
        assert!(body.is_none());
        assert_eq!(new, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n");
    }

    #[test]
    fn an_unknown_transfer_coding_is_an_error() {
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: br, chunked\r\n\r\n";
        assert!(action(head.as_bytes(), Asked::default()).is_err());
        let twice = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n";
        assert!(action(twice.as_bytes(), Asked::default()).is_err());
    }

    /// What the full parse makes of a head the usual-head check passed:
    /// handed on as it is, from the same length (or, when malformed, from
    /// its start: awc reads the same bytes either way and refuses them).
    fn parse_agrees(head: &[u8]) -> bool {
        let Some(len) = usual_head_len(head) else {
            return true;
        };
        match parsed_action(head, Asked::default()) {
            Ok(Action::Pass {
                len: parsed,
                interim: false,
                chunked: false,
            }) => parsed == len || parsed == 0,
            _ => false,
        }
    }

    #[test]
    fn a_usual_head_is_passed_without_a_parse_as_the_parse_would() {
        let usual = "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 3\r\n\r\nabc";
        assert_eq!(usual_head_len(usual.as_bytes()), Some(usual.len() - 3));
        assert_eq!(usual_head_len(b"HTTP/1.0 404 Not Found\n\n"), Some(24));
        for unusual in [
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: b\r\nTRANSFER-encoding: chunked\r\n\r\n",
            "HTTP/1.1 103 Early Hints\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: b\r\n folded\r\n\r\n",
            "HTTP/1.1 200 OK\r\nX-A: b\r\n",
            "HTTP/1.1 200 OK\r\nTransf",
            "HTTP/2.0 200 OK\r\n\r\n",
            "HTTP/1.1 20x OK\r\n\r\n",
        ] {
            assert_eq!(usual_head_len(unusual.as_bytes()), None, "{unusual:?}");
        }
        assert!(parse_agrees(usual.as_bytes()));
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        })]

        /// A head the usual-head check passes is one the parse passes too.
        #[test]
        fn the_usual_head_check_agrees_with_the_parse(
            status in "HTTP/1\\.[01] [0-9]{3}( [A-Za-z ]{0,8})?",
            lines in proptest::collection::vec(
                "([A-Za-z-]{1,20}|transfer-encoding|Transfer-Encoding|te)(:|: | :)[ -~]{0,12}|[ \t][ -~]{0,8}|[ -~]{0,10}",
                0..6,
            ),
            crlf in proptest::prelude::any::<bool>(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let end = if crlf { "\r\n" } else { "\n" };
            let mut head = format!("{status}{end}");
            for line in &lines {
                head.push_str(line);
                head.push_str(end);
            }
            head.push_str(end);
            head.push_str("body");
            proptest::prop_assert!(parse_agrees(head.as_bytes()));
            // And any part of it, as a read may bring.
            let part = &head.as_bytes()[..cut.index(head.len() + 1)];
            proptest::prop_assert!(parse_agrees(part));
        }

        /// Whatever an origin sends as a response head: no panic; a head
        /// that is rewritten is a valid head whose only transfer coding is
        /// chunked.
        #[test]
        fn any_response_head_is_handled_or_refused(
            head in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            te in "(gzip|deflate|br|chunked|identity|x-gzip| |,){0,6}",
            head_request in proptest::prelude::any::<bool>(),
        ) {
            let asked = Asked { head: head_request, expects_continue: false };
            let _ = action(&head, asked);
            let text = format!(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: {te}\r\ncontent-length: 3\r\n\r\n"
            );
            if let Ok(Action::Rewrite { len, head, .. }) = action(text.as_bytes(), asked) {
                proptest::prop_assert_eq!(len, text.len());
                let mut fields = [httparse::EMPTY_HEADER; 16];
                let mut parsed = httparse::Response::new(&mut fields);
                proptest::prop_assert!(matches!(
                    parsed.parse(&head),
                    Ok(httparse::Status::Complete(_))
                ));
                for field in parsed.headers.iter() {
                    if field.name.eq_ignore_ascii_case("transfer-encoding") {
                        proptest::prop_assert_eq!(field.value, b"chunked".as_slice());
                    }
                }
            }
        }
    }
}
