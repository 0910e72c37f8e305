//! The connection's timers, named (PROTOCOL.md §3.8 state timers, §3.10 retransmission).
//!
//! Every timer has one place that says when it is due ([`Connection::deadline`]) and
//! one that says what happens then ([`Connection::fire`]). `Connection::poll_timeout`
//! is the minimum over [`Timer::ALL`] and `Connection::handle_timeout` fires exactly
//! the timers whose deadline has been reached, in the order of [`Timer::ALL`], so the
//! two cannot disagree. Deadlines are derived from the connection's state each time
//! rather than stored, so no state change can leave a stale one behind.

use std::time::Instant;

use super::{Connection, ConnectionError, State};

/// How long a peer's Terminate is honoured before we terminate ourselves (V2Ray: 4 s).
pub(crate) const PEER_TERMINATING_US: u64 = 4_000_000;
/// How long Terminating lasts before the connection is dead (V2Ray: 8 s).
pub(crate) const TERMINATING_US: u64 = 8_000_000;
/// How long queued data may take to drain after a local close (V2Ray: 15 s, counted
/// from the close; ours from the last acknowledgement progress).
pub(crate) const READY_TO_CLOSE_US: u64 = 15_000_000;
/// Interval of Terminate segments while Terminating. V2Ray sends one every 5 s (2-3 in
/// all); 16 in the 8 s make a lost-Terminate stall unlikely even on a very lossy link.
pub(crate) const TERMINATE_INTERVAL_US: u64 = 500_000;
/// A connection whose stream has not moved for this long gives its spare buffers
/// back (they are reallocated if it gets busy again). Checked whenever a timer runs,
/// so at the latest at the next keep-alive.
pub(crate) const IDLE_TRIM_US: u64 = 1_000_000;
/// An accepted session whose peer has proved nothing (no acknowledgement of our data,
/// no stream data) is reaped this long after it opened, without a Terminate. 10 s: a
/// V2Ray client may open with a Ping and send its first Data 5 s later (its ping
/// interval), which counts as proof; twice that leaves room for one lost datagram.
/// Spoofed openers then hold a slot for seconds, not the 30 s idle timeout, and a
/// reaped session that was honest loses nothing (no data had moved: its next
/// datagram opens it again).
pub const UNPROVEN_US: u64 = 10_000_000;
/// A session whose peer keeps its receive window closed, or acknowledges nothing,
/// while we have data to send, is closed after this long (a peer that answers Pings
/// but never reads would otherwise hold the session, and its target, forever). 60 s:
/// far beyond any honest stall of the reader (a paused download resumes in seconds).
pub const STALL_US: u64 = 60_000_000;

/// The first instant at which more than `duration` has passed since `from`. V2Ray's
/// closing checks are strict ("more than 4 s in PeerTerminating"), and so are ours.
fn past(from: u64, duration: u64) -> u64 {
    from + duration + 1
}

/// One timer of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Nothing received for the idle timeout (Active, PeerClosed): the peer is gone.
    Idle,
    /// The current closing state has lasted its time (ReadyToClose 15 s without
    /// progress, PeerTerminating 4 s, Terminating 8 s).
    Close,
    /// Next Terminate segment while Terminating.
    TerminateResend,
    /// Next end-of-stream marker (resent with backoff, nothing acknowledges it).
    Fin,
    /// The oldest transmission in flight has timed out (our sender).
    Retransmit,
    /// The pacer allows the next datagram (our sender; a wake-up, no state change).
    Pacing,
    /// Nothing sent for the keep-alive interval: a Ping is due (our sender).
    KeepAlive,
    /// V2Ray's periodic flush, once per TTI while busy (V2Ray mode).
    V2rayTick,
    /// V2Ray's 5-second forced flush (V2Ray mode).
    V2rayPing,
    /// An accepted session's peer proved nothing within [`UNPROVEN_US`]: reaped.
    Unproven,
    /// No acknowledgement progress for [`STALL_US`] while data waits (our sender).
    Stall,
}

