//! The codecs of compression at the edge: a body read from one place and
//! written compressed to another, in the coding `cache::encoding` chose.
//! Blocking CPU work: callers run it on the blocking pool.

use std::io::{self, Read, Write};

use crate::cache::encoding::Encoding;

/// Brotli quality (0–11). A variant is compressed once and served many
/// times, so a level denser than the dynamic-content default (4) pays;
/// 11 would take seconds per megabyte on a first request.
const BROTLI_QUALITY: i32 = 6;
/// Brotli window: 4 MiB, what browsers decode without extra memory.
const BROTLI_WINDOW: i32 = 22;
/// zstd level (1–19); 3 is its own default.
const ZSTD_LEVEL: i32 = 9;
/// gzip level (0–9); 6 is zlib's default.
const GZIP_LEVEL: u32 = 6;

/// Reads `input` to its end and writes it to `output` in `coding`
/// (identity copies it as it is).
pub fn compress(
    coding: Encoding,
    input: &mut impl Read,
    output: &mut impl Write,
) -> io::Result<()> {
    match coding {
        Encoding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY,
                lgwin: BROTLI_WINDOW,
                ..Default::default()
            };
            brotli::BrotliCompress(input, output, &params).map(drop)
        }
        Encoding::Zstd => zstd::stream::copy_encode(input, output, ZSTD_LEVEL),
        Encoding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(output, flate2::Compression::new(GZIP_LEVEL));
            io::copy(input, &mut encoder)?;
            encoder.finish().map(drop)
        }
        Encoding::Identity => io::copy(input, output).map(drop),
    }
}

/// The bytes `input` holds in `coding`, decoded: for checks and tests.
pub fn decompress(coding: Encoding, input: &[u8]) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    match coding {
        Encoding::Brotli => {
            brotli::BrotliDecompress(&mut &input[..], &mut out)?;
        }
        Encoding::Zstd => out = zstd::stream::decode_all(input)?,
        Encoding::Gzip => {
            flate2::read::GzDecoder::new(input).read_to_end(&mut out)?;
        }
        Encoding::Identity => out.extend_from_slice(input),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_coding_round_trips_and_shrinks_text() {
        let text: Vec<u8> = (0..2000)
            .flat_map(|i| format!("<p>line {i} of a page</p>\n").into_bytes())
            .collect();
        for coding in Encoding::COMPRESSED {
            let mut packed = Vec::new();
            compress(coding, &mut &text[..], &mut packed).expect("compress");
            assert!(
                packed.len() * 4 < text.len(),
                "{coding:?}: {}",
                packed.len()
            );
            assert_eq!(decompress(coding, &packed).expect("decompress"), text);
        }
        let mut empty = Vec::new();
        compress(Encoding::Brotli, &mut &b""[..], &mut empty).expect("compress");
        assert_eq!(
            decompress(Encoding::Brotli, &empty).expect("decompress"),
            b""
        );
    }
}
