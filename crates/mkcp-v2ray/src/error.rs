//! Error type for locating, configuring and running V2Ray.

use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while driving the `v2ray` binary.
#[derive(Debug, thiserror::Error)]
pub enum V2rayError {
    /// The binary was not found; the message says how to install it.
    #[error("v2ray binary not found (looked at: {looked}); {hint}", hint = crate::locate::INSTALL_HINT)]
    NotFound {
        /// The places that were searched.
        looked: String,
    },
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `v2ray -test` rejected a configuration.
    #[error("v2ray rejected the configuration ({status}): {message}")]
    ConfigRejected {
        /// Exit status of `v2ray -test`.
        status: ExitStatus,
        /// V2Ray's own error text (banner lines removed).
        message: String,
    },
    /// The process exited when it should be running: during startup (bad config, port
    /// already in use, ...) or when checked with `V2rayProcess::check_alive`.
    #[error("v2ray exited unexpectedly ({status}); log:\n{log}")]
    Exited {
        /// Exit status.
        status: ExitStatus,
        /// Full stdout+stderr of the process.
        log: String,
    },
    /// The process did not become ready in time (it has been killed).
    #[error("v2ray not ready after {waited:?} (waiting for: {waiting_for}); log:\n{log}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// The readiness conditions still unmet.
        waiting_for: String,
        /// stdout+stderr so far.
        log: String,
    },
}

impl V2rayError {
    /// A [`V2rayError::Io`] saying what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        V2rayError::Io {
            context: context.into(),
            source,
        }
    }

    /// True for startup failures that a retry with fresh ports may fix
    /// (the log mentions an address already in use).
    pub fn is_port_conflict(&self) -> bool {
        match self {
            V2rayError::Exited { log, .. } | V2rayError::NotReady { log, .. } => {
                log.contains("address already in use")
            }
            _ => false,
        }
    }
}
