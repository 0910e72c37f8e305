//! RTT estimator and retransmission timeout (PROTOCOL.md §3.9).
//!
//! The arithmetic is V2Ray's (RFC 6298 style, integer, truncating), so the vectors of
//! category `rtt` reproduce step by step. Two deliberate differences, both named:
//! the RTO is never below `min_rto` (V2Ray lets a 0 ms first sample give an RTO of 0),
//! and a peer's RTO is only adopted within `[min_rto, max_rto]`.

use super::seq::{negative, WireTime};

/// Smoothed RTT, its variation and the resulting RTO, in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    srtt: u32,
    variation: u32,
    rto: u32,
    min_rtt: u32,
    updated_at: WireTime,
    min_rto: u32,
    max_rto: u32,
}

/// RTO before any sample (ms).
pub const INITIAL_RTO: u32 = 100;

impl RttEstimator {
    /// A fresh estimator: rto 100 ms, srtt unknown. `min_rtt` is V2Ray's floor (the
    /// TTI); `min_rto`/`max_rto` bound what we use (pass 0 and `u32::MAX` for V2Ray's
    /// exact arithmetic).
    pub fn new(min_rtt: u32, min_rto: u32, max_rto: u32) -> RttEstimator {
        RttEstimator {
            srtt: 0,
            variation: 0,
            rto: INITIAL_RTO.clamp(min_rto, max_rto.max(min_rto)),
            min_rtt,
            updated_at: WireTime::ZERO,
            min_rto,
            max_rto: max_rto.max(min_rto),
        }
    }

    /// Feeds one RTT sample taken at connection time `now` (ms).
    pub fn update(&mut self, sample: u32, now: WireTime) {
        if negative(sample) {
            return;
        }
        if self.srtt == 0 {
            self.srtt = sample;
            self.variation = sample / 2;
        } else {
            let delta = sample.abs_diff(self.srtt);
            self.variation = ((3 * u64::from(self.variation) + u64::from(delta)) / 4) as u32;
            self.srtt = ((7 * u64::from(self.srtt) + u64::from(sample)) / 8) as u32;
            if self.srtt < self.min_rtt {
                self.srtt = self.min_rtt;
            }
        }
        let var4 = self.variation.saturating_mul(4);
        let x = if self.min_rtt < var4 {
            self.srtt.saturating_add(var4)
        } else {
            self.srtt.saturating_add(self.variation)
        };
        let x = x.min(10_000);
        self.rto = (x * 5 / 4).clamp(self.min_rto, self.max_rto);
        self.updated_at = now;
    }

    /// Adopts the peer's RTO if ours has not changed for 3000 ms (PROTOCOL.md §3.7 step 5).
    /// Values outside `[min_rto, max_rto]` are implausible and ignored.
    pub fn update_peer_rto(&mut self, peer_rto: u32, now: WireTime) {
        if now.since(self.updated_at) >= 3000
            && now.at_or_after(self.updated_at)
            && (self.min_rto..=self.max_rto).contains(&peer_rto)
        {
            self.rto = peer_rto;
            self.updated_at = now;
        }
    }

    /// Current retransmission timeout (ms).
    pub fn rto(&self) -> u32 {
        self.rto
    }

    /// Smoothed RTT (ms); 0 before the first non-zero sample.
    pub fn srtt(&self) -> u32 {
        self.srtt
    }

    /// RTT variation (ms).
    pub fn variation(&self) -> u32 {
        self.variation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rto_is_never_zero_even_after_a_zero_first_sample() {
        let mut r = RttEstimator::new(20, 30, 12_500);
        r.update(0, WireTime::from(10));
        assert_eq!(r.rto(), 30);
    }

    #[test]
    fn implausible_peer_rto_is_ignored() {
        let mut r = RttEstimator::new(50, 30, 12_500);
        r.update_peer_rto(0, WireTime::from(5000));
        assert_eq!(r.rto(), 100);
        r.update_peer_rto(1_000_000, WireTime::from(5000));
        assert_eq!(r.rto(), 100);
        r.update_peer_rto(400, WireTime::from(5000));
        assert_eq!(r.rto(), 400);
    }
}
