//! Sending side: send buffer, acknowledgement processing, loss detection (PROTOCOL.md §3.10).
//!
//! The buffer is a ring (`VecDeque`) of segments indexed by `number - una`, so an ack
//! for one number is O(1). Segments acknowledged out of order stay in place (payload
//! recycled at once) until `una` passes them. Two more queues keep loss detection
//! O(1) amortised per packet:
//! * `order`: every transmission in send order; its front is the oldest transmission
//!   still outstanding. It drives the retransmission timer (RTO, with backoff) and
//!   time-based loss detection (a segment sent well before one that was just acked is
//!   lost, in the manner of RACK);
//! * `lost`: segments declared lost, retransmitted before new data.
//!
//! The V2Ray algorithm (due times, `timeout -= rto/3` fast-ack nudge, loss-rate
//! counters) is kept alongside for `v2ray_compat` mode and reproduces the
//! `trace_sending_window` vector; it lives in `send/v2ray.rs`.

mod v2ray;

use std::collections::VecDeque;

use super::seq::{Seq, WireTime};

pub use v2ray::V2raySent;

/// One queued segment.
#[derive(Debug, Default)]
pub struct SendSeg {
    /// Payload (empty once acknowledged).
    pub payload: Vec<u8>,
    /// Payload length (kept after the payload is recycled).
    pub len: u32,
    /// Acknowledged individually.
    pub acked: bool,
    /// Declared lost and waiting in the retransmission queue.
    pub lost: bool,
    /// Times transmitted.
    pub transmit: u32,
    /// Connection time of the last transmission (µs).
    pub sent_us: u64,
    /// Wire timestamp of the last transmission (ms).
    pub timestamp: WireTime,
    /// V2Ray due time (ms, absolute): `now + rto` at the last transmission.
    pub timeout: WireTime,
    /// Connection's delivered-bytes counter at the last transmission.
    pub delivered: u64,
    /// Time of that counter's last change (µs).
    pub delivered_us: u64,
    /// Send time of the newest segment acknowledged when this one was sent (µs): its
    /// delivery-rate sample spans at least the send interval from there.
    pub first_sent_us: u64,
}

/// The connection's delivery clock at a transmission (BBR's rate-sample state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryClock {
    /// Payload bytes delivered so far.
    pub delivered: u64,
    /// Time of the last change of `delivered` (µs).
    pub delivered_us: u64,
    /// Send time of the newest segment acknowledged so far (µs).
    pub first_sent_us: u64,
}

/// What an individual acknowledgement freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acked {
    /// Payload bytes.
    pub len: u32,
    /// Transmissions of the segment.
    pub transmit: u32,
    /// Time of the last transmission (µs).
    pub sent_us: u64,
    /// Delivered counter at that transmission.
    pub delivered: u64,
    /// Time of that counter (µs).
    pub delivered_us: u64,
    /// Start of its send interval (see [`SendSeg::first_sent_us`]).
    pub first_sent_us: u64,
}

/// The sending window and queue.
#[derive(Debug)]
pub struct SendBuffer {
    segs: VecDeque<SendSeg>,
    una: Seq,
    unsent: Seq,
    bytes: usize,
    mss: usize,
    pool: Vec<Vec<u8>>,
    lost: VecDeque<Seq>,
    order: VecDeque<(Seq, u32)>,
    in_flight: usize,
    in_flight_bytes: usize,
    una_changed: bool,
    /// V2Ray's loss-rate denominator (only grows on transmissions, shrinks on
    /// individual acks; PROTOCOL.md §5 item 17).
    pub total_in_flight: u32,
}

impl SendBuffer {
    /// An empty buffer cutting the stream into segments of at most `mss` bytes.
    pub fn new(mss: usize) -> SendBuffer {
        SendBuffer {
            segs: VecDeque::new(),
            una: Seq::ZERO,
            unsent: Seq::ZERO,
            bytes: 0,
            mss: mss.max(1),
            pool: Vec::new(),
            lost: VecDeque::new(),
            order: VecDeque::new(),
            in_flight: 0,
            in_flight_bytes: 0,
            una_changed: false,
            total_in_flight: 0,
        }
    }

