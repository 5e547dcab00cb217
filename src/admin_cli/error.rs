//! Why an admin command failed, and the exit code each reason gives.

use crate::config::ADMIN_TOKEN_ENV;

/// Exit codes scripts can rely on (2, usage errors, is clap's own).
pub mod exit {
    pub const OK: i32 = 0;
    /// The node answered, but refused or failed (4xx/5xx, an unreadable answer).
    pub const NODE_FAILED: i32 = 1;
    pub const USAGE: i32 = 2;
    /// The node could not be reached: connection refused, no answer in time.
    pub const UNREACHABLE: i32 = 3;
    /// No admin token in the environment.
    pub const NO_TOKEN: i32 = 4;
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{ADMIN_TOKEN_ENV} is not set: export the node's admin token first (it is never a flag: a flag would show in `ps`)")]
    NoToken,
    #[error("cannot reach the node at {node}: {reason}")]
    Unreachable { node: String, reason: String },
    #[error("the node answered {status}: {message}")]
    Refused { status: u16, message: String },
    #[error("the node's answer is not what caje sends: {0}")]
    BadAnswer(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::NoToken => exit::NO_TOKEN,
            Self::Unreachable { .. } => exit::UNREACHABLE,
            Self::Refused { .. } | Self::BadAnswer(_) => exit::NODE_FAILED,
        }
    }
}
