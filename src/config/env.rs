//! The `CAJE_*` environment variables that override the file's settings.

use std::path::PathBuf;

use super::{ConfigError, Settings, ADMIN_TOKEN_ENV};

impl Settings {
    /// Applies `CAJE_LISTEN`, `CAJE_METRICS_LISTEN`, `CAJE_CACHE_DIR`, `CAJE_DATABASE`, `CAJE_LITEFS`,
    /// `CAJE_WORKERS`, `CAJE_NODE_NAME`, `CAJE_PEER_URL`, `CAJE_PEER_FETCH` and
    /// `CAJE_ADMIN_TOKEN`, then Fly.io's defaults for the node's name and peer URL; `get` reads one variable.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("CAJE_LISTEN") {
            self.listen = v.parse().map_err(|e| ConfigError::Env {
                var: "CAJE_LISTEN",
                message: format!("{e}: {v:?}"),
            })?;
        }
        if let Some(v) = get("CAJE_METRICS_LISTEN") {
            // Empty: no metrics listener, whatever the file says.
            self.metrics_listen =
                match v.trim() {
                    "" => None,
                    addr => Some(super::parse::parse_listen(addr).map_err(|message| {
                        ConfigError::Env {
                            var: "CAJE_METRICS_LISTEN",
                            message,
                        }
                    })?),
                };
        }
        if let Some(v) = get("CAJE_CACHE_DIR") {
            self.cache_dir = PathBuf::from(v);
        }
        if let Some(v) = get("CAJE_DATABASE") {
            self.database = PathBuf::from(v);
        }
        if let Some(v) = get("CAJE_LITEFS") {
            self.litefs = v.parse().map_err(|message| ConfigError::Env {
                var: "CAJE_LITEFS",
                message,
            })?;
        }
        if let Some(v) = get("CAJE_WORKERS") {
            match v.parse::<usize>() {
                Ok(n) if n > 0 => self.workers = Some(n),
                _ => {
                    return Err(ConfigError::Env {
                        var: "CAJE_WORKERS",
                        message: format!("expected a whole number of at least 1, got {v:?}"),
                    })
                }
            }
        }
        if let Some(v) = get("CAJE_NODE_NAME") {
            self.node_name =
                Some(
                    super::peers::validate_node_name(&v).map_err(|message| ConfigError::Env {
                        var: "CAJE_NODE_NAME",
                        message,
                    })?,
                );
        }
        if let Some(v) = get("CAJE_PEER_URL") {
            self.peer_url =
                Some(
                    super::peers::validate_peer_url(&v).map_err(|message| ConfigError::Env {
                        var: "CAJE_PEER_URL",
                        message,
                    })?,
                );
        }
        if let Some(v) = get("CAJE_PEER_FETCH") {
            self.peer_fetch = v.parse().map_err(|message| ConfigError::Env {
                var: "CAJE_PEER_FETCH",
                message,
            })?;
        }
        self.apply_fly(&get);
        self.admin_token = get(ADMIN_TOKEN_ENV).filter(|t| !t.is_empty());
        Ok(())
    }
}