    /// Cuts the next unsent segment after `max_payload` bytes (the rest becomes the
    /// following unsent segment), so a small byte budget can still carry data. Only
    /// unsent segments are cut: their numbers are not on the wire yet.
    pub fn split_unsent(&mut self, max_payload: usize) {
        let Some(i) = self.idx(self.unsent) else {
            return;
        };
        let seg = &mut self.segs[i];
        if max_payload == 0 || seg.transmit > 0 || seg.payload.len() <= max_payload {
            return;
        }
        let tail = seg.payload.split_off(max_payload);
        seg.len = max_payload as u32;
        let len = tail.len() as u32;
        self.segs.insert(
            i + 1,
            SendSeg {
                payload: tail,
                len,
                ..SendSeg::default()
            },
        );
    }

    /// First unacknowledged number (V2Ray's `firstUna`, sent as `sendingNext`).
    pub fn una(&self) -> Seq {
        self.una
    }

    /// Number the next new segment gets.
    pub fn next_number(&self) -> Seq {
        self.una + self.segs.len() as u32
    }

    /// First number never transmitted.
    pub fn unsent(&self) -> Seq {
        self.unsent
    }

    /// Segments written by the application and never transmitted yet.
    pub fn queued(&self) -> usize {
        self.unsent.distance_to(self.next_number()) as usize
    }

    /// Queued segments (acknowledged ones below `una` excluded).
    pub fn len(&self) -> usize {
        self.segs.len()
    }

    /// True when nothing is queued or unacknowledged.
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// Segments not yet acknowledged (V2Ray's window length). O(n): for tests and stats.
    pub fn unacked_segments(&self) -> usize {
        self.segs.iter().filter(|s| !s.acked).count()
    }

    /// Unacknowledged payload bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Segments transmitted and neither acknowledged nor declared lost.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Payload bytes in flight.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// True when at least one segment waits in the retransmission queue.
    pub fn has_lost(&self) -> bool {
        !self.lost.is_empty()
    }

    /// Returns and clears the "una changed" flag.
    pub fn take_una_changed(&mut self) -> bool {
        std::mem::take(&mut self.una_changed)
    }

    /// The segment with `number`, if queued.
    pub fn get(&self, number: Seq) -> Option<&SendSeg> {
        self.segs.get(self.una.distance_to(number) as usize)
    }

    fn idx(&self, number: Seq) -> Option<usize> {
        let i = self.una.distance_to(number) as usize;
        (i < self.segs.len()).then_some(i)
    }

    fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.pool.len() < 2048 && buf.capacity() > 0 {
            buf.clear();
            self.pool.push(buf);
        }
    }

    /// Queues stream bytes. With `coalesce`, bytes first fill the last segment if it was
    /// never sent. Stops at `max_segments` queued segments or `max_bytes` held bytes;
    /// returns how many bytes were taken.
    pub fn write(
        &mut self,
        data: &[u8],
        coalesce: bool,
        max_segments: usize,
        max_bytes: usize,
    ) -> usize {
        let mut taken = 0;
        if coalesce {
            let unsent_idx = self.una.distance_to(self.unsent) as usize;
            let tail_idx = self.segs.len().wrapping_sub(1);
            if let Some(tail) = self.segs.back_mut() {
                if tail_idx >= unsent_idx && tail.payload.len() < self.mss {
                    let n = (self.mss - tail.payload.len())
                        .min(data.len())
                        .min(max_bytes.saturating_sub(self.bytes));
                    tail.payload.extend_from_slice(&data[..n]);
                    tail.len += n as u32;
                    self.bytes += n;
                    taken += n;
                }
            }
        }
        while taken < data.len() && self.segs.len() < max_segments && self.bytes < max_bytes {
            let n = (data.len() - taken)
                .min(self.mss)
                .min(max_bytes - self.bytes);
            let mut payload = self
                .pool
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(self.mss));
            payload.extend_from_slice(&data[taken..taken + n]);
            self.segs.push_back(SendSeg {
                payload,
                len: n as u32,
                ..SendSeg::default()
            });
            self.bytes += n;
            taken += n;
        }
        taken
    }

    fn pop_acked_front(&mut self) {
        while self.segs.front().is_some_and(|s| s.acked) {
            self.segs.pop_front();
            self.una = self.una.next();
            self.una_changed = true;
        }
        if self.unsent.before(self.una) {
            self.unsent = self.una;
        }
    }

    fn free(&mut self, i: usize) -> u32 {
        let seg = &mut self.segs[i];
        let len = seg.len;
        if seg.transmit > 0 && !seg.lost {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.in_flight_bytes = self.in_flight_bytes.saturating_sub(len as usize);
        }
        seg.acked = true;
        seg.lost = false;
        let buf = std::mem::take(&mut seg.payload);
        self.bytes = self.bytes.saturating_sub(len as usize);
        self.recycle(buf);
        len
    }

    /// True if `rn` is a plausible cumulative ack: not beyond what was ever sent.
    pub fn plausible_cumulative(&self, rn: Seq) -> bool {
        let ahead = self.una.distance_to(rn);
        ahead <= self.una.distance_to(self.unsent) || rn.before(self.una)
    }

    /// Applies a cumulative ack (`receivingNext`): everything below `rn` was received.
    /// Returns payload bytes newly acknowledged. Callers check plausibility first.
    pub fn ack_cumulative(&mut self, rn: Seq) -> u64 {
        self.ack_cumulative_sampled(rn).0
    }

    /// [`Self::ack_cumulative`], also returning what the most recently sent of the
    /// freed segments carried (a delivery-rate sample: a peer that acks in bursts,
    /// as V2Ray does, lists only some numbers and covers the rest cumulatively).
    pub fn ack_cumulative_sampled(&mut self, rn: Seq) -> (u64, Option<Acked>) {
        let ahead = self.una.distance_to(rn);
        if ahead == 0 || rn.before(self.una) {
            return (0, None);
        }
        let n = (ahead as usize).min(self.segs.len());
        let mut freed = 0u64;
        let mut newest: Option<Acked> = None;
        for i in 0..n {
            if !self.segs[i].acked {
                let s = &self.segs[i];
                if s.transmit > 0 && newest.is_none_or(|a| s.sent_us >= a.sent_us) {
                    newest = Some(Acked {
                        len: s.len,
                        transmit: s.transmit,
                        sent_us: s.sent_us,
                        delivered: s.delivered,
                        delivered_us: s.delivered_us,
                        first_sent_us: s.first_sent_us,
                    });
                }
                freed += u64::from(self.free(i));
            }
        }
        for _ in 0..n {
            self.segs.pop_front();
        }
        self.una = self.una + n as u32;
        self.una_changed = true;
        if self.unsent.before(self.una) {
            self.unsent = self.una;
        }
        (freed, newest)
    }

    /// Applies an individual ack for `number`; returns what it freed, or `None` if the
    /// number is not outstanding (outside `[una, unsent)` or already acknowledged).
    pub fn ack_number(&mut self, number: Seq) -> Option<Acked> {
        let i = self.idx(number)?;
        if !number.before(self.unsent) {
            return None;
        }
        if self.segs[i].acked {
            return None;
        }
        let seg = &self.segs[i];
        let info = Acked {
            len: seg.len,
            transmit: seg.transmit,
            sent_us: seg.sent_us,
            delivered: seg.delivered,
            delivered_us: seg.delivered_us,
            first_sent_us: seg.first_sent_us,
        };
        self.free(i);
        self.total_in_flight = self.total_in_flight.saturating_sub(1);
        self.pop_acked_front();
        Some(info)
    }

    /// Drops stale entries at the front of the send-order queue and returns the live
    /// front: the oldest outstanding transmission.
    fn order_front(&mut self) -> Option<(Seq, usize)> {
        while let Some(&(num, tx)) = self.order.front() {
            if let Some(i) = self.idx(num) {
                let s = &self.segs[i];
                if !s.acked && !s.lost && s.transmit == tx {
                    return Some((num, i));
                }
            }
            self.order.pop_front();
        }
        None
    }

    fn mark_lost(&mut self, i: usize, number: Seq) {
        let seg = &mut self.segs[i];
        seg.lost = true;
        self.in_flight = self.in_flight.saturating_sub(1);
        self.in_flight_bytes = self.in_flight_bytes.saturating_sub(seg.len as usize);
        self.lost.push_back(number);
    }

    /// Time-based loss detection: every outstanding segment sent more than `reo_us`
    /// before `newest_acked_sent_us` is declared lost. Returns how many.
    pub fn detect_lost_by_time(&mut self, newest_acked_sent_us: u64, reo_us: u64) -> usize {
        let mut n = 0;
        while let Some((num, i)) = self.order_front() {
            if self.segs[i].sent_us.saturating_add(reo_us) < newest_acked_sent_us {
                self.order.pop_front();
                self.mark_lost(i, num);
                n += 1;
            } else {
                break;
            }
        }
        n
    }

    /// When the oldest outstanding transmission was sent (µs).
    pub fn oldest_sent_us(&mut self) -> Option<u64> {
        let (_, i) = self.order_front()?;
        Some(self.segs[i].sent_us)
    }

    /// When the oldest outstanding transmission times out, given the RTO (µs) for
    /// a segment with a transmit count.
    pub fn rto_deadline(&mut self, rto_us: impl Fn(u32) -> u64) -> Option<u64> {
        let (_, i) = self.order_front()?;
        let s = &self.segs[i];
        Some(s.sent_us.saturating_add(rto_us(s.transmit)))
    }

    /// Declares lost the oldest outstanding transmission if its RTO expired by
    /// `now_us` (a probe: the rest stay in flight until the probe is answered, when
    /// time-based detection finds what else was lost). Returns how many (0 or 1).
    pub fn detect_oldest_lost_by_timeout(
        &mut self,
        now_us: u64,
        rto_us: impl Fn(u32) -> u64,
    ) -> usize {
        let Some((num, i)) = self.order_front() else {
            return 0;
        };
        let s = &self.segs[i];
        if s.sent_us.saturating_add(rto_us(s.transmit)) > now_us {
            return 0;
        }
        self.order.pop_front();
        self.mark_lost(i, num);
        1
    }

    /// The next segment to transmit: a lost one first, else the first unsent one if it
    /// lies before `window_end` (the peer's advertised window).
    pub fn next_to_send(&mut self, window_end: Seq) -> Option<Seq> {
        while let Some(&n) = self.lost.front() {
            match self.idx(n) {
                Some(i) if self.segs[i].lost && !self.segs[i].acked => return Some(n),
                _ => {
                    self.lost.pop_front();
                }
            }
        }
        if self.idx(self.unsent).is_some() && self.unsent.before(window_end) {
            return Some(self.unsent);
        }
        None
    }

    /// True when [`Self::next_to_send`] may return a segment (may be stale-true for a
    /// lost segment that was acknowledged meanwhile).
    pub fn has_sendable(&self, window_end: Seq) -> bool {
        !self.lost.is_empty() || (self.idx(self.unsent).is_some() && self.unsent.before(window_end))
    }

    /// Records a transmission of `number` (returned by [`Self::next_to_send`]).
    pub fn on_sent(
        &mut self,
        number: Seq,
        now_us: u64,
        now_ms: WireTime,
        rto_ms: u32,
        clock: DeliveryClock,
    ) {
        let Some(i) = self.idx(number) else { return };
        let seg = &mut self.segs[i];
        if seg.lost {
            seg.lost = false;
            if self.lost.front() == Some(&number) {
                self.lost.pop_front();
            }
        } else if number == self.unsent {
            self.unsent = self.unsent.next();
        }
        if seg.transmit == 0 {
            self.total_in_flight = self.total_in_flight.saturating_add(1);
        }
        seg.transmit += 1;
        seg.sent_us = now_us;
        seg.timestamp = now_ms;
        seg.timeout = now_ms + rto_ms;
        seg.delivered = clock.delivered;
        seg.delivered_us = clock.delivered_us;
        seg.first_sent_us = clock.first_sent_us;
        self.in_flight += 1;
        self.in_flight_bytes += seg.len as usize;
        self.order.push_back((number, seg.transmit));
    }

    /// Gives spare memory back: the payload pool keeps at most `keep` buffers, and
    /// the queues shrink to what they hold.
    pub fn trim(&mut self, keep: usize) {
        self.pool.truncate(keep);
        self.pool.shrink_to_fit();
        self.segs.shrink_to_fit();
        self.lost.shrink_to_fit();
        self.order.shrink_to_fit();
    }

    /// Drops everything queued (peer closed or terminated the connection) and gives
    /// the memory back.
    pub fn discard(&mut self) {
        let next = self.next_number();
        self.segs.clear();
        self.una = next;
        self.unsent = next;
        self.una_changed = true;
        self.bytes = 0;
        self.in_flight = 0;
        self.in_flight_bytes = 0;
        self.lost.clear();
        self.order.clear();
        self.trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::super::seq::test_util::{ms, n};
    use super::*;

    #[test]
    fn writes_are_cut_at_mss_and_small_writes_coalesce() {
        let mut s = SendBuffer::new(4);
        assert_eq!(s.write(b"abcdefghij", true, 100, 1000), 10);
        assert_eq!(s.len(), 3);
        assert_eq!(s.write(b"xy", true, 100, 1000), 2);
        assert_eq!(s.len(), 3, "coalesced into the unsent tail");
        assert_eq!(
            s.get(n(2)).map(|g| g.payload.as_slice()),
            Some(&b"ijxy"[..])
        );
        assert_eq!(s.write(b"z", false, 100, 1000), 1);
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn write_stops_at_buffer_limits() {
        let mut s = SendBuffer::new(10);
        assert_eq!(s.write(&[0; 100], true, 3, 1000), 30);
        assert_eq!(s.write(&[0; 100], true, 100, 35), 5);
    }

    #[test]
    fn ack_number_outside_sent_range_is_ignored() {
        let mut s = SendBuffer::new(10);
        s.write(&[1; 30], true, 100, 1000);
        assert_eq!(s.ack_number(n(0)), None, "never sent");
        s.on_sent(n(0), 10, ms(0), 100, DeliveryClock::default());
        assert!(s.ack_number(n(0)).is_some());
        assert_eq!(s.ack_number(n(0)), None, "already acked");
        assert_eq!(s.una(), n(1));
        assert!(!s.plausible_cumulative(n(3)), "3 was never sent");
        assert!(s.plausible_cumulative(n(1)));
    }

    #[test]
    fn segment_sent_long_before_an_acked_one_is_lost() {
        let mut s = SendBuffer::new(10);
        s.write(&[1; 30], true, 100, 1000);
        s.on_sent(n(0), 1000, ms(1), 100, DeliveryClock::default());
        s.on_sent(n(1), 2000, ms(2), 100, DeliveryClock::default());
        s.on_sent(n(2), 9000, ms(9), 100, DeliveryClock::default());
        assert!(s.ack_number(n(2)).is_some());
        assert_eq!(s.detect_lost_by_time(9000, 1500), 2);
        assert_eq!(s.next_to_send(n(100)), Some(n(0)));
        s.on_sent(n(0), 9500, ms(9), 100, DeliveryClock::default());
        assert_eq!(s.next_to_send(n(100)), Some(n(1)));
    }

    #[test]
    fn rto_expiry_marks_oldest_transmissions_lost() {
        let mut s = SendBuffer::new(10);
        s.write(&[1; 20], true, 100, 1000);
        s.on_sent(n(0), 0, ms(0), 100, DeliveryClock::default());
        s.on_sent(n(1), 50_000, ms(50), 100, DeliveryClock::default());
        assert_eq!(s.rto_deadline(|_| 100_000), Some(100_000));
        assert_eq!(s.detect_oldest_lost_by_timeout(120_000, |_| 100_000), 1);
        assert_eq!(s.in_flight(), 1);
        assert_eq!(s.next_to_send(n(100)), Some(n(0)));
    }

    #[test]
    fn new_data_is_not_sent_beyond_the_peer_window() {
        let mut s = SendBuffer::new(10);
        s.write(&[1; 50], true, 100, 1000);
        assert_eq!(s.next_to_send(n(0)), None);
        assert_eq!(s.next_to_send(n(1)), Some(n(0)));
    }
}
