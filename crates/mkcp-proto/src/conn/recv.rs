//! Receiving side: receive window, reassembly, and the ack lists (PROTOCOL.md §3.11).
//!
//! [`RecvBuffer`] is a ring of `window` slots indexed by `number mod window`: O(1) per
//! segment, no allocation in steady state (payload buffers are recycled). The ring is
//! allocated with the first segment stored, small, and doubles when a segment lands
//! beyond it (up to the window), so a connection that only ever has a few segments in
//! flight never pays for a whole window of slots (24 bytes each: 38 KB for the default
//! window); [`RecvBuffer::trim`] gives it back once it is empty.
//! `recv.next` (V2Ray's `receivingNext`) only advances when the application reads,
//! so unread data keeps its slots and the advertised window closes: this is the
//! flow control.
//!
//! Two ack lists: [`AckList`] (ours: each arrival is acknowledged once, promptly, and
//! the list is bounded) and [`V2rayAckList`] (V2Ray's exact re-ack schedule, used in
//! `v2ray_compat` mode and checked against the `trace_ack_list` vector).

use super::seq::{Seq, WireTime};

/// Outcome of offering a Data segment to the receive window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// Stored; it is new.
    Stored,
    /// Inside the window but already stored (a duplicate).
    Duplicate,
    /// Below `next`: already delivered to the application (a late retransmission).
    Old,
    /// At or beyond the window end: dropped.
    OutOfWindow,
}

/// The receive window: out-of-order segments wait here until the application reads.
#[derive(Debug)]
pub struct RecvBuffer {
    next: Seq,
    window: u32,
    /// The ring: up to `window` slots (grown on demand), none while nothing is stored.
    slots: Vec<Option<Vec<u8>>>,
    /// Slots in use.
    stored: usize,
    /// First number not yet received (`next` or beyond): everything below it is held.
    contiguous: Seq,
    /// Bytes already read from the slot at `next`.
    offset: usize,
    buffered: usize,
    pool: Vec<Vec<u8>>,
}

impl RecvBuffer {
    /// A window of `window` segments starting at number 0.
    pub fn new(window: u32) -> RecvBuffer {
        let window = window.max(1);
        RecvBuffer {
            next: Seq::ZERO,
            window,
            slots: Vec::new(),
            stored: 0,
            contiguous: Seq::ZERO,
            offset: 0,
            buffered: 0,
            pool: Vec::new(),
        }
    }

    /// Next number the application will read (V2Ray's `receivingNext`).
    pub fn next(&self) -> Seq {
        self.next
    }

    /// First number not yet received: every segment below it is held (read or
    /// waiting to be read), so it can be acknowledged cumulatively.
    pub fn contiguous(&self) -> Seq {
        self.contiguous
    }

    /// Window size in segments.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// First number beyond the window (V2Ray's `receivingWindow`, absolute).
    pub fn window_end(&self) -> Seq {
        self.next + self.window
    }

    /// Payload bytes held (received, not yet read).
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    fn slot(&self, number: Seq) -> usize {
        number.ring_slot(self.slots.len().max(1) as u32)
    }

    /// True when `number` (inside the window) has a slot in the ring as it is.
    fn in_ring(&self, number: Seq) -> bool {
        (self.next.distance_to(number) as usize) < self.slots.len()
    }

    /// Grows the ring so that it covers `need` numbers from `next`, moving what it holds.
    fn grow(&mut self, need: usize) {
        const FIRST: usize = 16;
        let len = self.slots.len();
        let new_len = (len * 2).max(FIRST).max(need).min(self.window as usize);
        let mut ring: Vec<Option<Vec<u8>>> = (0..new_len).map(|_| None).collect();
        for k in 0..len as u32 {
            let number = self.next + k;
            if let Some(buf) = self.slots[number.ring_slot(len as u32)].take() {
                ring[number.ring_slot(new_len as u32)] = Some(buf);
            }
        }
        self.slots = ring;
    }

    /// Classifies `number` against the window without storing anything.
    pub fn classify(&self, number: Seq) -> Accept {
        let idx = self.next.distance_to(number);
        if idx < self.window {
            if self.in_ring(number) && self.slots[self.slot(number)].is_some() {
                Accept::Duplicate
            } else {
                Accept::Stored
            }
        } else if self.next.at_or_after(number) {
            Accept::Old
        } else {
            Accept::OutOfWindow
        }
    }

    /// Offers a Data segment; stores the payload if it is new and inside the window.
    pub fn accept(&mut self, number: Seq, payload: &[u8]) -> Accept {
        let verdict = self.classify(number);
        if verdict == Accept::Stored {
            if !self.in_ring(number) {
                self.grow(self.next.distance_to(number) as usize + 1);
            }
            let mut buf = self.pool.pop().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(payload);
            self.buffered += payload.len();
            let s = self.slot(number);
            self.slots[s] = Some(buf);
            self.stored += 1;
            while self.in_ring(self.contiguous) && self.slots[self.slot(self.contiguous)].is_some()
            {
                self.contiguous = self.contiguous.next();
            }
        }
        verdict
    }

