//! Who may use the protected admin endpoints: a request bearing the admin
//! token (`Authorization: Bearer …`, compared in constant time), or a
//! browser that logged in with it and holds a session cookie, used as the
//! dashboard uses it (see `provenance`): a Bearer token is never attached
//! by a browser on its own, a cookie always is.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use subtle::ConstantTimeEq;

use super::provenance::{self, is_write};
pub use super::refusal::AuthError;
use super::session::{Invalid, Session, Sessions};

/// How an authorised request proved it.
pub enum Credential {
    Bearer,
    Session(Session),
}

pub struct AdminAuth {
    token: Option<String>,
    /// `caje_session_<port>`: browsers send cookies to every port of a
    /// host, so nodes sharing a host name need cookies of their own.
    cookie_name: String,
    sessions: Sessions,
    /// See `Settings::client_scheme_header`.
    scheme_header: Option<HeaderName>,
}

impl AdminAuth {
    /// `port` is the node's listening port, naming its session cookie.
    pub fn new(
        token: Option<String>,
        port: u16,
        session_lifetime: std::time::Duration,
        scheme_header: Option<HeaderName>,
    ) -> Self {
        Self {
            token,
            cookie_name: format!("caje_session_{port}"),
            sessions: Sessions::new(session_lifetime),
            scheme_header,
        }
    }

    /// Who the request is: the Bearer token if it gives one (then only
    /// that), else the session cookie.
    fn identify(&self, req: &HttpRequest) -> Result<Credential, AuthError> {
        let Some(token) = &self.token else {
            return Err(AuthError::NotConfigured);
        };
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(given) = bearer {
            if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
                return Ok(Credential::Bearer);
            }
        } else if let Some(cookie) = req.cookie(&self.cookie_name) {
            return match self.sessions.verify(cookie.value()) {
                Ok(session) => Ok(Credential::Session(session)),
                Err(Invalid::Ended) => Err(AuthError::SessionEnded),
                Err(Invalid::Unknown) => Err(AuthError::Unauthorized),
            };
        }
        Err(AuthError::Unauthorized)
    }

    /// `Ok` with the credential for an authorised request; otherwise why
    /// not (it renders as the response to send). A session must also be
    /// used as the dashboard uses it: writes from this origin with the
    /// session's CSRF token (from a header, or `form_csrf`, the body's
    /// `csrf` field), reads as top-level navigations.
    pub fn authorize(
        &self,
        req: &HttpRequest,
        form_csrf: Option<&str>,
    ) -> Result<Credential, AuthError> {
        let credential = self.identify(req)?;
        if let Credential::Session(session) = &credential {
            if is_write(req.method()) {
                let own = provenance::own_origin(req, self.is_https(req));
                provenance::check_write(req.headers(), &own)?;
                let given = provenance::csrf_header(req.headers())
                    .or(form_csrf)
                    .ok_or(AuthError::MissingCsrf)?;
                if !session.csrf_matches(given) {
                    return Err(AuthError::WrongCsrf);
                }
            } else {
                provenance::check_read(req.headers())?;
            }
        }
        Ok(credential)
    }

    /// Whether the token is set and `given` is it, in constant time.
    pub fn token_matches(&self, given: &str) -> Result<bool, AuthError> {
        let token = self.token.as_ref().ok_or(AuthError::NotConfigured)?;
        Ok(bool::from(given.as_bytes().ct_eq(token.as_bytes())))
    }

    fn is_https(&self, req: &HttpRequest) -> bool {
        provenance::is_https(req, self.scheme_header.as_ref())
    }

    /// A new session and the cookie that carries it: only for `/_caje`,
    /// unreadable by scripts, never sent on a request another site starts,
    /// `Secure` when the client came over https, gone after the session's
    /// lifetime (which the server enforces too).
    pub fn start_session(&self, req: &HttpRequest) -> Cookie<'static> {
        let (_, value) = self.sessions.issue();
        let lifetime = self.sessions.lifetime().as_secs();
        self.cookie(req, value, i64::try_from(lifetime).unwrap_or(i64::MAX))
    }

    /// Revokes `session` and returns the cookie that deletes it.
    pub fn end_session(&self, req: &HttpRequest, session: &Session) -> Cookie<'static> {
        self.sessions.revoke(session);
        self.cookie(req, String::new(), 0)
    }

    fn cookie(&self, req: &HttpRequest, value: String, max_age: i64) -> Cookie<'static> {
        Cookie::build(self.cookie_name.clone(), value)
            .path("/_caje")
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.is_https(req))
            .max_age(time::Duration::seconds(max_age))
            .finish()
    }

    /// Whether a write carries a session cookie and may carry its CSRF
    /// token only in a form body, which must then be read first.
    fn needs_form_csrf(&self, req: &ServiceRequest) -> bool {
        is_write(req.method())
            && provenance::csrf_header(req.headers()).is_none()
            && req.headers().get(header::AUTHORIZATION).is_none()
            && req.cookie(&self.cookie_name).is_some()
            && req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
    }
}

