//! The named parts a `Connection` is made of (its state, grouped by concern).

use super::cc::{LossControl, Pacer, RateControl};
use super::seq::{Seq, WireTime};

/// Static parameters derived from the config.
#[derive(Clone, Debug)]
pub(super) struct Params {
    pub(super) mss: usize,
    pub(super) max_plaintext: usize,
    pub(super) mtu: u64,
    pub(super) tti_ms: u32,
    pub(super) snd_wnd: u32,
    pub(super) send_buffer_segments: usize,
    pub(super) write_buffer_bytes: usize,
    pub(super) congestion: bool,
    pub(super) idle_ms: u32,
    pub(super) ping_ms: u32,
    pub(super) max_rto: u32,
    /// Send a thin stream's segments twice ([`crate::Tuning::thin_stream_copies`]).
    pub(super) thin_copies: bool,
    /// Send stall-critical retransmissions twice ([`crate::Tuning::retransmission_copies`]).
    pub(super) repair_copies: bool,
}

/// When things last happened (connection time, µs unless named otherwise).
#[derive(Clone, Debug, Default)]
pub(super) struct Times {
    /// Last datagram from the peer (the idle timer counts from here).
    pub(super) last_incoming_us: u64,
    /// Last datagram we sent (the keep-alive timer counts from here).
    pub(super) last_send_us: u64,
    /// Last acknowledgement that freed data.
    pub(super) progress_us: u64,
    /// Last time stream data moved (written, received or read).
    pub(super) last_data_us: u64,
    /// Last Ping or Terminate we sent (wire milliseconds).
    pub(super) last_ping_ms: WireTime,
    /// Last retransmission timeout.
    pub(super) rto_at_us: Option<u64>,
    /// Retransmission timeouts in a row with nothing acknowledged in between.
    pub(super) rto_streak: u32,
    /// A timeout's probe waits to be sent: it goes even if the window is full (what
    /// was in flight is presumed lost, as TCP resets its flight size on a timeout).
    pub(super) probe_due: bool,
    /// Last Ack segment we sent.
    pub(super) last_ack_us: u64,
}

/// What we know of the peer's receive window.
#[derive(Clone, Debug)]
pub(super) struct PeerWindow {
    /// First number beyond the peer's window: we never send data at or past it.
    pub(super) end: Seq,
    /// The window size it last advertised.
    pub(super) size: Option<u32>,
    /// Our own window end as last advertised to the peer.
    pub(super) advertised_end: Seq,
}

/// Congestion control and its samples.
#[derive(Clone, Debug)]
pub(super) struct Congestion {
    pub(super) rate: RateControl,
    pub(super) pacer: Pacer,
    /// V2Ray's loss-based window (`congestion: true`).
    pub(super) loss: LossControl,
    pub(super) lost_in_round: u32,
    pub(super) sent_in_round: u32,
    /// Payload bytes delivered so far (the delivery-rate clock).
    pub(super) delivered: u64,
    /// Time of the last change of `delivered`.
    pub(super) delivered_us: u64,
    /// Send time of the newest segment acknowledged so far (BBR's `first_sent_time`):
    /// a rate sample covers at least the send interval from there, so a burst of acks
    /// (a receive batch, a relay's timer) cannot make a rate the sender never sent at.
    pub(super) first_sent_us: u64,
    /// Added to the reordering window of time-based loss detection after
    /// retransmissions turned out spurious (RACK's adaptive reordering window).
    pub(super) reo_extra_us: u64,
    /// Loss detections since the reordering window last grew (it shrinks back after
    /// a run of them without a spurious retransmission).
    pub(super) reo_clean_rounds: u32,
}

/// Segments owed to the peer at the next transmit.
#[derive(Clone, Debug, Default)]
pub(super) struct Due {
    /// An Ack (window update or cumulative ack), even with no number to list.
    pub(super) ack: bool,
    /// A Ping.
    pub(super) ping: bool,
    /// A Terminate.
    pub(super) terminate: bool,
}

/// Our side of the hello exchange.
#[derive(Clone, Debug, Default)]
pub(super) struct Hello {
    /// Markers sent so far.
    pub(super) sent: u8,
    /// The peer's marker arrived: it is mkcp.
    pub(super) heard: bool,
    /// The peer has heard ours: no more markers.
    pub(super) done: bool,
    /// The peer's 0xF2 arrived since our last marker: it has not heard us, and is
    /// owed a 0xF3 whatever our own count.
    pub(super) owed: bool,
    /// When our last marker went.
    pub(super) last_us: Option<u64>,
    /// Data segments cut to make room for a marker (`write_data`).
    pub(super) cuts: u8,
}

/// Anti-amplification and reachability of an accepted session (issue 11):
/// until the peer proves it receives what we send, what we send it is limited.
#[derive(Clone, Debug, Default)]
pub(super) struct Guard {
    /// Accepted from a peer (not dialed): the limits below apply until proof.
    pub(super) accepted: bool,
    /// Stream data from the peer was stored (a V2Ray client's proof of life for
    /// reaping; it gives byte budget only, no proof that the peer receives us).
    pub(super) data_in: bool,
    /// Keep-alive Pings sent since the last datagram from the peer.
    pub(super) pings_unanswered: u8,
    /// When data was written into an empty send buffer (the slow-peer clock starts at
    /// the later of this and the last acknowledgement progress).
    pub(super) stall_from_us: u64,
}

/// Half-close and close bookkeeping.
#[derive(Clone, Debug, Default)]
pub(super) struct Closing {
    /// The application shut its write side (our half-close).
    pub(super) write_shut: bool,
    /// An end-of-stream marker is due.
    pub(super) fin_due: bool,
    /// When the next end-of-stream marker is due.
    pub(super) fin_next_us: Option<u64>,
    /// End-of-stream markers sent.
    pub(super) fin_sends: u32,
    /// The peer's end of stream (the number after its last segment).
    pub(super) peer_fin: Option<Seq>,
    /// When the next Terminate is due (Terminating).
    pub(super) next_terminate_us: u64,
    /// A write was cut short and no write since was taken whole: the application has
    /// more than the buffer holds (it is not what limits the sender, even while it has
    /// not yet refilled room that acks just freed).
    pub(super) write_blocked: bool,
    /// Writable was signalled for the current blocked write (one event per episode).
    pub(super) writable_signalled: bool,
}
