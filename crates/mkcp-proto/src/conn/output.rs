//! What we send: our flush (PROTOCOL.md §3.6, with the differences of PROTOCOL.md §6 "free to
//! improve"): acknowledgements first, then control segments, then data (lost segments
//! first), several segments per datagram, paced and within both windows.

use std::time::Instant;

use super::seq::Seq;
use super::{Connection, State, CMD_FIN, CMD_HELLO, CMD_HELLO_HEARD, MAX_HELLOS};
use crate::wire::segment::{
    AckNumbers, AckSegment, CmdSegment, DataSegment, Segment, ACK_HEADER_LEN, CMD_LEN, CMD_PING,
    CMD_TERMINATE, DATA_HEADER_LEN,
};

/// Plaintext bytes of budget an ack to an unproven peer must leave for a reply: a Data
/// segment with 16 bytes of payload.
const UNPROVEN_ACK_RESERVE: usize = DATA_HEADER_LEN + 16;

/// Shortest gap in acknowledgements taken for silence (µs); see `ack_silence`.
const ACK_SILENCE_MIN_US: u64 = 10_000;

/// Shortest gap between two of our hello markers (µs), unless one is owed.
const HELLO_GAP_US: u64 = 20_000;

/// Least payload a data segment is cut to, to make room for a hello ahead of it.
const HELLO_SPLIT_MIN: usize = 256;

/// Most data segments cut for our markers before the peer has said hello.
const HELLO_CUTS: u8 = 4;

/// Byte budget an unproven peer must have given before our hello goes to it.
const HELLO_MIN_BUDGET: u64 = 4096;

