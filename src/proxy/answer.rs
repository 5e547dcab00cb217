//! Answering with what the origin said: its response streamed to the
//! client (and to the cache when admission allows), or, after a 304, the
//! stored response with the 304's fields.

use std::time::SystemTime;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpResponse;
use futures_util::StreamExt;

use super::body::tee;
use super::compressed;
use super::exchange::{ttl, Exchange};
use super::fill;
use super::respond::{self, with_body};
use crate::actors::cache_store::{Hit, Purge, UpdateHead};
use crate::cache::admit::{self, OriginAnswer};
use crate::cache::coalesce::{Flight, Outcome};
use crate::cache::encoding::{self, Encoding};
use crate::cache::freshness_rules::Source;
use crate::cache::partial;
use crate::cache::revalidate::{self, Keep};
use crate::cache::{CacheStatus, Forward};
use crate::upstream::fetch::{begin_store, content_length};
use crate::upstream::{self, headers, RequestBody};

/// The origin answered 304 to a revalidation: the stored response, updated
/// with the 304's fields, is sent and its head stored. A 304 about another
/// response than the stored one means asking again, unconditionally.
pub async fn revalidated(
    x: &Exchange<'_>,
    hit: Hit,
    reason: Forward,
    not_modified: awc::ClientResponse,
) -> HttpResponse {
    let now = SystemTime::now();
    let passed_on = headers::response_headers(not_modified.headers());
    let Some(revalidated) =
        revalidate::updated_head(&hit.head, x.seen, &passed_on, x.origin.admit_rules(), now)
    else {
        let again = upstream::send(
            &x.upstream(),
            x.origin_request(true),
            None::<RequestBody<upstream::send::NoBody>>,
        )
        .await;
        return match again.result {
            Ok(response) => relay(x, reason, response, None).await,
            Err(e) => respond::origin_failure(x.origin, &e),
        };
    };
    let mut status = CacheStatus::forward(reason);
    status.fwd_status = Some(StatusCode::NOT_MODIFIED.as_u16());
    let head = revalidated.head;
    match revalidated.keep {
        Keep::Update => {
            status.stored = true;
            status.ttl = Some(ttl(&head, now));
            status.detail = x.freshness_detail(&head);
            x.state.cache.do_send(UpdateHead(head.clone()));
        }
        // This request may not store (its own directives or credentials):
        // the stored copy stays as it was for everyone else.
        Keep::AsStored => {}
        // The origin now forbids keeping it: this answer is the last one.
        Keep::Drop => x.state.cache.do_send(Purge(head.key.clone())),
    }
    let hit = Hit::new(head.into(), hit.body);
    let mut response = x.answer(hit, &status, now);
    // The stored head never keeps a 304's cookies: they are this client's.
    for cookie in not_modified.headers().get_all(header::SET_COOKIE) {
        response
            .headers_mut()
            .append(header::SET_COOKIE, cookie.clone());
    }
    response
}

