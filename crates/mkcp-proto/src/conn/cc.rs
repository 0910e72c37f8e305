//! Rate-based congestion control and pacing (our improvement, PROTOCOL.md §6 "pacing").
//!
//! V2Ray sends up to 20 × window segments per TTI and lets the bottleneck drop the
//! excess (PROTOCOL.md §5 item 27). We instead estimate the path's bottleneck bandwidth and
//! minimum RTT from acknowledgements (the model of BBR: a windowed max of delivery-rate
//! samples and a windowed min of RTT samples), pace transmissions at that rate, and cap
//! data in flight at a small multiple of the bandwidth-delay product. Random loss does
//! not shrink the estimate, so a 2 % lossy link still runs at its capacity.
//!
//! A user-set cap (`Tuning::max_send_rate`, docs/DESIGN.md "Rate limits") bounds the pacing
//! rate only: the model still measures the path, and with a cap every data segment goes
//! through the pacer, also before the first rate sample.
//!
//! All times are microseconds on the connection clock; rates are bytes per second.

/// Phase of the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Exponential probing for the bottleneck bandwidth.
    Startup,
    /// Draining the queue built during startup.
    Drain,
    /// Steady state: cycle the pacing gain around 1 to probe for more bandwidth.
    ProbeBw,
}

const STARTUP_GAIN: f64 = 2.885;
/// The window, in estimated BDPs, in every phase, startup included (BBRv3's choice):
/// what the path holds when its bottleneck queue is one BDP deep. Startup's window was
/// its pacing gain (2.885 BDPs); as the estimate trails the rate startup sends at, each
/// startup then pushed almost a BDP more into a full queue for a round before it ended
/// (on the 100 ms / 5 % / 20 Mbit/s link with a one-BDP queue: 240-420 datagrams
/// dropped at the queue for one upload, 2.5-3.3 % of four uploads' first 10 s).
/// Towards a peer that acks once per TTI, startup keeps the window of its pacing gain
/// (its estimate trails by a TTI more; with two BDPs mkcp -> V2Ray at 100 ms lost 2-4 %
/// over 8 link seeds in simulation).
const CWND_GAIN: f64 = 2.0;
/// A round of startup in which at least this many segments were declared lost ...
const STARTUP_LOSS_EVENTS: u64 = 16;
/// ... and at least this share (percent) of its segments, while the RTT shows a queue,
/// overflowed the bottleneck: startup ends. Random loss comes without a queue, so a
/// lossy link's startup runs on (on the 100 ms / 5 % link it lost a second burst at
/// the queue a second after the first, as its rounds kept growing).
const STARTUP_LOSS_PERCENT: u64 = 15;
const BW_ROUNDS: usize = 10;
const MIN_RTT_WINDOW_US: u64 = 10_000_000;
const PROBE_GAINS: [f64; 8] = [1.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
/// The probing phase paces this many segments per round trip above its gain: the
/// same for every flow, so flows that share a bottleneck converge (an increase by a
/// share of each estimate keeps the shares the flows had when they left startup).
const PROBE_FLOOR_SEGMENTS: u64 = 8;
/// With a cap, an estimate at or above this share of it (percent) counts as "the path
/// carries the cap": pacing at the cap holds the delivery-rate samples at the cap (they
/// count payload, the pacer also counts segment headers, so they come out a little
/// below it), and probing above it or draining below it would only lose rate.
const CAP_REACHED_PERCENT: u64 = 95;

/// Bottleneck bandwidth / min-RTT model with pacing gains.
#[derive(Clone, Debug)]
pub struct RateControl {
    mss: u64,
    bw_rounds: [u64; BW_ROUNDS],
    round: u64,
    next_round_delivered: u64,
    min_rtt_us: u64,
    min_rtt_at: u64,
    phase: Phase,
    full_bw: u64,
    full_bw_rounds: u32,
    cycle: usize,
    cycle_start: u64,
    min_cwnd_segments: u64,
    /// How long the peer may hold an acknowledgement (µs): V2Ray acks in its flush,
    /// once per TTI, so its acks come in bursts and the round trip a sender sees is
    /// the path's plus up to one TTI.
    ack_delay_us: u64,
    /// Delivery-rate samples of segments sent before the delivered counter reached
    /// this were taken while the application had nothing more to send (BBR's
    /// "app-limited"): they measure the application, not the path.
    app_limited_until: u64,
    /// Smallest RTT sample of the current round (µs; `u64::MAX`: none yet).
    round_min_rtt_us: u64,
    /// User-set ceiling of the pacing rate (bytes/s).
    max_rate: Option<u64>,
    /// The latest RTT sample (µs).
    last_rtt_us: u64,
    /// Segments declared lost in the current round.
    round_lost: u64,
}

/// A round whose smallest RTT sample exceeds the minimum RTT by more than this share of
/// it (and at least [`STANDING_QUEUE_MIN_US`]) saw a standing queue at the bottleneck.
const STANDING_QUEUE_SHARE: u64 = 4;
const STANDING_QUEUE_MIN_US: u64 = 5_000;

impl RateControl {
    /// A controller for segments of `mss` payload bytes.
    pub fn new(mss: u32, min_cwnd_segments: u32) -> RateControl {
        RateControl {
            mss: u64::from(mss.max(1)),
            bw_rounds: [0; BW_ROUNDS],
            round: 0,
            next_round_delivered: 0,
            min_rtt_us: u64::MAX,
            min_rtt_at: 0,
            phase: Phase::Startup,
            full_bw: 0,
            full_bw_rounds: 0,
            cycle: 0,
            cycle_start: 0,
            min_cwnd_segments: u64::from(min_cwnd_segments.max(2)),
            ack_delay_us: 0,
            app_limited_until: 0,
            round_min_rtt_us: u64::MAX,
            max_rate: None,
            last_rtt_us: 0,
            round_lost: 0,
        }
    }

    /// The sender ran out of data with room in its window: samples of what is in
    /// flight now (up to `delivered + inflight` bytes) are app-limited. Such a sample
    /// may raise the estimate but neither lowers it nor lets it expire, so a thin or
    /// paused stream keeps the rate it had measured (else its pacing would sink to the
    /// application's rate and hold back its next burst).
    pub fn mark_app_limited(&mut self, delivered: u64, inflight: u64) {
        self.app_limited_until = self.app_limited_until.max(delivered + inflight + 1);
    }

    /// Sets a ceiling (bytes/s) on [`Self::pacing_rate`], or removes it (`None`; 0 is
    /// taken as `None`).
    pub fn set_max_rate(&mut self, max_rate: Option<u64>) {
        self.max_rate = max_rate.filter(|r| *r > 0);
    }

    /// How long the peer may hold an acknowledgement (µs).
    pub fn ack_delay_us(&self) -> u64 {
        self.ack_delay_us
    }

    /// Sets how long the peer may hold an acknowledgement (µs); see [`Self::round_trip_us`].
    pub fn set_ack_delay_us(&mut self, us: u64) {
        self.ack_delay_us = us;
    }

    /// The round trip the controller works with: the minimum RTT plus the peer's ack
    /// delay. Probing phases last one of these, and the window covers it: against a
    /// peer that acks once per TTI, phases timed by the bare path RTT would all pass
    /// between two ack bursts and the estimate would only ever measure itself.
    pub fn round_trip_us(&self) -> Option<u64> {
        self.min_rtt_us().map(|r| r + self.ack_delay_us)
    }

    /// Estimated bottleneck bandwidth (bytes/s); 0 before the first sample.
    pub fn bandwidth(&self) -> u64 {
        self.bw_rounds.iter().copied().max().unwrap_or(0)
    }

    /// Minimum RTT seen in the last 10 s (µs), if any.
    pub fn min_rtt_us(&self) -> Option<u64> {
        (self.min_rtt_us != u64::MAX).then_some(self.min_rtt_us)
    }

    /// Current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Records `segments` declared lost (by time, not by a timeout's probe), with
    /// `delivered_total` the connection's delivered counter now. In
    /// startup, a round that lost [`STARTUP_LOSS_PERCENT`] of its segments (at least
    /// [`STARTUP_LOSS_EVENTS`]) while the RTT shows a queue overflowed the bottleneck's
    /// queue: startup ends with the estimate it has (the delivery rate of a full queue
    /// is the bottleneck's).
    pub fn on_lost(&mut self, segments: u64, delivered_total: u64) {
        self.round_lost += segments;
        if self.phase != Phase::Startup || self.round_lost < STARTUP_LOSS_EVENTS {
            return;
        }
        // The round began when the delivered counter was at `next_round_delivered`.
        let acked = delivered_total.saturating_sub(self.next_round_delivered) / self.mss;
        let queued = self.min_rtt_us().is_some_and(|min| {
            self.last_rtt_us
                > min + self.ack_delay_us + (min / STANDING_QUEUE_SHARE).max(STANDING_QUEUE_MIN_US)
        });
        if queued && self.round_lost * 100 >= STARTUP_LOSS_PERCENT * (self.round_lost + acked) {
            self.full_bw = self.bandwidth();
            self.phase = Phase::Drain;
        }
    }

    /// Records an RTT sample (µs) from a segment sent once.
    pub fn on_rtt(&mut self, now_us: u64, rtt_us: u64) {
        self.round_min_rtt_us = self.round_min_rtt_us.min(rtt_us);
        self.last_rtt_us = rtt_us;
        if rtt_us <= self.min_rtt_us || now_us.saturating_sub(self.min_rtt_at) > MIN_RTT_WINDOW_US {
            self.min_rtt_us = rtt_us.max(1);
            self.min_rtt_at = now_us;
        }
    }

    /// Records a delivery-rate sample: `delivered` bytes were acknowledged between the
    /// segment's send and now, over `interval_us`. `delivered_at_send` is the
    /// connection's delivered counter when that segment was sent, `delivered_total`
    /// the counter now. `inflight` is bytes in flight after the ack.
    pub fn on_delivery(
        &mut self,
        now_us: u64,
        delivered_at_send: u64,
        delivered_total: u64,
        interval_us: u64,
        inflight: u64,
    ) {
        let app_limited = delivered_at_send < self.app_limited_until;
        let mut new_round = false;
        if delivered_at_send >= self.next_round_delivered {
            self.next_round_delivered = delivered_total;
            self.round_lost = 0;
            if self.standing_queue() {
                self.on_standing_queue(now_us);
            }
            self.round_min_rtt_us = u64::MAX;
            // An app-limited round carries the estimate forward instead of letting
            // its oldest round expire.
            let carry = if app_limited { self.bandwidth() } else { 0 };
            self.round += 1;
            self.bw_rounds[(self.round % BW_ROUNDS as u64) as usize] = carry;
            new_round = true;
        }
        let delivered = delivered_total.saturating_sub(delivered_at_send);
        if interval_us > 0 && delivered > 0 {
            let rate = delivered.saturating_mul(1_000_000) / interval_us;
            let slot = &mut self.bw_rounds[(self.round % BW_ROUNDS as u64) as usize];
            if rate > *slot {
                *slot = rate;
            }
        }
        let bw = self.bandwidth();
        match self.phase {
            Phase::Startup => {
                if new_round && bw > 0 && !app_limited {
                    if bw >= self.full_bw + self.full_bw / 4 {
                        self.full_bw = bw;
                        self.full_bw_rounds = 0;
                    } else {
                        self.full_bw_rounds += 1;
                        if self.full_bw_rounds >= 3 {
                            self.phase = Phase::Drain;
                        }
                    }
                }
            }
            Phase::Drain => {
                // Drained once in flight is down to the estimate's BDP, or to the few
                // segments the window never goes below: a flow that left startup with a
                // tiny estimate (its first round already saw the queue of others) has a
                // BDP under one segment and would otherwise never leave, pacing at a
                // third of an estimate that then decays towards it.
                let floor = self.min_cwnd_segments * self.mss;
                if inflight <= self.bdp().max(floor) {
                    self.phase = Phase::ProbeBw;
                    self.cycle = 2;
                    self.cycle_start = now_us;
                }
            }
            Phase::ProbeBw => {
                let period = self.round_trip_us().unwrap_or(100_000).max(1_000);
                if now_us.saturating_sub(self.cycle_start) > period {
                    self.cycle = (self.cycle + 1) % PROBE_GAINS.len();
                    self.cycle_start = now_us;
                }
            }
        }
    }

    /// The round that just ended never saw the path's minimum RTT: a queue stood at the
    /// bottleneck all through it, so more is sent than the bottleneck drains. With one
    /// flow the probing cycle drains its own queue; flows that share the bottleneck
    /// (each tunnelled connection is a session of its own) each measure a windowed
    /// maximum above their share, and their queue would grow until it overflows. Only
    /// judged against an mkcp peer, which acknowledges at once (a V2Ray peer's ack
    /// delay of up to a TTI blurs the RTT samples).
    fn standing_queue(&self) -> bool {
        let Some(min) = self.min_rtt_us() else {
            return false;
        };
        self.ack_delay_us == 0
            && self.round_min_rtt_us != u64::MAX
            && self.round_min_rtt_us > min + (min / STANDING_QUEUE_SHARE).max(STANDING_QUEUE_MIN_US)
    }

    /// Response to a standing queue: the estimate falls towards what the last round
    /// really delivered (our share of the bottleneck, not the peak of the window), by
    /// at most an eighth per round, and the cycle goes to its draining phase; startup
    /// ends.
    fn on_standing_queue(&mut self, now_us: u64) {
        match self.phase {
            Phase::Startup => {
                self.full_bw = self.bandwidth();
                self.phase = Phase::Drain;
            }
            Phase::Drain => {}
            Phase::ProbeBw => {
                // At most a step down per round: a round that delivered little (a
                // recovery, a short round) must not throw a single flow's estimate
                // away; flows that overestimate their share converge in a few steps.
                let last = self.bw_rounds[(self.round % BW_ROUNDS as u64) as usize];
                let floor = self.bandwidth() / 8 * 7;
                let cap = last.max(floor);
                for slot in &mut self.bw_rounds {
                    *slot = (*slot).min(cap);
                }
                self.cycle = 1;
                self.cycle_start = now_us;
            }
        }
    }

    /// What the probing phase adds on top of its gain (bytes/s): [`PROBE_FLOOR_SEGMENTS`]
    /// per round trip, whatever the estimate.
    fn probe_floor(&self) -> u64 {
        match (self.phase, self.round_trip_us()) {
            (Phase::ProbeBw, Some(rtt)) if self.cycle == 0 => {
                PROBE_FLOOR_SEGMENTS * self.mss * 1_000_000 / rtt.max(1)
            }
            _ => 0,
        }
    }

    fn pacing_gain(&self) -> f64 {
        match self.phase {
            Phase::Startup => STARTUP_GAIN,
            Phase::Drain => 1.0 / STARTUP_GAIN,
            Phase::ProbeBw => PROBE_GAINS[self.cycle],
        }
    }

    /// Bandwidth-delay product in bytes (0 before samples).
    pub fn bdp(&self) -> u64 {
        match self.round_trip_us() {
            Some(rtt) => self.bandwidth().saturating_mul(rtt) / 1_000_000,
            None => 0,
        }
    }

    /// Pacing rate in bytes/s, or `None` while there is no estimate and no cap (send
    /// freely, limited by the window). With a cap it is never above the cap, and is the
    /// cap itself before the first estimate and once the path carries the cap.
    pub fn pacing_rate(&self) -> Option<u64> {
        let bw = self.bandwidth();
        let paced =
            (bw > 0).then(|| ((bw as f64) * self.pacing_gain()) as u64 + self.probe_floor());
        match self.max_rate {
            None => paced,
            Some(cap) if bw.saturating_mul(100) >= cap.saturating_mul(CAP_REACHED_PERCENT) => {
                Some(cap)
            }
            Some(cap) => Some(paced.map_or(cap, |p| p.min(cap))),
        }
    }

    /// Congestion window in bytes: [`CWND_GAIN`] BDPs (in startup towards a peer that
    /// acks once per TTI: [`STARTUP_GAIN`]) and 4 segments, at least a few
    /// segments; `None` while there is no estimate. With a cap the BDP is taken at no
    /// more than the cap, so what is in flight stays near what the cap lets through.
    pub fn cwnd(&self) -> Option<u64> {
        let mut bdp = self.bdp();
        if bdp == 0 {
            return None;
        }
        if let (Some(cap), Some(rtt)) = (self.max_rate, self.round_trip_us()) {
            bdp = bdp.min(cap.saturating_mul(rtt) / 1_000_000).max(1);
        }
        // A peer that acks once per TTI (V2Ray, or one not yet heard saying hello) is
        // measured a TTI late: its startup keeps the window of its pacing gain.
        let gain = if self.phase == Phase::Startup && self.ack_delay_us > 0 {
            STARTUP_GAIN
        } else {
            CWND_GAIN
        };
        let w = (bdp as f64 * gain) as u64 + 4 * self.mss;
        Some(w.max(self.min_cwnd_segments * self.mss))
    }
}

/// Token-bucket pacer: lets a short burst through, then spaces datagrams at the rate.
#[derive(Clone, Debug)]
pub struct Pacer {
    /// Bytes that may be sent now (negative: a debt to wait off).
    tokens: f64,
    last_us: u64,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    /// A pacer with an empty history.
    pub fn new() -> Pacer {
        Pacer {
            tokens: 0.0,
            last_us: 0,
        }
    }

    fn burst(rate: u64, mtu: u64) -> f64 {
        // Up to 2 ms worth of data (timers are 1 ms coarse), at least 4 datagrams.
        (rate / 500).max(4 * mtu) as f64
    }

    fn refill(&mut self, now_us: u64, rate: u64, mtu: u64) {
        let elapsed = now_us.saturating_sub(self.last_us);
        self.last_us = self.last_us.max(now_us);
        self.tokens =
            (self.tokens + elapsed as f64 * rate as f64 / 1e6).min(Self::burst(rate, mtu));
    }

    fn wait_us(&self, rate: u64) -> u64 {
        ((-self.tokens) * 1e6 / rate as f64).ceil().max(1.0) as u64
    }

    /// When a datagram may next be sent at `rate` (`now_us` if it may go now).
    pub fn next_send(&mut self, now_us: u64, rate: Option<u64>, mtu: u64) -> u64 {
        let Some(rate) = rate.filter(|r| *r > 0) else {
            return now_us;
        };
        self.refill(now_us, rate, mtu);
        if self.tokens >= 0.0 {
            now_us
        } else {
            now_us + self.wait_us(rate)
        }
    }

    /// Earliest time a datagram may go at `rate`, without changing state.
    pub fn ready_at(&self, rate: Option<u64>) -> u64 {
        match rate.filter(|r| *r > 0) {
            Some(rate) if self.tokens < 0.0 => self.last_us + self.wait_us(rate),
            _ => self.last_us,
        }
    }

    /// Accounts for `bytes` sent at `now_us`.
    pub fn on_send(&mut self, now_us: u64, bytes: usize, rate: Option<u64>, mtu: u64) {
        if let Some(rate) = rate.filter(|r| *r > 0) {
            self.refill(now_us, rate, mtu);
            self.tokens -= bytes as f64;
        }
    }
}

/// V2Ray's loss-based control window (PROTOCOL.md §3.10 "Congestion control"), applied when
/// `congestion` is on: ≥ 15 % loss shrinks it by a quarter, ≤ 5 % grows it by a quarter,
/// within `[16, max]` segments.
#[derive(Clone, Debug)]
pub struct LossControl {
    window: u32,
    max: u32,
}

impl LossControl {
    /// Starts at `initial` segments, never above `max`.
    pub fn new(initial: u32, max: u32) -> LossControl {
        let max = max.max(16);
        LossControl {
            window: initial.clamp(16, max),
            max,
        }
    }

    /// Reacts to a loss rate in percent.
    pub fn on_loss_rate(&mut self, rate: u32) {
        if rate >= 15 {
            self.window = self.window * 3 / 4;
        } else if rate <= 5 {
            self.window += self.window / 4;
        }
        self.window = self.window.clamp(16, self.max);
    }

    /// Current window in segments.
    pub fn window(&self) -> u32 {
        self.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_spaces_datagrams_at_the_rate_after_the_burst() {
        let mut p = Pacer::new();
        let rate = 1_000_000; // 1 MB/s: 1000 bytes take 1 ms
        let mut now = 1_000_000;
        let mut sent = 0;
        while p.next_send(now, Some(rate), 1000) == now {
            p.on_send(now, 1000, Some(rate), 1000);
            sent += 1;
            assert!(sent < 100, "burst must be bounded");
        }
        let next = p.next_send(now, Some(rate), 1000);
        assert!(next > now && next <= now + 1000);
        now = next;
        assert_eq!(p.next_send(now, Some(rate), 1000), now);
    }

    #[test]
    fn loss_control_follows_v2ray_rules() {
        let mut c = LossControl::new(100, 1000);
        c.on_loss_rate(20);
        assert_eq!(c.window(), 75);
        c.on_loss_rate(3);
        assert_eq!(c.window(), 93);
        c.on_loss_rate(10);
        assert_eq!(c.window(), 93);
        for _ in 0..50 {
            c.on_loss_rate(50);
        }
        assert_eq!(c.window(), 16);
    }

    /// Feeds `rounds` rounds of 10 ms at `rate` bytes/s.
    fn feed(rc: &mut RateControl, rate: u64, rounds: u64) {
        rc.on_rtt(0, 10_000);
        let mut delivered = 0u64;
        for i in 1..=rounds {
            let at_send = delivered;
            delivered += rate / 100;
            rc.on_delivery(i * 10_000, at_send, delivered, 10_000, 0);
        }
    }

    #[test]
    fn a_cap_bounds_pacing_in_every_phase() {
        let cap = 2 << 20;
        let mut rc = RateControl::new(1000, 4);
        rc.set_max_rate(Some(cap));
        // Before any sample: paced at the cap, not free.
        assert_eq!(rc.pacing_rate(), Some(cap));
        let mut seen = Vec::new();
        rc.on_rtt(0, 10_000);
        let mut delivered = 0u64;
        for i in 1..=200u64 {
            let at_send = delivered;
            delivered += 12_500_000 / 100; // the path could carry 12.5 MB/s
            rc.on_delivery(i * 10_000, at_send, delivered, 10_000, 0);
            seen.push(rc.pacing_rate().unwrap());
        }
        assert!(seen.iter().all(|r| *r == cap), "{seen:?}");
        // The model still measures the path; the window is taken at the cap.
        assert_eq!(rc.bandwidth(), 12_500_000);
        let cwnd = rc.cwnd().unwrap();
        assert!(
            cwnd <= 2 * cap * 20_000 / 1_000_000 + 4 * 1000,
            "cwnd {cwnd}"
        );
    }

    #[test]
    fn a_cap_at_the_estimate_stops_probing_and_draining() {
        // Samples a little below the cap (they count payload only): pacing holds the cap.
        let cap = 2_000_000;
        let mut rc = RateControl::new(1000, 4);
        rc.set_max_rate(Some(cap));
        feed(&mut rc, cap * 98 / 100, 100);
        assert_eq!(rc.phase(), Phase::ProbeBw);
        assert_eq!(rc.pacing_rate(), Some(cap));
    }

    #[test]
    fn a_cap_above_the_path_leaves_pacing_alone() {
        let mut capped = RateControl::new(1000, 4);
        capped.set_max_rate(Some(100_000_000));
        let mut free = RateControl::new(1000, 4);
        feed(&mut capped, 1_000_000, 100);
        feed(&mut free, 1_000_000, 100);
        assert_eq!(capped.pacing_rate(), free.pacing_rate());
        assert_eq!(capped.cwnd(), free.cwnd());
        capped.set_max_rate(Some(0));
        assert_eq!(capped.max_rate, None);
    }

    /// `n` rounds of `rtt` µs, each delivering `bytes`, with `inflight` after each ack;
    /// `clock` is (now, delivered so far).
    fn rounds(
        rc: &mut RateControl,
        clock: &mut (u64, u64),
        n: u32,
        rtt: u64,
        bytes: u64,
        inflight: u64,
    ) {
        for _ in 0..n {
            let at_send = clock.1;
            clock.1 += bytes;
            clock.0 += rtt;
            rc.on_delivery(clock.0, at_send, clock.1, rtt, inflight);
        }
    }

    #[test]
    fn startup_ends_when_bandwidth_stops_growing() {
        let mut rc = RateControl::new(1000, 4);
        rc.on_rtt(0, 10_000);
        // 10 kB per 10 ms round = 1 MB/s
        rounds(&mut rc, &mut (0, 0), 20, 10_000, 10_000, 0);
        assert_ne!(rc.phase(), Phase::Startup);
        assert_eq!(rc.bandwidth(), 1_000_000);
        assert_eq!(rc.bdp(), 10_000);
    }

    /// A flow that left startup with a BDP under one segment (its first rounds already
    /// saw other flows' queue) leaves Drain once its window's floor of segments is all
    /// that is in flight; it used to wait for in flight to fall under the BDP, which a
    /// paced flow with two segments out never reaches (seen on the real relay: a stream
    /// at 0.02 MB/s for a whole 10 s run).
    #[test]
    fn a_tiny_estimate_leaves_drain_with_a_few_segments_in_flight() {
        let mut rc = RateControl::new(1000, 4);
        rc.on_rtt(0, 60_000);
        // 2 kB per 60 ms round: 33 kB/s, a BDP of 2 kB = 2 segments; three segments in
        // flight after each ack: above the BDP, within the window's floor of four.
        let mut clock = (0, 0);
        rounds(&mut rc, &mut clock, 10, 60_000, 2_000, 3_000);
        assert_ne!(rc.phase(), Phase::Startup);
        assert!(rc.bdp() < 3_000, "bdp {}", rc.bdp());
        rounds(&mut rc, &mut clock, 1, 60_000, 2_000, 3_000);
        assert_eq!(rc.phase(), Phase::ProbeBw);
    }

    /// Probing raises every flow's pacing by the same few segments per round trip on
    /// top of its quarter, so a flow with a small share of a bottleneck grows by more
    /// than a share of itself (shares that only scale keep the ratios they started with).
    #[test]
    fn probing_adds_a_few_segments_per_round_trip_to_any_estimate() {
        for rate in [20_000u64, 1_000_000, 10_000_000] {
            let mut rc = RateControl::new(1000, 4);
            rc.on_rtt(0, 60_000);
            let mut clock = (0, 0);
            let mut seen = Vec::new();
            for _ in 0..40 {
                rounds(&mut rc, &mut clock, 1, 60_000, rate * 6 / 100, 0);
                if rc.phase() == Phase::ProbeBw {
                    seen.push(rc.pacing_rate().unwrap());
                }
            }
            let bw = rc.bandwidth();
            let floor = PROBE_FLOOR_SEGMENTS * 1000 * 1_000_000 / 60_000;
            let probe = bw + bw / 4 + floor;
            assert!(seen.contains(&probe), "rate {rate}: {seen:?}, want {probe}");
            assert!(seen.iter().all(|r| *r <= probe), "rate {rate}: {seen:?}");
            assert!(seen.contains(&bw), "rate {rate}: cruising at the estimate");
        }
    }

    /// Startup in a growing round: `bytes` delivered per round of 60 ms, the estimate
    /// still rising (each round doubles), so only an overflow can end startup here.
    fn growing(rc: &mut RateControl, clock: &mut (u64, u64), n: u32) {
        let mut bytes = 10_000;
        for _ in 0..n {
            rounds(rc, clock, 1, 60_000, bytes, 0);
            bytes *= 2;
        }
    }

    /// Startup's window is two estimated BDPs (and 4 segments), not its pacing gain,
    /// unless the peer acks once per TTI.
    #[test]
    fn startup_keeps_two_bdps_in_flight() {
        let mut rc = RateControl::new(1000, 4);
        rc.on_rtt(0, 60_000);
        growing(&mut rc, &mut (0, 0), 4);
        assert_eq!(rc.phase(), Phase::Startup);
        let bdp = rc.bdp();
        assert!(bdp > 0);
        assert_eq!(rc.cwnd(), Some(2 * bdp + 4 * 1000));
        // Towards a peer that acks once per TTI, the estimate trails by a TTI more.
        rc.set_ack_delay_us(10_000);
        let bdp = rc.bdp();
        assert_eq!(
            rc.cwnd(),
            Some((bdp as f64 * STARTUP_GAIN) as u64 + 4 * 1000)
        );
    }

    /// A round of startup that loses a large share of its segments while the RTT
    /// shows a queue overflowed the bottleneck: startup ends. The same losses at the
    /// path's own RTT are random loss, and startup goes on; so do a few losses with a
    /// queue.
    #[test]
    fn an_overflow_ends_startup_and_random_loss_does_not() {
        let start = || {
            let mut rc = RateControl::new(1000, 4);
            rc.on_rtt(0, 60_000);
            let mut clock = (0, 0);
            growing(&mut rc, &mut clock, 4);
            // A round begins, and 100 more segments of the previous one are acked in it.
            rounds(&mut rc, &mut clock, 1, 60_000, 1_000, 0);
            let at_send = clock.1 - 1_000;
            clock.1 += 100_000;
            rc.on_delivery(clock.0 + 1_000, at_send, clock.1, 60_000, 0);
            assert_eq!(rc.phase(), Phase::Startup);
            (rc, clock)
        };
        // Queue: 30 ms above the 60 ms path (more than a quarter of it).
        let (mut rc, clock) = start();
        rc.on_rtt(clock.0, 90_000);
        rc.on_lost(10, clock.1);
        assert_eq!(
            rc.phase(),
            Phase::Startup,
            "10 losses are not yet an overflow"
        );
        rc.on_lost(10, clock.1);
        assert_eq!(rc.phase(), Phase::Drain, "20 of 120 with a queue");
        // No queue: the same losses are the link's.
        let (mut rc, clock) = start();
        rc.on_rtt(clock.0, 61_000);
        rc.on_lost(20, clock.1);
        assert_eq!(rc.phase(), Phase::Startup);
        // A queue, but a small share lost.
        let (mut rc, clock) = start();
        rc.on_rtt(clock.0, 90_000);
        rc.on_lost(16, clock.1);
        assert_eq!(rc.phase(), Phase::Startup, "16 of 116");
    }
}
