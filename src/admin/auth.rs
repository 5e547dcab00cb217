//! Who may use the mutating admin endpoints: a request bearing the admin
//! token (`Authorization: Bearer …`), or a browser that logged in once with
//! it and holds the session cookie. Both are compared in constant time.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::config::ADMIN_TOKEN_ENV;

/// Why an admin request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("caje: the admin endpoints are off because no admin token is set; start caje with {ADMIN_TOKEN_ENV}=<a long random string>")]
    NotConfigured,
    #[error("caje: this admin endpoint needs the admin token: Authorization: Bearer <token>, or log in at /_caje/login")]
    Unauthorized,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::NotConfigured => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"caje\""));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}

pub struct AdminAuth {
    token: Option<String>,
    /// `caje_session_<port>`: browsers send cookies to every port of a
    /// host, so nodes sharing a host name need cookies of their own.
    cookie_name: String,
    /// Keys the session cookie: a fresh one per process, so a restart logs
    /// every browser out and the cookie never holds the token itself.
    session_key: [u8; 32],
}

impl AdminAuth {
    /// `port` is the node's listening port, naming its session cookie.
    pub fn new(token: Option<String>, port: u16) -> Self {
        Self {
            token,
            cookie_name: format!("caje_session_{port}"),
            session_key: rand::random(),
        }
    }

    fn session_value(&self, token: &str) -> String {
        blake3::keyed_hash(&self.session_key, token.as_bytes())
            .to_hex()
            .to_string()
    }

    /// `Ok` for an authorised request; otherwise why not (it renders as
    /// the response to send).
    pub fn check(&self, req: &HttpRequest) -> Result<(), AuthError> {
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
                return Ok(());
            }
        } else if let Some(cookie) = req.cookie(&self.cookie_name) {
            let expected = self.session_value(token);
            if bool::from(cookie.value().as_bytes().ct_eq(expected.as_bytes())) {
                return Ok(());
            }
        }
        Err(AuthError::Unauthorized)
    }
}

/// Middleware for the protected admin routes: lets an authorised request
/// through; sends a browser asking for a page to the login form; refuses
/// anything else with the reason.
pub async fn require_token(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let verdict = match req.app_data::<web::Data<AdminAuth>>() {
        Some(auth) => auth.check(req.request()),
        None => Err(AuthError::NotConfigured),
    };
    let refusal = match verdict {
        Ok(()) => return Ok(next.call(req).await?.map_into_left_body()),
        Err(AuthError::Unauthorized) if wants_page(&req) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/_caje/login"))
            .finish(),
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

const LOGIN_FORM: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>caje: log in</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 30em; margin: 4em auto">
<h1>caje</h1>
<form method="post" action="/_caje/login">
<label>Admin token <input type="password" name="token" id="token" autofocus required></label>
<button type="submit" id="login">Log in</button>
</form>
</body></html>"#;

pub async fn login_form() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(LOGIN_FORM)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Checks the token once and gives the browser a session cookie for this
/// node's `/_caje/` pages that scripts cannot read.
pub async fn login(auth: web::Data<AdminAuth>, form: web::Form<LoginForm>) -> HttpResponse {
    let Some(token) = &auth.token else {
        return AuthError::NotConfigured.error_response();
    };
    if !bool::from(form.token.trim().as_bytes().ct_eq(token.as_bytes())) {
        return HttpResponse::build(StatusCode::UNAUTHORIZED)
            .content_type("text/html; charset=utf-8")
            .body(LOGIN_FORM.replace("<form", "<p id=\"error\">Wrong token.</p><form"));
    }
    let cookie = Cookie::build(auth.cookie_name.clone(), auth.session_value(token))
        .path("/_caje")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/_caje/list"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    const TOKEN: &str = "0123456789abcdef";

    fn bearer(value: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((header::AUTHORIZATION, format!("Bearer {value}")))
            .to_http_request()
    }

    #[test]
    fn only_the_exact_token_passes() {
        let auth = AdminAuth::new(Some(TOKEN.to_owned()), 1);
        assert!(auth.check(&bearer(TOKEN)).is_ok());
        // Equal length, differing at the first, a middle and the last byte:
        // the comparison (subtle's ct_eq) reads every byte, whichever differs.
        for wrong in ["x123456789abcdef", "01234567x9abcdef", "0123456789abcdex"] {
            assert_eq!(wrong.len(), TOKEN.len());
            assert!(
                matches!(auth.check(&bearer(wrong)), Err(AuthError::Unauthorized)),
                "{wrong}"
            );
        }
        for wrong in [
            "",
            "0123456789abcde",
            "0123456789abcdef0",
            "0123456789ABCDEF",
        ] {
            assert!(auth.check(&bearer(wrong)).is_err(), "{wrong:?}");
        }
        let as_cookie = TestRequest::default()
            .cookie(Cookie::new(auth.cookie_name.clone(), TOKEN))
            .to_http_request();
        assert!(auth.check(&as_cookie).is_err(), "the token is no session");
        let session = TestRequest::default()
            .cookie(Cookie::new(
                auth.cookie_name.clone(),
                auth.session_value(TOKEN),
            ))
            .to_http_request();
        assert!(auth.check(&session).is_ok());
    }

    #[test]
    fn without_a_configured_token_nothing_passes() {
        let auth = AdminAuth::new(None, 1);
        assert!(matches!(
            auth.check(&bearer("")),
            Err(AuthError::NotConfigured)
        ));
    }
}
