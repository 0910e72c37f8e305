//! Errors of the runtime and how they map to [`std::io::Error`].
//!
//! Every fallible public method returns [`std::io::Result`], as tokio's own sockets do.
//! The [`io::Error`] carries an [`Error`] inside, so a caller that wants the exact reason
//! can downcast it:
//!
//! ```
//! use std::io;
//!
//! let e: io::Error = mkcp::Error::TimedOut { timeout_ms: 30_000 }.into();
//! assert_eq!(e.kind(), io::ErrorKind::TimedOut);
//! let inner = e.get_ref().and_then(|i| i.downcast_ref::<mkcp::Error>());
//! assert!(matches!(inner, Some(mkcp::Error::TimedOut { .. })));
//! ```

use std::io;
use std::net::SocketAddr;

use mkcp_proto::{ConfigError, ConnectionError, EndpointError};

/// Why an mkcp operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing arrived from the peer for the idle timeout: the peer is gone.
    /// Maps to [`io::ErrorKind::TimedOut`].
    #[error("connection timed out: nothing received from the peer for {timeout_ms} ms")]
    TimedOut {
        /// The idle timeout (`Tuning::idle_timeout_ms`).
        timeout_ms: u32,
    },
    /// The peer closed or terminated the connection, so nothing more can be sent.
    /// Maps to [`io::ErrorKind::BrokenPipe`].
    #[error("connection closed by the peer")]
    PeerClosed,
    /// The connection was closed locally, or its write side was shut down.
    /// Maps to [`io::ErrorKind::BrokenPipe`].
    #[error("connection is closed (or its write side was shut down)")]
    Closed,
    /// The endpoint's socket task has stopped (the listener or endpoint was closed or
    /// aborted, or the runtime is shutting down). Maps to
    /// [`io::ErrorKind::ConnectionAborted`].
    #[error("the endpoint's socket task has stopped (closed or aborted)")]
    EndpointClosed,
    /// A session limit of the endpoint is reached. Maps to [`io::ErrorKind::Other`].
    #[error("too many sessions: the limit is {limit}")]
    TooManySessions {
        /// The limit that was hit.
        limit: usize,
    },
    /// Every one of the 65536 conversation ids towards this peer is in use.
    /// Maps to [`io::ErrorKind::AddrNotAvailable`].
    #[error("no free conversation id towards {peer}")]
    NoConversationId {
        /// The peer.
        peer: SocketAddr,
    },
    /// [`crate::KcpEndpoint::accept`] on an endpoint that does not accept incoming
    /// sessions (made with [`crate::KcpEndpoint::client`]). Maps to
    /// [`io::ErrorKind::Unsupported`].
    #[error("this endpoint does not accept incoming connections (it is a client endpoint)")]
    NotListening,
    /// The configuration is invalid. Maps to [`io::ErrorKind::InvalidInput`].
    #[error("invalid mKCP configuration: {0}")]
    Config(#[from] ConfigError),
    /// The peer kept its receive window closed for the bound (60 s) while we had data
    /// to send: it answers but does not read. Maps to [`io::ErrorKind::TimedOut`].
    #[error("peer advertised no receive window for {timeout_ms} ms")]
    ZeroWindow {
        /// The bound (`mkcp_proto::STALL_US`).
        timeout_ms: u32,
    },
    /// The peer acknowledged nothing for the bound (60 s) while we had data to send.
    /// Maps to [`io::ErrorKind::TimedOut`].
    #[error("peer acknowledged nothing for {timeout_ms} ms while data was waiting")]
    NoProgress {
        /// The bound (`mkcp_proto::STALL_US`).
        timeout_ms: u32,
    },
    /// An accepted session whose peer never proved that it receives our datagrams (no
    /// acknowledgement, no stream data) within the bound was reaped. Maps to
    /// [`io::ErrorKind::TimedOut`].
    #[error("peer never proved it receives our datagrams within {timeout_ms} ms")]
    Unproven {
        /// The bound (`mkcp_proto::UNPROVEN_US`).
        timeout_ms: u32,
    },
    /// An unproven session was evicted to make room for a new one (the session table
    /// was full). Maps to [`io::ErrorKind::ConnectionAborted`].
    #[error("evicted: the session table was full and the peer had never proved reachability")]
    Evicted,
    /// A graceful close ended with data the peer never acknowledged (the peer closed
    /// first, or stopped acknowledging for 15 s). Maps to
    /// [`io::ErrorKind::ConnectionReset`].
    #[error("close: {unacked} bytes written were never acknowledged by the peer")]
    Undelivered {
        /// Bytes written but not acknowledged.
        unacked: u64,
    },
    /// An error of the core this runtime does not know by name (a newer `mkcp-proto`);
    /// its message is kept, it is never passed off as "closed". Maps to
    /// [`io::ErrorKind::Other`].
    #[error("{message}")]
    Core {
        /// The core error's message.
        message: String,
    },
}

