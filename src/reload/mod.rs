//! Reloading the config file without a restart (`SIGHUP`, or
//! `POST /_caje/reload`): the file is read and checked as at start; a bad
//! one is refused with the same file / line / key message and the config
//! in force stays. A good one replaces the config in force whole (see
//! `live`), except the settings only a restart can change (see `start_only`),
//! which keep their running values and are named in the log.

mod live;
mod start_only;

use std::path::PathBuf;

pub use live::{LiveConfig, Snapshot};

use crate::config::{ConfigError, Settings};

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this node was started without a config file (the demo): there is nothing to reload")]
    NoFile,
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("the reload task failed: {0}")]
    Task(String),
}

/// What a reload changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub file: String,
    /// How many origins are now configured.
    pub origins: usize,
    /// Settings the file changed that keep their running value until a restart.
    pub restart_needed: Vec<&'static str>,
}

/// Reloads one node's config from the file it was started with.
#[derive(Clone)]
pub struct Reloader {
    live: LiveConfig,
    file: Option<PathBuf>,
    /// The port the node listens on.
    port: u16,
}

impl Reloader {
    /// `file`: the config file the node was started from, if any.
    pub fn new(live: LiveConfig, file: Option<PathBuf>, port: u16) -> Self {
        Self { live, file, port }
    }

    /// Reads and checks the file, then puts it in force; `why` (`SIGHUP`,
    /// `admin`) is logged. On an error nothing changes.
    pub async fn reload(&self, why: &'static str) -> Result<ReloadReport, ReloadError> {
        let outcome = self.load_and_swap().await;
        match &outcome {
            Ok(report) => {
                tracing::info!(
                    trigger = why,
                    file = %report.file,
                    origins = report.origins,
                    "config reloaded: new requests use it"
                );
                if !report.restart_needed.is_empty() {
                    tracing::warn!(
                        trigger = why,
                        settings = %report.restart_needed.join(", "),
                        "config reloaded, but these settings change only with a restart; \
                         their running values stay"
                    );
                }
            }
            Err(error) => {
                tracing::error!(trigger = why, %error, "config reload refused; the running config stays");
            }
        }
        outcome
    }

    async fn load_and_swap(&self) -> Result<ReloadReport, ReloadError> {
        let file = self.file.clone().ok_or(ReloadError::NoFile)?;
        let shown = file.display().to_string();
        // Reading the file and any `ca_file` blocks.
        let loaded = actix_web::rt::task::spawn_blocking(move || Settings::load(&file))
            .await
            .map_err(|e| ReloadError::Task(e.to_string()))??;
        let port = self.port;
        let report = self.live.replace(move |running| {
            let mut new = loaded;
            let restart_needed = start_only::keep_start_only(running, &mut new, port);
            let report = ReloadReport {
                file: shown,
                origins: new.origins.len(),
                restart_needed,
            };
            (new, report)
        });
        Ok(report)
    }
}

/// Reloads on every `SIGHUP` until the node stops. Only for the `caje`
/// process: nodes that share a process (as in tests) would all reload.
pub fn on_sighup(reloader: Reloader) -> std::io::Result<()> {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    actix_web::rt::spawn(async move {
        while hangups.recv().await.is_some() {
            // Refusals are logged by `reload`.
            let _ = reloader.reload("SIGHUP").await;
        }
    });
    Ok(())
}
