//! A response body in transfer codings other than a lone `chunked`
//! (RFC 9112 §6.1, §7), which the origin client (awc) refuses: taken out of
//! its framing (`chunked` last, or until the connection closes), its gzip
//! or deflate codings undone, and handed on as plain `chunked`. Transfer
//! codings are hop-by-hop, so what caje relays and stores is the decoded body.

use std::io::{self, Write};

use bytes::{BufMut, BytesMut};
use flate2::write::{MultiGzDecoder, ZlibDecoder};

/// A transfer coding caje can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
}

impl Coding {
    /// The coding a `Transfer-Encoding` member names (lower case);
    /// `x-gzip` is gzip (RFC 9112 §7.2).
    pub fn named(name: &str) -> Option<Self> {
        match name {
            "gzip" | "x-gzip" => Some(Self::Gzip),
            "deflate" => Some(Self::Deflate),
            _ => None,
        }
    }
}

enum Decoder {
    Gzip(MultiGzDecoder<Vec<u8>>),
    Deflate(ZlibDecoder<Vec<u8>>),
}

impl Decoder {
    fn new(coding: Coding) -> Self {
        match coding {
            Coding::Gzip => Self::Gzip(MultiGzDecoder::new(Vec::new())),
            Coding::Deflate => Self::Deflate(ZlibDecoder::new(Vec::new())),
        }
    }

