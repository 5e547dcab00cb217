//! The gullible origin: it believes every forwarding and override header,
//! and keeps every request head it receives.

use std::sync::{Arc, Mutex};

use actix_web::{web, HttpRequest, HttpResponse};

use crate::helpers::serve;

/// An origin that believes every forwarding and override header, as IIS
/// (`X-Original-URL`), Symfony (`X-Forwarded-Host`, `X-HTTP-Method-Override`)
/// or Rails (`X-Forwarded-Proto`) can be set up to: its cacheable answer
/// names the method, URL and client it thinks it served. `/etag-cookie`
/// has an `ETag` and answers a revalidation with a 304 that sets a cookie.
/// It keeps every request head it receives.
pub(super) struct GullibleOrigin {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

impl GullibleOrigin {
    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub(super) fn heads(&self) -> Vec<String> {
        self.heads.lock().expect("heads lock").clone()
    }
}

pub(super) async fn spawn_gullible_origin() -> GullibleOrigin {
    let heads = Arc::new(Mutex::new(Vec::new()));
    let port = serve(web::Data::from(heads.clone()), gullible);
    GullibleOrigin { port, heads }
}

async fn gullible(req: HttpRequest, heads: web::Data<Mutex<Vec<String>>>) -> HttpResponse {
    let mut head = format!("{} {}\n", req.method(), req.uri());
    for (name, value) in req.headers() {
        head.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    heads.lock().expect("heads lock").push(head);
    let field = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    if req.path() == "/etag-cookie" {
        let revalidating = field("if-none-match").is_some_and(|v| v.contains("\"v1\""));
        let mut response = if revalidating {
            HttpResponse::NotModified()
        } else {
            HttpResponse::Ok()
        };
        response
            .insert_header(("cache-control", "max-age=60"))
            .insert_header(("etag", "\"v1\""));
        // `public`: the cookie alone must keep it out of the stored copy.
        return if revalidating {
            response
                .insert_header(("cache-control", "public, max-age=60"))
                .insert_header(("set-cookie", "session=revalidating-client"))
                .finish()
        } else {
            response.body("etag-cookie body")
        };
    }
    let forwarded = field("forwarded").unwrap_or_default();
    let forwarded_param = |key: &str| {
        forwarded
            .split([';', ','])
            .find_map(|part| part.trim().strip_prefix(key))
            .map(str::to_owned)
    };
    let method = field("x-http-method-override")
        .or_else(|| field("x-http-method"))
        .or_else(|| field("x-method-override"))
        .unwrap_or_else(|| req.method().to_string());
    let scheme = field("x-forwarded-proto")
        .or_else(|| field("x-forwarded-scheme"))
        .or_else(|| field("x-url-scheme"))
        .or_else(|| forwarded_param("proto="))
        .unwrap_or_else(|| "http".to_owned());
    let host = field("x-forwarded-host")
        .or_else(|| field("x-host"))
        .or_else(|| field("x-original-host"))
        .or_else(|| forwarded_param("host="))
        .or_else(|| field("host"))
        .unwrap_or_default();
    let port = field("x-forwarded-port")
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let prefix = field("x-forwarded-prefix").unwrap_or_default();
    let path = field("x-original-url")
        .or_else(|| field("x-rewrite-url"))
        .unwrap_or_else(|| req.path().to_owned());
    let client = field("x-real-ip")
        .or_else(|| forwarded_param("for="))
        .or_else(|| field("x-forwarded-for"))
        .unwrap_or_default();
    HttpResponse::Ok()
        .insert_header(("cache-control", "max-age=60"))
        .body(format!(
            "{method} {scheme}://{host}{port}{prefix}{path} for {client}"
        ))
}
