//! Fills a cache directory with N entries made from one real entry, as
//! caje would have stored `PREFIX0` … `PREFIX<N-1>` on the same host: for
//! measuring a cold start over many entries without fetching each through
//! caje (which takes minutes at a million).
//!
//!     cargo run --release --example fill_cache -- ENTRY_FILE CACHE_DIR N PREFIX
//!
//! ENTRY_FILE is an entry caje stored (say for `/1k?n=0`); each copy gets
//! the key `PREFIX<i>`, its file name from that key, and the same body.

use std::fs;
use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use caje::cache::entry::{decode_head, encode_head, BODY_LEN_OFFSET};
use caje::cache::{CacheKey, VariantKey};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [entry, dir, n, prefix] = args.as_slice() else {
        anyhow::bail!("usage: fill_cache ENTRY_FILE CACHE_DIR N PREFIX");
    };
    let n: u64 = n.parse().context("N")?;
    let bytes = fs::read(entry).with_context(|| format!("reading {entry}"))?;
    let decoded = decode_head(&mut bytes.as_slice(), bytes.len() as u64)?;
    let start = usize::try_from(decoded.body_offset)?;
    let body = &bytes[start..start + usize::try_from(decoded.body_len)?];
    let mut head = decoded.head;
    let dir = PathBuf::from(dir);
    for shard in 0..=255u8 {
        fs::create_dir_all(dir.join(format!("{shard:02x}")))?;
    }
    for i in 0..n {
        head.key = CacheKey::new(head.key.method(), head.key.host(), &format!("{prefix}{i}"));
        let mut out = encode_head(&head)?;
        let at = usize::try_from(BODY_LEN_OFFSET)?;
        out[at..at + 8].copy_from_slice(&decoded.body_len.to_le_bytes());
        out.extend_from_slice(body);
        let name = VariantKey::new(&head.key, &head.vary).file_name();
        fs::File::create(dir.join(&name[..2]).join(&name))?.write_all(&out)?;
    }
    Ok(())
}
