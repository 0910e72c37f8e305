//! What arrives: the segments of one datagram's plaintext (PROTOCOL.md §3.7, §3.10 ack
//! processing, §3.11 data processing).

use std::time::Instant;

use super::recv::Accept;
use super::send::Acked;
use super::seq::{Seq, WireTime};
use super::{ConnEvent, Connection, State, MAX_PEER_WINDOW};
use crate::wire::segment::{
    AckSegment, CmdSegment, DataSegment, Segment, CMD_TERMINATE, OPTION_CLOSE,
};
use crate::wire::segments;

use super::{CMD_FIN, CMD_HELLO, CMD_HELLO_HEARD};

/// Towards a peer that has not said hello, a duplicate of data already delivered is
/// answered by an ack of its own only if no ack went for this long (µs).
const OLD_ACK_GAP_US: u64 = 10_000;

impl Connection {
    /// Processes the plaintext of one datagram addressed to this connection: walks its
    /// segments and stops at the first one with a different conversation id (PROTOCOL.md §3.7).
    pub(crate) fn handle_plaintext(&mut self, now: Instant, plaintext: &[u8]) {
        if self.state == State::Terminated {
            return;
        }
        let t = self.advance(now);
        self.times.last_incoming_us = t;
        self.stats.datagrams_received += 1;
        self.guard.pings_unanswered = 0;
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
                    self.on_data(&d);
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
            self.v2ray_wake(t);
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

    fn on_data(&mut self, d: &DataSegment<'_>) {
        self.stats.data_segments_received += 1;
        let number = Seq::from(d.number);
        let verdict = self.recv.classify(number);
        if let (Some(v), Accept::Duplicate | Accept::Stored) = (self.v2ray.as_deref_mut(), verdict)
        {
            // V2Ray ignores a segment outside its window entirely, its sendingNext too.
            v.acks.clear(Seq::from(d.sending_next));
        }
        match verdict {
            Accept::OutOfWindow => self.stats.out_of_window_received += 1,
            Accept::Old => {
                self.stats.duplicates_received += 1;
                // V2Ray stays silent here (PROTOCOL.md §5 item 30); a cumulative ack
                // tells the sender at once. Towards a peer not heard saying hello, only
                // if no ack went for `OLD_ACK_GAP_US`: a V2Ray sender resends in bursts,
                // and an ack for each duplicate of a burst cost it 15-20 % more CPU per
                // byte at 100 ms (and us goodput at 30 ms), while the acks of new
                // arrivals carry the same cumulative point a moment later.
                if self.v2ray.is_none()
                    && (self.hello.heard
                        || self.now_us >= self.times.last_ack_us.saturating_add(OLD_ACK_GAP_US))
                {
                    self.due.ack = true;
                }
            }
            Accept::Duplicate | Accept::Stored => {
                self.times.last_data_us = self.now_us;
                if verdict == Accept::Stored {
                    self.guard.data_in = true;
                    self.shaper.on_arrival(self.now_us);
                }
                let timestamp = WireTime::from(d.timestamp);
                match self.v2ray.as_deref_mut() {
                    Some(v) => v.acks.add(number, timestamp),
                    None => self.acks.add(number, timestamp),
                }
                let readable = self.recv.readable();
                if self.recv.accept(number, d.payload) == Accept::Duplicate {
                    self.stats.duplicates_received += 1;
                }
                if !readable && self.recv.readable() {
                    self.event(ConnEvent::Readable);
                }
            }
        }
    }

    /// The interval a delivery-rate sample spans: from the delivered counter's time at
    /// the segment's send to now (the ack side), but never less than the send side
    /// (from the newest segment acknowledged then to this one's send). Acks that
    /// arrive in a burst would otherwise measure a rate nobody sent at (a relay's
    /// timer or a receive batch: 10.9 MB/s estimated on a 2.5 MB/s link, held by the
    /// windowed maximum and the queue overrun 30-40 % of the time).
    pub(super) fn rate_interval_us(t: u64, info: &Acked) -> u64 {
        let ack = t.saturating_sub(info.delivered_us);
        let send = info.sent_us.saturating_sub(info.first_sent_us);
        ack.max(send)
    }

    fn learn_peer_window(&mut self, window_end: Seq, next: Seq) {
        let size = next.distance_to(window_end);
        if size > MAX_PEER_WINDOW
            || (window_end.before(self.send.una()) && self.send.una() != Seq::ZERO)
        {
            self.stats.implausible += 1;
            return;
        }
        self.peer.size = Some(size);
        if self.peer.end.before(window_end) {
            self.peer.end = window_end;
        }
    }

    pub(super) fn apply_cumulative(&mut self, t: u64, rn: Seq) {
        if !self.send.plausible_cumulative(rn) {
            // V2Ray would drop queued data here (PROTOCOL.md §5 item 8); we refuse.
            self.stats.implausible += 1;
            return;
        }
        // The ack that proves an unproven peer covers only what its small byte budget
        // allowed: no rate sample (it would start the bandwidth estimate from bytes).
        let sample = self.send_budget().is_none();
        let (freed, newest) = self.send.ack_cumulative_sampled(rn);
        if freed > 0 {
            self.on_delivered(t, freed, newest.as_ref(), sample);
        }
    }

    /// Bookkeeping for `bytes` newly acknowledged at `t`: progress, the delivery
    /// counter and the stats; with `info` (the most recently sent of the freed
    /// segments) the start of the next send interval and, if `sample`, a
    /// delivery-rate sample.
    pub(super) fn on_delivered(&mut self, t: u64, bytes: u64, info: Option<&Acked>, sample: bool) {
        self.times.progress_us = t;
        self.cc.delivered += bytes;
        self.cc.delivered_us = t;
        self.stats.bytes_acked += bytes;
        let Some(info) = info else {
            return;
        };
        if sample {
            self.cc.rate.on_delivery(
                t,
                info.delivered,
                self.cc.delivered,
                Self::rate_interval_us(t, info),
                self.send.in_flight_bytes() as u64,
            );
        }
        self.cc.first_sent_us = self.cc.first_sent_us.max(info.sent_us);
    }

    fn on_ack(&mut self, t: u64, a: &AckSegment<'_>) {
        self.learn_peer_window(Seq::from(a.receiving_window), Seq::from(a.receiving_next));
        if self.v2ray.is_some() {
            self.on_ack_v2ray(t, a);
            return;
        }
        // The listed numbers go first: they carry the RTT and delivery-rate samples.
        // V2Ray acks in its flush, once per TTI, when its `receivingNext` usually covers
        // every listed number already; applied first, the cumulative point would free
        // them all and leave no sample (interop finding: RTO stuck at its floor on the
        // few surviving short samples, spurious timeouts, a starved bandwidth estimate).
        let mut newest_sent: Option<u64> = None;
        let mut acked_any = false;
        let mut rtt_us: Option<u64> = None;
        let mut spurious = false;
        // See `apply_cumulative`: the proving ack gives no rate sample.
        let sample = self.send_budget().is_none();
        let echoed = WireTime::from(a.timestamp);
        for k in a.numbers.iter().map(Seq::from) {
            let Some(info) = self.send.ack_number(k) else {
                continue;
            };
            // An ack echoing a time before this segment's last transmission was
            // caused by an earlier copy: the retransmission was not needed (lost acks
            // of a burst-acking peer, or reordering).
            // Such an ack also says nothing about what was sent before the
            // retransmission: it must not drive time-based loss detection (else a
            // timeout that fired before the first RTT sample, on a path longer than
            // the initial RTO, makes the original's ack declare the whole first
            // window lost). RACK ignores these ambiguous acks in the same way.
            // (Timestamp 0 counts here: our first segments carry it. It does not
            // count as proof of a spurious retransmission, since V2Ray also sends it
            // in acks of repeated numbers.)
            let earlier_copy = info.transmit > 1 && echoed.before(Self::ms(info.sent_us));
            if earlier_copy && echoed != WireTime::ZERO {
                spurious = true;
            }
            acked_any = true;
            if !earlier_copy {
                newest_sent = Some(newest_sent.map_or(info.sent_us, |n| n.max(info.sent_us)));
            }
            if info.transmit == 1 {
                rtt_us = Some(t.saturating_sub(info.sent_us));
            }
            self.on_delivered(t, u64::from(info.len), Some(&info), sample);
        }
        self.apply_cumulative(t, Seq::from(a.receiving_next));
        let now_ms = Self::ms(t);
        if let Some(r) = rtt_us {
            self.rtt.update((r / 1000) as u32, now_ms);
            self.cc.rate.on_rtt(t, r);
        } else if acked_any && echoed != WireTime::ZERO {
            // Only retransmitted segments were acked (Karn: their own send times are
            // ambiguous). The echoed timestamp belongs to the transmission that arrived,
            // so it still measures the path. Without this, a path whose RTT exceeds the
            // initial RTO retransmits every segment and never learns its RTT. Timestamp 0
            // is skipped: V2Ray sends it in acks that carry no fresh entry (PROTOCOL.md §5 item 19).
            let sample = now_ms.since(echoed);
            if sample < 10_000 {
                self.rtt.update(sample, now_ms);
                self.cc.rate.on_rtt(t, u64::from(sample.max(1)) * 1000);
            }
        }
        if spurious {
            self.widen_reordering_window();
        }
        if let Some(ns) = newest_sent {
            let lost = self
                .send
                .detect_lost_by_time(ns, self.reordering_window_us());
            if lost > 0 {
                self.cc.lost_in_round += lost as u32;
                self.cc.rate.on_lost(lost as u64, self.cc.delivered);
                self.cc.reo_clean_rounds += 1;
                if self.cc.reo_clean_rounds >= 16 {
                    self.cc.reo_extra_us /= 2;
                    self.cc.reo_clean_rounds = 0;
                }
            }
        }
    }

    /// A retransmission was spurious: wait an eighth of the minimum RTT longer before
    /// declaring a segment lost by time, up to a quarter more (so at most half the
    /// minimum RTT in all: longer waits stall the peer's window on real losses).
    fn widen_reordering_window(&mut self) {
        let min_rtt = self.cc.rate.min_rtt_us().unwrap_or(4_000);
        let step = (min_rtt / 8).max(500);
        self.cc.reo_extra_us = (self.cc.reo_extra_us + step).min(min_rtt / 4);
        self.cc.reo_clean_rounds = 0;
    }

    fn on_cmd(&mut self, t: u64, c: &CmdSegment) {
        let now_ms = Self::ms(t);
        if c.cmd == CMD_HELLO || c.cmd == CMD_HELLO_HEARD {
            if !self.hello.heard {
                // An mkcp peer acks each arrival at once.
                self.cc.rate.set_ack_delay_us(0);
            }
            self.hello.heard = true;
            self.hello.done |= c.cmd == CMD_HELLO_HEARD;
            // The peer has not heard us: answer, even once our own markers are spent
            // (a first flight lost whole took them all; the peer's come once its
            // session exists, and without an answer it paces us as V2Ray's sender).
            self.hello.owed |= c.cmd == CMD_HELLO;
        }
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
        let receiving_next = Seq::from(c.receiving_next);
        let sending_next = Seq::from(c.sending_next);
        self.apply_cumulative(t, receiving_next);
        if let Some(v) = self.v2ray.as_deref_mut() {
            v.acks.clear(sending_next);
        }
        self.rtt.update_peer_rto(c.peer_rto, now_ms);
        if let Some(size) = self.peer.size {
            let end = receiving_next + size;
            if self.send.plausible_cumulative(receiving_next) && self.peer.end.before(end) {
                self.peer.end = end;
            }
        }
        if c.cmd == CMD_FIN
            && sending_next.at_or_after(self.recv.next())
            && self.close.peer_fin.is_none()
        {
            self.close.peer_fin = Some(sending_next);
            self.event(ConnEvent::Readable);
        }
    }

    /// Bookkeeping after input or timers: writable events, the Ping that tells the
    /// peer everything was acked, FIN, and closing transitions.
    pub(super) fn after_progress(&mut self, t: u64) {
        if self.send.take_una_changed() {
            // Room again: the blocked writer hears of it once. It stays blocked (for
            // the rate model) until a write is taken whole: until it has refilled
            // the room, the sender is short of data only because of that delay (on the
            // real runtime the writer runs after the driver; taken for an idle
            // application, startup never ended on its own and overran the bottleneck
            // for 0.75 s).
            if self.close.write_blocked && !self.close.writable_signalled {
                self.close.writable_signalled = true;
                self.event(ConnEvent::Writable);
            }
            if self.send.is_empty() && self.v2ray.is_none() {
                // Lets a V2Ray peer drop its ack list (it re-acks until it learns
                // our sendingNext, PROTOCOL.md §3.11).
                self.due.ping = true;
            }
        }
        if self.close.write_shut
            && self.send.is_empty()
            && self.close.fin_sends == 0
            && !self.close.fin_due
        {
            self.close.fin_due = true;
        }
        if self.state == State::ReadyToClose && self.send.is_empty() {
            self.set_state(t, State::Terminating);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::send::Acked;
    use super::Connection;

    fn acked(sent_us: u64, first_sent_us: u64, delivered_us: u64) -> Acked {
        Acked {
            len: 1326,
            transmit: 1,
            sent_us,
            delivered: 0,
            delivered_us,
            first_sent_us,
        }
    }

    /// A burst of acks (10 ms apart on the ack side) for data that took 100 ms to send
    /// measures over the 100 ms: the rate a sender sent at, not the ack burst's.
    #[test]
    fn a_rate_sample_spans_at_least_its_send_interval() {
        let info = acked(1_100_000, 1_000_000, 1_290_000);
        assert_eq!(Connection::rate_interval_us(1_300_000, &info), 100_000);
    }

    /// Acks spread out more than the sending was: the ack side counts (the usual case,
    /// the bottleneck spacing them).
    #[test]
    fn a_rate_sample_spans_its_ack_interval_when_longer() {
        let info = acked(1_100_000, 1_090_000, 1_200_000);
        assert_eq!(Connection::rate_interval_us(1_300_000, &info), 100_000);
        let info = acked(1_100_000, 1_090_000, 1_150_000);
        assert_eq!(Connection::rate_interval_us(1_300_000, &info), 150_000);
    }
}
