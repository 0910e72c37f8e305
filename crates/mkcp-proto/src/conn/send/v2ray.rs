//! V2Ray's own send algorithm on the same buffer, for `v2ray_compat` mode (PROTOCOL.md
//! §3.10): due times per segment, a flush that sends every due segment oldest first,
//! and the `timeout -= rto/3` fast-ack nudge. It reproduces the `trace_sending_window`
//! vector; mkcp's own sender does not use it.

use super::super::seq::{Seq, WireTime};
use super::SendBuffer;

/// A segment written by [`SendBuffer::flush_v2ray`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2raySent {
    /// Segment number.
    pub number: Seq,
    /// Wire timestamp.
    pub timestamp: WireTime,
    /// Transmission count after this one.
    pub transmit: u32,
    /// New absolute timeout.
    pub timeout: WireTime,
}

impl SendBuffer {
    /// V2Ray's send flush (PROTOCOL.md §3.10 step 2): transmits every due segment, oldest
    /// first, at most `max` of them. Returns the segments written and the loss rate
    /// reported to congestion control (if any).
    pub fn flush_v2ray(
        &mut self,
        now: WireTime,
        rto: u32,
        max: usize,
        out: &mut Vec<V2raySent>,
    ) -> Option<u32> {
        let mut lost = 0u32;
        let mut count = 0;
        for i in 0..self.segs.len() {
            if count >= max {
                break;
            }
            let number = self.una + i as u32;
            let seg = &mut self.segs[i];
            if seg.acked || now.v2ray_not_due(seg.timeout) {
                continue;
            }
            if seg.transmit == 0 {
                self.total_in_flight = self.total_in_flight.saturating_add(1);
                self.in_flight += 1;
                self.in_flight_bytes += seg.len as usize;
                if number == self.unsent {
                    self.unsent = self.unsent.next();
                }
            } else {
                lost += 1;
            }
            seg.timeout = now + rto;
            seg.timestamp = now;
            seg.transmit += 1;
            out.push(V2raySent {
                number,
                timestamp: now,
                transmit: seg.transmit,
                timeout: seg.timeout,
            });
            count += 1;
        }
        (count > 0 && self.total_in_flight != 0).then(|| lost * 100 / self.total_in_flight)
    }

    /// V2Ray's fast-ack nudge: every sent segment before `maxack` has its due time
    /// moved `rto/3` earlier (PROTOCOL.md §3.10 ack processing step 5).
    pub fn fast_ack_v2ray(&mut self, maxack: Seq, rto: u32) {
        let step = rto / 3;
        for i in 0..self.segs.len() {
            let number = self.una + i as u32;
            if !number.before(maxack) {
                break;
            }
            let seg = &mut self.segs[i];
            if seg.acked {
                continue;
            }
            if seg.transmit > 0 {
                seg.timeout = seg.timeout.v2ray_earlier_by(step);
            }
        }
    }
}
