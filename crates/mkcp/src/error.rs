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
    /// A graceful close ended with data the peer never acknowledged (the peer closed
    /// first, or stopped acknowledging for 15 s). Maps to
    /// [`io::ErrorKind::ConnectionReset`].
    #[error("close: {unacked} bytes written were never acknowledged by the peer")]
    Undelivered {
        /// Bytes written but not acknowledged.
        unacked: u64,
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
            _ => Error::Closed,
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
            _ => Error::Closed,
        }
    }
}

pub(crate) fn io_err(e: impl Into<Error>) -> io::Error {
    e.into().into()
}
