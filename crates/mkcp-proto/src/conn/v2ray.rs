//! V2Ray's own sending and acking behaviour (`Tuning::v2ray_compat`), behind one seam.
//!
//! In this mode a connection behaves as V2Ray 4.34's does (PROTOCOL.md §3.6 flush, §3.10,
//! §3.11): it works in flushes, one per TTI while busy and one every 5 s regardless;
//! each flush queues V2Ray's ack batches (its re-ack schedule), up to 20 × window data
//! segments that are due (no pacing, no peer-window respect beyond V2Ray's own rule, no
//! backoff), and a Ping when `una` moved with nothing left to send; the queue goes out
//! one segment per datagram. Acks are applied V2Ray's way: the cumulative point first,
//! then the listed numbers, then the fast-ack nudge (`timeout -= rto/3` below the
//! largest listed number) and an RTT sample from the echoed timestamp.
//!
//! The rest of the connection (state machine, windows, timers) is shared; it asks this
//! module through [`Connection::v2ray_wake`], [`Timer::V2rayTick`],
//! [`Timer::V2rayPing`], `on_ack_v2ray` and `transmit_v2ray`, and nothing else here
//! is reached from outside.
//!
//! [`Timer::V2rayTick`]: super::timer::Timer::V2rayTick
//! [`Timer::V2rayPing`]: super::timer::Timer::V2rayPing

use std::collections::VecDeque;

use super::recv::{AckBatch, V2rayAckList, V2RAY_ACK_BATCH};
use super::send::V2raySent;
use super::seq::{Seq, WireTime};
use super::{Connection, State, CMD_FIN};
use crate::wire::segment::{AckNumbers, AckSegment, DataSegment, Segment, CMD_PING, CMD_TERMINATE};

/// V2Ray flushes at least this often, busy or not (µs).
const FORCED_FLUSH_US: u64 = 5_000_000;
/// V2Ray pings when it has sent no Ping for this long (ms).
const PING_AFTER_MS: u32 = 3000;
/// V2Ray's flush may send this many times its window of data.
const FLUSH_WINDOW_FACTOR: usize = 20;

/// One segment queued by a flush.
#[derive(Clone, Debug)]
enum Out {
    Ack(AckBatch),
    Data(Seq),
    Cmd(u8),
}

/// The state of V2Ray's sender and ack list.
#[derive(Debug)]
pub(super) struct V2rayMode {
    /// V2Ray's ack list and re-ack schedule.
    pub(super) acks: V2rayAckList,
    /// The next periodic flush while busy.
    pub(super) tick_us: Option<u64>,
    /// The next forced flush.
    pub(super) ping_us: u64,
    /// Segments queued by flushes, sent one per datagram.
    out: VecDeque<Out>,
    sent: Vec<V2raySent>,
}

impl V2rayMode {
    /// V2Ray's state with an ack list bounded to `ack_cap` entries.
    pub(super) fn new(ack_cap: usize) -> V2rayMode {
        V2rayMode {
            acks: V2rayAckList::new(ack_cap),
            tick_us: None,
            ping_us: 0,
            out: VecDeque::new(),
            sent: Vec::new(),
        }
    }

    /// The connection is dead: nothing more is flushed or sent.
    pub(super) fn stop(&mut self) {
        self.out.clear();
        self.tick_us = None;
    }
}

impl Connection {
    /// Something happened that V2Ray's update loop would react to at once (input,
    /// a write, a read, a close): flush now and keep flushing every TTI.
    pub(super) fn v2ray_wake(&mut self, t: u64) {
        let idle = match self.v2ray.as_deref() {
            Some(v) => v.tick_us.is_none(),
            None => return,
        };
        if !idle || !self.v2ray_busy() {
            return;
        }
        self.v2ray_flush(t);
        let tti = u64::from(self.p.tti_ms) * 1000;
        if let Some(v) = self.v2ray.as_deref_mut() {
            v.tick_us = Some(t + tti);
        }
    }

    /// The forced flush, every 5 s.
    pub(super) fn v2ray_ping(&mut self, t: u64) {
        if let Some(v) = self.v2ray.as_deref_mut() {
            v.ping_us = t + FORCED_FLUSH_US;
        }
        self.v2ray_flush(t);
    }

    /// V2Ray's updater keeps flushing while it has data to send or numbers to
    /// acknowledge, and not once it is terminating; a wake-up with neither does nothing.
    fn v2ray_busy(&self) -> bool {
        !matches!(self.state, State::Terminating | State::Terminated)
            && (!self.send.is_empty() || self.v2ray.as_deref().is_some_and(|v| !v.acks.is_empty()))
    }

    /// The periodic flush: once per TTI until nothing is left to send or acknowledge.
    pub(super) fn v2ray_tick(&mut self, t: u64) {
        let next = if self.v2ray_busy() {
            self.v2ray_flush(t);
            Some(t + u64::from(self.p.tti_ms) * 1000)
        } else {
            None
        };
        if let Some(v) = self.v2ray.as_deref_mut() {
            v.tick_us = next;
        }
    }