impl Timer {
    /// Every timer, in the order they fire when several are due at once.
    pub(crate) const ALL: [Timer; 11] = [
        Timer::Idle,
        Timer::Unproven,
        Timer::Stall,
        Timer::Close,
        Timer::TerminateResend,
        Timer::Fin,
        Timer::V2rayPing,
        Timer::V2rayTick,
        Timer::Retransmit,
        Timer::KeepAlive,
        Timer::Pacing,
    ];
}

impl Connection {
    /// When `timer` is due (connection time, µs), or `None` while it is not armed.
    pub(crate) fn deadline(&mut self, timer: Timer) -> Option<u64> {
        let live = matches!(self.state, State::Active | State::PeerClosed);
        let sending = live || self.state == State::ReadyToClose;
        match timer {
            Timer::Idle => live.then(|| self.times.last_incoming_us + self.idle_us()),
            Timer::Close => match self.state {
                State::ReadyToClose => Some(self.ready_to_close_deadline()),
                State::PeerTerminating => Some(past(self.state_begin_us, PEER_TERMINATING_US)),
                State::Terminating => Some(past(self.state_begin_us, TERMINATING_US)),
                _ => None,
            },
            Timer::TerminateResend => {
                (self.state == State::Terminating).then_some(self.close.next_terminate_us)
            }
            Timer::Fin => self.close.fin_next_us,
            Timer::V2rayTick => self.v2ray.as_ref().and_then(|v| v.tick_us),
            Timer::V2rayPing => self.v2ray.as_ref().map(|v| v.ping_us),
            Timer::Retransmit if self.v2ray.is_none() && self.data_allowed() => {
                let rto = Self::rto_us_for(self.data_rto_ms(), self.p.max_rto, false);
                let oldest = self.send.rto_deadline(rto)?;
                // While timeouts go unanswered, probes are spaced by a backoff.
                Some(match self.unanswered_rto() {
                    Some(at) => oldest.max(at + self.probe_backoff_us()),
                    None => oldest,
                })
            }
            Timer::Pacing if self.v2ray.is_none() && self.can_send_data() => {
                // A pacing time already reached means "ready to transmit", which the
                // endpoint tracks itself; only a future time is a timer.
                let r = self.cc.pacer.ready_at(self.cc.rate.pacing_rate());
                (r > self.now_us).then_some(r)
            }
            Timer::KeepAlive
                if self.v2ray.is_none()
                    && sending
                    && !self.due.ping
                    && (self.peer_reachable()
                        || self.guard.pings_unanswered < super::MAX_UNANSWERED_PINGS) =>
            {
                Some(self.times.last_send_us + u64::from(self.p.ping_ms) * 1000)
            }
            Timer::Unproven => (live && !self.peer_reachable()).then_some(UNPROVEN_US),
            Timer::Stall
                if self.v2ray.is_none()
                    && matches!(self.state, State::Active | State::PeerClosed)
                    && !self.send.is_empty() =>
            {
                Some(self.times.progress_us.max(self.guard.stall_from_us) + STALL_US)
            }
            Timer::Stall => None,
            Timer::Retransmit | Timer::Pacing | Timer::KeepAlive => None,
        }
    }

