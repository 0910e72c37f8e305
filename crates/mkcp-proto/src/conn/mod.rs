//! One mKCP connection: state machine, timers, sending and receiving (PROTOCOL.md §3).
//!
//! Sans-IO: every call takes `now` as a value. Incoming plaintext (after the envelope
//! is opened) goes to `Connection::handle_plaintext`; outgoing plaintext comes from
//! `Connection::poll_transmit`; `Connection::poll_timeout` says when
//! `Connection::handle_timeout` must run next. The application side is
//! `Connection::write`, `Connection::read`, `Connection::shutdown_write` (half
//! close) and `Connection::close`.
//!
//! The wire contract is V2Ray's (PROTOCOL.md §6). Our sending behaviour differs where V2Ray
//! accepts it (PROTOCOL.md §6 "free to improve"): several segments per datagram, data paced at
//! the measured bottleneck rate and never sent beyond the peer's window, loss detected
//! from later acks (not only by timeout), exponential RTO backoff, each arrival acked
//! once, late retransmissions answered with a cumulative ack, implausible peer values
//! rejected, and a real half-close. [`crate::Tuning::v2ray_compat`] restores V2Ray's
//! sending behaviour (x20 burst per TTI flush, re-acks every `rto/2`, no backoff, one
//! segment per datagram) for comparison.
//!
//! ## Half-close
//! V2Ray has no half-close: its Close option means "I am gone", and a V2Ray peer that
//! sees it throws its unsent data away (PROTOCOL.md §3.8). `Connection::shutdown_write`
//! therefore does not set the Close option. Once everything written has been
//! acknowledged it sends a [`CMD_FIN`] command segment whose `sendingNext` is the end
//! of the stream. V2Ray parses unknown commands as a Ping (PROTOCOL.md §2.1) and ignores it;
//! an mkcp peer reads end-of-stream there. `Connection::close` is V2Ray's Close.

//!
//! ## Layout
//! `mod.rs` holds the connection's parts and the state machine; `app.rs` the
//! application side, `input.rs` what arrives, `output.rs` what we send, `timer.rs` the named timers, and
//! `v2ray.rs` V2Ray's own sending and acking behaviour behind one seam
//! ([`crate::Tuning::v2ray_compat`]). `send.rs`, `recv.rs`, `rtt.rs` and `cc.rs` are
//! the windows, the RTT estimator and congestion control.

mod app;
pub(crate) mod cc;
mod input;
mod output;
mod parts;
pub(crate) mod recv;
pub(crate) mod rtt;
pub(crate) mod send;
pub(crate) mod seq;
mod shaper;
mod thin;
mod timer;
mod types;
mod v2ray;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::wire::segment::{DATA_HEADER_LEN, OPTION_CLOSE};

use cc::{LossControl, Pacer, RateControl};
use parts::{Closing, Congestion, Due, Guard, Hello, Params, PeerWindow, Times};
use recv::{AckList, RecvBuffer};
use rtt::RttEstimator;
use send::SendBuffer;
use seq::{Seq, WireTime};
use shaper::Shaper;
use thin::Thin;
use timer::TERMINATE_INTERVAL_US;
pub use types::{ConnEvent, ConnectionError, ConnectionStats, State};
use v2ray::V2rayMode;

pub use timer::{STALL_US, UNPROVEN_US};

/// Command byte of our end-of-stream marker (a CmdOnly segment; V2Ray treats it as a
/// Ping). Its `sendingNext` is the number after the last segment of the stream.
pub const CMD_FIN: u8 = 0xF1;

/// Command byte of our "I am mkcp" marker (a CmdOnly segment that V2Ray, like any
/// unknown command, takes for a Ping). A peer that never sends it is taken for V2Ray,
/// whose sender we then pace with our window (`shaper.rs`).
pub const CMD_HELLO: u8 = 0xF2;

/// Command byte of "I am mkcp and I have heard your hello": the peer stops sending
/// hellos once it has this.
pub const CMD_HELLO_HEARD: u8 = 0xF3;

/// Most hello markers a connection sends (at most one per 20 ms, ahead of data) to a
/// peer that does not answer: a V2Ray peer costs us 64 small segments, an mkcp peer
/// answers within a round trip, and answers to the peer's own markers do not count.
const MAX_HELLOS: u8 = 64;

