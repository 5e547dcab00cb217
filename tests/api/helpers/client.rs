//! What tests send: HTTP requests to a node or process, answered as a
//! [`Reply`] read whole.

use std::time::Duration;

/// A response read whole (test bodies are small).
pub struct Reply {
    pub status: u16,
    pub headers: awc::http::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }
}
/// A request to `url` for `host` with extra headers, read whole.
pub async fn request(
    client: &awc::Client,
    url: &str,
    method: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url).insert_header(("host", host));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    read(req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"))).await
}

/// A request to `url` with the given headers and, if any, a form body, read whole.
pub async fn request_with_form(
    client: &awc::Client,
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
    form: Option<&[(&str, &str)]>,
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client.request(method, url);
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let sent = match form {
        Some(form) => req.send_form(&form).await,
        None => req.send().await,
    };
    read(sent.unwrap_or_else(|e| panic!("{url}: {e}"))).await
}

/// An admin request asking for JSON: `token` as a bearer token, `json` as the body.
pub async fn admin_request(
    client: &awc::Client,
    url: &str,
    method: &str,
    token: Option<&str>,
    json: Option<serde_json::Value>,
) -> Reply {
    let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = client
        .request(method, url)
        .insert_header(("accept", "application/json"));
    if let Some(token) = token {
        req = req.insert_header(("authorization", format!("Bearer {token}")));
    }
    let sent = match json {
        Some(json) => req.send_json(&json).await,
        None => req.send().await,
    };
    read(sent.unwrap_or_else(|e| panic!("{url}: {e}"))).await
}

async fn read(mut res: awc::ClientResponse) -> Reply {
    let body = res.body().limit(1 << 20).await.expect("body");
    Reply {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A client for tests: no redirects followed, generous timeout.
pub fn test_client() -> awc::Client {
    awc::Client::builder()
        .disable_redirects()
        .timeout(Duration::from_secs(30))
        .finish()
}
