//! Building responses: from a stored entry (including a 304 when the
//! client's own validators match it), with a body of known or unknown
//! length, and caje's short plain-text errors (the 502 / 504 that say
//! which origin failed among them).

use std::time::SystemTime;

use actix_web::body::SizedStream;
use actix_web::dev::RequestHead;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpResponse, HttpResponseBuilder};
use futures_util::StreamExt;

use awc::error::SendRequestError;

use crate::actors::cache_store::EntryBody;
use crate::cache::conditional::{self, Preconditions, Validators};
use crate::cache::partial;
use crate::cache::range::{self, RangeAnswer};
use crate::cache::response_fields::ResponseFields;
use crate::cache::EntryHead;
use crate::config::Origin;
use crate::metrics::ProxyMetrics;
use crate::upstream::headers;
use crate::upstream::send::{timed_out, tls_failure};

/// Fields a 304 carries when the 200 would (RFC 9110 §15.4.5).
const NOT_MODIFIED_FIELDS: [HeaderName; 7] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
    header::LAST_MODIFIED,
];

pub fn plain(status: StatusCode, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(body.into())
}

/// Answers from a stored entry: 304 when the client's validators match it,
/// otherwise the stored status, headers and body, with `Age` and
/// `Cache-Status` (`status`) set. The stored fields come parsed (`fields`):
/// each is a reference-counted clone here.
pub fn from_cache(
    req: &RequestHead,
    (head, fields): (&EntryHead, &ResponseFields),
    body: EntryBody,
    now: SystemTime,
    status: Option<HeaderValue>,
    metrics: &ProxyMetrics,
) -> HttpResponse {
    let text = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let preconditions = Preconditions {
        if_none_match: text(header::IF_NONE_MATCH),
        if_modified_since: text(header::IF_MODIFIED_SINCE),
    };
    let range = text(header::RANGE);
    // The stored validators are looked for only when the request compares
    // with them: most requests carry neither a precondition nor a range.
    let compares = preconditions.if_none_match.is_some()
        || preconditions.if_modified_since.is_some()
        || range.is_some();
    let validators = if compares {
        Validators {
            etag: head.field_str("etag"),
            last_modified: head.field_str("last-modified"),
            date: head.field_str("date"),
        }
    } else {
        Validators::default()
    };
    let stored_status = fields.status;
    let not_modified =
        stored_status == StatusCode::OK && conditional::not_modified(preconditions, validators);
    let mut response = HttpResponse::build(if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        stored_status
    });
    for (name, value) in &fields.fields {
        if !not_modified || NOT_MODIFIED_FIELDS.contains(name) {
            response.append_header((name.clone(), value.clone()));
        }
    }
    // Digits written on the stack and copied once: through `Display` (or
    // `From<u64>`'s growing buffer) they cost a hit more.
    let mut digits = itoa::Buffer::new();
    let age = digits.format(fields.age_at.age(&head.policy, now).as_secs());
    if let Ok(age) = HeaderValue::from_str(age) {
        response.insert_header((header::AGE, age));
    }
    // A partial entry holds `held` of a longer representation: ranges are
    // answered against its complete length, from its body shifted.
    let held = partial::held(head);
    let (complete_len, shift) = held.map_or((body.len(), 0), |h| (h.complete, h.range.first));
    let ranged = stored_status == StatusCode::OK || held.is_some();
    let ranges = if ranged && req.method == Method::GET {
        if !fields.has_accept_ranges {
            response.insert_header((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
        }
        range::answer(
            range,
            // If-Range means nothing without Range: not looked up then.
            range.and_then(|_| text(header::IF_RANGE)),
            complete_len,
            validators.etag,
            validators.last_modified,
        )
    } else {
        RangeAnswer::Full
    };
    let sent = metrics.cache_body_bytes.clone();
    let count = move |chunk: &Result<bytes::Bytes, std::io::Error>| {
        if let Ok(chunk) = chunk {
            sent.inc_by(chunk.len() as u64);
        }
    };
    let mut response = match ranges {
        _ if not_modified => response.finish(),
        RangeAnswer::Unsatisfiable => {
            response.status(StatusCode::RANGE_NOT_SATISFIABLE);
            response.insert_header((
                header::CONTENT_RANGE,
                range::unsatisfied_content_range(complete_len),
            ));
            response.finish()
        }
        RangeAnswer::Partial(part) => {
            let stream = body.into_range_stream(part.first.saturating_sub(shift), part.len());
            response.status(StatusCode::PARTIAL_CONTENT);
            response.insert_header((header::CONTENT_RANGE, part.content_range(complete_len)));
            response.body(SizedStream::new(part.len(), stream.inspect(count)))
        }
        RangeAnswer::Full => match body.as_one_chunk() {
            Some(bytes)
                if req.method == Method::GET
                    && !never_has_content(stored_status)
                    && stored_status != StatusCode::NOT_MODIFIED =>
            {
                // Counted as handed over, not as written: a client gone
                // before the end still counts the whole body.
                metrics.cache_body_bytes.inc_by(bytes.len() as u64);
                response.body(bytes.clone())
            }
            _ => {
                let body_len = body.len();
                let stream = body.into_stream().inspect(count);
                let len = body_len;
                with_body(response, stored_status, &req.method, Some(len), stream)
            }
        },
    };
    headers::mark_response(response.headers_mut(), req.version, status);
    response
}

/// 502 when the origin cannot be reached or answers garbage, 504 when it is too slow.
pub fn origin_failure(origin: &Origin, error: &SendRequestError) -> HttpResponse {
    tracing::warn!(origin = %origin.upstream, %error, "origin request failed");
    if timed_out(error) {
        plain(
            StatusCode::GATEWAY_TIMEOUT,
            format!(
                "caje: origin {} for {} did not answer within {}\n",
                origin.upstream,
                origin.host,
                humantime::format_duration(origin.timeout)
            ),
        )
    } else if let Some(tls) = tls_failure(error) {
        plain(
            StatusCode::BAD_GATEWAY,
            format!(
                "caje: origin {} for {}: TLS failed: {tls}\n",
                origin.upstream, origin.host
            ),
        )
    } else {
        plain(
            StatusCode::BAD_GATEWAY,
            format!(
                "caje: origin {} for {} could not be reached: {error}\n",
                origin.upstream, origin.host
            ),
        )
    }
}

/// Statuses whose responses never have content (RFC 9110 §6.4.1).
pub fn never_has_content(status: StatusCode) -> bool {
    status.is_informational() || status == StatusCode::NO_CONTENT
}

/// Attaches a body, keeping its length when known. `HEAD` responses keep
/// the length but send nothing; statuses that never have content get none.
pub fn with_body<S, E>(
    mut response: HttpResponseBuilder,
    status: StatusCode,
    method: &Method,
    len: Option<u64>,
    body: S,
) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + 'static,
    E: Into<Box<dyn std::error::Error>> + 'static,
{
    if never_has_content(status) {
        return response.finish();
    }
    if status == StatusCode::NOT_MODIFIED {
        if let Some(len) = len {
            response.insert_header((header::CONTENT_LENGTH, len));
        }
        return response.finish();
    }
    let nothing = futures_util::stream::empty::<Result<bytes::Bytes, E>>();
    match (len, *method == Method::HEAD) {
        (Some(len), true) => response.body(SizedStream::new(len, nothing)),
        (None, true) => response.streaming(nothing),
        (Some(len), false) => response.body(SizedStream::new(len, body)),
        (None, false) => response.streaming(body),
    }
}