/// Keep-alive Pings sent to an unproven peer that has not answered since: then they
/// stop (a spoofed opener gets no more; a live peer answers within a round trip).
pub const MAX_UNANSWERED_PINGS: u8 = 2;

/// An unproven peer gets at most this many times the wire bytes it sent us (QUIC's
/// bound before address validation, RFC 9000 §8.1). With 1x, a lost first reply to a
/// V2Ray client could not be resent: our acks and keep-alives had spent the budget
/// its request gave, and its Pings (one every 5 s) give back only what ours cost.
pub const AMPLIFICATION_FACTOR: u64 = 3;

/// Largest peer receive window we believe (segments). Larger advertisements are
/// treated as implausible.
const MAX_PEER_WINDOW: u32 = 1 << 16;

/// A single mKCP conversation.
#[derive(Debug)]
pub struct Connection {
    conv: u16,
    created: Instant,
    /// Latest time seen (connection time, µs).
    now_us: u64,
    p: Params,
    state: State,
    state_begin_us: u64,
    times: Times,
    rtt: RttEstimator,
    send: SendBuffer,
    recv: RecvBuffer,
    acks: AckList,
    peer: PeerWindow,
    cc: Congestion,
    due: Due,
    hello: Hello,
    close: Closing,
    guard: Guard,
    error: Option<ConnectionError>,
    events: VecDeque<ConnEvent>,
    stats: ConnectionStats,
    scratch: Vec<u32>,
    /// Paces a V2Ray sender through the window we advertise.
    shaper: Shaper,
    /// Copies owed for a thin stream's segments.
    thin: Thin,
    /// V2Ray's own sender and ack list (`v2ray_compat`), instead of ours.
    v2ray: Option<Box<V2rayMode>>,
}

