//! Which response statuses caje stores (RFC 9111 §3): any final status the
//! origin gave explicit freshness to, with the exceptions below; and how a
//! status is shown to `http-cache-semantics`, which understands only a few.

/// Statuses one client's own malformed request can provoke (bad syntax, a
/// body, URL or header section too large). Stored, everyone would get the
/// error one request caused (cache-poisoned denial of service), so they are
/// stored only when the origin's `cache_client_errors` allows it.
pub const CLIENT_ERRORS: [u16; 4] = [400, 413, 414, 431];

/// Statuses `http-cache-semantics` understands (its own list).
const LIBRARY_UNDERSTANDS: [u16; 14] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// Whether caje understands `status` in the sense of `must-understand`
/// (RFC 9111 §5.2.2.3): it implements that status's caching requirements.
/// These are the statuses RFC 9110 §15 defines that caje may store, and
/// 206, stored as a part (`cache::partial`).
pub fn understood(status: u16) -> bool {
    let defined = matches!(
        status,
        200..=205 | 300..=303 | 305 | 307 | 308 | 400..=417 | 421 | 422 | 426 | 500..=505
    );
    status == 206 || (defined && admissible(status, true))
}

/// Whether a response with `status` may be stored at all (its fields then
/// decide): a final status (2xx to 5xx), and not one of [`CLIENT_ERRORS`]
/// unless `client_errors` allows them. `206` and `304` have rules of their
/// own; `412` and `416` answer one request's preconditions or range, never
/// what the resource is for everyone.
pub fn admissible(status: u16, client_errors: bool) -> bool {
    (200..600).contains(&status)
        && !matches!(status, 206 | 304 | 412 | 416)
        && (client_errors || !CLIENT_ERRORS.contains(&status))
}

/// The status the library judges a response by: itself when the library
/// understands it; otherwise `302`, which it understands and does not
/// make cacheable by default, so that such a response is stored only with
/// the explicit freshness RFC 9111 §3 asks of it. caje keeps the real
/// status in the entry.
pub fn for_library(status: u16) -> u16 {
    match status {
        _ if LIBRARY_UNDERSTANDS.contains(&status) => status,
        // A stored part is fresh as the whole would be (`cache::partial`).
        206 => 200,
        _ => 302,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_final_status_but_partial_and_not_modified_is_admissible() {
        for status in [200, 204, 299, 404, 405, 410, 499, 500, 502, 503, 504, 599] {
            assert!(admissible(status, false), "{status}");
        }
        for status in [100, 103, 199, 206, 304, 412, 416, 600, 999] {
            assert!(!admissible(status, true), "{status}");
        }
    }

    #[test]
    fn client_errors_only_when_allowed() {
        for status in CLIENT_ERRORS {
            assert!(!admissible(status, false), "{status}");
            assert!(admissible(status, true), "{status}");
        }
    }

    #[test]
    fn the_library_sees_a_status_it_understands() {
        assert_eq!(for_library(404), 404);
        assert_eq!(for_library(503), 302);
        assert_eq!(for_library(299), 302);
        assert_eq!(for_library(206), 200);
        assert!(understood(503) && understood(200) && understood(404) && understood(206));
        assert!(!understood(299) && !understood(499) && !understood(599));
        assert!(!understood(416), "never stored");
    }
}