    /// True when the segment at `next` is present (a read would return data).
    pub fn readable(&self) -> bool {
        self.slots
            .get(self.slot(self.next))
            .is_some_and(Option::is_some)
    }

    /// Gives spare memory back: the payload pool keeps at most `keep` buffers, and
    /// the ring itself goes while it holds nothing.
    pub fn trim(&mut self, keep: usize) {
        self.pool.truncate(keep);
        self.pool.shrink_to_fit();
        if self.stored == 0 {
            self.slots = Vec::new();
        }
    }

    /// Copies in-order bytes into `out`; returns how many. Advances `next` past every
    /// fully read segment.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let s = self.slot(self.next);
            let Some(seg) = self.slots.get(s).and_then(Option::as_ref) else {
                break;
            };
            let avail = &seg[self.offset..];
            let take = avail.len().min(out.len() - n);
            out[n..n + take].copy_from_slice(&avail[..take]);
            n += take;
            self.offset += take;
            self.buffered -= take;
            if self.offset == seg.len() {
                self.stored -= 1;
                if let Some(buf) = self.slots[s].take() {
                    // At most one window of buffers: what the window holds anyway.
                    if self.pool.len() < self.window as usize {
                        self.pool.push(buf);
                    }
                }
                self.offset = 0;
                self.next = self.next.next();
            }
        }
        n
    }
}

/// Our ack list: every arrival is queued and sent on the next transmit opportunity,
/// then repeated once in a later ack while it is still above the cumulative point
/// (so one lost ack does not cause a spurious retransmission). Bounded: beyond `cap`
/// pending numbers new arrivals are not acked individually (the sender retransmits
/// them and they are acked then).
#[derive(Debug)]
pub struct AckList {
    pending: Vec<(Seq, WireTime)>,
    repeat: std::collections::VecDeque<Seq>,
    cap: usize,
}