/// The `csrf` field of a form body, which is put back for the handler.
async fn form_csrf(req: &mut ServiceRequest) -> Option<String> {
    // Bounded by the `Bytes` extractor's limit (256 KiB by default).
    let body = req.extract::<web::Bytes>().await.ok()?;
    let csrf = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .ok()
        .and_then(|fields| fields.into_iter().find(|(k, _)| k == "csrf"))
        .map(|(_, v)| v);
    req.set_payload(Payload::from(body));
    csrf
}

/// Middleware for the protected admin routes: lets an authorised request
/// through (a session in its extensions, for the handler); sends a browser
/// asking for a page to the login form; refuses anything else with the reason.
pub async fn require_token(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AdminAuth>>().cloned() {
        Some(auth) => {
            let csrf = match auth.needs_form_csrf(&req) {
                true => form_csrf(&mut req).await,
                false => None,
            };
            auth.authorize(req.request(), csrf.as_deref())
        }
        None => Err(AuthError::NotConfigured),
    };
    let refusal = match verdict {
        Ok(credential) => {
            if let Credential::Session(session) = credential {
                req.extensions_mut().insert(session);
            }
            return Ok(next.call(req).await?.map_into_left_body());
        }
        Err(AuthError::Unauthorized | AuthError::SessionEnded) if wants_page(&req) => {
            HttpResponse::SeeOther()
                .insert_header((header::LOCATION, "/_caje/login"))
                .finish()
        }
        Err(refused) => refused.error_response(),
    };
    Ok(req.into_response(refusal).map_into_right_body())
}

/// A browser navigating to a page (as opposed to a script wanting data).
fn wants_page(req: &ServiceRequest) -> bool {
    req.method() == Method::GET
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use std::time::Duration;

    const TOKEN: &str = "0123456789abcdef";

    fn auth(token: Option<&str>) -> AdminAuth {
        AdminAuth::new(token.map(str::to_owned), 1, Duration::from_secs(60), None)
    }

    fn bearer(value: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {value}")))
            .to_http_request()
    }

    #[test]
    fn only_the_exact_token_passes() {
        let auth = auth(Some(TOKEN));
        assert!(auth.authorize(&bearer(TOKEN), None).is_ok());
        // Equal length, differing at the first, a middle and the last byte:
        // the comparison (subtle's ct_eq) reads every byte, whichever differs.
        for wrong in ["x123456789abcdef", "01234567x9abcdef", "0123456789abcdex"] {
            assert_eq!(wrong.len(), TOKEN.len());
            assert!(
                matches!(
                    auth.authorize(&bearer(wrong), None),
                    Err(AuthError::Unauthorized)
                ),
                "{wrong}"
            );
        }
        for wrong in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789ABCDEF",
        ] {
            assert!(auth.authorize(&bearer(wrong), None).is_err(), "{wrong:?}");
        }
        let as_cookie = TestRequest::default()
            .cookie(Cookie::new(auth.cookie_name.clone(), TOKEN))
            .to_http_request();
        assert!(
            auth.authorize(&as_cookie, None).is_err(),
            "the token is no session"
        );
    }

    #[test]
    fn a_session_reads_pages_and_writes_only_with_its_csrf_token() {
        let auth = auth(Some(TOKEN));
        let cookie = auth.start_session(&TestRequest::default().to_http_request());
        let with_cookie = || TestRequest::default().cookie(cookie.clone());
        let Ok(Credential::Session(session)) =
            auth.authorize(&with_cookie().to_http_request(), None)
        else {
            panic!("the session cookie is refused");
        };
        let post = || with_cookie().method(Method::POST);
        assert!(matches!(
            auth.authorize(&post().to_http_request(), None),
            Err(AuthError::MissingCsrf)
        ));
        assert!(matches!(
            auth.authorize(&post().to_http_request(), Some("not-it")),
            Err(AuthError::WrongCsrf)
        ));
        assert!(auth
            .authorize(&post().to_http_request(), Some(session.csrf()))
            .is_ok());
        let header = post()
            .insert_header((provenance::CSRF_HEADER, session.csrf()))
            .to_http_request();
        assert!(auth.authorize(&header, None).is_ok());
    }

    #[test]
    fn without_a_configured_token_nothing_passes() {
        assert!(matches!(
            auth(None).authorize(&bearer(""), None),
            Err(AuthError::NotConfigured)
        ));
    }
}