    /// What happens when `timer` is due at `t`.
    fn fire(&mut self, timer: Timer, t: u64) {
        match timer {
            Timer::Idle => {
                self.error = Some(ConnectionError::TimedOut {
                    timeout_ms: self.p.idle_ms,
                });
                // The peer is gone: no point in flushing the queue first.
                self.set_state(t, State::Terminating);
            }
            Timer::Close => match self.state {
                State::ReadyToClose | State::PeerTerminating => {
                    self.set_state(t, State::Terminating)
                }
                State::Terminating => self.set_state(t, State::Terminated),
                _ => {}
            },
            Timer::TerminateResend => {
                self.due.terminate = true;
                self.close.next_terminate_us = t + TERMINATE_INTERVAL_US;
            }
            Timer::Fin => {
                self.close.fin_due = true;
                self.close.fin_next_us = None;
            }
            Timer::V2rayTick => self.v2ray_tick(t),
            Timer::V2rayPing => self.v2ray_ping(t),
            Timer::Retransmit => {
                // Only the oldest segment is resent (a probe). A merely lossy path
                // answers it within a round trip, and the answer reveals by time what
                // else was lost; a vanished peer gets one segment per backoff, not
                // the whole window every RTO.
                let rto = Self::rto_us_for(self.data_rto_ms(), self.p.max_rto, false);
                let n = self.send.detect_oldest_lost_by_timeout(t, rto);
                if n > 0 {
                    self.times.rto_streak = match self.unanswered_rto() {
                        Some(_) => self.times.rto_streak.saturating_add(1),
                        None => 1,
                    };
                    self.times.rto_at_us = Some(t);
                    self.times.probe_due = true;
                    self.stats.timeouts += 1;
                    self.cc.lost_in_round += n as u32;
                }
            }
            Timer::KeepAlive => {
                self.due.ping = true;
                self.guard.pings_unanswered = self.guard.pings_unanswered.saturating_add(1);
            }
            Timer::Unproven => {
                self.error = Some(ConnectionError::Unproven {
                    timeout_ms: (UNPROVEN_US / 1000) as u32,
                });
                // Nothing to tell a peer that may not exist (no Terminate).
                self.set_state(t, State::Terminated);
            }
            Timer::Stall => {
                let timeout_ms = (STALL_US / 1000) as u32;
                self.error = Some(if self.peer.size == Some(0) {
                    ConnectionError::ZeroWindow { timeout_ms }
                } else {
                    ConnectionError::NoProgress { timeout_ms }
                });
                self.set_state(t, State::Terminating);
            }
            Timer::Pacing => {}
        }
    }

    /// The last retransmission timeout, if nothing was acknowledged since.
    pub(super) fn unanswered_rto(&self) -> Option<u64> {
        self.times
            .rto_at_us
            .filter(|&at| self.times.progress_us <= at)
    }

    /// Spacing of probes while timeouts go unanswered: the data RTO doubled per
    /// timeout in a row, at most 8 times it (as a segment's own backoff) and at most
    /// the largest RTO. A longer silence would outlast the 15 s that a closing
    /// connection waits for progress on a merely very lossy path.
    fn probe_backoff_us(&self) -> u64 {
        let rto = u64::from(self.data_rto_ms().max(1));
        let cap = u64::from(self.p.max_rto.max(1));
        (rto << self.times.rto_streak.min(3)).min(cap) * 1000
    }

    fn idle_us(&self) -> u64 {
        u64::from(self.p.idle_ms) * 1000
    }

    /// V2Ray gives queued data 15 s after a local close; we give it 15 s without
    /// acknowledgement progress, so a slow but moving transfer is not cut off.
    fn ready_to_close_deadline(&self) -> u64 {
        let from = if self.v2ray.is_some() {
            self.state_begin_us
        } else {
            self.state_begin_us.max(self.times.progress_us)
        };
        from + READY_TO_CLOSE_US
    }

    /// When `Self::handle_timeout` must run next (`None`: never, the connection is dead).
    pub(crate) fn poll_timeout(&mut self) -> Option<Instant> {
        if self.state == State::Terminated {
            return None;
        }
        let d = Timer::ALL
            .into_iter()
            .filter_map(|timer| self.deadline(timer))
            .min()?;
        Some(self.instant(d))
    }

    /// Runs the timers due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Terminated {
            return;
        }
        let t = self.advance(now);
        if self.state == State::ReadyToClose && self.send.is_empty() {
            self.set_state(t, State::Terminating);
        }
        for timer in Timer::ALL {
            if self.deadline(timer).is_some_and(|d| d <= t) {
                self.fire(timer, t);
                if self.state == State::Terminated {
                    return;
                }
            }
        }
        self.trim_if_idle(t);
        if self.v2ray.is_none() {
            self.after_progress(t);
        }
    }

    /// Gives spare buffers back once the stream has been still for a while.
    fn trim_if_idle(&mut self, t: u64) {
        let last = self.times.last_data_us.max(self.times.progress_us);
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
}
