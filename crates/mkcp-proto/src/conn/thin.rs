//! Thin streams: a redundant copy of each segment of a small tail (issue 12 item 2).
//!
//! A lost segment is found from later acknowledgements (time-based detection) or, with
//! nothing sent after it, only by the retransmission timeout: an interactive message
//! (a keystroke, a 64-byte request) that loses its only datagram waits one RTO, and a
//! round trip at 2 % loss each way has a 4 % chance of that, which is the p99 of such
//! a stream. Probes after 1-2 RTTs (tail-loss probes, early retransmit) still cost a
//! round trip at least. So while the stream is thin (at most [`THIN_SEGMENTS`]
//! segments outstanding, sent or queued, after this one), every data segment we send
//! is sent again in the next datagram: it is lost only if both are (0.04 % at 2 %
//! random loss). A thin stream therefore spends at most twice its data bytes (plus a
//! small ack per copy datagram); a bulk stream, with more than a handful of segments
//! outstanding, never duplicates. Only for our own sender; the receiver, ours or
//! V2Ray's, takes the second copy for a duplicate and acknowledges it again (which also
//! makes a lost acknowledgement harmless).
//!
//! The same mechanism repairs the losses that stall a bulk stream: a retransmission
//! that, lost too, would let the window fill before its next retransmission is
//! acknowledged (see `left_edge_retransmission`) is sent twice as well
//! ([`crate::Tuning::retransmission_copies`]).

use super::seq::Seq;
use super::Connection;
use crate::wire::segment::{DataSegment, Segment, DATA_HEADER_LEN};

/// A stream with at most this many segments outstanding (in flight plus queued) is
/// thin: its segments are sent twice.
pub(crate) const THIN_SEGMENTS: usize = 4;

/// Copies owed for segments sent in earlier datagrams (filled while one datagram is
/// written, taken by the next).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Thin {
    /// Segments sent in the datagram being written, to be copied in a later one.
    numbers: [Seq; THIN_SEGMENTS],
    len: usize,
    /// Bit `i`: copy `i` repairs a retransmission (else it is a thin stream's).
    repair: u8,
    /// The datagram with the originals also carried an acknowledgement: the copy's
    /// datagram repeats it (else a lost original would also lose the ack).
    with_ack: bool,
    /// Some of these copies found no room in one datagram already: they get one more,
    /// not a third (the ack they ask for could otherwise take the room each time, and
    /// every datagram would be an ack that leaves the copy for the next).
    deferred: bool,
}

impl Thin {
    /// Whether copies are owed.
    pub(super) fn is_pending(&self) -> bool {
        self.len > 0
    }

    fn record(&mut self, number: Seq, with_ack: bool, repair: bool) {
        if self.len < THIN_SEGMENTS && !self.numbers[..self.len].contains(&number) {
            self.numbers[self.len] = number;
            self.repair |= u8::from(repair) << self.len;
            self.len += 1;
            self.with_ack |= with_ack;
        }
    }
}

impl Connection {
    /// The copies owed by earlier datagrams, taken for this one; asks for an ack to go
    /// with them if the originals carried one.
    pub(super) fn take_thin_copies(&mut self) -> Thin {
        let t = std::mem::take(&mut self.thin);
        if t.with_ack && t.is_pending() {
            self.due.ack = true;
        }
        t
    }

    /// After `number` was transmitted in the datagram being written: records it for a
    /// copy if the stream is thin. `with_ack`: the datagram carries an acknowledgement.
    pub(super) fn after_data_sent(&mut self, number: Seq, with_ack: bool) {
        if let Some(budget) = self.send_budget() {
            // An unproven peer's reply that its small budget cut short (see
            // `unproven_reply_len`) goes twice: its loss would wait for more budget.
            let first = self.send.get(number).is_some_and(|s| s.transmit == 1);
            if first && budget < 2 * self.p.mtu {
                self.thin.record(number, with_ack, false);
            }
            return;
        }
        let queued = self.send.queued();
        // Thin: little outstanding and the application not waiting for buffer space
        // (a bulk stream whose window is full of acknowledged segments behind a hole
        // has little in flight too).
        let thin = self.send.in_flight() + queued <= THIN_SEGMENTS && !self.close.write_blocked;
        if self.p.thin_copies && thin {
            self.thin.record(number, with_ack, false);
        } else if self.p.repair_copies && self.left_edge_retransmission(number) {
            self.thin.record(number, with_ack, true);
        }
    }

    /// `number` was just retransmitted, and should this copy be lost too, the window
    /// would fill before the next retransmission is acknowledged: that takes two more
    /// loss-detection delays (a round trip plus the reordering window, about 1.25 round
    /// trips: detection, then the repair), in which the sender moves on by that many
    /// bandwidth-delay products. A lost retransmission is what stalls a long lossy
    /// link (the left edge stays put while the window fills), so such retransmissions
    /// are sent twice: one copy per loss at most, none where the window has room.
    fn left_edge_retransmission(&self, number: Seq) -> bool {
        let Some(seg) = self.send.get(number) else {
            return false;
        };
        // How far sending has moved on since `number` (not what is merely queued).
        let ahead = number.distance_to(self.send.unsent()) as usize;
        let window = self
            .p
            .send_buffer_segments
            .min(self.send.una().distance_to(self.peer.end) as usize);
        let bdp = self.cc.rate.bdp() / self.p.mss as u64;
        // Only while acknowledgements flow (the loss was found from later ones): not
        // a timeout's probe, nor anything for a peer that has gone quiet.
        let recent = u64::from(self.rtt.srtt().max(1)) * 1000;
        seg.transmit > 1
            && self.unanswered_rto().is_none()
            && self.now_us.saturating_sub(self.times.progress_us) < recent
            && ahead as u64 + bdp * 5 / 2 > window as u64
    }

    /// Writes `copies` (of segments still unacknowledged) from `w` on, with their
    /// original timestamps. Returns the new length.
    pub(super) fn write_thin_copies(
        &mut self,
        t: u64,
        buf: &mut [u8],
        mut w: usize,
        copies: &Thin,
    ) -> usize {
        let rate = self.cc.rate.pacing_rate();
        for (i, &number) in copies.numbers[..copies.len].iter().enumerate() {
            let Some(seg) = self.send.get(number) else {
                continue;
            };
            if seg.acked || seg.lost || seg.payload.is_empty() {
                continue;
            }
            let len = seg.payload.len();
            if buf.len() - w < DATA_HEADER_LEN + len {
                // Acks or a hello took the room: the copy goes in the next datagram
                // rather than not at all (towards V2Ray the repair copies buy a fifth
                // of goodput at 100 ms / 5 %), once. One that an empty datagram cannot
                // hold is dropped.
                if w > 0 && !copies.deferred {
                    self.thin
                        .record(number, copies.with_ack, copies.repair & (1 << i) != 0);
                    self.thin.deferred = true;
                }
                continue;
            }
            let d = Segment::Data(DataSegment {
                conv: self.conv,
                option: self.option(),
                timestamp: seg.timestamp.get(),
                number: number.get(),
                sending_next: self.send.una().get(),
                payload: &seg.payload,
            });
            if !Self::emit(buf, &mut w, &d) {
                break;
            }
            self.cc
                .pacer
                .on_send(t, len + DATA_HEADER_LEN, rate, self.p.mtu);
            self.stats.data_segments_sent += 1;
            self.stats.redundant_segments += 1;
            if copies.repair & (1 << i) != 0 {
                self.stats.retransmission_copies += 1;
            }
        }
        w
    }
}
