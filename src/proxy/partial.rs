//! A request reaching past one end of a stored part (`cache::partial`):
//! the origin is asked for the missing bytes only, with `If-Range` on the
//! stored representation; when its `206` is exactly that part of the same
//! representation, the client gets the stored bytes and the new ones as one
//! answer, and the joined part replaces the entry (a whole `200` once it
//! is complete). Any other answer is relayed as on a miss.

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpResponse;
use awc::error::PayloadError;
use futures_util::future::Either;
use futures_util::StreamExt;

use super::answer::relay;
use super::body::tee;
use super::exchange::Exchange;
use super::respond::{self, with_body};
use crate::actors::cache_store::{EntryBody, Hit, StoreSink};
use crate::cache::admit::{self, OriginAnswer};
use crate::cache::partial::{self, Held};
use crate::cache::range::ByteRange;
use crate::cache::{CacheStatus, Forward};
use crate::upstream::fetch::begin_store;
use crate::upstream::send::NoBody;
use crate::upstream::{self, headers, RequestBody};

/// Answers `wanted` (`None`: the whole representation) from the stored
/// part `held` of `hit` and the `missing` part next to it.
pub async fn extend(
    x: &Exchange<'_>,
    hit: Hit,
    held: Held,
    wanted: Option<ByteRange>,
    missing: ByteRange,
) -> HttpResponse {
    let range = HeaderValue::from_str(&format!("bytes={}-{}", missing.first, missing.last));
    let if_range = partial::if_range(&hit.head).and_then(|v| HeaderValue::from_str(v).ok());
    let mut request = x.origin_request(true);
    request.part = range.ok().map(|range| (range, if_range));
    let sent = upstream::send(&x.upstream(), request, None::<RequestBody<NoBody>>).await;
    let response = match sent.result {
        Ok(response) => response,
        Err(e) => return respond::origin_failure(x.origin, &e),
    };
    let status = response.status();
    if !partial::joins(
        &hit.head,
        held,
        missing,
        status.as_u16(),
        response.headers(),
    ) {
        if status != StatusCode::PARTIAL_CONTENT {
            // Another representation (a 200 under If-Range), or an error.
            return relay(x, Forward::Partial, response, None).await;
        }
        // A part of something else than the stored part: asked again, as
        // the client asked.
        let again = upstream::send(
            &x.upstream(),
            x.origin_request(false),
            None::<RequestBody<NoBody>>,
        )
        .await;
        return match again.result {
            Ok(response) => relay(x, Forward::Partial, response, None).await,
            Err(e) => respond::origin_failure(x.origin, &e),
        };
    }
    let joined = partial::joined(held, missing);
    let passed_on = as_joined(&headers::response_headers(response.headers()), joined);
    let origin_fields = as_joined(response.headers(), joined);
    let answer = OriginAnswer {
        status: if joined.is_whole() {
            StatusCode::OK
        } else {
            StatusCode::PARTIAL_CONTENT
        },
        headers: &origin_fields,
        passed_on: &passed_on,
    };
    let mut cache_status = CacheStatus::forward(Forward::Partial);
    cache_status.fwd_status = Some(status.as_u16());
    // The head boxed: it is kept across the store's answer.
    let admitted = admit::admit(x.key, x.seen, &answer, x.origin.admit_rules())
        .map(|(head, ttl)| (Box::new(head), ttl));
    let Hit { body, .. } = hit;
    let (sink, stored) = match (admitted, body.try_clone()) {
        (Some((head, ttl)), Ok(stored)) => {
            cache_status.ttl = Some(ttl as i64);
            let sink = begin_store(&x.state.cache, head, Some(joined.range.len())).await;
            (sink, Some(stored))
        }
        _ => (None, None),
    };
    cache_status.stored = sink.is_some();

    let span = wanted.unwrap_or(ByteRange {
        first: 0,
        last: held.complete.saturating_sub(1),
    });
    // All of the missing part is wanted; of the stored part, what overlaps
    // the wanted span.
    let after = missing.first > held.range.last;
    let (offset, from_stored) = if after {
        let len = held.range.last.saturating_add(1).saturating_sub(span.first);
        (span.first.saturating_sub(held.range.first), len)
    } else {
        let len = span.last.min(held.range.last).saturating_add(1);
        (0, len.saturating_sub(held.range.first))
    };
    let stored_part = body
        .into_range_stream(offset, from_stored)
        .map(|chunk| chunk.map_err(PayloadError::Io));
    let sent = x.state.metrics.origin_body_bytes.clone();
    let count = move |chunk: &Result<bytes::Bytes, PayloadError>| {
        if let Ok(chunk) = chunk {
            sent.inc_by(chunk.len() as u64);
        }
    };
    // The new entry holds the parts in order: the stored one first when the
    // missing part follows it.
    let stream = if after {
        let sink = match (sink, stored) {
            (Some(sink), Some(stored)) => copy_into(sink, stored).await,
            _ => None,
        };
        let new_part = tee(response, sink, Some(missing.len()), None).inspect(count);
        Either::Left(stored_part.chain(new_part))
    } else {
        let new_part = then_stored(response, sink, stored).inspect(count);
        Either::Right(new_part.chain(stored_part))
    };
    let client_status = if wanted.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let mut reply = HttpResponse::build(client_status);
    for (name, value) in passed_on.iter() {
        if *name != header::CONTENT_RANGE {
            reply.append_header((name.clone(), value.clone()));
        }
    }
    if let Some(wanted) = wanted {
        reply.insert_header((header::CONTENT_RANGE, wanted.content_range(held.complete)));
    }
    let mut reply = with_body(reply, client_status, &Method::GET, Some(span.len()), stream);
    headers::mark_response(
        reply.headers_mut(),
        x.req.version(),
        cache_status.field_value(&x.state.cache_name),
    );
    reply
}