/// Streams the origin's response to the client, storing it on the way when
/// admission allows; a coalescing `flight` learns how that went.
pub async fn relay(
    x: &Exchange<'_>,
    reason: Forward,
    origin: awc::ClientResponse,
    flight: Option<Flight>,
) -> HttpResponse {
    let status = origin.status();
    // The origin's fields become the response's: taken, not copied.
    let mut taken = HeaderMap::new();
    let origin = origin.map_body(|head, body| {
        taken = std::mem::take(&mut head.headers);
        body
    });
    let fields = headers::ResponseFields::take(&mut taken);
    // A 204's body is never read: its entry is complete with its head.
    let content_length = if respond::never_has_content(status) {
        Some(0)
    } else {
        content_length(fields.sent())
    };
    let mut cache_status = CacheStatus::forward(reason);
    cache_status.fwd_status = Some(status.as_u16());

    let answer = OriginAnswer {
        status,
        headers: fields.sent(),
        passed_on: fields.with_length(),
    };
    let rules = x.origin.admit_rules();
    let (admitted, refused) = if *x.req.method() == Method::GET {
        // The head boxed: it is kept across the store's answer, and the
        // future of every miss would otherwise have room for its copies.
        match admit::admission(x.key, x.seen, &answer, rules) {
            Ok((head, ttl)) => (Some((Box::new(head), ttl)), None),
            Err(refusal) => (None, Some(refusal)),
        }
    } else {
        (None, None)
    };
    if reason == Forward::Bypass {
        let rule = x.origin.freshness.bypass(x.path_and_query());
        cache_status.detail = rule.map(|glob| Source::Rule(glob).detail());
    }
    // A stored part must be exactly the bytes its Content-Range names.
    let store_len = match partial::storable_part(answer.headers) {
        Some(part) if status == StatusCode::PARTIAL_CONTENT => Some(part.range.len()),
        _ => content_length,
    };
    // Stored as varying on the coding: the client is told so too (once
    // `answer` is done with the origin's own fields).
    let mut varies_on_coding = false;
    let (sink, to_compress) = match admitted {
        Some((head, ttl)) => {
            cache_status.ttl = Some(ttl as i64);
            cache_status.detail = rules.freshness_detail(x.key, status.as_u16(), answer.headers);
            varies_on_coding = Encoding::of_vary(&head.vary).is_some();
            let to_compress = compressed::on_miss(x, &head, content_length);
            let sink = begin_store(&x.state.cache, head, store_len).await;
            (sink, to_compress)
        }
        None => (None, None),
    };
    cache_status.stored = sink.is_some();
    let sink = match (sink, to_compress) {
        (Some(sink), Some(what)) => {
            let mut passed_on = fields.into_passed_on();
            if varies_on_coding {
                encoding::vary_field(&mut passed_on);
            }
            // Boxed: only a miss stored with a compressed variant needs it.
            let compress = compressed::store_then_compress(
                x,
                origin,
                passed_on,
                sink,
                flight,
                what,
                cache_status,
            );
            return Box::pin(compress).await;
        }
        (sink, _) => sink,
    };
    let (sink, flight) = match (sink, content_length, flight) {
        // Nothing will flow through an empty body: its entry is complete now.
        (Some(sink), Some(0), flight) => {
            let stored = sink.commit().await;
            if let Some(flight) = flight {
                flight.finish(if stored {
                    Outcome::Stored
                } else {
                    Outcome::NotStored
                });
            }
            (None, None)
        }
        (None, _, Some(flight)) => {
            // Hit-for-miss only when no client at all could have it stored.
            flight.finish(
                if admit::storable_for_no_one(x.key, &answer, rules, refused) {
                    Outcome::Uncacheable
                } else {
                    Outcome::NotStored
                },
            );
            (None, None)
        }
        (sink, _, flight) => (sink, flight),
    };

    let mut passed_on = fields.into_passed_on();
    if varies_on_coding {
        encoding::vary_field(&mut passed_on);
    }
    let sent = x.state.metrics.origin_body_bytes.clone();
    let origin = origin.inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            sent.inc_by(chunk.len() as u64);
        }
    });
    let response = HttpResponse::build(status);
    let method = x.req.method();
    let mut response = match sink {
        // Stored at the origin's pace, not this client's.
        Some(sink) if content_length.is_none_or(|len| len > fill::DECOUPLE_ABOVE) => {
            let body = fill::decoupled(origin, sink, content_length, flight);
            with_body(response, status, method, content_length, body)
        }
        sink => {
            let body = tee(origin, sink, content_length, flight);
            with_body(response, status, method, content_length, body)
        }
    };
    // The origin's fields become the response's own, not copied; what
    // `with_body` set (a 304's length) follows them.
    let set = std::mem::replace(response.headers_mut(), passed_on);
    for (name, value) in set {
        response.headers_mut().append(name, value);
    }
    headers::mark_response(
        response.headers_mut(),
        x.req.version(),
        cache_status.field_value(&x.state.cache_name),
    );
    response
}