impl Connection {
    /// A new connection for conversation `conv`, created at `now`. `max_plaintext` is
    /// the largest plaintext one datagram may carry (MTU minus header and envelope).
    pub(crate) fn new(
        conv: u16,
        config: &Config,
        max_plaintext: usize,
        now: Instant,
    ) -> Connection {
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
            idle_ms: t.idle_timeout_ms.max(1),
            ping_ms: t.ping_interval_ms.max(1),
            max_rto,
            thin_copies: t.thin_stream_copies && !compat,
            repair_copies: t.retransmission_copies && !compat,
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
            now_us: 0,
            state: State::Active,
            state_begin_us: 0,
            times: Times::default(),
            rtt: RttEstimator::new(min_rtt, min_rto, max_rto),
            send: SendBuffer::new(mss),
            recv,
            acks: AckList::new(t.max_ack_list.max(1)),
            peer: PeerWindow {
                end: Seq::new(32),
                size: None,
                advertised_end,
            },
            cc: Congestion {
                rate: {
                    // Until the peer says it is mkcp, it may be V2Ray, which acks once
                    // per TTI.
                    let mut r = RateControl::new(mss as u32, 16);
                    r.set_ack_delay_us(u64::from(config.tti) * 1000);
                    r.set_max_rate(t.max_send_rate.filter(|_| !compat));
                    r
                },
                pacer: Pacer::new(),
                loss: LossControl::new(snd_wnd, loss_max),
                lost_in_round: 0,
                sent_in_round: 0,
                delivered: 0,
                delivered_us: 0,
                first_sent_us: 0,
                reo_extra_us: 0,
                reo_clean_rounds: 0,
            },
            due: Due::default(),
            hello: Hello {
                done: compat,
                ..Hello::default()
            },
            shaper: {
                let mut s = Shaper::new(config.tti);
                if let Some(cap) = t.max_send_rate.filter(|_| !compat) {
                    s.set_max_rate(cap, config.v2ray_mss() + DATA_HEADER_LEN as u32);
                }
                s
            },
            thin: Thin::default(),
            close: Closing::default(),
            guard: Guard::default(),
            error: None,
            events: VecDeque::new(),
            stats: ConnectionStats::default(),
            scratch: Vec::new(),
            v2ray: compat.then(|| Box::new(V2rayMode::new(t.max_ack_list.max(1) * 4))),
            p,
        }
    }

    /// Marks this as a dialer's connection: it announces itself with a Ping right away,
    /// so the server knows the session before the first write (V2Ray waits for data).
    pub(crate) fn announce(&mut self) {
        if self.v2ray.is_none() {
            self.due.ping = true;
        }
    }

    /// Marks this as a session accepted from a peer that has proved nothing yet: until
    /// it acknowledges data of ours, [`Self::send_budget`] limits what we send it to
    /// what it sent us, keep-alives stop after [`MAX_UNANSWERED_PINGS`], and it is
    /// reaped after `UNPROVEN_US` without acknowledgements or stream data from it.
    pub fn set_accepted(&mut self) {
        self.guard.accepted = true;
    }

    /// The peer acknowledged data of ours: it receives what we send (any plausible ack
    /// progress; with the keyless legacy envelope an attacker can forge it blindly,
    /// see docs/DESIGN.md).
    pub fn peer_proven(&self) -> bool {
        self.stats.bytes_acked > 0
    }

    /// The peer proved it is alive and reachable for the session table: it
    /// acknowledged data of ours, or sent stream data (a V2Ray client's first Data).
    /// Dialed connections always count as proven.
    pub fn peer_reachable(&self) -> bool {
        !self.guard.accepted || self.peer_proven() || self.guard.data_in
    }

    /// Wire bytes this connection may still send before its peer proves it receives
    /// us ([`AMPLIFICATION_FACTOR`] times what it sent us, minus what we sent it); `None`: no limit (dialed, proven,
    /// or [`crate::Tuning::v2ray_compat`], which reproduces V2Ray: it has no such limit).
    pub fn send_budget(&self) -> Option<u64> {
        (self.guard.accepted && self.v2ray.is_none() && !self.peer_proven()).then(|| {
            self.stats
                .wire_bytes_received
                .saturating_mul(AMPLIFICATION_FACTOR)
                .saturating_sub(self.stats.wire_bytes_sent)
        })
    }

    /// Something is waiting to be sent (acks, control segments, data the windows allow).
    pub(crate) fn has_output_due(&self) -> bool {
        self.due.ack
            || self.due.ping
            || self.due.terminate
            || self.close.fin_due
            || !self.acks.is_empty()
            || self.thin.is_pending()
            || self.can_send_data()
    }

    /// Ends the connection at once, without a Terminate (the endpoint evicts an
    /// unproven session to make room).
    pub fn evict(&mut self, now: Instant) {
        if self.state == State::Terminated {
            return;
        }
        let t = self.advance(now);
        self.error = Some(ConnectionError::Evicted);
        self.set_state(t, State::Terminated);
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
        s.min_rtt_us = self.cc.rate.min_rtt_us().unwrap_or(0);
        s.bandwidth = self.cc.rate.bandwidth();
        s
    }

    /// Adds wire-level counts (the endpoint calls this after sealing / opening).
    pub(crate) fn count_wire(&mut self, sent: usize, received: usize) {
        self.stats.wire_bytes_sent += sent as u64;
        self.stats.wire_bytes_received += received as u64;
    }

    /// Internal state for debugging (not a stable format).
    #[doc(hidden)]
    pub fn debug_state(&self) -> String {
        format!(
            "state {:?} phase {:?} bw {} una {} unsent {} next {} len {} in_flight {} ({} B) has_lost {} cwnd {} peer_end {} pacing {:?} rto {} recv.next {} now_us {}",
            self.state,
            self.cc.rate.phase(),
            self.cc.rate.bandwidth(),
            self.send.una(),
            self.send.unsent(),
            self.send.next_number(),
            self.send.len(),
            self.send.in_flight(),
            self.send.in_flight_bytes(),
            self.send.has_lost(),
            self.cwnd_bytes(),
            self.peer.end,
            self.cc.rate.pacing_rate(),
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
    pub(crate) fn poll_event(&mut self) -> Option<ConnEvent> {
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

    /// Moves the connection clock to `now` (never backwards); returns it.
    fn advance(&mut self, now: Instant) -> u64 {
        let t = self.us(now);
        self.now_us = self.now_us.max(t);
        t
    }

    fn ms(us: u64) -> WireTime {
        WireTime::new((us / 1000) as u32)
    }

    fn instant(&self, us: u64) -> Instant {
        self.created + Duration::from_micros(us)
    }

    /// The `receivingNext` we advertise. Ours: the first number not yet received, since
    /// everything below it is held even if the application has not read it (a sender
    /// may forget it; V2Ray's sender treats listed numbers above this point as a sign
    /// of loss below them). V2Ray's: its read point.
    fn advertised_next(&self) -> Seq {
        if self.v2ray.is_some() {
            self.recv.next()
        } else {
            self.recv.contiguous()
        }
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
            State::PeerClosed | State::PeerTerminating => self.send.discard(),
            State::ReadyToClose | State::Active => {}
            State::Terminating => {
                self.send.discard();
                self.due.terminate = true;
                self.close.next_terminate_us = t + TERMINATE_INTERVAL_US;
            }
            State::Terminated => {
                self.send.discard();
                if let Some(v) = self.v2ray.as_deref_mut() {
                    v.stop();
                }
            }
        }
        if s != State::Active {
            self.event(ConnEvent::Readable);
            self.event(ConnEvent::Writable);
        }
        if s == State::Terminated {
            self.event(ConnEvent::Terminated);
        }
    }

    // ------------------------------------------------------------ sending limits

    /// RTO for data timeouts: the estimate plus the peer's largest ack delay, one TTI.
    /// A V2Ray peer acknowledges in its flush, once per TTI while busy (PROTOCOL.md §3.5), so
    /// an ack may come a TTI after the data arrived; Karn's rule drops exactly those
    /// late samples once a segment was retransmitted, so the estimate alone never
    /// learns it (interop finding: RTO at its 30 ms floor, spurious timeouts).
    /// How much earlier than the newest acknowledged transmission a segment must have
    /// been sent to count as lost: a quarter of the minimum RTT (RACK's reordering
    /// window), widened after spurious retransmissions.
    fn reordering_window_us(&self) -> u64 {
        (self.cc.rate.min_rtt_us().unwrap_or(4_000) / 4).max(1_000) + self.cc.reo_extra_us
    }

    /// The retransmission timeout of data: V2Ray's RTO plus a TTI, and never before
    /// time-based detection could have found the loss (a round trip plus the
    /// reordering window, and a quarter of the minimum RTT of margin). On a long path
    /// V2Ray's RTO is barely above the RTT, and a timeout that races detection resends
    /// segments that detection would have resent anyway (and whose late acks then
    /// look like reordering, which widens the window, which loses more races).
    fn data_rto_ms(&self) -> u32 {
        let rto = self.rtt.rto().saturating_add(self.p.tti_ms);
        let min_rtt = self.cc.rate.min_rtt_us().unwrap_or(0);
        let detect_us =
            u64::from(self.rtt.srtt()) * 1000 + self.reordering_window_us() + min_rtt / 4;
        rto.max(u32::try_from(detect_us.div_ceil(1000)).unwrap_or(u32::MAX))
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

    fn cwnd_bytes(&self) -> u64 {
        let mss = self.p.mss as u64;
        let rate = &self.cc.rate;
        let mut cwnd = match rate.cwnd() {
            // A V2Ray peer acks once per TTI while busy: the window must also cover
            // what is delivered during that ack delay, or it shrinks to a few segments
            // per TTI and the bandwidth estimate feeds on itself (interop finding).
            Some(c) => c.max(rate.bandwidth() * 2 * u64::from(self.p.tti_ms) / 1000),
            None => u64::from(self.p.snd_wnd.max(16)) * mss,
        };
        if self.p.congestion {
            // V2Ray's loss window (`congestion: true`) trims the headroom above the
            // measured bandwidth-delay product, never below it: with its rule (grow only
            // at <= 5 % loss) a link with 5 % random loss otherwise ratchets down to 16
            // segments (mkcp bench, 100 ms / 5 % / 20 Mbit/s: 6 % of the link).
            let floor = rate.bdp().max(16 * mss);
            cwnd = cwnd.min((u64::from(self.cc.loss.window()) * mss).max(floor));
        }
        cwnd
    }

    fn data_allowed(&self) -> bool {
        matches!(self.state, State::Active | State::ReadyToClose)
    }

    fn can_send_data(&self) -> bool {
        self.data_allowed()
            && (((self.send.in_flight_bytes() as u64) < self.cwnd_bytes()
                && self.send.has_sendable(self.peer.end))
                || (self.times.probe_due && self.send.has_lost()))
    }
}
