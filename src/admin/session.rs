//! Dashboard sessions. The cookie carries a random session id and its issue
//! time, authenticated with a key drawn at start (so a restart logs every
//! browser out and the cookie never holds the admin token). A session ends
//! when its lifetime has passed, checked here and not only by the cookie's
//! `Max-Age`, or when it logs out: its id is then remembered as revoked
//! until it would have expired anyway.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use subtle::ConstantTimeEq;

/// A session id: random, so that one logout revokes only its own session.
type SessionId = [u8; 16];

/// A valid session, as the admin middleware hands it to the handlers.
#[derive(Debug, Clone)]
pub struct Session {
    id: SessionId,
    csrf: String,
}

impl Session {
    /// The token the dashboard's forms and requests carry, proving they
    /// were made by a page caje served to this session.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `given` is this session's CSRF token, in constant time.
    pub fn csrf_matches(&self, given: &str) -> bool {
        bool::from(given.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// Why a cookie is no session.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Not a cookie this process issued (forged, garbled, or from before a restart).
    Unknown,
    /// Issued here, but its lifetime has passed or it logged out.
    Ended,
}

pub struct Sessions {
    key: [u8; 32],
    lifetime: Duration,
    /// Logged-out ids, with the time (Unix seconds) they would expire.
    revoked: Mutex<HashMap<SessionId, u64>>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Sessions {
    pub fn new(lifetime: Duration) -> Self {
        Self {
            key: rand::random(),
            lifetime,
            revoked: Mutex::new(HashMap::new()),
        }
    }

    /// The cookie's `Max-Age`.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Distinct inputs per use of the key (`tag`), so a CSRF token is never
    /// a valid cookie signature or the reverse.
    fn mac(&self, tag: &[u8], id: &SessionId, issued: u64) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        hasher.update(tag);
        hasher.update(id);
        hasher.update(&issued.to_be_bytes());
        hasher.finalize()
    }

    fn session(&self, id: SessionId) -> Session {
        // Per session, not per issue time: a token stays valid for its session only.
        let csrf = self.mac(b"caje csrf\0", &id, 0).to_hex().to_string();
        Session { id, csrf }
    }

    /// A new session and its cookie value: `<id>.<issued>.<mac>`, hex and
    /// decimal, so it needs no cookie quoting.
    pub fn issue(&self) -> (Session, String) {
        self.issue_at(rand::random(), now_secs())
    }

    fn issue_at(&self, id: SessionId, issued: u64) -> (Session, String) {
        let mac = self.mac(b"caje session\0", &id, issued);
        let value = format!("{}.{issued}.{}", hex(&id), mac.to_hex());
        (self.session(id), value)
    }

    pub fn verify(&self, value: &str) -> Result<Session, Invalid> {
        self.verify_at(value, now_secs())
    }

    fn verify_at(&self, value: &str, now: u64) -> Result<Session, Invalid> {
        let mut parts = value.split('.');
        let (Some(id), Some(issued), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Invalid::Unknown);
        };
        let id: SessionId = unhex(id).ok_or(Invalid::Unknown)?;
        let issued: u64 = issued.parse().map_err(|_| Invalid::Unknown)?;
        let expected = self.mac(b"caje session\0", &id, issued).to_hex();
        if !bool::from(mac.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(Invalid::Unknown);
        }
        if now >= issued.saturating_add(self.lifetime.as_secs()) || self.is_revoked(&id) {
            return Err(Invalid::Ended);
        }
        Ok(self.session(id))
    }

    fn is_revoked(&self, id: &SessionId) -> bool {
        let revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        revoked.contains_key(id)
    }

    /// Ends `session` for good (a logout); forgets ids that have expired
    /// meanwhile, so the list holds only sessions that could still be used.
    pub fn revoke(&self, session: &Session) {
        let now = now_secs();
        let mut revoked = self.revoked.lock().unwrap_or_else(PoisonError::into_inner);
        revoked.retain(|_, expires| *expires > now);
        revoked.insert(session.id, now.saturating_add(self.lifetime.as_secs()));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_lasts_its_lifetime_and_no_longer() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (session, cookie) = sessions.issue_at([7; 16], 1_000);
        assert_eq!(
            sessions.verify_at(&cookie, 1_059).map(|s| s.csrf),
            Ok(session.csrf.clone())
        );
        assert_eq!(
            sessions.verify_at(&cookie, 1_060).err(),
            Some(Invalid::Ended)
        );
        // The issue time cannot be moved: it is under the MAC.
        let later = cookie.replacen(".1000.", ".1050.", 1);
        assert_eq!(
            sessions.verify_at(&later, 1_070).err(),
            Some(Invalid::Unknown)
        );
    }

    #[test]
    fn forged_cookies_and_other_keys_are_refused() {
        let sessions = Sessions::new(Duration::from_secs(60));
        let (_, cookie) = sessions.issue_at([7; 16], 1_000);
        let other = Sessions::new(Duration::from_secs(60));
        assert_eq!(
            other.verify_at(&cookie, 1_001).err(),
            Some(Invalid::Unknown)
        );
        for forged in ["", "x", "a.b.c", &format!("{cookie}.x"), &cookie[1..]] {
            assert_eq!(
                sessions.verify_at(forged, 1_001).err(),
                Some(Invalid::Unknown),
                "{forged}"
            );
        }
        // The CSRF token is not a cookie MAC.
        let (session, _) = sessions.issue_at([7; 16], 0);
        let as_cookie = format!("{}.0.{}", hex(&[7; 16]), session.csrf);
        assert_eq!(
            sessions.verify_at(&as_cookie, 1).err(),
            Some(Invalid::Unknown)
        );
    }

    #[test]
    fn a_revoked_session_stays_ended_and_others_live_on() {
        let sessions = Sessions::new(Duration::from_secs(3600));
        let (first, first_cookie) = sessions.issue();
        let (_, second_cookie) = sessions.issue();
        sessions.revoke(&first);
        assert_eq!(sessions.verify(&first_cookie).err(), Some(Invalid::Ended));
        assert!(sessions.verify(&second_cookie).is_ok());
        assert!(first.csrf_matches(&first.csrf.clone()));
        assert!(!first.csrf_matches(&first.csrf[1..]));
    }
}
