//! One mKCP connection: state machine, timers, sending and receiving (spec §3).
//!
//! Sans-IO: every call takes `now` as a value. Incoming plaintext (after the envelope
//! is opened) goes to [`Connection::handle_plaintext`]; outgoing plaintext comes from
//! [`Connection::poll_transmit`]; [`Connection::poll_timeout`] says when
//! [`Connection::handle_timeout`] must run next. The application side is
//! [`Connection::write`], [`Connection::read`], [`Connection::shutdown_write`] (half
//! close) and [`Connection::close`].
//!
//! The wire contract is V2Ray's (spec §6). Our sending behaviour differs where V2Ray
//! accepts it (spec §6 "free to improve"): several segments per datagram, data paced at
//! the measured bottleneck rate and never sent beyond the peer's window, loss detected
//! from later acks (not only by timeout), exponential RTO backoff, each arrival acked
//! once, late retransmissions answered with a cumulative ack, implausible peer values
//! rejected, and a real half-close. [`crate::Tuning::v2ray_compat`] restores V2Ray's
//! sending behaviour (x20 burst per TTI flush, re-acks every `rto/2`, no backoff, one
//! segment per datagram) for comparison.
//!
//! ## Half-close
//! V2Ray has no half-close: its Close option means "I am gone", and a V2Ray peer that
//! sees it throws its unsent data away (spec §3.8). [`Connection::shutdown_write`]
//! therefore does not set the Close option. Once everything written has been
//! acknowledged it sends a [`CMD_FIN`] command segment whose `sendingNext` is the end
//! of the stream. V2Ray parses unknown commands as a Ping (spec §2.1) and ignores it;
//! an mkcp peer reads end-of-stream there. [`Connection::close`] is V2Ray's Close.

pub mod cc;
pub mod recv;
pub mod rtt;
pub mod send;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::wire::segment::{
    AckNumbers, AckSegment, CmdSegment, DataSegment, Segment, ACK_HEADER_LEN, CMD_LEN, CMD_PING,
    CMD_TERMINATE, DATA_HEADER_LEN, OPTION_CLOSE,
};
use crate::wire::segments;

use cc::{LossControl, Pacer, RateControl};
use recv::{Accept, AckBatch, AckList, RecvBuffer, V2rayAckList, V2RAY_ACK_BATCH};
use rtt::RttEstimator;
use send::{SendBuffer, V2raySent};

/// Command byte of our end-of-stream marker (a CmdOnly segment; V2Ray treats it as a
/// Ping). Its `sendingNext` is the number after the last segment of the stream.
pub const CMD_FIN: u8 = 0xF1;

/// Interval of Terminate segments while Terminating. V2Ray sends one every 5 s (2-3 in
/// all); 16 in the 8 s make a lost-Terminate stall unlikely even on a very lossy link.
const TERMINATE_INTERVAL_US: u64 = 500_000;

/// A connection whose stream has not moved for this long gives its spare buffers
/// back (they are reallocated if it gets busy again). Checked when a timer runs, at
/// the latest at the next keep-alive.
const IDLE_TRIM_US: u64 = 1_000_000;

/// Largest peer receive window we believe (segments). Larger advertisements are
/// treated as implausible.
const MAX_PEER_WINDOW: u32 = 1 << 16;

/// Connection states (spec §3.8).
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
}

/// Something the application may want to react to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// Static parameters derived from the config.
#[derive(Clone, Debug)]
struct Params {
    mss: usize,
    max_plaintext: usize,
    mtu: u64,
    tti_ms: u32,
    snd_wnd: u32,
    send_buffer_segments: usize,
    write_buffer_bytes: usize,
    congestion: bool,
    compat: bool,
    idle_ms: u32,
    ping_ms: u32,
    max_rto: u32,
}

#[derive(Clone, Debug)]
enum CompatOut {
    Ack(AckBatch),
    Data(u32),
    Cmd(u8),
}

/// A single mKCP conversation.
#[derive(Debug)]
pub struct Connection {
    conv: u16,
    created: Instant,
    p: Params,
    state: State,
    state_begin_us: u64,
    now_us: u64,
    last_incoming_us: u64,
    last_send_us: u64,
    progress_us: u64,
    /// Last time stream data moved (written, received or read).
    last_data_us: u64,
    last_ping_ms: u32,
    rtt: RttEstimator,
    send: SendBuffer,
    recv: RecvBuffer,
    acks: AckList,
    v2acks: V2rayAckList,
    peer_window_end: u32,
    peer_window_size: Option<u32>,
    advertised_end: u32,
    rate: RateControl,
    pacer: Pacer,
    loss: LossControl,
    lost_in_round: u32,
    sent_in_round: u32,
    delivered: u64,
    delivered_us: u64,
    ack_due: bool,
    ping_due: bool,
    terminate_due: bool,
    next_terminate_us: u64,
    write_shut: bool,
    fin_due: bool,
    fin_next_us: Option<u64>,
    fin_sends: u32,
    peer_fin: Option<u32>,
    write_blocked: bool,
    error: Option<ConnectionError>,
    events: VecDeque<ConnEvent>,
    stats: ConnectionStats,
    scratch: Vec<u32>,
    compat_tick_us: Option<u64>,
    compat_ping_us: u64,
    compat_out: VecDeque<CompatOut>,
    compat_sent: Vec<V2raySent>,
}

fn before(a: u32, b: u32) -> bool {
    a.wrapping_sub(b) > 0x7FFF_FFFF
}

