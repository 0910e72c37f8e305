//! Receiving from V2Ray's sender: the window we advertise paces it.
//!
//! V2Ray's sender has no congestion control by default. Each flush (one per TTI while
//! busy) it sends every segment that is due, up to 20 times its window, and its window
//! is `remoteNextNumber - firstUna`, where `remoteNextNumber` is the largest window end
//! any ack advertised (PROTOCOL.md §3.10 "sending flush", §5 item 27). So the window end we
//! advertise, measured from the point below which everything has arrived (which is
//! V2Ray's `firstUna` once it has our ack), caps what it may send per flush: 20 × K
//! segments for an end `contiguous + K`. Left alone it dumps its whole buffer into the
//! bottleneck queue every RTO and most of it is dropped (mkcp bench: 2-5 times the
//! payload on the wire).
//!
//! The shaper measures how many new segments arrive per TTI (a windowed maximum over
//! the last [`FILTER`] TTIs, the delivery rate as BBR measures it) and advertises K for
//! that rate times a gain: 2 while the rate still grows (startup), then a cycle of
//! 1.25, 0.75 and six times 1 (probing for more, then draining the queue it built).
//! The advertised end never moves backwards (V2Ray keeps the largest anyway), never
//! beyond our real receive window, and K is at least 1: 20 segments per flush is the
//! finest step V2Ray's rule allows.
//!
//! With a user-set cap (`Tuning::max_send_rate`), K is at most the cap's segments per TTI
//! divided by 20 (rounded, at least 1), without gain: the window then holds V2Ray at the
//! cap in steps of 20 segments per TTI.
//!
//! Only for V2Ray peers: an mkcp sender treats the window as a hard limit on what is in
//! flight, so the connection keeps advertising its real window once the peer has said
//! it is mkcp ([`super::CMD_HELLO`]).

use super::seq::Seq;

/// TTIs over which the arrival rate is the maximum.
pub(crate) const FILTER: usize = 10;
/// V2Ray's flush may send this many segments per segment of window.
const V2RAY_FLUSH_FACTOR: u32 = 20;
/// Gain while the rate still grows.
const STARTUP_GAIN: f64 = 2.0;
/// Gains of the steady cycle, one per TTI.
const CYCLE: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// Startup ends when the rate grew less than this over [`STARTUP_ROUNDS`] TTIs.
const STARTUP_GROWTH: f64 = 1.25;
const STARTUP_ROUNDS: u32 = 3;

/// The pacing state of a V2Ray sender, kept by the receiving connection.
#[derive(Clone, Debug)]
pub(crate) struct Shaper {
    tti_us: u64,
    interval_start_us: Option<u64>,
    /// New segments that arrived in the current TTI.
    count: u32,
    /// Arrivals of the last `FILTER` TTIs.
    samples: [u32; FILTER],
    next_sample: usize,
    startup: bool,
    /// The rate startup last saw grow, and TTIs since.
    full_rate: u32,
    full_rounds: u32,
    cycle: usize,
    /// The last end advertised.
    end: Option<Seq>,
    /// Most window segments to advertise beyond the contiguous point (a user-set cap).
    max_k: Option<u32>,
}

impl Shaper {
    /// A shaper for a peer that flushes every `tti_ms`.
    pub(crate) fn new(tti_ms: u32) -> Shaper {
        Shaper {
            tti_us: u64::from(tti_ms.max(1)) * 1000,
            interval_start_us: None,
            count: 0,
            samples: [0; FILTER],
            next_sample: 0,
            startup: true,
            full_rate: 0,
            full_rounds: 0,
            cycle: 0,
            end: None,
            max_k: None,
        }
    }

    /// Caps the rate the window lets through at `bytes_per_sec`, for a sender whose
    /// data segments are `segment_bytes` long (payload and segment header).
    pub(crate) fn set_max_rate(&mut self, bytes_per_sec: u64, segment_bytes: u32) {
        let per_tti =
            bytes_per_sec as f64 * self.tti_us as f64 / 1e6 / f64::from(segment_bytes.max(1));
        self.max_k = Some((per_tti / f64::from(V2RAY_FLUSH_FACTOR)).round().max(1.0) as u32);
    }

