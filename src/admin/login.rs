//! Logging in to the dashboard with the admin token, and out again.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse, ResponseError};
use maud::{html, PreEscaped, DOCTYPE};
use serde::Deserialize;

use super::auth::AdminAuth;
use super::headers;
use super::session::Session;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:30em;margin:4em auto}";

fn form(status: StatusCode, wrong: bool) -> HttpResponse {
    let nonce = headers::nonce();
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                link rel="icon" href="data:,";
                title { "caje: log in" }
                style nonce=(nonce) { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "caje" }
                @if wrong { p id="error" { "Wrong token." } }
                form method="post" action="/_caje/login" {
                    label { "Admin token " input type="password" name="token" id="token" autofocus required; }
                    " "
                    button type="submit" id="login" { "Log in" }
                }
            }
        }
    };
    headers::page(status, &nonce, markup.into_string())
}

pub async fn login_form() -> HttpResponse {
    form(StatusCode::OK, false)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Checks the token once and gives the browser a session cookie (see
/// [`AdminAuth::start_session`]).
pub async fn login(
    req: HttpRequest,
    auth: web::Data<AdminAuth>,
    form_data: web::Form<LoginForm>,
) -> HttpResponse {
    match auth.token_matches(form_data.token.trim()) {
        Err(refused) => refused.error_response(),
        Ok(false) => form(StatusCode::UNAUTHORIZED, true),
        Ok(true) => HttpResponse::SeeOther()
            .cookie(auth.start_session(&req))
            .insert_header((header::LOCATION, "/_caje/list"))
            .finish(),
    }
}

/// `POST /_caje/logout` (behind the admin middleware, so with the CSRF
/// token): ends the session on the server, deletes the cookie and shows
/// the login form.
pub async fn logout(req: HttpRequest, auth: web::Data<AdminAuth>) -> HttpResponse {
    let session = req.extensions().get::<Session>().cloned();
    match session {
        Some(session) => HttpResponse::SeeOther()
            .cookie(auth.end_session(&req, &session))
            .insert_header((header::LOCATION, "/_caje/login"))
            .finish(),
        None => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("caje: no session to end (a Bearer token is not a session)\n"),
    }
}
