//! An origin connection as the origin client (awc) reads it: each response
//! head is looked at first (`response_head`), so that interim responses
//! are dropped and odd transfer codings decoded before awc, which would
//! take a `103` for the answer or refuse `Transfer-Encoding: gzip`, sees
//! them; and a plain chunked body's chunks are followed, so that one the
//! origin's close cuts off is an error rather than, as awc would have it, a
//! complete body. Everything else passes through untouched.
//!
//! awc writes a whole request before it reads the response, and reads that
//! response to its end before the connection carries another request: so
//! the first write after a response head starts a new exchange.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{ready, Context, Poll};

use actix_web::rt::net::{ActixStream, Ready};
use bytes::{Buf, BytesMut};
use memchr::memmem::Finder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::response_head::{self, Action, Asked};
use super::transfer_coding::BodyDecoder;

/// The longest response head looked at; a longer one is left to awc
/// (which refuses it).
const MAX_HEAD: usize = 64 * 1024;
/// The longest request head read for what the response depends on.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Room made in `raw` for each read from the origin.
const READ_AT_ONCE: usize = 8 * 1024;
/// The read buffer kept between reads, at most.
const KEPT_READ_BUFFER: usize = 2 * READ_AT_ONCE;
/// The request buffer kept between exchanges, at most.
const KEPT_REQUEST_BUFFER: usize = 4 * 1024;

enum Reading {
    /// A response head is expected.
    Head,
    /// The body of a response handed on as it came.
    Body,
    /// The body of a response whose transfer codings caje undoes.
    Decoding(BodyDecoder),
    /// A chunked body handed on as it came, its chunks followed.
    Watching(BodyDecoder),
}

pub struct OriginIo<Io> {
    io: Io,
    /// Bytes read from the origin and not yet handed on.
    raw: BytesMut,
    /// How many of `raw`'s first bytes go to awc as they are (a head, the
    /// body after it): handed on from `raw` itself, which so keeps its
    /// buffer from one read to the next.
    passing: usize,
    /// Bytes for awc that caje made: rewritten heads, decoded bodies.
    ready: BytesMut,
    reading: Reading,
    /// The request head being written (its buffer kept for the next one).
    request: Vec<u8>,
    /// Whether `request` is still being written.
    heading: bool,
    asked: Asked,
    /// A final response head was handed on: the next write is a new request.
    answered: bool,
    /// The origin closed its side.
    eof: bool,
}

impl<Io> OriginIo<Io> {
    pub fn new(io: Io) -> Self {
        Self {
            io,
            raw: BytesMut::new(),
            passing: 0,
            ready: BytesMut::new(),
            reading: Reading::Head,
            request: Vec::new(),
            heading: false,
            asked: Asked::default(),
            answered: true,
            eof: false,
        }
    }
}

impl<Io> fmt::Debug for OriginIo<Io> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OriginIo")
            .field("raw", &self.raw.len())
            .field("ready", &self.ready.len())
            .finish()
    }
}

/// Reads what the origin sent into `raw`; notes its end.
fn fill<Io: AsyncRead + Unpin>(
    io: &mut Io,
    raw: &mut BytesMut,
    eof: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    // A rare long head does not keep its buffer.
    if raw.is_empty() && raw.capacity() > KEPT_READ_BUFFER {
        *raw = BytesMut::new();
    }
    raw.reserve(READ_AT_ONCE);
    if ready!(tokio_util::io::poll_read_buf(Pin::new(io), cx, raw))? == 0 {
        *eof = true;
    }
    Poll::Ready(Ok(()))
}

/// The length of the request head at the start of `written`, when the
/// blank line that ends it is there.
fn head_len(written: &[u8]) -> Option<usize> {
    // Made once: a searcher costs more to make than a head to search.
    static BLANK_LINE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\r\n\r\n"));
    BLANK_LINE.find(written).map(|at| at + 4)
}