impl Connection {
    /// Writes the plaintext of the next datagram into `buf` and returns its length, or
    /// `None` if nothing is to be sent now.
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.state == State::Terminated {
            return None;
        }
        let t = self.us(now).max(self.now_us);
        self.now_us = t;
        let max = buf.len().min(self.p.max_plaintext);
        let buf = &mut buf[..max];
        let w = if self.v2ray.is_some() {
            self.transmit_v2ray(t, buf)
        } else {
            self.transmit(t, buf, true)
        };
        if w == 0 {
            return None;
        }
        self.times.last_send_us = t;
        self.stats.datagrams_sent += 1;
        Some(w)
    }

    pub(super) fn emit(buf: &mut [u8], w: &mut usize, seg: &Segment<'_>) -> bool {
        match seg.emit(&mut buf[*w..]) {
            Ok(n) => {
                *w += n;
                true
            }
            Err(_) => false,
        }
    }

    pub(super) fn cmd(&self, cmd: u8) -> CmdSegment {
        CmdSegment {
            conv: self.conv,
            cmd,
            option: self.option(),
            sending_next: self.send.una().get(),
            receiving_next: self.advertised_next().get(),
            peer_rto: self.rtt.rto(),
        }
    }

    /// Our datagram: acks, a hello marker (if `hello` and one is due), control
    /// segments, copies, data.
    fn transmit(&mut self, t: u64, buf: &mut [u8], hello: bool) -> usize {
        let copies = self.take_thin_copies();
        if self.send_budget().is_some() && copies.is_pending() {
            // The copy of a reply cut short for an unproven peer: alone, the budget
            // was kept for it.
            return self.write_thin_copies(t, buf, 0, &copies);
        }
        let mut w = if self.send_budget().is_some() {
            // An unproven peer's small byte budget goes to data first: its
            // acknowledgement proves the peer and lifts the limit; acks follow.
            // Acks only while budget for a small reply stays: a client whose first
            // datagram was lost has given little, and an ack that eats it would make
            // the reply wait for its keep-alives; unacked, it retransmits instead.
            let d = self.write_data(t, buf, 0, false, false);
            if self.thin.is_pending() {
                // A reply cut short for its copy: the rest of the budget is the copy's.
                return d;
            }
            let end = buf.len().saturating_sub(UNPROVEN_ACK_RESERVE).max(d);
            d + self.write_acks(t, &mut buf[d..end])
        } else {
            self.write_acks(t, buf)
        };
        let acks_len = w;
        let now_ms = Self::ms(t);
        // Who we are, ahead of data (it must not wait behind full-size segments).
        // Where the marker went and the hello state before it, to take it back.
        let mut marker: Option<(usize, usize, super::parts::Hello)> = None;
        if hello && buf.len() - w >= CMD_LEN {
            if let Some(cmd) = self.hello_due(t) {
                let (start, before) = (w, self.hello.clone());
                if Self::emit(buf, &mut w, &Segment::Cmd(self.cmd(cmd))) {
                    self.hello.sent = self.hello.sent.saturating_add(1);
                    self.hello.last_us = Some(t);
                    self.hello.owed = false;
                    marker = Some((start, w, before));
                }
            }
        }
        // Control segments.
        if self.due.terminate && buf.len() - w >= CMD_LEN {
            let seg = Segment::Cmd(self.cmd(CMD_TERMINATE));
            if Self::emit(buf, &mut w, &seg) {
                self.due.terminate = false;
                self.times.last_ping_ms = now_ms;
            }
        }
        if self.state == State::Terminating {
            self.due.ping = false;
            return w;
        }
        let fin_now = self.close.write_shut && self.send.is_empty();
        if (self.close.fin_due || (self.due.ping && fin_now)) && buf.len() - w >= CMD_LEN {
            let seg = Segment::Cmd(self.cmd(CMD_FIN));
            if Self::emit(buf, &mut w, &seg) {
                self.due.ping = false;
                self.on_fin_sent(t);
            }
        }
        if self.due.ping && buf.len() - w >= CMD_LEN {
            let seg = Segment::Cmd(self.cmd(CMD_PING));
            if Self::emit(buf, &mut w, &seg) {
                self.due.ping = false;
                self.times.last_ping_ms = now_ms;
            }
        }
        let w = self.write_thin_copies(t, buf, w, &copies);
        // A full-size data segment behind the marker is cut to make room for it: for
        // the first few markers, and for any once the peer has said it is mkcp. More
        // would cost a V2Ray peer a short segment per marker, 64 in its first 1.3 s,
        // slots of its receive window (1-7 % of goodput at 100 ms in simulation).
        let cut = marker.is_some() && (self.hello.heard || self.hello.cuts < HELLO_CUTS);
        let end = self.write_data(t, buf, w, acks_len > 0, cut);
        if let Some((0, _, before)) = marker.filter(|&(_, stop, _)| stop == end) {
            // The marker alone: it waits for a datagram that goes anyway. Alone it
            // could open a session at a listener that has none for us (a refused or
            // lost first datagram), one that sent no data and is the first to be
            // evicted when the table is full. If it crowded out what cannot be cut (a
            // retransmission, a copy: kept for the next datagram), that goes without
            // it. Nothing else was written, so the datagram is written again.
            self.hello = before;
            return self.transmit(t, buf, false);
        }
        end
    }

    /// Acknowledgements (and window updates) at the start of `buf`; returns the length.
    fn write_acks(&mut self, t: u64, buf: &mut [u8]) -> usize {
        let mut w = 0;
        while !self.acks.is_empty() || self.due.ack {
            let room = buf.len() - w;
            if room < ACK_HEADER_LEN + if self.acks.is_empty() { 0 } else { 4 } {
                break;
            }
            let count = ((room - ACK_HEADER_LEN) / 4).min(255);
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.clear();
            let ts = self.acks.take(count, self.advertised_next(), &mut scratch);
            let end = self.window_to_advertise(t);
            let seg = Segment::Ack(AckSegment {
                conv: self.conv,
                option: self.option(),
                receiving_window: end.get(),
                receiving_next: self.advertised_next().get(),
                timestamp: ts.get(),
                numbers: AckNumbers::List(&scratch),
            });
            let ok = Self::emit(buf, &mut w, &seg);
            self.scratch = scratch;
            if !ok {
                break;
            }
            self.peer.advertised_end = self.recv.window_end();
            self.due.ack = false;
            self.times.last_ack_us = t;
        }
        w
    }

    /// Data from `w` on: lost segments first, then new ones, within the congestion
    /// window, the peer's window and the pacing rate. Returns the datagram's length.
    fn write_data(
        &mut self,
        t: u64,
        buf: &mut [u8],
        mut w: usize,
        with_ack: bool,
        mut cut_for_hello: bool,
    ) -> usize {
        let now_ms = Self::ms(t);
        let rate = self.cc.rate.pacing_rate();
        let silent = self.ack_silence(t);
        // A reply cut short for an unproven peer's copy (`unproven_reply_len`) is all
        // this datagram carries: the rest of the budget is the copy's.
        let mut cut_for_copy = false;
        while self.can_send_data() {
            if self.cc.pacer.next_send(t, rate, self.p.mtu) > t {
                break;
            }
            let Some(number) = self.send.next_to_send(self.peer.end) else {
                break;
            };
            let Some(seg) = self.send.get(number) else {
                break;
            };
            if silent && seg.transmit == 0 {
                // The peer has gone quiet: no new data until it answers (what is
                // lost is still resent, a timeout's probe still goes).
                break;
            }
            if buf.len() - w < DATA_HEADER_LEN + seg.payload.len() {
                // An unproven peer's byte budget is small: send what fits, so that its
                // acknowledgement can prove it (a 1-byte request earns a 1-byte reply).
                let room = (buf.len() - w).saturating_sub(DATA_HEADER_LEN);
                if self.send_budget().is_some() && seg.transmit == 0 && room > 0 && !cut_for_copy {
                    let len = self.unproven_reply_len(room);
                    cut_for_copy = len < room;
                    self.send.split_unsent(len);
                    continue;
                }
                // A hello took the bytes a full-size segment needed: the segment gives
                // way by as much, so the marker rides with data (a bulk sender has no
                // other datagram for it).
                if cut_for_hello && seg.transmit == 0 && room >= HELLO_SPLIT_MIN {
                    cut_for_hello = false;
                    self.hello.cuts = self.hello.cuts.saturating_add(1);
                    self.send.split_unsent(room);
                    continue;
                }
                break;
            }
            let retransmit = seg.transmit > 0;
            self.times.probe_due = false;
            let len = seg.payload.len();
            let d = Segment::Data(DataSegment {
                conv: self.conv,
                option: self.option(),
                timestamp: now_ms.get(),
                number: number.get(),
                sending_next: self.send.una().get(),
                payload: &seg.payload,
            });
            if !Self::emit(buf, &mut w, &d) {
                break;
            }
            if self.send.in_flight() == 0 {
                // Nothing was in flight: the delivery clock restarts now, so idle
                // time does not dilute the rate sample.
                self.cc.delivered_us = t;
                self.cc.first_sent_us = t;
            }
            self.send.on_sent(
                number,
                t,
                now_ms,
                self.rtt.rto(),
                super::send::DeliveryClock {
                    delivered: self.cc.delivered,
                    delivered_us: self.cc.delivered_us,
                    first_sent_us: self.cc.first_sent_us,
                },
            );
            self.cc
                .pacer
                .on_send(t, len + DATA_HEADER_LEN, rate, self.p.mtu);
            self.stats.data_segments_sent += 1;
            self.cc.sent_in_round += 1;
            self.after_data_sent(number, with_ack);
            if retransmit {
                self.stats.retransmissions += 1;
                self.stats.bytes_retransmitted += len as u64;
            }
            if cut_for_copy {
                break;
            }
        }
        // Out of data with room in the window, and the application is not waiting
        // for buffer space (a full write buffer limits us, not the application).
        // An unproven peer's byte budget limits us too: such samples measure the
        // budget (and would end startup early), not the path.
        // An mkcp peer that has not yet heard our hello may take us for V2Ray and pace
        // us with a window of a segment or two (`shaper.rs`): while that window holds
        // back data, samples measure its shaper, not the path, and must neither end
        // startup nor lower the estimate. (Not in general: towards V2Ray, whose window
        // often limits an upload, that cost 6-15 % of goodput in simulation.)
        let in_flight = self.send.in_flight_bytes() as u64;
        let window_limited = self.hello.heard
            && !self.hello.done
            && self.send.queued() > 0
            && !self.send.has_sendable(self.peer.end);
        let app_limited = (self.send.queued() == 0 && !self.close.write_blocked || window_limited)
            && !self.send.has_lost()
            && in_flight < self.cwnd_bytes();
        if app_limited || self.send_budget().is_some() {
            self.cc.rate.mark_app_limited(self.cc.delivered, in_flight);
        }
        // The loss-rate round: V2Ray's loss window (`congestion: true`) takes its
        // figure; the counters restart either way so they stay bounded.
        if self.cc.sent_in_round >= self.cc.loss.window() {
            // Not while timeouts go unanswered: a round of probes to a silent peer
            // detects no loss, and "no loss" would grow the window into the void.
            if self.p.congestion && self.unanswered_rto().is_none() {
                let rate = self.cc.lost_in_round * 100 / self.cc.sent_in_round.max(1);
                self.cc.loss.on_loss_rate(rate);
            }
            self.cc.sent_in_round = 0;
            self.cc.lost_in_round = 0;
        }
        w
    }

    /// Acknowledgements stopped: more than a thin stream's data is in flight, nothing
    /// was acknowledged for longer than the usual gap (a quarter of the smoothed RTT,
    /// at least 10 ms, plus the peer's ack delay), and the oldest segment in flight has been out for more than
    /// a round trip and that gap. A peer that vanished (a phone that lost its network)
    /// then costs what was in flight plus that gap's worth, not the whole in-flight
    /// allowance of two bandwidth-delay products before the first timeout. An
    /// application-limited stream is not held back: its oldest segment is young.
    fn ack_silence(&mut self, t: u64) -> bool {
        let srtt = u64::from(self.rtt.srtt()) * 1000;
        // A thin stream's single segment in flight may well wait a round trip for a
        // reply that carries its ack; it is not what floods a vanished peer.
        if srtt == 0 || self.send.in_flight() <= super::thin::THIN_SEGMENTS {
            return false;
        }
        let gap = (srtt / 4).max(ACK_SILENCE_MIN_US) + self.cc.rate.ack_delay_us();
        let Some(oldest) = self.send.oldest_sent_us() else {
            return false;
        };
        t > self.times.progress_us + gap && t > oldest + srtt + gap
    }

    /// The hello marker our next datagram carries, if one is due: an answer the peer
    /// is owed, or one of our own [`MAX_HELLOS`] until the peer has heard us, at most
    /// one per [`HELLO_GAP_US`], whether alone or with other segments. Spaced, they
    /// outlive a first flight lost whole at an overflowing queue; before, a sender
    /// whose data waited for its window or pacer made 63 hello-only datagrams in a
    /// row, lost together when four sessions started at once, and the server then
    /// paced an mkcp client as V2Ray's sender: a segment per round trip. A marker
    /// never goes alone (`transmit`): it rides with acks, control segments or data,
    /// and a full-size data segment behind it is cut by its length (the first few
    /// times, or any time once the peer has said hello).
    ///
    /// Not once the session is being torn down, nor while an unproven peer's byte
    /// budget is small: it is better spent on data, whose acknowledgement proves the
    /// peer. A peer that uploads proves nothing (we send it no data) but gives ample
    /// budget, and without our hello it would take us for V2Ray and wait for V2Ray's
    /// ack delay.
    fn hello_due(&self, t: u64) -> Option<u8> {
        if matches!(self.state, State::Terminating | State::PeerTerminating)
            || self.send_budget().is_some_and(|b| b < HELLO_MIN_BUDGET)
        {
            return None;
        }
        if self.hello.owed {
            return Some(CMD_HELLO_HEARD);
        }
        if self.hello.done
            || self.hello.sent >= MAX_HELLOS
            || self.hello.last_us.is_some_and(|l| t < l + HELLO_GAP_US)
        {
            return None;
        }
        Some(if self.hello.heard {
            CMD_HELLO_HEARD
        } else {
            CMD_HELLO
        })
    }

    /// Payload of a reply cut to fit an unproven peer's byte budget (`room`: what fits
    /// in this datagram). A budget too small for two full datagrams (a V2Ray client's
    /// Ping bought it) leaves room for a copy of the reply in a second datagram (see
    /// `after_data_sent`): with a single datagram, its loss waited for the client's
    /// next Ping, 5 s later. The margin covers the second datagram's envelope and
    /// header.
    fn unproven_reply_len(&self, room: usize) -> usize {
        const ENVELOPE_MARGIN: usize = 48;
        match self.send_budget() {
            Some(b) if b < 2 * self.p.mtu => room
                .saturating_sub(DATA_HEADER_LEN + ENVELOPE_MARGIN)
                .div_euclid(2)
                .max(1),
            _ => room,
        }
    }

    /// The window end for our next Ack: the real one for an mkcp peer, the shaper's
    /// for a V2Ray sender.
    fn window_to_advertise(&mut self, t: u64) -> Seq {
        let real = self.recv.window_end();
        if self.hello.heard {
            real
        } else {
            self.shaper.window_end(t, self.recv.contiguous(), real)
        }
    }

    /// Schedules the next FIN: resent with backoff (8 times), since nothing
    /// acknowledges it; later keep-alives while write-shut are FINs too.
    pub(super) fn on_fin_sent(&mut self, t: u64) {
        self.close.fin_due = false;
        self.close.fin_sends += 1;
        self.times.last_ping_ms = Self::ms(t);
        if self.close.fin_sends < 8 {
            let backoff = (u64::from(self.rtt.rto().max(100)) * 1000) << (self.close.fin_sends - 1);
            self.close.fin_next_us = Some(t + backoff);
        }
    }
}