    /// A new data segment (not a duplicate) arrived at `t` (µs).
    pub(crate) fn on_arrival(&mut self, t: u64) {
        self.roll(t);
        self.count = self.count.saturating_add(1);
    }

    /// Closes the TTIs that ended by `t`.
    fn roll(&mut self, t: u64) {
        let Some(start) = self.interval_start_us else {
            self.interval_start_us = Some(t);
            return;
        };
        let elapsed = t.saturating_sub(start) / self.tti_us;
        if elapsed == 0 {
            return;
        }
        // A long silence: every interval in between had no arrival.
        let closed = elapsed.min(FILTER as u64 + 1) as usize;
        for i in 0..closed {
            let n = if i == 0 { self.count } else { 0 };
            self.close_interval(n);
        }
        self.count = 0;
        self.interval_start_us = Some(start + elapsed * self.tti_us);
    }

    fn close_interval(&mut self, arrivals: u32) {
        self.samples[self.next_sample] = arrivals;
        self.next_sample = (self.next_sample + 1) % FILTER;
        self.cycle = (self.cycle + 1) % CYCLE.len();
        if self.startup {
            let rate = self.rate();
            if f64::from(rate) >= f64::from(self.full_rate) * STARTUP_GROWTH {
                self.full_rate = rate;
                self.full_rounds = 0;
            } else {
                self.full_rounds += 1;
                if self.full_rounds >= STARTUP_ROUNDS {
                    self.startup = false;
                    self.cycle = 0;
                }
            }
        }
    }

    /// Segments per TTI the path delivered lately (windowed maximum).
    fn rate(&self) -> u32 {
        self.samples
            .iter()
            .copied()
            .max()
            .unwrap_or(0)
            .max(self.count)
    }

    /// The window end to advertise at `t`, given the first number not yet received
    /// and the end of our real receive window.
    pub(crate) fn window_end(&mut self, t: u64, contiguous: Seq, limit: Seq) -> Seq {
        self.roll(t);
        let gain = if self.startup {
            STARTUP_GAIN
        } else {
            CYCLE[self.cycle]
        };
        let mut k = ((f64::from(self.rate()) * gain) / f64::from(V2RAY_FLUSH_FACTOR)).ceil() as u32;
        if let Some(max) = self.max_k {
            k = k.min(max);
        }
        let mut end = contiguous + k.max(1);
        if limit.before(end) {
            end = limit;
        }
        if let Some(prev) = self.end {
            if end.before(prev) {
                end = prev;
            }
        }
        self.end = Some(end);
        end
    }
}

#[cfg(test)]
mod tests {
    use super::super::seq::test_util::n;
    use super::*;

    #[test]
    fn the_window_follows_the_arrival_rate() {
        let mut s = Shaper::new(50);
        // 100 segments per 50 ms for a second.
        for i in 0..2000u64 {
            s.on_arrival(i * 500);
        }
        let k = n(5000).distance_to(s.window_end(1_000_000, n(5000), n(100_000)));
        // 100 per TTI with a gain between 0.75 and 2, 20 per window segment.
        assert!((4..=10).contains(&k), "k = {k}");
    }

    #[test]
    fn the_end_never_moves_back_and_stays_in_the_real_window() {
        let mut s = Shaper::new(50);
        let a = s.window_end(0, n(100), n(10_000));
        let b = s.window_end(1000, n(90), n(10_000));
        assert!(!b.before(a));
        let c = s.window_end(2000, n(200), n(150));
        assert_eq!(c.get(), 150.max(b.get()));
    }

    #[test]
    fn a_cap_bounds_the_window_whatever_the_arrival_rate() {
        let mut s = Shaper::new(50);
        // 2 MiB/s of 1346-byte segments: 77.9 per 50 ms, 20 per window segment.
        s.set_max_rate(2 << 20, 1346);
        for i in 0..20_000u64 {
            s.on_arrival(i * 50);
        }
        assert_eq!(
            n(5000).distance_to(s.window_end(1_000_000, n(5000), n(100_000))),
            4
        );
    }

    #[test]
    fn at_least_one_segment_of_window() {
        let mut s = Shaper::new(50);
        assert_eq!(s.window_end(0, n(7), n(1000)), n(8));
    }
}
