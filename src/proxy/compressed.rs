//! Compression at the edge on a miss: a compressible answer that a client
//! wants compressed is stored whole first, then its compressed variant is
//! made once by the `CacheStore` and the client answered from it, as every
//! later request for that coding will be (never compressed per request).

use std::time::SystemTime;

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::BytesMut;
use futures_util::StreamExt;

use super::exchange::Exchange;
use super::respond::{self, with_body};
use crate::actors::cache_store::{Compress, LookupResult, StoreSink};
use crate::cache::coalesce::{Flight, Outcome};
use crate::cache::encoding::{self, Encoding};
use crate::cache::key::VaryValues;
use crate::cache::{CacheStatus, EntryHead};
use crate::upstream::headers;

/// The largest answer held back for compression on a miss: a larger (or
/// chunked) one streams to its first client as it is, and is compressed
/// for the requests after it.
pub const MAX_HELD: u64 = 8 << 20;

/// What a miss answer that will be compressed is.
pub struct ToCompress {
    pub coding: Encoding,
    /// The vary values of the identity variant being stored.
    pub identity: VaryValues,
    pub min_len: u64,
}

/// Whether this miss's answer, admitted with `head`, is held back to be
/// compressed for its client: a compressible identity answer of known
/// length, to a client that wants another coding.
pub fn on_miss(x: &Exchange<'_>, head: &EntryHead, len: Option<u64>) -> Option<ToCompress> {
    let min_len = x.origin.admit_rules().compress_from?;
    let coding = encoding::for_request(x.seen);
    let len = len.filter(|len| (1..=MAX_HELD).contains(len))?;
    let wanted = coding != Encoding::Identity
        && Encoding::of_vary(&head.vary) == Some(Encoding::Identity)
        && encoding::may_compress(head, Some(len), min_len);
    wanted.then(|| ToCompress {
        coding,
        identity: head.vary.clone(),
        min_len,
    })
}

/// Stores the origin's answer whole through `sink`, has its `coding`
/// variant made, and answers from it; the identity answer when that fails
/// (held in memory meanwhile: at most [`MAX_HELD`] bytes).
pub async fn store_then_compress(
    x: &Exchange<'_>,
    mut origin: awc::ClientResponse,
    passed_on: HeaderMap,
    sink: StoreSink,
    flight: Option<Flight>,
    what: ToCompress,
    mut status: CacheStatus,
) -> HttpResponse {
    let code = origin.status();
    let mut held = BytesMut::new();
    let mut sink = Some(sink);
    while let Some(chunk) = origin.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::warn!(origin = %x.origin.upstream, error = %e, "origin body failed");
                return respond::plain(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "caje: origin {} for {} failed mid-body: {e}\n",
                        x.origin.upstream, x.origin.host
                    ),
                );
            }
        };
        x.state.metrics.origin_body_bytes.inc_by(chunk.len() as u64);
        held.extend_from_slice(&chunk);
        if let Some(s) = sink.take() {
            if s.write(chunk).await {
                sink = Some(s);
            }
        }
    }
    let stored = match sink {
        Some(sink) => sink.commit().await,
        None => false,
    };
    let found = if stored {
        let compress = Compress {
            key: x.key.clone(),
            identity: what.identity,
            coding: what.coding,
            min_len: what.min_len,
        };
        x.state.cache.send(compress).await.ok()
    } else {
        None
    };
    if let Some(flight) = flight {
        flight.finish(if stored {
            Outcome::Stored
        } else {
            Outcome::NotStored
        });
    }
    status.stored = stored;
    if let Some(LookupResult::Found(hit)) = found {
        return x.answer(*hit, &status, SystemTime::now());
    }
    let mut response = HttpResponse::build(code);
    for (name, value) in &passed_on {
        response.append_header((name.clone(), value.clone()));
    }
    let len = held.len() as u64;
    let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(held.freeze()) });
    let mut response = with_body(response, code, x.req.method(), Some(len), body);
    headers::mark_response(
        response.headers_mut(),
        x.req.version(),
        status.field_value(&x.state.cache_name),
    );
    response
}
