//! `caje admin …`: the admin API from a shell, as `varnishadm` and
//! `nginx -s` are. Each command is one request to a node's `/_caje/`
//! endpoint with the token from `CAJE_ADMIN_TOKEN` (never a flag: a flag
//! would show in `ps`), printed as a table or, with `--json`, as the node's
//! JSON. Exit codes: see [`exit`].

mod client;
mod error;
mod render;

use std::time::Duration;

use awc::http::Method;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

pub use client::AdminClient;
pub use error::{exit, CliError};

use crate::config::ADMIN_TOKEN_ENV;

/// The node a command talks to unless `--node` says otherwise.
pub const DEFAULT_NODE: &str = "http://127.0.0.1:3001";

/// `caje admin [--node URL] [--json] [--timeout T] <command>`.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// The node's address: http://host:port.
    #[arg(long, global = true, default_value = DEFAULT_NODE, value_parser = parse_node)]
    pub node: String,
    /// Print the node's JSON answer as it is, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// How long to wait for the node (connecting and answering), e.g. 500ms or 30s.
    #[arg(long, global = true, default_value = "15s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// The node's cache entries, manifest pages and populator progress.
    List {
        /// Which page of entries and pages.
        #[arg(long, default_value_t = 1)]
        page: usize,
        /// Entries and pages per page (at most 500).
        #[arg(long, default_value_t = 50)]
        per_page: usize,
    },
    /// Purge a URL (http://host/path) or, with --tag, every response tagged so;
    /// on this node at once, on every node through the manifest.
    Purge {
        /// The absolute URL whose stored responses to purge.
        #[arg(required_unless_present = "tag", conflicts_with = "tag")]
        url: Option<String>,
        /// A tag the origin gave responses (Surrogate-Key, Cache-Tag).
        #[arg(long)]
        tag: Option<String>,
        /// Mark for revalidation instead of dropping.
        #[arg(long)]
        soft: bool,
    },
    /// Run the populator now: fetch the manifest's pages this node lacks.
    Populate,
    /// Empty this node's file cache (the shared manifest is kept).
    ClearCache,
    /// Read the node's config file again (as SIGHUP does); a bad file is
    /// refused with its line and key, and the running config stays.
    Reload,
    /// The node's health; needs no token.
    Health,
}

/// `--node`: an `http://` address (caje listens on plain http).
fn parse_node(text: &str) -> Result<String, String> {
    let uri: awc::http::Uri = text.parse().map_err(|e| format!("{e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err("give http://host:port (caje's admin API is plain http)".to_owned());
    }
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err("give only http://host:port, no path".to_owned());
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// The token from the environment; unset or empty is none.
pub fn token_from_env() -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// Turns a command's JSON answer into text for people.
type Render = fn(&Value) -> Result<String, CliError>;

/// Runs the command against the node; `Ok` with what to print on stdout.
pub async fn run(args: &AdminArgs, token: Option<String>) -> Result<String, CliError> {
    let needs_token = !matches!(args.command, AdminCommand::Health);
    if needs_token && token.is_none() {
        return Err(CliError::NoToken);
    }
    let token = token.filter(|_| needs_token);
    let client = AdminClient::new(&args.node, token, args.timeout);
    let (answer, human): (Value, Render) = match &args.command {
        AdminCommand::List { page, per_page } => {
            let path = format!("/_caje/list?page={page}&per_page={per_page}");
            (client.call(Method::GET, &path, None).await?, render::list)
        }
        AdminCommand::Purge { url, tag, soft } => {
            let body = match (url, tag) {
                (Some(url), _) => json!({ "url": url, "soft": soft }),
                (None, tag) => json!({ "tag": tag, "soft": soft }),
            };
            let answer = client
                .call(Method::POST, "/_caje/purge", Some(body))
                .await?;
            (answer, render::purge)
        }
        AdminCommand::Populate => (
            client.call(Method::POST, "/_caje/populate", None).await?,
            render::populate,
        ),
        AdminCommand::ClearCache => (
            client.call(Method::POST, "/_caje/clear_fs", None).await?,
            render::clear_cache,
        ),
        AdminCommand::Reload => (
            client.call(Method::POST, "/_caje/reload", None).await?,
            render::reload,
        ),
        AdminCommand::Health => (
            client.call(Method::GET, "/_caje/health", None).await?,
            render::health,
        ),
    };
    if args.json {
        let mut text = serde_json::to_string_pretty(&answer)
            .map_err(|e| CliError::BadAnswer(e.to_string()))?;
        text.push('\n');
        Ok(text)
    } else {
        human(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_node;

    #[test]
    fn a_node_is_an_http_address_without_a_path() {
        assert_eq!(
            parse_node("http://127.0.0.1:3001/").unwrap(),
            "http://127.0.0.1:3001"
        );
        assert!(parse_node("http://node.internal:3001").is_ok());
        for bad in [
            "https://a:1",
            "127.0.0.1:3001",
            "ftp://a",
            "http://a/_caje",
            "not a url",
        ] {
            assert!(parse_node(bad).is_err(), "{bad}");
        }
    }
}