    /// Decodes `data`, answering what it has decoded so far.
    fn write(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Self::Deflate(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    /// The rest, at the end of the coded data.
    fn finish(&mut self) -> io::Result<Vec<u8>> {
        match self {
            Self::Gzip(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Self::Deflate(d) => {
                d.try_finish()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }
}

/// Where the chunked framing is.
enum Chunk {
    /// The chunk-size line read so far.
    Size(Vec<u8>),
    /// Data bytes still to come in this chunk.
    Data(u64),
    /// The CRLF after a chunk's data: whether its CR was seen.
    DataEnd(bool),
    /// The current trailer line (trailers are dropped).
    Trailers(Vec<u8>),
}

/// The longest chunk-size or trailer line read.
const MAX_LINE: usize = 8 * 1024;

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

/// One response body being decoded.
pub struct BodyDecoder {
    /// `None`: the body ends when the connection closes.
    chunk: Option<Chunk>,
    /// In the order they are undone (the reverse of the field's).
    decoders: Vec<Decoder>,
    /// `false`: the chunks are only followed (see [`BodyDecoder::watcher`]).
    copies: bool,
    done: bool,
}

impl BodyDecoder {
    /// `codings` as the field lists them (applied in that order), without
    /// the final `chunked`, which `chunked` says was there.
    pub fn new(codings: &[Coding], chunked: bool) -> Self {
        Self {
            chunk: chunked.then(|| Chunk::Size(Vec::new())),
            decoders: codings.iter().rev().map(|&c| Decoder::new(c)).collect(),
            copies: true,
            done: false,
        }
    }

    /// Follows a plain chunked body that is handed on as it is, only to
    /// know where it ends: one the origin's close cuts off is then an error
    /// (awc would take it for complete). `feed` writes nothing to `out`.
    pub fn watcher() -> Self {
        Self {
            copies: false,
            ..Self::new(&[], true)
        }
    }

    /// Whether the whole body has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads `input` and appends the decoded body to `out` as chunks;
    /// answers how many bytes of `input` belong to this body.
    pub fn feed(&mut self, input: &[u8], out: &mut BytesMut) -> io::Result<usize> {
        let Some(mut chunk) = self.chunk.take() else {
            let decoded = self.decode(input)?;
            emit(out, &decoded);
            return Ok(input.len());
        };
        let mut at = 0;
        while at < input.len() && !self.done {
            chunk = match chunk {
                Chunk::Size(mut line) => {
                    let byte = input[at];
                    at += 1;
                    if byte != b'\n' {
                        line.push(byte);
                        if line.len() > MAX_LINE {
                            return Err(invalid("chunk-size line too long"));
                        }
                        Chunk::Size(line)
                    } else {
                        match chunk_size(&line)? {
                            0 => Chunk::Trailers(Vec::new()),
                            size => Chunk::Data(size),
                        }
                    }
                }
                Chunk::Data(left) => {
                    let take = left.min((input.len() - at) as u64) as usize;
                    if self.copies {
                        let decoded = self.decode(&input[at..at + take])?;
                        emit(out, &decoded);
                    }
                    at += take;
                    match left - take as u64 {
                        0 => Chunk::DataEnd(false),
                        left => Chunk::Data(left),
                    }
                }
                Chunk::DataEnd(cr) => {
                    let byte = input[at];
                    at += 1;
                    match (cr, byte) {
                        (false, b'\r') => Chunk::DataEnd(true),
                        (_, b'\n') => Chunk::Size(Vec::new()),
                        _ => return Err(invalid("chunk data not followed by CRLF")),
                    }
                }
                Chunk::Trailers(mut line) => {
                    let byte = input[at];
                    at += 1;
                    if byte != b'\n' {
                        line.push(byte);
                        if line.len() > MAX_LINE {
                            return Err(invalid("trailer line too long"));
                        }
                        Chunk::Trailers(line)
                    } else if line.is_empty() || line == b"\r" {
                        self.end(out)?;
                        Chunk::Trailers(line)
                    } else {
                        Chunk::Trailers(Vec::new())
                    }
                }
            };
        }
        self.chunk = Some(chunk);
        Ok(at)
    }

    /// The connection closed: the end of a body read until then; a chunked
    /// body not complete by then was cut off.
    pub fn eof(&mut self, out: &mut BytesMut) -> io::Result<()> {
        if self.done {
            return Ok(());
        }
        if self.chunk.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "chunked body cut off",
            ));
        }
        self.end(out)
    }

    fn decode(&mut self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut data = data.to_vec();
        for decoder in &mut self.decoders {
            data = decoder.write(&data)?;
        }
        Ok(data)
    }

    /// Flushes the decoders and ends the chunked output.
    fn end(&mut self, out: &mut BytesMut) -> io::Result<()> {
        self.done = true;
        if !self.copies {
            return Ok(());
        }
        let mut carried = Vec::new();
        for decoder in &mut self.decoders {
            let mut data = decoder.write(&carried)?;
            data.extend(decoder.finish()?);
            carried = data;
        }
        emit(out, &carried);
        out.put_slice(b"0\r\n\r\n");
        Ok(())
    }
}

/// The size a chunk-size line gives (extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits.trim_ascii()).map_err(|_| invalid("chunk size"))?;
    if digits.is_empty() || digits.len() > 15 {
        return Err(invalid("chunk size"));
    }
    u64::from_str_radix(digits, 16).map_err(|_| invalid("chunk size"))
}

/// Appends `data` as one chunk (nothing for no data: an empty chunk ends a body).
fn emit(out: &mut BytesMut, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    out.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).expect("gzip");
        encoder.finish().expect("gzip")
    }

    /// The body a chunked output carries.
    fn unchunk(mut framed: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        loop {
            let line_end = framed.windows(2).position(|w| w == b"\r\n").expect("line");
            let size =
                usize::from_str_radix(std::str::from_utf8(&framed[..line_end]).expect("utf8"), 16)
                    .expect("hex");
            framed = &framed[line_end + 2..];
            if size == 0 {
                assert_eq!(framed, b"\r\n");
                return body;
            }
            body.extend_from_slice(&framed[..size]);
            framed = &framed[size + 2..];
        }
    }

    #[test]
    fn gzip_then_chunked_is_decoded_byte_by_byte() {
        let coded = gzip(b"hello, world");
        let mut wire = format!("{:x};ext=1\r\n", coded.len()).into_bytes();
        wire.extend_from_slice(&coded);
        wire.extend_from_slice(b"\r\n0\r\nx-trailer: 1\r\n\r\nNEXT");
        let mut decoder = BodyDecoder::new(&[Coding::Gzip], true);
        let mut out = BytesMut::new();
        let mut used = 0;
        for byte in wire.chunks(1) {
            if decoder.is_done() {
                break;
            }
            used += decoder.feed(byte, &mut out).expect("decodes");
        }
        assert!(decoder.is_done());
        assert_eq!(&wire[used..], b"NEXT");
        assert_eq!(unchunk(&out), b"hello, world");
    }

    #[test]
    fn a_body_until_close_ends_at_eof() {
        let mut decoder = BodyDecoder::new(&[Coding::Gzip], false);
        let mut out = BytesMut::new();
        let coded = gzip(b"until close");
        assert_eq!(decoder.feed(&coded, &mut out).expect("feeds"), coded.len());
        assert!(!decoder.is_done());
        decoder.eof(&mut out).expect("ends");
        assert_eq!(unchunk(&out), b"until close");
    }

    #[test]
    fn a_watcher_copies_nothing_and_tells_a_cut_off_body() {
        let mut out = BytesMut::new();
        let mut whole = BodyDecoder::watcher();
        let wire = b"5\r\nhello\r\n0\r\n\r\nrest";
        assert_eq!(whole.feed(wire, &mut out).expect("follows"), wire.len() - 4);
        assert!(whole.is_done() && out.is_empty());
        let mut cut = BodyDecoder::watcher();
        cut.feed(b"5\r\nhello\r\n", &mut out).expect("follows");
        assert!(cut.eof(&mut out).is_err());
    }

    #[test]
    fn a_cut_or_broken_body_is_an_error() {
        let mut out = BytesMut::new();
        let mut cut = BodyDecoder::new(&[], true);
        cut.feed(b"5\r\nhel", &mut out).expect("feeds");
        assert!(cut.eof(&mut out).is_err());
        let mut bad = BodyDecoder::new(&[], true);
        assert!(bad.feed(b"zz\r\n", &mut out).is_err());
        let mut not_gzip = BodyDecoder::new(&[Coding::Gzip], false);
        let fed = not_gzip.feed(b"plain text, not gzip", &mut out);
        assert!(fed.is_err() || not_gzip.eof(&mut out).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 256,
            failure_persistence: None,
            ..Default::default()
        })]

        /// A gzip-coded, chunked body from an origin, however it is chunked
        /// and however the reads cut it, decodes to the body, and nothing
        /// after its last chunk is taken for it.
        #[test]
        fn transfer_codings_decode_however_the_body_is_cut(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            chunk in 1usize..700,
            read in 1usize..300,
        ) {
            let coded = gzip(&body);
            let mut wire = Vec::new();
            for part in coded.chunks(chunk) {
                wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                wire.extend_from_slice(part);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\n\r\nHTTP/1.1 200 OK\r\n");
            let mut decoder = BodyDecoder::new(&[Coding::Gzip], true);
            let mut out = BytesMut::new();
            let mut used = 0;
            for piece in wire.chunks(read) {
                if decoder.is_done() {
                    break;
                }
                used += decoder.feed(piece, &mut out).expect("decodes");
            }
            proptest::prop_assert!(decoder.is_done());
            proptest::prop_assert_eq!(&wire[used..], b"HTTP/1.1 200 OK\r\n".as_slice());
            proptest::prop_assert_eq!(unchunk(&out), body);
        }

        /// Any bytes as a chunked body: an error or a decoded body, never a panic.
        #[test]
        fn any_bytes_are_decoded_or_refused(
            wire in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600),
            gzipped in proptest::prelude::any::<bool>(),
        ) {
            let codings: &[Coding] = if gzipped { &[Coding::Gzip] } else { &[] };
            let mut decoder = BodyDecoder::new(codings, true);
            let mut out = BytesMut::new();
            if decoder.feed(&wire, &mut out).is_ok() {
                let _ = decoder.eof(&mut out);
            }
        }
    }
}
