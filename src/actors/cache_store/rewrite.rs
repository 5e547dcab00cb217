//! Rewriting a stored entry's head while keeping its body: after a 304
//! (`UpdateHead`) and for a soft purge's mark. The copy is written on the
//! blocking pool and renamed into place on the store's thread, unless the
//! entry changed meanwhile.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use actix::prelude::*;

use super::actor::CacheStore;
use super::in_flight::{WriteId, WriteKind};
use super::index::{EntryInfo, Variant};
use super::reads::READ_CHUNK;
use crate::cache::entry::{self, EntryError, EntryHead, BODY_LEN_OFFSET};
use crate::cache::key::VariantKey;

/// Replaces a stored entry's head, keeping its body: after a 304
/// revalidation the origin's new header fields and freshness are stored.
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateHead(pub EntryHead);

impl Handler<UpdateHead> for CacheStore {
    type Result = ();

    fn handle(&mut self, msg: UpdateHead, ctx: &mut Self::Context) {
        let _handling = self.meter.handling("update_head");
        let _span = tracing::debug_span!("cache_store.update_head", host = %msg.0.key.host(), path = %msg.0.key.path_and_query()).entered();
        let head = msg.0;
        let vk = VariantKey::new(&head.key, &head.vary);
        // This 304 is the newest: a refresh from an older one still under
        // way must not rename its head over this one.
        self.in_flight.cancel_refreshes(&vk);
        self.rewrite(vk, WriteKind::Refresh, ctx, move |old| {
            if old.key != head.key || old.vary != head.vary {
                return Err(EntryError::KeyMismatch);
            }
            Ok(head)
        });
    }
}

impl CacheStore {
    /// Rewrites a stored entry's head with `edit`, keeping its body, on the
    /// blocking pool; the index follows when the new file is in place.
    pub(super) fn rewrite(
        &mut self,
        vk: VariantKey,
        kind: WriteKind,
        ctx: &mut Context<Self>,
        edit: impl FnOnce(EntryHead) -> Result<EntryHead, EntryError> + Send + 'static,
    ) {
        if !self.index.contains(&vk) {
            return;
        }
        self.memory.remove(&vk.primary);
        let write = self.in_flight.begin(vk, kind, Vec::new());
        let (path, tmp) = (self.path_for(&vk), self.next_tmp_path());
        let job = {
            let (path, tmp) = (path.clone(), tmp.clone());
            tokio::task::spawn_blocking(move || rewrite_head(&path, &tmp, edit))
        };
        ctx.spawn(
            fut::wrap_future::<_, Self>(job).map(move |done, act, _| match done {
                Ok(Ok((head, size))) => act.finish_rewrite(write, vk, &tmp, head, size),
                Ok(Err(e)) => {
                    act.in_flight.end(write);
                    act.discard_broken(&vk, &e);
                }
                Err(e) => {
                    act.in_flight.end(write);
                    act.metrics.io_errors.inc();
                    tracing::warn!(error = %e, "cannot rewrite a cache entry's head");
                }
            }),
        );
    }

    /// Renames a rewritten entry into place, here on the store's thread,
    /// unless a purge, an eviction or a newer store came since it began.
    fn finish_rewrite(
        &mut self,
        write: WriteId,
        vk: VariantKey,
        tmp: &Path,
        head: EntryHead,
        size: u64,
    ) {
        if !self.in_flight.end(write) || !self.index.contains(&vk) {
            let _ = fs::remove_file(tmp);
            self.metrics.writes_cancelled.inc();
            tracing::debug!(file = %vk.file_name(), "head rewrite dropped: the entry changed meanwhile");
            return;
        }
        if let Err(e) = fs::rename(tmp, self.path_for(&vk)) {
            let _ = fs::remove_file(tmp);
            self.metrics.io_errors.inc();
            tracing::warn!(error = %e, "cannot move a rewritten cache entry into place");
            return;
        }
        // A soft purge that came meanwhile cancelled this rewrite, so the
        // head's own mark is the truth now.
        self.add_variant(
            vk,
            Variant {
                size,
                info: Some(Box::new(EntryInfo::from_head(&head, size))),
            },
        );
    }
}

/// Runs on the blocking pool: writes the edited head and the old body to
/// `tmp` (the store renames it into place); returns the new head and size.
fn rewrite_head(
    path: &Path,
    tmp: &Path,
    edit: impl FnOnce(EntryHead) -> Result<EntryHead, EntryError>,
) -> Result<(EntryHead, u64), EntryError> {
    let mut old = File::open(path)?;
    let len = old.metadata()?.len();
    let decoded = entry::decode_head(&mut io::BufReader::new(&mut old), len)?;
    old.seek(SeekFrom::Start(decoded.body_offset))?;
    let body_len = decoded.body_len;
    let head = edit(decoded.head)?;
    let head_bytes = entry::encode_head(&head)?;
    let written = (|| -> Result<(), EntryError> {
        let mut out = BufWriter::with_capacity(READ_CHUNK, File::create(tmp)?);
        out.write_all(&head_bytes)?;
        let copied = io::copy(&mut (&mut old).take(body_len), &mut out)?;
        if copied != body_len {
            return Err(EntryError::Length {
                expected: body_len,
                actual: copied,
            });
        }
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(BODY_LEN_OFFSET))?;
        file.write_all(&body_len.to_le_bytes())?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written?;
    Ok((head, entry::PREFIX_LEN + head_bytes.len() as u64 + body_len))
}