impl Connection {
    /// A new connection for conversation `conv`, created at `now`. `max_plaintext` is
    /// the largest plaintext one datagram may carry (MTU minus header and envelope).
    pub fn new(conv: u16, config: &Config, max_plaintext: usize, now: Instant) -> Connection {
        let t = &config.tuning;
        let compat = t.v2ray_compat;
        let mss = if compat {
            config.v2ray_mss()
        } else {
            config.mss()
        } as usize;
        let max_plaintext = if compat {
            max_plaintext.max(mss + DATA_HEADER_LEN)
        } else {
            max_plaintext
        }
        .max(DATA_HEADER_LEN + 1);
        let mss = mss.clamp(1, max_plaintext - DATA_HEADER_LEN);
        let snd_wnd = config.sending_window();
        let mut rcv_wnd = config.receiving_window();
        if !compat {
            // readBufferSize (unused by V2Ray) sizes our receive buffer: the window is
            // what it holds, and never less than V2Ray's downlink-derived window.
            // Losses stall in-order delivery for about one RTT, so a window of just
            // one BDP would throttle a lossy long link.
            let by_buffer =
                (config.read_buffer_size as usize / mss).min(MAX_PEER_WINDOW as usize) as u32;
            rcv_wnd = rcv_wnd.max(by_buffer);
        }
        let (min_rto, max_rto, min_rtt) = if compat {
            (0, u32::MAX, config.tti)
        } else {
            (
                t.min_rto_ms.max(1),
                t.max_rto_ms.max(t.min_rto_ms.max(1)),
                1,
            )
        };
        let p = Params {
            mss,
            max_plaintext,
            mtu: u64::from(config.mtu),
            tti_ms: config.tti.max(1),
            snd_wnd,
            send_buffer_segments: config.send_buffer_segments().max(1) as usize
                + usize::from(compat),
            write_buffer_bytes: if compat {
                usize::MAX
            } else {
                config.write_buffer_size as usize
            },
            congestion: config.congestion,
            compat,
            idle_ms: t.idle_timeout_ms.max(1),
            ping_ms: t.ping_interval_ms.max(1),

            max_rto,
        };
        let recv = RecvBuffer::new(rcv_wnd);
        let advertised_end = recv.window_end();
        let loss_max = if compat {
            2 * snd_wnd
        } else {
            (2 * snd_wnd).max(MAX_PEER_WINDOW)
        };
        Connection {
            conv,
            created: now,
            state: State::Active,
            state_begin_us: 0,
            now_us: 0,
            last_incoming_us: 0,
            last_send_us: 0,
            progress_us: 0,
            last_data_us: 0,
            last_ping_ms: 0,
            rtt: RttEstimator::new(min_rtt, min_rto, max_rto),
            send: SendBuffer::new(mss),
            recv,
            acks: AckList::new(t.max_ack_list.max(1)),
            v2acks: V2rayAckList::new(t.max_ack_list.max(1) * 4),
            peer_window_end: 32,
            peer_window_size: None,
            advertised_end,
            rate: RateControl::new(mss as u32, 16),
            pacer: Pacer::new(),
            loss: LossControl::new(snd_wnd, loss_max),
            lost_in_round: 0,
            sent_in_round: 0,
            delivered: 0,
            delivered_us: 0,
            ack_due: false,
            ping_due: false,
            terminate_due: false,
            next_terminate_us: 0,
            write_shut: false,
            fin_due: false,
            fin_next_us: None,
            fin_sends: 0,
            peer_fin: None,
            write_blocked: false,
            error: None,
            events: VecDeque::new(),
            stats: ConnectionStats::default(),
            scratch: Vec::new(),
            compat_tick_us: None,
            compat_ping_us: 0,
            compat_out: VecDeque::new(),
            compat_sent: Vec::new(),
            p,
        }
    }

    /// Marks this as a dialer's connection: it announces itself with a Ping right away,
    /// so the server knows the session before the first write.
    pub fn announce(&mut self) {
        if self.p.compat {
            return;
        }
        self.ping_due = true;
    }

    /// Conversation id.
    pub fn conv(&self) -> u16 {
        self.conv
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Payload bytes per Data segment.
    pub fn mss(&self) -> usize {
        self.p.mss
    }

    /// Counters and estimates.
    pub fn stats(&self) -> ConnectionStats {
        let mut s = self.stats.clone();
        s.srtt_ms = self.rtt.srtt();
        s.rto_ms = self.rtt.rto();
        s.min_rtt_us = self.rate.min_rtt_us().unwrap_or(0);
        s.bandwidth = self.rate.bandwidth();
        s
    }

    /// Adds wire-level counts (the endpoint calls this after sealing / opening).
    pub fn count_wire(&mut self, sent: usize, received: usize) {
        self.stats.wire_bytes_sent += sent as u64;
        self.stats.wire_bytes_received += received as u64;
    }

    /// Internal state for debugging (not a stable format).
    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        format!(
            "state {:?} phase {:?} bw {} una {} unsent {} next {} len {} in_flight {} ({} B) has_lost {} cwnd {} peer_end {} pacing {:?} rto {} recv.next {} now_us {}",
            self.state,
            self.rate.phase(),
            self.rate.bandwidth(),
            self.send.una(),
            self.send.unsent(),
            self.send.next_number(),
            self.send.len(),
            self.send.in_flight(),
            self.send.in_flight_bytes(),
            self.send.has_lost(),
            self.cwnd_bytes(),
            self.peer_window_end,
            self.rate.pacing_rate(),
            self.rtt.rto(),
            self.recv.next(),
            self.now_us,
        )
    }

