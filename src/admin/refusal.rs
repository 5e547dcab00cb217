//! Why an admin request is refused, and the plain-text answer that says so.

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::config::ADMIN_TOKEN_ENV;

/// The header the dashboard's scripts send the CSRF token in; forms send
/// it as the `csrf` field.
pub const CSRF_HEADER: &str = "x-caje-csrf";

/// Why an admin request is refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("caje: the admin endpoints are off because no admin token is set; start caje with {ADMIN_TOKEN_ENV}=<a long random string>")]
    NotConfigured,
    #[error("caje: this admin endpoint needs the admin token: Authorization: Bearer <token>, or log in at /_caje/login")]
    Unauthorized,
    #[error(
        "caje: this dashboard session has expired or logged out; log in again at /_caje/login"
    )]
    SessionEnded,
    #[error("caje: refused: a request with the dashboard's session cookie from another site or page (Sec-Fetch-Site is not same-origin); use the dashboard itself, or Authorization: Bearer")]
    CrossSite,
    #[error("caje: refused: a request with the dashboard's session cookie whose Origin is not the dashboard's own; use the dashboard itself, or Authorization: Bearer")]
    ForeignOrigin,
    #[error("caje: refused: a request with the dashboard's session cookie must carry the dashboard's CSRF token (the {} header or the csrf form field); use the dashboard itself, or Authorization: Bearer", CSRF_HEADER)]
    MissingCsrf,
    #[error("caje: refused: the CSRF token is not this session's; reload the dashboard")]
    WrongCsrf,
    #[error("caje: refused: admin pages are shown only as top-level pages, not to scripts or frames (Sec-Fetch-Dest, Sec-Fetch-Mode); scripts use Authorization: Bearer")]
    NotNavigation,
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::SessionEnded => StatusCode::UNAUTHORIZED,
            _ => StatusCode::FORBIDDEN,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if let Self::Unauthorized | Self::SessionEnded = self {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"caje\""));
        }
        response
            .content_type("text/plain; charset=utf-8")
            .body(format!("{self}\n"))
    }
}