/// The origin's fields for the joined part: its `Content-Range`, or none
/// once it is the whole representation.
fn as_joined(fields: &HeaderMap, joined: Held) -> HeaderMap {
    let mut fields = fields.clone();
    fields.remove(header::CONTENT_LENGTH);
    fields.remove(header::CONTENT_RANGE);
    if !joined.is_whole() {
        if let Ok(value) = HeaderValue::from_str(&joined.range.content_range(joined.complete)) {
            fields.insert(header::CONTENT_RANGE, value);
        }
    }
    fields
}

/// The origin's part, copied into `sink` as it passes, followed in the
/// entry by the `stored` part; the entry is committed then.
fn then_stored(
    origin: awc::ClientResponse,
    sink: Option<StoreSink>,
    stored: Option<EntryBody>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, PayloadError>> {
    futures_util::stream::unfold(Some((origin, sink, stored)), |state| async move {
        let (mut origin, sink, stored) = state?;
        match origin.next().await {
            Some(Ok(chunk)) => {
                let sink = match sink {
                    Some(sink) if sink.write(chunk.clone()).await => Some(sink),
                    _ => None,
                };
                Some((Ok(chunk), Some((origin, sink, stored))))
            }
            // The sink is dropped with the state: the entry is abandoned.
            Some(Err(e)) => Some((Err(e), None)),
            None => {
                if let (Some(sink), Some(stored)) = (sink, stored) {
                    if let Some(sink) = copy_into(sink, stored).await {
                        sink.finish().await;
                    }
                }
                None
            }
        }
    })
}

/// Writes the stored part into the new entry; `None` when that fails
/// (the entry is then abandoned, the client still served).
async fn copy_into(sink: StoreSink, stored: EntryBody) -> Option<StoreSink> {
    let mut chunks = std::pin::pin!(stored.into_stream());
    while let Some(chunk) = chunks.next().await {
        if !sink.write(chunk.ok()?).await {
            return None;
        }
    }
    Some(sink)
}