impl Error {
    /// The [`io::ErrorKind`] this error maps to.
    ///
    /// ```
    /// assert_eq!(mkcp::Error::PeerClosed.kind(), std::io::ErrorKind::BrokenPipe);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::TimedOut { .. } => io::ErrorKind::TimedOut,
            Error::PeerClosed | Error::Closed => io::ErrorKind::BrokenPipe,
            Error::EndpointClosed => io::ErrorKind::ConnectionAborted,
            Error::TooManySessions { .. } => io::ErrorKind::Other,
            Error::NoConversationId { .. } => io::ErrorKind::AddrNotAvailable,
            Error::NotListening => io::ErrorKind::Unsupported,
            Error::Config(_) => io::ErrorKind::InvalidInput,
            Error::Undelivered { .. } => io::ErrorKind::ConnectionReset,
            Error::ZeroWindow { .. } | Error::NoProgress { .. } | Error::Unproven { .. } => {
                io::ErrorKind::TimedOut
            }
            Error::Evicted => io::ErrorKind::ConnectionAborted,
            Error::Core { .. } => io::ErrorKind::Other,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::new(e.kind(), e)
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Error {
        match e {
            ConnectionError::TimedOut { timeout_ms } => Error::TimedOut { timeout_ms },
            ConnectionError::PeerClosed => Error::PeerClosed,
            ConnectionError::ZeroWindow { timeout_ms } => Error::ZeroWindow { timeout_ms },
            ConnectionError::NoProgress { timeout_ms } => Error::NoProgress { timeout_ms },
            ConnectionError::Unproven { timeout_ms } => Error::Unproven { timeout_ms },
            ConnectionError::Evicted => Error::Evicted,
            ConnectionError::Closed => Error::Closed,
            // Variants added later to the (non-exhaustive) core enum keep their message.
            other => Error::Core {
                message: other.to_string(),
            },
        }
    }
}

impl From<EndpointError> for Error {
    fn from(e: EndpointError) -> Error {
        match e {
            EndpointError::TooManySessions { limit } => Error::TooManySessions { limit },
            EndpointError::NoConversationId { peer } => Error::NoConversationId { peer },
            EndpointError::Connection(c) => c.into(),
            // An id the endpoint no longer knows: the connection is gone.
            EndpointError::UnknownConnection => Error::Closed,
            other => Error::Core {
                message: other.to_string(),
            },
        }
    }
}

pub(crate) fn io_err(e: impl Into<Error>) -> io::Error {
    e.into().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_and_unproven_peers_keep_their_reason() {
        let e: io::Error = io_err(ConnectionError::ZeroWindow { timeout_ms: 60_000 });
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            e.to_string(),
            "peer advertised no receive window for 60000 ms"
        );
        let e: Error = ConnectionError::NoProgress { timeout_ms: 60_000 }.into();
        assert!(matches!(e, Error::NoProgress { timeout_ms: 60_000 }));
        let e: Error = ConnectionError::Unproven { timeout_ms: 10_000 }.into();
        assert!(matches!(e, Error::Unproven { timeout_ms: 10_000 }));
        let e: Error = ConnectionError::Evicted.into();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionAborted);
    }
}