    /// The error that ended the connection, if any.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.error.as_ref()
    }

    /// Takes the next application event.
    pub fn poll_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    fn event(&mut self, e: ConnEvent) {
        if !self.events.contains(&e) {
            self.events.push_back(e);
        }
    }

    fn us(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.created).as_micros() as u64
    }

    fn ms(us: u64) -> u32 {
        (us / 1000) as u32
    }

    fn instant(&self, us: u64) -> Instant {
        self.created + Duration::from_micros(us)
    }

    fn option(&self) -> u8 {
        if self.state == State::ReadyToClose {
            OPTION_CLOSE
        } else {
            0
        }
    }

    fn set_state(&mut self, t: u64, s: State) {
        if self.state == s {
            return;
        }
        self.state = s;
        self.state_begin_us = t;
        if s != State::Active && s != State::ReadyToClose {
            // Nothing more will be sent or received: only what waits to be read stays.
            self.recv.trim(0);
        }
        match s {
            State::PeerClosed | State::PeerTerminating => {
                self.send.discard();
                self.event(ConnEvent::Readable);
                self.event(ConnEvent::Writable);
            }
            State::ReadyToClose => {
                self.event(ConnEvent::Readable);
                self.event(ConnEvent::Writable);
            }
            State::Terminating => {
                self.send.discard();
                self.terminate_due = true;
                self.next_terminate_us = t + TERMINATE_INTERVAL_US;
                self.event(ConnEvent::Readable);
                self.event(ConnEvent::Writable);
            }
            State::Terminated => {
                self.send.discard();
                self.compat_out.clear();
                self.compat_tick_us = None;
                self.event(ConnEvent::Readable);
                self.event(ConnEvent::Writable);
                self.event(ConnEvent::Terminated);
            }
            State::Active => {}
        }
    }

    // ------------------------------------------------------------------ input

    /// Processes the plaintext of one datagram addressed to this connection: walks its
    /// segments and stops at the first one with a different conversation id (spec §3.7).
    pub fn handle_plaintext(&mut self, now: Instant, plaintext: &[u8]) {
        if self.state == State::Terminated {
            return;
        }
        let t = self.us(now);
        self.now_us = self.now_us.max(t);
        self.last_incoming_us = t;
        self.stats.datagrams_received += 1;
        let mut wake = false;
        for seg in segments(plaintext) {
            if seg.conv() != self.conv {
                break;
            }
            if seg.option() & OPTION_CLOSE != 0 {
                self.on_peer_close(t);
            }
            match seg {
                Segment::Data(d) => {
                    self.on_data(t, &d);
                    wake = true;
                }
                Segment::Ack(a) => {
                    self.on_ack(t, &a);
                    wake = true;
                }
                Segment::Cmd(c) => self.on_cmd(t, &c),
            }
            if self.state == State::Terminated {
                return;
            }
        }
        if wake {
            self.compat_wake(t);
        }
        self.after_progress(t);
    }

    fn on_peer_close(&mut self, t: u64) {
        match self.state {
            State::Active => self.set_state(t, State::PeerClosed),
            State::ReadyToClose => self.set_state(t, State::Terminating),
            _ => {}
        }
    }

    fn on_data(&mut self, _t: u64, d: &DataSegment<'_>) {
        self.stats.data_segments_received += 1;
        if self.p.compat {
            self.v2acks.clear(d.sending_next);
        }
        match self.recv.classify(d.number) {
            Accept::OutOfWindow => self.stats.out_of_window_received += 1,
            Accept::Old => {
                self.stats.duplicates_received += 1;
                if !self.p.compat {
                    // V2Ray stays silent here (spec §5 item 30); a cumulative ack
                    // tells the sender at once.
                    self.ack_due = true;
                }
            }
            Accept::Duplicate | Accept::Stored => {
                self.last_data_us = self.now_us;
                if self.p.compat {
                    self.v2acks.add(d.number, d.timestamp);
                } else {
                    self.acks.add(d.number, d.timestamp);
                }
                let readable = self.recv.readable();
                if self.recv.accept(d.number, d.payload) == Accept::Duplicate {
                    self.stats.duplicates_received += 1;
                }
                if !readable && self.recv.readable() {
                    self.event(ConnEvent::Readable);
                }
            }
        }
    }

    fn learn_peer_window(&mut self, window_end: u32, next: u32) {
        let size = window_end.wrapping_sub(next);
        let ahead = window_end.wrapping_sub(self.send.una());
        if size > MAX_PEER_WINDOW || (ahead > 0x7FFF_FFFF && self.send.una() != 0) {
            self.stats.implausible += 1;
            return;
        }
        self.peer_window_size = Some(size);
        if before(self.peer_window_end, window_end) {
            self.peer_window_end = window_end;
        }
    }

    fn apply_cumulative(&mut self, t: u64, rn: u32) {
        if !self.send.plausible_cumulative(rn) {
            // V2Ray would drop queued data here (spec §5 item 8); we refuse.
            self.stats.implausible += 1;
            return;
        }
        let freed = self.send.ack_cumulative(rn);
        if freed > 0 {
            self.progress_us = t;
            self.delivered += freed;
            self.delivered_us = t;
            self.stats.bytes_acked += freed;
        }
    }

    /// RTO for data timeouts: the estimate plus the peer's largest ack delay, one TTI.
    /// A V2Ray peer acknowledges in its flush, once per TTI while busy (spec §3.5), so
    /// an ack may come a TTI after the data arrived; Karn's rule drops exactly those
    /// late samples once a segment was retransmitted, so the estimate alone never
    /// learns it (interop finding: RTO at its 30 ms floor, spurious timeouts).
    fn data_rto_ms(&self) -> u32 {
        self.rtt.rto().saturating_add(self.p.tti_ms)
    }

    fn rto_us_for(rto_ms: u32, max_rto: u32, compat: bool) -> impl Fn(u32) -> u64 {
        move |transmit: u32| {
            let base = u64::from(rto_ms.max(1));
            let backoff = if compat {
                base
            } else {
                (base << transmit.saturating_sub(1).min(3)).min(u64::from(max_rto.max(rto_ms)))
            };
            backoff * 1000
        }
    }

    fn on_ack(&mut self, t: u64, a: &AckSegment<'_>) {
        self.learn_peer_window(a.receiving_window, a.receiving_next);
        if self.p.compat {
            self.apply_cumulative(t, a.receiving_next);
        }
        // Otherwise the listed numbers go first: they carry the RTT and delivery-rate
        // samples. V2Ray acks in its flush, once per TTI, when its `receivingNext`
        // usually covers every listed number already; applied first, the cumulative
        // point would free them all and leave no sample (interop finding: RTO stuck at
        // its floor on the few surviving short samples, spurious timeouts, a starved
        // bandwidth estimate).
        let mut newest_sent: Option<u64> = None;
        let mut rtt_us: Option<u64> = None;
        let mut maxack: u32 = 0;
        let mut maxack_removed = false;
        for k in a.numbers.iter() {
            let removed = match self.send.ack_number(k) {
                Some(info) => {
                    self.progress_us = t;
                    self.delivered += u64::from(info.len);
                    self.delivered_us = t;
                    self.stats.bytes_acked += u64::from(info.len);
                    newest_sent = Some(newest_sent.map_or(info.sent_us, |n| n.max(info.sent_us)));
                    if info.transmit == 1 {
                        rtt_us = Some(t.saturating_sub(info.sent_us));
                    }
                    self.rate.on_delivery(
                        t,
                        info.delivered,
                        self.delivered,
                        t.saturating_sub(info.delivered_us),
                        self.send.in_flight_bytes() as u64,
                    );
                    true
                }
                None => false,
            };
            if k > maxack {
                maxack = k;
                maxack_removed = removed;
            } else if k == maxack && removed {
                maxack_removed = true;
            }
        }
        if !self.p.compat {
            self.apply_cumulative(t, a.receiving_next);
        }
        let now_ms = Self::ms(t);
        if self.p.compat {
            if maxack_removed {
                self.send.fast_ack_v2ray(maxack, self.rtt.rto());
                let sample = now_ms.wrapping_sub(a.timestamp);
                if sample < 10_000 {
                    self.rtt.update(sample, now_ms);
                }
            }
            return;
        }
        if let Some(r) = rtt_us {
            self.rtt.update((r / 1000) as u32, now_ms);
            self.rate.on_rtt(t, r);
        } else if newest_sent.is_some() && a.timestamp != 0 {
            // Only retransmitted segments were acked (Karn: their own send times are
            // ambiguous). The echoed timestamp belongs to the transmission that arrived,
            // so it still measures the path. Without this, a path whose RTT exceeds the
            // initial RTO retransmits every segment and never learns its RTT. Timestamp 0
            // is skipped: V2Ray sends it in acks that carry no fresh entry (spec §5 item 19).
            let sample = now_ms.wrapping_sub(a.timestamp);
            if sample < 10_000 {
                self.rtt.update(sample, now_ms);
                self.rate.on_rtt(t, u64::from(sample.max(1)) * 1000);
            }
        }
        if let Some(ns) = newest_sent {
            let reo = (self.rate.min_rtt_us().unwrap_or(4_000) / 4).max(1_000);
            let lost = self.send.detect_lost_by_time(ns, reo);
            self.lost_in_round += lost as u32;
        }
    }

    fn on_cmd(&mut self, t: u64, c: &CmdSegment) {
        let now_ms = Self::ms(t);
        if c.cmd == CMD_TERMINATE {
            match self.state {
                State::Active | State::PeerClosed => self.set_state(t, State::PeerTerminating),
                State::ReadyToClose => self.set_state(t, State::Terminating),
                State::Terminating => {
                    self.set_state(t, State::Terminated);
                    return;
                }
                _ => {}
            }
        }
        if c.option == OPTION_CLOSE || c.cmd == CMD_TERMINATE {
            self.event(ConnEvent::Readable);
            self.event(ConnEvent::Writable);
        }
        self.apply_cumulative(t, c.receiving_next);
        if self.p.compat {
            self.v2acks.clear(c.sending_next);
        }
        self.rtt.update_peer_rto(c.peer_rto, now_ms);
        if let Some(size) = self.peer_window_size {
            let end = c.receiving_next.wrapping_add(size);
            if self.send.plausible_cumulative(c.receiving_next) && before(self.peer_window_end, end)
            {
                self.peer_window_end = end;
            }
        }
        if c.cmd == CMD_FIN && !before(c.sending_next, self.recv.next()) && self.peer_fin.is_none()
        {
            self.peer_fin = Some(c.sending_next);
            self.event(ConnEvent::Readable);
        }
    }

    /// Bookkeeping after input or timers: writable events, the Ping that tells the
    /// peer everything was acked, FIN, and closing transitions.
    fn after_progress(&mut self, t: u64) {
        if self.send.take_una_changed() {
            if self.write_blocked {
                self.write_blocked = false;
                self.event(ConnEvent::Writable);
            }
            if self.send.is_empty() && !self.p.compat {
                // Lets a V2Ray peer drop its ack list (it re-acks until it learns
                // our sendingNext, spec §3.11).
                self.ping_due = true;
            }
        }
        if self.write_shut && self.send.is_empty() && self.fin_sends == 0 && !self.fin_due {
            self.fin_due = true;
        }
        if self.state == State::ReadyToClose && self.send.is_empty() {
            self.set_state(t, State::Terminating);
        }
    }

    // -------------------------------------------------------------- application

    /// Queues stream bytes; returns how many were taken (0 when the send buffer is
    /// full: wait for [`ConnEvent::Writable`]).
    pub fn write(&mut self, now: Instant, data: &[u8]) -> Result<usize, ConnectionError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        match self.state {
            State::Active if !self.write_shut => {}
            State::PeerClosed | State::PeerTerminating => return Err(ConnectionError::PeerClosed),
            _ => return Err(ConnectionError::Closed),
        }
        let n = self.send.write(
            data,
            !self.p.compat,
            self.p.send_buffer_segments,
            self.p.write_buffer_bytes,
        );
        self.stats.bytes_written += n as u64;
        self.last_data_us = self.now_us.max(self.us(now));
        if n < data.len() {
            self.write_blocked = true;
        }
        if n > 0 {
            let t = self.us(now);
            self.now_us = self.now_us.max(t);
            self.compat_wake(t);
        }
        Ok(n)
    }

    /// Bytes that can be written before the send buffer is full (approximate).
    pub fn send_capacity(&self) -> usize {
        if self.state != State::Active || self.write_shut {
            return 0;
        }
        let by_segments = self
            .p
            .send_buffer_segments
            .saturating_sub(self.send.len())
            .saturating_mul(self.p.mss);
        by_segments.min(self.p.write_buffer_bytes.saturating_sub(self.send.bytes()))
    }

    /// Bytes written but not yet acknowledged.
    pub fn unacked_bytes(&self) -> usize {
        self.send.bytes()
    }

    /// Reads in-order stream bytes. `Ok(Some(n))` with `n > 0`: data; `Ok(Some(0))`:
    /// end of stream; `Ok(None)`: nothing yet (wait for [`ConnEvent::Readable`]);
    /// `Err`: the connection failed.
    pub fn read(&mut self, now: Instant, buf: &mut [u8]) -> Result<Option<usize>, ConnectionError> {
        if buf.is_empty() {
            return Ok(Some(0));
        }
        let n = if self.state == State::ReadyToClose {
            0
        } else {
            self.recv.read(buf)
        };
        if n > 0 {
            self.stats.bytes_read += n as u64;
            let t = self.us(now);
            self.now_us = self.now_us.max(t);
            self.last_data_us = self.now_us;
            if self.p.compat {
                self.compat_wake(t);
            } else {
                // Reopen a window we advertised as (nearly) closed.
                let open = self.advertised_end.wrapping_sub(self.recv.next());
                if open < self.recv.window() / 2 {
                    self.ack_due = true;
                }
            }
            return Ok(Some(n));
        }
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        if self.is_eof() {
            return Ok(Some(0));
        }
        Ok(None)
    }

    fn is_eof(&self) -> bool {
        match self.state {
            State::ReadyToClose
            | State::Terminating
            | State::Terminated
            | State::PeerTerminating => !self.recv.readable(),
            State::Active | State::PeerClosed => {
                self.peer_fin == Some(self.recv.next()) && !self.recv.readable()
            }
        }
    }

    /// True when a read would return data or end-of-stream (or an error).
    pub fn is_readable(&self) -> bool {
        self.recv.readable() || self.is_eof() || self.error.is_some()
    }

    /// Half-close: no more writes; the peer reads end-of-stream after the data already
    /// written. Reading continues.
    pub fn shutdown_write(&mut self, now: Instant) {
        if self.write_shut {
            return;
        }
        self.write_shut = true;
        let t = self.us(now);
        self.now_us = self.now_us.max(t);
        self.after_progress(t);
    }

    /// True once [`Self::shutdown_write`] was called.
    pub fn is_write_shut(&self) -> bool {
        self.write_shut
    }

    /// Full close (V2Ray's Close): the peer is told we are gone once queued data is
    /// delivered; nothing more is read.
    pub fn close(&mut self, now: Instant) {
        let t = self.us(now);
        self.now_us = self.now_us.max(t);
        match self.state {
            State::Active => self.set_state(t, State::ReadyToClose),
            State::PeerClosed => self.set_state(t, State::Terminating),
            State::PeerTerminating => self.set_state(t, State::Terminated),
            _ => {}
        }
        if self.state == State::ReadyToClose {
            self.compat_wake(t);
            if !self.p.compat {
                self.ping_due = true; // carries the Close option at once
            }
        }
        self.after_progress(t);
    }

    /// Drops the connection immediately without telling the peer.
    pub fn abort(&mut self, now: Instant) {
        let t = self.us(now);
        self.set_state(t, State::Terminated);
    }

    // ------------------------------------------------------------------ timers

    /// V2Ray gives queued data 15 s after a local close; we give it 15 s without
    /// acknowledgement progress, so a slow but moving transfer is not cut off.
    fn ready_to_close_deadline(&self) -> u64 {
        let from = if self.p.compat {
            self.state_begin_us
        } else {
            self.state_begin_us.max(self.progress_us)
        };
        from + 15_000_000
    }

    fn cwnd_bytes(&self) -> u64 {
        let mss = self.p.mss as u64;
        let mut cwnd = match self.rate.cwnd() {
            // A V2Ray peer acks once per TTI while busy: the window must also cover
            // what is delivered during that ack delay, or it shrinks to a few segments
            // per TTI and the bandwidth estimate feeds on itself (interop finding).
            Some(c) => c.max(self.rate.bandwidth() * 2 * u64::from(self.p.tti_ms) / 1000),
            None => u64::from(self.p.snd_wnd.max(16)) * mss,
        };
        if self.p.congestion {
            // V2Ray's loss window (`congestion: true`) trims the headroom above the
            // measured bandwidth-delay product, never below it: with its rule (grow only
            // at <= 5 % loss) a link with 5 % random loss otherwise ratchets down to 16
            // segments (mkcp bench, 100 ms / 5 % / 20 Mbit/s: 6 % of the link).
            let floor = self.rate.bdp().max(16 * mss);
            cwnd = cwnd.min((u64::from(self.loss.window()) * mss).max(floor));
        }
        cwnd
    }

    fn data_allowed(&self) -> bool {
        matches!(self.state, State::Active | State::ReadyToClose)
    }

    fn can_send_data(&self) -> bool {
        self.data_allowed()
            && (self.send.in_flight_bytes() as u64) < self.cwnd_bytes()
            && self.send.has_sendable(self.peer_window_end)
    }

    /// When [`Self::handle_timeout`] must run next (`None`: never, the connection is dead).
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        if self.state == State::Terminated {
            return None;
        }
        let mut d = u64::MAX;
        let idle = u64::from(self.p.idle_ms) * 1000;
        match self.state {
            State::Active | State::PeerClosed => d = d.min(self.last_incoming_us + idle),
            State::ReadyToClose => d = d.min(self.ready_to_close_deadline()),
            State::PeerTerminating => d = d.min(self.state_begin_us + 4_000_001),
            State::Terminating => {
                d = d
                    .min(self.next_terminate_us)
                    .min(self.state_begin_us + 8_000_001);
            }
            State::Terminated => {}
        }
        if self.p.compat {
            if let Some(tick) = self.compat_tick_us {
                d = d.min(tick);
            }
            d = d.min(self.compat_ping_us);
        } else {
            if self.data_allowed() {
                let rto = Self::rto_us_for(self.data_rto_ms(), self.p.max_rto, false);
                if let Some(r) = self.send.rto_deadline(rto) {
                    d = d.min(r);
                }
                if self.can_send_data() {
                    // A pacing time already reached means "ready to transmit", which
                    // the endpoint tracks itself; only a future time is a timer.
                    let r = self.pacer.ready_at(self.rate.pacing_rate());
                    if r > self.now_us {
                        d = d.min(r);
                    }
                }
            }
            if matches!(
                self.state,
                State::Active | State::PeerClosed | State::ReadyToClose
            ) && !self.ping_due
            {
                d = d.min(self.last_send_us + u64::from(self.p.ping_ms) * 1000);
            }
        }
        if let Some(f) = self.fin_next_us {
            d = d.min(f);
        }
        (d != u64::MAX).then(|| self.instant(d))
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Terminated {
            return;
        }
        let t = self.us(now);
        self.now_us = self.now_us.max(t);
        let idle = u64::from(self.p.idle_ms) * 1000;
        match self.state {
            State::Active | State::PeerClosed if t >= self.last_incoming_us + idle => {
                self.error = Some(ConnectionError::TimedOut {
                    timeout_ms: self.p.idle_ms,
                });
                // The peer is gone: no point in flushing the queue first.
                self.set_state(t, State::Terminating);
            }
            State::ReadyToClose if self.send.is_empty() || t >= self.ready_to_close_deadline() => {
                self.set_state(t, State::Terminating);
            }
            State::PeerTerminating if t > self.state_begin_us + 4_000_000 => {
                self.set_state(t, State::Terminating);
            }
            State::Terminating => {
                if t > self.state_begin_us + 8_000_000 {
                    self.set_state(t, State::Terminated);
                    return;
                }
                if t >= self.next_terminate_us {
                    self.terminate_due = true;
                    self.next_terminate_us = t + TERMINATE_INTERVAL_US;
                }
            }
            _ => {}
        }
        if let Some(f) = self.fin_next_us {
            if t >= f {
                self.fin_due = true;
                self.fin_next_us = None;
            }
        }
        self.trim_if_idle(t);
        if self.p.compat {
            self.compat_timers(t);
            return;
        }
        if self.data_allowed() {
            let rto = Self::rto_us_for(self.data_rto_ms(), self.p.max_rto, false);
            let n = self.send.detect_lost_by_timeout(t, rto);
            if n > 0 {
                self.stats.timeouts += 1;
                self.lost_in_round += n as u32;
            }
        }
        if matches!(
            self.state,
            State::Active | State::PeerClosed | State::ReadyToClose
        ) && t >= self.last_send_us + u64::from(self.p.ping_ms) * 1000
        {
            self.ping_due = true;
        }
        self.after_progress(t);
    }

    /// Gives spare buffers back once the stream has been still for a while.
    fn trim_if_idle(&mut self, t: u64) {
        let last = self.last_data_us.max(self.progress_us);
        if t.saturating_sub(last) < IDLE_TRIM_US {
            return;
        }
        if self.send.is_empty() {
            self.send.trim(0);
        }
        if self.recv.buffered_bytes() == 0 {
            self.recv.trim(0);
        }
        self.acks.trim();
    }

    // ----------------------------------------------------------------- output

    /// Writes the plaintext of the next datagram into `buf` and returns its length, or
    /// `None` if nothing is to be sent now.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.state == State::Terminated {
            return None;
        }
        let t = self.us(now).max(self.now_us);
        self.now_us = t;
        let max = buf.len().min(self.p.max_plaintext);
        let buf = &mut buf[..max];
        let w = if self.p.compat {
            self.transmit_compat(t, buf)
        } else {
            self.transmit(t, buf)
        };
        if w == 0 {
            return None;
        }
        self.last_send_us = t;
        self.stats.datagrams_sent += 1;
        Some(w)
    }

    fn emit(buf: &mut [u8], w: &mut usize, seg: &Segment<'_>) -> bool {
        match seg.emit(&mut buf[*w..]) {
            Ok(n) => {
                *w += n;
                true
            }
            Err(_) => false,
        }
    }

    fn cmd(&self, cmd: u8) -> CmdSegment {
        CmdSegment {
            conv: self.conv,
            cmd,
            option: self.option(),
            sending_next: self.send.una(),
            receiving_next: self.recv.next(),
            peer_rto: self.rtt.rto(),
        }
    }

    fn transmit(&mut self, t: u64, buf: &mut [u8]) -> usize {
        let mut w = 0;
        let now_ms = Self::ms(t);
        // 1. Acknowledgements (and window updates).
        while !self.acks.is_empty() || self.ack_due {
            let room = buf.len() - w;
            if room < ACK_HEADER_LEN + if self.acks.is_empty() { 0 } else { 4 } {
                break;
            }
            let count = ((room - ACK_HEADER_LEN) / 4).min(255);
            self.scratch.clear();
            let mut scratch = std::mem::take(&mut self.scratch);
            let ts = self.acks.take(count, self.recv.next(), &mut scratch);
            let seg = Segment::Ack(AckSegment {
                conv: self.conv,
                option: self.option(),
                receiving_window: self.recv.window_end(),
                receiving_next: self.recv.next(),
                timestamp: ts,
                numbers: AckNumbers::List(&scratch),
            });
            let ok = Self::emit(buf, &mut w, &seg);
            self.scratch = scratch;
            if !ok {
                break;
            }
            self.advertised_end = self.recv.window_end();
            self.ack_due = false;
        }
        // 2. Control segments.
        if self.terminate_due && buf.len() - w >= CMD_LEN {
            let seg = Segment::Cmd(self.cmd(CMD_TERMINATE));
            if Self::emit(buf, &mut w, &seg) {
                self.terminate_due = false;
                self.last_ping_ms = now_ms;
            }
        }
        if self.state == State::Terminating {
            self.ping_due = false;
            return w;
        }
        let fin_now = self.write_shut && self.send.is_empty();
        if (self.fin_due || (self.ping_due && fin_now)) && buf.len() - w >= CMD_LEN {
            let seg = Segment::Cmd(self.cmd(CMD_FIN));
            if Self::emit(buf, &mut w, &seg) {
                self.ping_due = false;
                self.on_fin_sent(t);
            }
        }
        if self.ping_due && buf.len() - w >= CMD_LEN {
            let seg = Segment::Cmd(self.cmd(CMD_PING));
            if Self::emit(buf, &mut w, &seg) {
                self.ping_due = false;
                self.last_ping_ms = now_ms;
            }
        }
        // 3. Data: lost segments first, then new ones, within the congestion window,
        // the peer's window and the pacing rate.
        let rate = self.rate.pacing_rate();
        while self.can_send_data() {
            if self.pacer.next_send(t, rate, self.p.mtu) > t {
                break;
            }
            let Some(number) = self.send.next_to_send(self.peer_window_end) else {
                break;
            };
            let Some(seg) = self.send.get(number) else {
                break;
            };
            if buf.len() - w < DATA_HEADER_LEN + seg.payload.len() {
                break;
            }
            let retransmit = seg.transmit > 0;
            let len = seg.payload.len();
            let d = Segment::Data(DataSegment {
                conv: self.conv,
                option: self.option(),
                timestamp: now_ms,
                number,
                sending_next: self.send.una(),
                payload: &seg.payload,
            });
            if !Self::emit(buf, &mut w, &d) {
                break;
            }
            if self.send.in_flight() == 0 {
                // Nothing was in flight: the delivery clock restarts now, so idle
                // time does not dilute the rate sample.
                self.delivered_us = t;
            }
            self.send.on_sent(
                number,
                t,
                now_ms,
                self.rtt.rto(),
                self.delivered,
                self.delivered_us,
            );
            self.pacer
                .on_send(t, len + DATA_HEADER_LEN, rate, self.p.mtu);
            self.stats.data_segments_sent += 1;
            self.sent_in_round += 1;
            if retransmit {
                self.stats.retransmissions += 1;
                self.stats.bytes_retransmitted += len as u64;
            }
        }
        if self.p.congestion && self.sent_in_round >= self.loss.window() {
            let rate = self.lost_in_round * 100 / self.sent_in_round.max(1);
            self.loss.on_loss_rate(rate);
            self.sent_in_round = 0;
            self.lost_in_round = 0;
        }
        w
    }

    /// Schedules the next FIN: resent with backoff (8 times), since nothing
    /// acknowledges it; later keep-alives while write-shut are FINs too.
    fn on_fin_sent(&mut self, t: u64) {
        self.fin_due = false;
        self.fin_sends += 1;
        self.last_ping_ms = Self::ms(t);
        if self.fin_sends < 8 {
            let backoff = (u64::from(self.rtt.rto().max(100)) * 1000) << (self.fin_sends - 1);
            self.fin_next_us = Some(t + backoff);
        }
    }

    // ---------------------------------------------------------- v2ray_compat

    fn compat_wake(&mut self, t: u64) {
        if !self.p.compat
            || self.compat_tick_us.is_some()
            || matches!(self.state, State::Terminating | State::Terminated)
        {
            return;
        }
        self.compat_flush(t);
        self.compat_tick_us = Some(t + u64::from(self.p.tti_ms) * 1000);
    }

    fn compat_timers(&mut self, t: u64) {
        if t >= self.compat_ping_us {
            self.compat_ping_us = t + 5_000_000;
            self.compat_flush(t);
        }
        if let Some(tick) = self.compat_tick_us {
            if t >= tick {
                if matches!(self.state, State::Terminating | State::Terminated)
                    || (self.send.is_empty() && self.v2acks.is_empty())
                {
                    self.compat_tick_us = None;
                } else {
                    self.compat_flush(t);
                    self.compat_tick_us = Some(t + u64::from(self.p.tti_ms) * 1000);
                }
            }
        }
    }

    /// V2Ray's flush (spec §3.6 steps 7-9); state steps are handled by our timers.
    fn compat_flush(&mut self, t: u64) {
        let now_ms = Self::ms(t);
        if self.state == State::Terminating {
            self.compat_out.push_back(CompatOut::Cmd(CMD_TERMINATE));
            self.last_ping_ms = now_ms;
            return;
        }
        if self.state == State::Terminated {
            return;
        }
        for batch in self.v2acks.flush(now_ms, self.rtt.rto(), V2RAY_ACK_BATCH) {
            self.compat_out.push_back(CompatOut::Ack(batch));
        }
        if !self.send.is_empty() && self.data_allowed() {
            let mut cwnd = self.p.snd_wnd;
            let peer = self.peer_window_end.wrapping_sub(self.send.una());
            if peer < cwnd {
                cwnd = peer;
            }
            if self.p.congestion && self.loss.window() < cwnd {
                cwnd = self.loss.window();
            }
            let max = (cwnd as usize).saturating_mul(20);
            self.compat_sent.clear();
            let mut sent = std::mem::take(&mut self.compat_sent);
            let rate = self
                .send
                .flush_v2ray(now_ms, self.rtt.rto(), max, &mut sent);
            for s in &sent {
                self.compat_out.push_back(CompatOut::Data(s.number));
                self.stats.data_segments_sent += 1;
                if s.transmit > 1 {
                    self.stats.retransmissions += 1;
                }
            }
            self.compat_sent = sent;
            if let (Some(r), true) = (rate, self.p.congestion) {
                self.loss.on_loss_rate(r);
            }
            let _ = self.send.take_una_changed();
        } else if self.send.take_una_changed() {
            self.compat_out.push_back(CompatOut::Cmd(CMD_PING));
            self.last_ping_ms = now_ms;
        }
        if now_ms.wrapping_sub(self.last_ping_ms) >= 3000 {
            self.compat_out.push_back(CompatOut::Cmd(CMD_PING));
            self.last_ping_ms = now_ms;
        }
    }

    fn transmit_compat(&mut self, t: u64, buf: &mut [u8]) -> usize {
        if self.terminate_due && self.state == State::Terminating {
            self.terminate_due = false;
            self.compat_out.push_back(CompatOut::Cmd(CMD_TERMINATE));
        }
        if self.fin_due && self.write_shut && self.send.is_empty() {
            // Our half-close extension, also in compat mode (V2Ray ignores it).
            self.on_fin_sent(t);
            self.compat_out.push_back(CompatOut::Cmd(CMD_FIN));
        }
        let mut w = 0;
        while let Some(out) = self.compat_out.pop_front() {
            let ok = match &out {
                CompatOut::Ack(batch) => {
                    let seg = Segment::Ack(AckSegment {
                        conv: self.conv,
                        option: self.option(),
                        receiving_window: self.recv.window_end(),
                        receiving_next: self.recv.next(),
                        timestamp: batch.timestamp,
                        numbers: AckNumbers::List(&batch.numbers),
                    });
                    Self::emit(buf, &mut w, &seg)
                }
                CompatOut::Cmd(c) => {
                    let seg = Segment::Cmd(self.cmd(*c));
                    Self::emit(buf, &mut w, &seg)
                }
                CompatOut::Data(number) => match self.send.get(*number) {
                    Some(seg) if !seg.acked => {
                        let d = Segment::Data(DataSegment {
                            conv: self.conv,
                            option: self.option(),
                            timestamp: seg.timestamp,
                            number: *number,
                            sending_next: self.send.una(),
                            payload: &seg.payload,
                        });
                        Self::emit(buf, &mut w, &d)
                    }
                    _ => false,
                },
            };
            if ok {
                break; // V2Ray: one segment per datagram
            }
        }
        w
    }
}