impl<Io: AsyncRead + Unpin> AsyncRead for OriginIo<Io> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.ready.is_empty() {
                let n = buf.remaining().min(this.ready.len());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.passing > 0 {
                let n = buf.remaining().min(this.passing);
                buf.put_slice(&this.raw[..n]);
                this.raw.advance(n);
                this.passing -= n;
                return Poll::Ready(Ok(()));
            }
            match &mut this.reading {
                Reading::Body if this.raw.is_empty() => {
                    return Pin::new(&mut this.io).poll_read(cx, buf);
                }
                Reading::Body => this.passing = this.raw.len(),
                Reading::Head if this.eof => {
                    if this.raw.is_empty() {
                        return Poll::Ready(Ok(()));
                    }
                    this.reading = Reading::Body;
                }
                // Nothing to parse yet: awc asks for the next response
                // before the origin has sent it.
                Reading::Head if this.raw.is_empty() => {
                    ready!(fill(&mut this.io, &mut this.raw, &mut this.eof, cx))?;
                }
                Reading::Head => match response_head::action(&this.raw, this.asked)? {
                    Action::Partial if this.raw.len() > MAX_HEAD => this.reading = Reading::Body,
                    Action::Partial => {
                        ready!(fill(&mut this.io, &mut this.raw, &mut this.eof, cx))?;
                    }
                    Action::DropInterim { len, status } => {
                        tracing::debug!(status, "an interim response from the origin, dropped");
                        this.raw.advance(len);
                    }
                    Action::Pass {
                        len,
                        interim,
                        chunked,
                    } => {
                        this.passing = len;
                        if !interim {
                            this.answered = true;
                            this.reading = if chunked {
                                Reading::Watching(BodyDecoder::watcher())
                            } else {
                                Reading::Body
                            };
                        }
                    }
                    Action::Rewrite { len, head, body } => {
                        this.raw.advance(len);
                        this.ready.extend_from_slice(&head);
                        this.answered = true;
                        this.reading = body.map_or(Reading::Body, Reading::Decoding);
                    }
                },
                // Whatever follows the decoded body is handed on as it is.
                Reading::Decoding(body) if body.is_done() => this.reading = Reading::Body,
                Reading::Decoding(body) if !this.raw.is_empty() => {
                    let used = body.feed(&this.raw, &mut this.ready)?;
                    this.raw.advance(used);
                }
                Reading::Decoding(body) if this.eof => body.eof(&mut this.ready)?,
                Reading::Decoding(_) => {
                    ready!(fill(&mut this.io, &mut this.raw, &mut this.eof, cx))?;
                }
                Reading::Watching(chunks) if chunks.is_done() => this.reading = Reading::Body,
                Reading::Watching(chunks) if !this.raw.is_empty() => {
                    chunks.feed(&this.raw, &mut BytesMut::new())?;
                    this.passing = this.raw.len();
                }
                // Read straight into awc's buffer; an end before the last
                // chunk is an error, not the end of the body.
                Reading::Watching(chunks) => {
                    let before = buf.filled().len();
                    ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                    let read = &buf.filled()[before..];
                    if read.is_empty() {
                        chunks.eof(&mut BytesMut::new())?;
                    } else {
                        chunks.feed(read, &mut BytesMut::new())?;
                    }
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for OriginIo<Io> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.answered {
            this.answered = false;
            this.reading = Reading::Head;
            this.request.clear();
            this.heading = true;
            this.asked = Asked::default();
        }
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        let whole_head = match this.heading {
            true if this.request.is_empty() => head_len(&buf[..written]),
            _ => None,
        };
        if let Some(len) = whole_head {
            // The usual case: the whole head in one write, read in place.
            this.asked = Asked::from_request(&buf[..len]);
            this.heading = false;
        } else if this.heading {
            let request = &mut this.request;
            request.extend_from_slice(&buf[..written]);
            let len = head_len(request);
            if len.is_some() || request.len() > MAX_REQUEST_HEAD {
                // Never the body after the head: its bytes are not fields.
                this.asked = Asked::from_request(&request[..len.unwrap_or(request.len())]);
                this.heading = false;
                // A rare long head does not keep its buffer.
                if request.capacity() > KEPT_REQUEST_BUFFER {
                    *request = Vec::new();
                }
            }
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl<Io: ActixStream> ActixStream for OriginIo<Io> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        if !self.ready.is_empty() || !self.raw.is_empty() {
            return Poll::Ready(Ok(Ready::READABLE));
        }
        self.io.poll_read_ready(cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<Ready>> {
        self.io.poll_write_ready(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// An origin connection that hands out what the origin sent a few
    /// bytes at a time, and takes every write.
    struct Trickle(VecDeque<u8>, usize);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let n = self.1.min(buf.remaining()).min(self.0.len());
            let bytes: Vec<u8> = self.0.drain(..n).collect();
            buf.put_slice(&bytes);
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// Asks for one response and reads `len` bytes of what awc would get,
    /// `at_once` bytes at most a read.
    async fn exchange(io: &mut OriginIo<Trickle>, len: usize, at_once: usize) -> String {
        io.write_all(b"GET / HTTP/1.1\r\nHost: o\r\n\r\n")
            .await
            .unwrap();
        let mut got = Vec::new();
        while got.len() < len {
            let mut piece = vec![0; at_once.min(len - got.len())];
            let n = io.read(&mut piece).await.unwrap();
            assert!(n > 0, "the answer ended after {got:?}");
            got.extend_from_slice(&piece[..n]);
        }
        String::from_utf8(got).unwrap()
    }

    #[tokio::test]
    async fn a_request_body_after_its_head_is_never_read_as_fields() {
        for split in [None, Some(10)] {
            let sent = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
            let mut io = OriginIo::new(Trickle(sent.bytes().collect(), 4096));
            let request = b"POST / HTTP/1.1\r\nContent-Length: 21\r\n\r\nExpect: 100-continue\n";
            match split {
                None => io.write_all(request).await.unwrap(),
                Some(at) => {
                    io.write_all(&request[..at]).await.unwrap();
                    io.write_all(&request[at..]).await.unwrap();
                }
            }
            // Not awaited: the 100 is dropped and the answer comes through.
            let mut got = vec![0; 64];
            let n = io.read(&mut got).await.unwrap();
            assert!(got[..n].starts_with(b"HTTP/1.1 200 OK"), "{split:?}");
        }
    }

    #[tokio::test]
    async fn heads_and_bodies_pass_whole_however_the_origin_splits_them() {
        let first = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let second = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let sent = format!("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n{first}{second}");
        for (step, at_once) in [(1, 4096), (7, 3), (64, 10), (4096, 4096), (4096, 5)] {
            let origin = Trickle(sent.bytes().collect(), step);
            let mut io = OriginIo::new(origin);
            // The 103 is dropped; each answer comes through as it was sent.
            let (a, b) = (first.len(), second.len());
            assert_eq!(
                exchange(&mut io, a, at_once).await,
                first,
                "{step}, {at_once}"
            );
            assert_eq!(
                exchange(&mut io, b, at_once).await,
                second,
                "{step}, {at_once}"
            );
        }
    }
}
