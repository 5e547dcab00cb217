//! One admin request to a node, read whole: the only I/O of the admin CLI.

use std::time::Duration;

use awc::error::{ConnectError, SendRequestError};
use awc::http::Method;
use serde_json::Value;

use super::error::CliError;

/// Largest answer read (a `list` page of 500 entries is far smaller).
const MAX_ANSWER: usize = 16 << 20;

/// A node's admin API at `node` (`http://host:port`).
pub struct AdminClient {
    node: String,
    token: Option<String>,
    timeout: Duration,
}

impl AdminClient {
    /// `token` is sent as `Authorization: Bearer`; `timeout` bounds
    /// connecting and the whole answer.
    pub fn new(node: &str, token: Option<String>, timeout: Duration) -> Self {
        Self {
            node: node.trim_end_matches('/').to_owned(),
            token,
            timeout,
        }
    }

    /// `method path` with `body` as JSON; the answer's JSON when it is a
    /// 2xx, else the node's message as [`CliError::Refused`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let client = awc::Client::builder()
            .disable_redirects()
            .timeout(self.timeout)
            .connector(awc::Connector::new().timeout(self.timeout))
            .finish();
        let url = format!("{}{path}", self.node);
        let mut request = client
            .request(method, &url)
            .insert_header(("accept", "application/json"));
        if let Some(token) = &self.token {
            request = request.insert_header(("authorization", format!("Bearer {token}")));
        }
        let sent = match body {
            Some(body) => request.send_json(&body).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|e| self.send_error(e))?;
        let status = response.status();
        let bytes =
            response.body().limit(MAX_ANSWER).await.map_err(|e| {
                CliError::BadAnswer(format!("cannot read the answer to {path}: {e}"))
            })?;
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(CliError::Refused {
                status: status.as_u16(),
                message: node_message(&text),
            });
        }
        serde_json::from_str(&text).map_err(|e| {
            CliError::BadAnswer(format!(
                "{path} answered {status} with no JSON ({e}): {}",
                text.trim()
            ))
        })
    }

    fn send_error(&self, error: SendRequestError) -> CliError {
        let unreachable = |reason: String| CliError::Unreachable {
            node: self.node.clone(),
            reason,
        };
        match error {
            SendRequestError::Connect(ConnectError::Timeout) | SendRequestError::Timeout => {
                unreachable(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ))
            }
            SendRequestError::Connect(e) => unreachable(e.to_string()),
            SendRequestError::Send(e) => unreachable(e.to_string()),
            other => CliError::BadAnswer(other.to_string()),
        }
    }
}

/// What the node said: the `error` of a JSON answer, the JSON itself if it
/// has none, else the text (caje's refusals are plain text).
fn node_message(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) if map.get("error").is_some_and(Value::is_string) => {
            map["error"].as_str().unwrap_or_default().to_owned()
        }
        Ok(json) => json.to_string(),
        Err(_) if text.trim().is_empty() => "(no message)".to_owned(),
        Err(_) => text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::node_message;

    #[test]
    fn the_nodes_message_is_its_error_field_or_its_text() {
        assert_eq!(node_message(r#"{"error":"no origin"}"#), "no origin");
        assert_eq!(
            node_message(r#"{"status":"unavailable"}"#),
            r#"{"status":"unavailable"}"#
        );
        assert_eq!(
            node_message("caje: needs the token\n"),
            "caje: needs the token"
        );
        assert_eq!(node_message(""), "(no message)");
    }
}
