//! The connection's public types: its states, errors, events and counters.

/// Connection states (PROTOCOL.md §3.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Normal operation.
    Active,
    /// Closed locally; queued data is still being sent.
    ReadyToClose,
    /// The peer closed (Close option seen).
    PeerClosed,
    /// Sending Terminate, waiting to die.
    Terminating,
    /// The peer sent Terminate.
    PeerTerminating,
    /// Dead; resources released.
    Terminated,
}

/// Why a connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Nothing arrived from the peer for the idle timeout.
    #[error("connection timed out: nothing received from the peer for {timeout_ms} ms")]
    TimedOut {
        /// The idle timeout.
        timeout_ms: u32,
    },
    /// The peer closed or terminated the connection; writes are refused.
    #[error("connection closed by the peer")]
    PeerClosed,
    /// The connection was closed locally (or its write side shut down).
    #[error("connection is closed")]
    Closed,
    /// An accepted session whose peer never proved that it receives what we send (no
    /// acknowledgement of our data, no stream data from it) within the bound: reaped.
    #[error("peer never proved it receives our datagrams within {timeout_ms} ms")]
    Unproven {
        /// The bound (`UNPROVEN_US`).
        timeout_ms: u32,
    },
    /// An unproven session was evicted to make room for a new one (the table was full).
    #[error("evicted: the session table was full and the peer had never proved reachability")]
    Evicted,
    /// The peer kept its receive window closed while we had data to send.
    #[error("peer advertised no receive window for {timeout_ms} ms")]
    ZeroWindow {
        /// The bound (`STALL_US`).
        timeout_ms: u32,
    },
    /// The peer acknowledged nothing while we had data to send (it answers, but never
    /// takes our data).
    #[error("peer acknowledged nothing for {timeout_ms} ms while data was waiting")]
    NoProgress {
        /// The bound (`STALL_US`).
        timeout_ms: u32,
    },
}

/// Something the application may want to react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConnEvent {
    /// Data or end-of-stream can be read.
    Readable,
    /// Space freed in the send buffer, or writes now fail.
    Writable,
    /// The connection reached [`State::Terminated`].
    Terminated,
}

/// Counters and estimates of one connection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Smoothed RTT (ms).
    pub srtt_ms: u32,
    /// Retransmission timeout (ms).
    pub rto_ms: u32,
    /// Minimum RTT seen (µs), 0 if none yet.
    pub min_rtt_us: u64,
    /// Estimated bottleneck bandwidth (bytes/s).
    pub bandwidth: u64,
    /// Stream bytes written by the application and accepted.
    pub bytes_written: u64,
    /// Stream bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Stream bytes read by the application.
    pub bytes_read: u64,
    /// Data segments transmitted (including retransmissions).
    pub data_segments_sent: u64,
    /// Data segment retransmissions.
    pub retransmissions: u64,
    /// Redundant copies of segments, a thin stream's or a retransmission's (also in
    /// `data_segments_sent`).
    pub redundant_segments: u64,
    /// Of those, copies of retransmissions that would otherwise stall the window.
    pub retransmission_copies: u64,
    /// Payload bytes retransmitted.
    pub bytes_retransmitted: u64,
    /// Data segments received (including duplicates).
    pub data_segments_received: u64,
    /// Duplicate or late data segments received.
    pub duplicates_received: u64,
    /// Data segments received beyond our receive window (dropped).
    pub out_of_window_received: u64,
    /// Datagrams (plaintexts) produced.
    pub datagrams_sent: u64,
    /// Datagrams delivered to this connection.
    pub datagrams_received: u64,
    /// Bytes on the wire sent (filled in by the endpoint, after sealing).
    pub wire_bytes_sent: u64,
    /// Bytes on the wire received (filled in by the endpoint).
    pub wire_bytes_received: u64,
    /// Retransmission timer expiries.
    pub timeouts: u64,
    /// Peer values rejected as implausible (acks beyond what we sent, huge windows).
    pub implausible: u64,
}