impl AckList {
    /// An empty list holding at most `cap` numbers.
    pub fn new(cap: usize) -> AckList {
        AckList {
            pending: Vec::new(),
            repeat: std::collections::VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Queues `(number, timestamp)` for acknowledgement.
    pub fn add(&mut self, number: Seq, timestamp: WireTime) {
        if self.pending.len() < self.cap {
            self.pending.push((number, timestamp));
        }
    }

    /// Gives spare capacity back (nothing pending is lost).
    pub fn trim(&mut self) {
        self.pending.shrink_to_fit();
        self.repeat.shrink_to_fit();
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes up to `max` numbers into `out`: first-time ones (oldest first), then
    /// repeats of earlier ones that are not below `cumulative` (the receiver's next
    /// expected number, which acknowledges everything below it anyway). Returns the
    /// timestamp to echo: the latest (wrap-aware) of the first-time numbers. `out`
    /// is the wire list of an Ack segment.
    pub fn take(&mut self, max: usize, cumulative: Seq, out: &mut Vec<u32>) -> WireTime {
        let n = max.min(self.pending.len());
        let mut ts: Option<WireTime> = None;
        for &(num, t) in &self.pending[..n] {
            out.push(num.get());
            ts = Some(match ts {
                None => t,
                Some(cur) if t.v2ray_not_older(cur) => t,
                Some(cur) => cur,
            });
        }
        while out.len() < max {
            let Some(num) = self.repeat.pop_front() else {
                break;
            };
            if num.at_or_after(cumulative) {
                out.push(num.get());
            }
        }
        for &(num, _) in &self.pending[..n] {
            if self.repeat.len() < self.cap {
                self.repeat.push_back(num);
            }
        }
        self.pending.drain(..n);
        ts.unwrap_or(WireTime::ZERO)
    }
}

/// One Ack segment's worth of numbers produced by [`V2rayAckList::flush`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckBatch {
    /// Numbers in send order (the Ack segment's wire list).
    pub numbers: Vec<u32>,
    /// Timestamp to echo.
    pub timestamp: WireTime,
}

#[derive(Clone, Copy, Debug)]
struct V2rayAckEntry {
    number: Seq,
    timestamp: WireTime,
    next_flush: WireTime,
}

/// V2Ray's ack list (PROTOCOL.md §3.11 "Ack flush"): entries are re-sent every
/// `max(rto/2, 20)` ms until the peer's `sendingNext` passes them. Used in
/// `v2ray_compat` mode. Unlike V2Ray's, it is bounded (`cap` entries).
#[derive(Debug)]
pub struct V2rayAckList {
    entries: Vec<V2rayAckEntry>,
    dirty: bool,
    cap: usize,
}

/// Most numbers V2Ray puts in one Ack segment.
pub const V2RAY_ACK_BATCH: usize = 128;

impl V2rayAckList {
    /// An empty list bounded to `cap` entries.
    pub fn new(cap: usize) -> V2rayAckList {
        V2rayAckList {
            entries: Vec::new(),
            dirty: false,
            cap: cap.max(1),
        }
    }

    /// Appends an entry (duplicates kept, as V2Ray does).
    pub fn add(&mut self, number: Seq, timestamp: WireTime) {
        if self.entries.len() < self.cap {
            self.entries.push(V2rayAckEntry {
                number,
                timestamp,
                next_flush: WireTime::ZERO,
            });
            self.dirty = true;
        }
    }

    /// Drops entries below the peer's `sendingNext` (plain comparison, as V2Ray).
    pub fn clear(&mut self, una: Seq) {
        let before = self.entries.len();
        self.entries.retain(|e| e.number.v2ray_at_or_above(una));
        if self.entries.len() != before {
            self.dirty = true;
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Runs V2Ray's ack flush at `now` with the current `rto`; returns the Ack
    /// segments to send, each with at most `batch` numbers (V2Ray: 128).
    pub fn flush(&mut self, now: WireTime, rto: u32, batch: usize) -> Vec<AckBatch> {
        let batch = batch.clamp(1, 255);
        let mut out = Vec::new();
        let mut cur = AckBatch {
            numbers: Vec::new(),
            timestamp: WireTime::ZERO,
        };
        let mut candidates: Vec<Seq> = Vec::new();
        let interval = (rto / 2).max(20);
        for e in self.entries.iter_mut() {
            if e.next_flush.v2ray_above(now) {
                if candidates.len() < batch {
                    candidates.push(e.number);
                }
                continue;
            }
            cur.numbers.push(e.number.get());
            if e.timestamp.v2ray_not_older(cur.timestamp) {
                cur.timestamp = e.timestamp;
            }
            e.next_flush = now + interval;
            if cur.numbers.len() == batch {
                out.push(std::mem::replace(
                    &mut cur,
                    AckBatch {
                        numbers: Vec::new(),
                        timestamp: WireTime::ZERO,
                    },
                ));
                self.dirty = false;
            }
        }
        if self.dirty || !cur.numbers.is_empty() {
            for c in candidates {
                if cur.numbers.len() >= batch {
                    break;
                }
                cur.numbers.push(c.get());
            }
            out.push(cur);
            self.dirty = false;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::seq::test_util::{ms, n};
    use super::*;

    #[test]
    fn out_of_order_segments_are_reassembled_in_order() {
        let mut r = RecvBuffer::new(8);
        assert_eq!(r.accept(n(1), b"world"), Accept::Stored);
        assert!(!r.readable());
        assert_eq!(r.accept(n(0), b"hello "), Accept::Stored);
        assert_eq!(r.accept(n(0), b"hello "), Accept::Duplicate);
        let mut out = [0u8; 32];
        let len = r.read(&mut out);
        assert_eq!(&out[..len], b"hello world");
        assert_eq!(r.next(), n(2));
        assert_eq!(r.accept(n(1), b"world"), Accept::Old);
        assert_eq!(r.accept(n(10), b"x"), Accept::OutOfWindow);
    }

    #[test]
    fn short_reads_keep_the_rest_for_the_next_read() {
        let mut r = RecvBuffer::new(4);
        r.accept(n(0), b"abcdef");
        let mut out = [0u8; 4];
        assert_eq!(r.read(&mut out), 4);
        assert_eq!(r.next(), n(0));
        assert_eq!(r.read(&mut out), 2);
        assert_eq!(&out[..2], b"ef");
        assert_eq!(r.next(), n(1));
        assert_eq!(r.buffered_bytes(), 0);
    }

    #[test]
    fn window_wraps_around_u32() {
        let mut r = RecvBuffer::new(4);
        r.next = n(u32::MAX - 1);
        assert_eq!(r.accept(n(u32::MAX), b"b"), Accept::Stored);
        assert_eq!(r.accept(n(0), b"c"), Accept::Stored);
        assert_eq!(r.accept(n(u32::MAX - 1), b"a"), Accept::Stored);
        let mut out = [0u8; 8];
        assert_eq!(r.read(&mut out), 3);
        assert_eq!(&out[..3], b"abc");
        assert_eq!(r.next(), n(1));
    }

    #[test]
    fn ack_list_is_bounded_and_echoes_latest_timestamp() {
        let mut a = AckList::new(3);
        a.add(n(1), ms(0xFFFF_FFF0));
        a.add(n(2), ms(5)); // wrapped: later than 0xFFFF_FFF0
        a.add(n(3), ms(2));
        a.add(n(4), ms(6)); // over the cap
        assert_eq!(a.pending.len(), 3);
        let mut out = Vec::new();
        assert_eq!(a.take(10, n(0), &mut out), ms(5));
        assert_eq!(out, vec![1, 2, 3]);
        // Each number is repeated once in a later ack, unless cumulatively covered.
        a.add(n(9), ms(7));
        out.clear();
        a.take(10, n(2), &mut out);
        assert_eq!(out, vec![9, 2, 3]);
        out.clear();
        a.take(10, n(0), &mut out);
        assert_eq!(out, vec![9]);
        out.clear();
        a.take(10, n(0), &mut out);
        assert!(out.is_empty());
    }
}