    /// V2Ray's flush (PROTOCOL.md §3.6 steps 7-9); its state steps are our timers.
    fn v2ray_flush(&mut self, t: u64) {
        let now_ms = Self::ms(t);
        let Some(mut v) = self.v2ray.take() else {
            return;
        };
        match self.state {
            State::Terminating => {
                v.out.push_back(Out::Cmd(CMD_TERMINATE));
                self.times.last_ping_ms = now_ms;
            }
            State::Terminated => {}
            _ => {
                self.v2ray_flush_segments(&mut v, now_ms);
            }
        }
        self.v2ray = Some(v);
    }

    fn v2ray_flush_segments(&mut self, v: &mut V2rayMode, now_ms: WireTime) {
        for batch in v.acks.flush(now_ms, self.rtt.rto(), V2RAY_ACK_BATCH) {
            v.out.push_back(Out::Ack(batch));
        }
        if !self.send.is_empty() && self.data_allowed() {
            let mut cwnd = self.p.snd_wnd;
            let peer = self.send.una().distance_to(self.peer.end);
            if peer < cwnd {
                cwnd = peer;
            }
            if self.p.congestion && self.cc.loss.window() < cwnd {
                cwnd = self.cc.loss.window();
            }
            let max = (cwnd as usize).saturating_mul(FLUSH_WINDOW_FACTOR);
            v.sent.clear();
            let rate = self
                .send
                .flush_v2ray(now_ms, self.rtt.rto(), max, &mut v.sent);
            for s in &v.sent {
                v.out.push_back(Out::Data(s.number));
                self.stats.data_segments_sent += 1;
                if s.transmit > 1 {
                    self.stats.retransmissions += 1;
                }
            }
            if let (Some(r), true) = (rate, self.p.congestion) {
                self.cc.loss.on_loss_rate(r);
            }
            let _ = self.send.take_una_changed();
        } else if self.send.take_una_changed() {
            v.out.push_back(Out::Cmd(CMD_PING));
            self.times.last_ping_ms = now_ms;
        }
        if now_ms.since(self.times.last_ping_ms) >= PING_AFTER_MS {
            v.out.push_back(Out::Cmd(CMD_PING));
            self.times.last_ping_ms = now_ms;
        }
    }

    /// V2Ray's ack processing (PROTOCOL.md §3.10): the cumulative point first, then the
    /// listed numbers, then the fast-ack nudge and an RTT sample.
    pub(super) fn on_ack_v2ray(&mut self, t: u64, a: &AckSegment<'_>) {
        self.apply_cumulative(t, Seq::from(a.receiving_next));
        let mut maxack = Seq::ZERO;
        let mut maxack_removed = false;
        for k in a.numbers.iter().map(Seq::from) {
            let removed = match self.send.ack_number(k) {
                Some(info) => {
                    // V2Ray has no rate model; ours still measures, for the stats.
                    self.on_delivered(t, u64::from(info.len), Some(&info), true);
                    true
                }
                None => false,
            };
            if k.v2ray_above(maxack) {
                maxack = k;
                maxack_removed = removed;
            } else if k == maxack && removed {
                maxack_removed = true;
            }
        }
        if maxack_removed {
            let now_ms = Self::ms(t);
            self.send.fast_ack_v2ray(maxack, self.rtt.rto());
            let sample = now_ms.since(WireTime::from(a.timestamp));
            if sample < 10_000 {
                self.rtt.update(sample, now_ms);
            }
        }
    }

    /// The next queued segment, one per datagram as V2Ray sends them.
    pub(super) fn transmit_v2ray(&mut self, t: u64, buf: &mut [u8]) -> usize {
        let Some(mut v) = self.v2ray.take() else {
            return 0;
        };
        if self.due.terminate && self.state == State::Terminating {
            self.due.terminate = false;
            v.out.push_back(Out::Cmd(CMD_TERMINATE));
        }
        if self.close.fin_due && self.close.write_shut && self.send.is_empty() {
            // Our half-close extension, also in this mode (V2Ray ignores it).
            self.on_fin_sent(t);
            v.out.push_back(Out::Cmd(CMD_FIN));
        }
        let mut w = 0;
        while let Some(out) = v.out.pop_front() {
            let ok = match &out {
                Out::Ack(batch) => {
                    let seg = Segment::Ack(AckSegment {
                        conv: self.conv,
                        option: self.option(),
                        receiving_window: self.recv.window_end().get(),
                        receiving_next: self.recv.next().get(),
                        timestamp: batch.timestamp.get(),
                        numbers: AckNumbers::List(&batch.numbers),
                    });
                    Self::emit(buf, &mut w, &seg)
                }
                Out::Cmd(c) => {
                    let seg = Segment::Cmd(self.cmd(*c));
                    Self::emit(buf, &mut w, &seg)
                }
                Out::Data(number) => match self.send.get(*number) {
                    Some(seg) if !seg.acked => {
                        let d = Segment::Data(DataSegment {
                            conv: self.conv,
                            option: self.option(),
                            timestamp: seg.timestamp.get(),
                            number: number.get(),
                            sending_next: self.send.una().get(),
                            payload: &seg.payload,
                        });
                        Self::emit(buf, &mut w, &d)
                    }
                    _ => false,
                },
            };
            if ok {
                break;
            }
        }
        self.v2ray = Some(v);
        w
    }
}
