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

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        })]

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
