//! The endpoint's public types: settings, ids, events, errors and counters.

use std::net::SocketAddr;

use crate::config::Config;
use crate::conn::{ConnEvent, ConnectionError};

/// Default limit of live sessions: an idle session costs about 1.4 KB (issue 11, item
/// 4), so 16384 of them hold about 23 MB; floods are handled by eviction of unproven
/// sessions, not by a small table.
pub const DEFAULT_MAX_SESSIONS: usize = 16384;

/// Default limit of live sessions from one source IP address: a sixteenth of the
/// table, so one address can never hold it (spoofing needs many addresses to fill it,
/// and eviction handles that), while one NAT carrying many honest users still fits
/// 1024 of them. Past it, the
/// address's own oldest unproven session makes room; its proven ones are never evicted.
pub const DEFAULT_MAX_SESSIONS_PER_IP: usize = 1024;

/// Settings of an endpoint.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EndpointConfig {
    /// The mKCP settings shared by every connection.
    pub kcp: Config,
    /// Accept sessions started by peers (a listener). A pure client leaves it off.
    pub accept_incoming: bool,
    /// Most live sessions.
    pub max_sessions: usize,
    /// Most live sessions from one source IP address.
    pub max_sessions_per_ip: usize,
}

impl EndpointConfig {
    /// A listener's settings with default limits ([`DEFAULT_MAX_SESSIONS`] sessions,
    /// [`DEFAULT_MAX_SESSIONS_PER_IP`] per address).
    pub fn server(kcp: Config) -> EndpointConfig {
        EndpointConfig {
            kcp,
            accept_incoming: true,
            max_sessions: DEFAULT_MAX_SESSIONS,
            max_sessions_per_ip: DEFAULT_MAX_SESSIONS_PER_IP,
        }
    }

    /// A dialer's settings (accepts nothing unsolicited).
    pub fn client(kcp: Config) -> EndpointConfig {
        EndpointConfig {
            accept_incoming: false,
            ..EndpointConfig::server(kcp)
        }
    }
}

/// Identifies a connection of an endpoint. Stale ids (of released connections) are
/// detected, never confused with newer connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) index: u32,
    pub(super) gen: u32,
}

/// Something for the runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A peer started a new session (listener only).
    NewConnection(ConnId),
    /// An event of one connection.
    Connection(ConnId, ConnEvent),
}

/// A datagram to send: `len` bytes at the start of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// Length of the datagram.
    pub len: usize,
}

/// Errors of endpoint operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The session limit is reached.
    #[error("too many sessions: the limit is {limit}")]
    TooManySessions {
        /// The limit.
        limit: usize,
    },
    /// Every conversation id towards this peer is in use.
    #[error("no free conversation id towards {peer}")]
    NoConversationId {
        /// The peer.
        peer: SocketAddr,
    },
    /// The connection id is unknown (already released).
    #[error("unknown or released connection")]
    UnknownConnection,
    /// An error of the connection itself.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
}

/// Endpoint-wide counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Datagrams handed to [`Endpoint::handle_datagram`](super::Endpoint::handle_datagram)
    /// or [`Endpoint::handle_datagrams`](super::Endpoint::handle_datagrams).
    pub datagrams_received: u64,
    /// Dropped: failed authentication/decoding or held no segment.
    pub dropped_invalid: u64,
    /// Dropped: no session and none may be created (dialer, or a Terminate).
    pub dropped_unknown: u64,
    /// New sessions refused by the limits (no unproven session could make room).
    pub sessions_refused: u64,
    /// Unproven sessions evicted to make room for a new one (the table was full).
    pub sessions_evicted: u64,
    /// Accepted sessions reaped because their peer proved nothing in time.
    pub sessions_reaped_unproven: u64,
    /// Sessions ended by the idle timeout (nothing received).
    pub sessions_timed_out: u64,
    /// Sessions closed because their peer kept its window closed (or acknowledged
    /// nothing) while data waited.
    pub sessions_stalled: u64,
    /// Times a connection had something to send but its anti-amplification budget
    /// (bytes received from an unproven peer) did not allow it.
    pub transmits_budget_limited: u64,
    /// Sessions created (accepted or dialed).
    pub sessions_created: u64,
    /// Datagrams produced by [`Endpoint::poll_transmit`](super::Endpoint::poll_transmit)
    /// or [`Endpoint::poll_transmits`](super::Endpoint::poll_transmits).
    pub datagrams_sent: u64,
    /// Bytes sent on the wire.
    pub wire_bytes_sent: u64,
    /// Bytes received on the wire.
    pub wire_bytes_received: u64,
}
