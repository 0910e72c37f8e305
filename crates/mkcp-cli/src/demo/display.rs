//! What `mkcp demo` shows: the live lines while it runs and the final table.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mkcp_netem::{LinkConfig, RelayStats};

use super::Counters;
use crate::netem;
use crate::stats::{self, Snapshot};

/// What the display shows at one moment.
#[derive(Clone, Default)]
pub(super) struct Sample {
    pub(super) at: Duration,
    pub(super) at_target: u64,
    pub(super) echoed: u64,
    pub(super) client: Snapshot,
    pub(super) server: Snapshot,
    pub(super) relay: RelayStats,
}

impl Sample {
    fn retransmissions(&self) -> u64 {
        self.client.totals.retransmissions + self.server.totals.retransmissions
    }
    fn data_segments(&self) -> u64 {
        self.client.totals.data_segments_sent + self.server.totals.data_segments_sent
    }
    /// Payload delivered, both ways.
    fn payload(&self) -> u64 {
        self.at_target + self.echoed
    }
    fn wire(&self) -> u64 {
        self.relay.up.bytes_in + self.relay.down.bytes_in
    }
}

fn opt_ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn fmt_pct(p: Option<f64>) -> String {
    p.map_or("-".into(), |p| format!("{:.1}%", p * 100.0))
}

/// The live lines for the interval `old..new` (rates) and totals so far.
pub(super) fn live_lines(old: &Sample, new: &Sample) -> [String; 3] {
    let dt = new.at.saturating_sub(old.at);
    let up = stats::rate(new.at_target - old.at_target, dt);
    let down = stats::rate(new.echoed - old.echoed, dt);
    let rtt = new
        .client
        .srtt_ms
        .map_or("-".into(), |ms| format!("{ms:.0} ms"));
    let lost = |l: &mkcp_netem::LinkStats, o: &mkcp_netem::LinkStats| {
        fmt_pct(opt_ratio(
            l.dropped() - o.dropped(),
            l.packets_in - o.packets_in,
        ))
    };
    let retrans = new.retransmissions() - old.retransmissions();
    let segs = new.data_segments() - old.data_segments();
    // Over the whole run: over a short window, delivery bursts (a hole filled releases
    // much buffered data at once) make the ratio jump around.
    let wire = opt_ratio(new.wire(), new.payload()).map_or("-".into(), |r| format!("{r:.2}"));
    [
        format!("goodput  up {up:>13}   down {down:>13}"),
        format!(
            "rtt {rtt:>7}   link drops up {:>6} down {:>6}   retransmitted {:>5} of data segments",
            lost(&new.relay.up, &old.relay.up),
            lost(&new.relay.down, &old.relay.down),
            fmt_pct(opt_ratio(retrans, segs)),
        ),
        format!(
            "wire/payload {wire}   moved up {} down {}   sessions {}",
            stats::bytes(new.at_target),
            stats::bytes(new.echoed),
            new.client.active,
        ),
    ]
}

/// The final table.
pub(super) fn summary(
    link: &LinkConfig,
    pushed: &Sample,
    end: &Sample,
    drained_in: Duration,
    mean_rtt_ms: Option<f64>,
    counters: &Counters,
) -> String {
    let secs = pushed.at;
    let mut t = String::new();
    let row = |t: &mut String, name: &str, up: String, down: String| {
        let _ = writeln!(t, "  {name:<26}{up:>18}{down:>18}");
    };
    let _ = writeln!(
        t,
        "mkcp demo summary: {:.1} s of pushing over {}",
        secs.as_secs_f64(),
        netem::describe(link)
    );
    let _ = writeln!(t, "  {:<26}{:>18}{:>18}", "", "up", "down");
    row(
        &mut t,
        "goodput (average)",
        stats::rate(pushed.at_target, secs),
        stats::rate(pushed.echoed, secs),
    );
    row(
        &mut t,
        "payload delivered",
        stats::bytes(end.at_target),
        stats::bytes(end.echoed),
    );
    let r = &end.relay;
    row(
        &mut t,
        "datagrams on the link",
        r.up.packets_in.to_string(),
        r.down.packets_in.to_string(),
    );
    row(
        &mut t,
        "dropped by the link",
        format!(
            "{} ({})",
            r.up.dropped(),
            netem::pct(r.up.dropped(), r.up.packets_in)
        ),
        format!(
            "{} ({})",
            r.down.dropped(),
            netem::pct(r.down.dropped(), r.down.packets_in)
        ),
    );
    row(
        &mut t,
        "  of which queue overflow",
        r.up.dropped_queue.to_string(),
        r.down.dropped_queue.to_string(),
    );
    let c = &end.client.totals;
    let s = &end.server.totals;
    row(
        &mut t,
        "data segments sent",
        c.data_segments_sent.to_string(),
        s.data_segments_sent.to_string(),
    );
    row(
        &mut t,
        "retransmissions",
        format!(
            "{} ({})",
            c.retransmissions,
            fmt_pct(c.retransmission_rate())
        ),
        format!(
            "{} ({})",
            s.retransmissions,
            fmt_pct(s.retransmission_rate())
        ),
    );
    row(
        &mut t,
        "wire bytes / payload byte",
        opt_ratio(r.up.bytes_in, end.at_target).map_or("-".into(), |x| format!("{x:.3}")),
        opt_ratio(r.down.bytes_in, end.echoed).map_or("-".into(), |x| format!("{x:.3}")),
    );
    let base_rtt = link.delay * 2;
    let _ = writeln!(
        t,
        "  {:<26}{:>18}",
        "rtt (mKCP srtt, mean)",
        mean_rtt_ms.map_or("-".into(), |ms| format!("{ms:.0} ms")),
    );
    let _ = writeln!(
        t,
        "  {:<26}{:>18}",
        "rtt of the empty link",
        format!("{} ms", base_rtt.as_millis())
    );
    let _ = writeln!(
        t,
        "  {:<26}{:>18}",
        "sessions",
        format!("{} (one per stream)", end.client.total_sessions),
    );
    let verdict = if counters.corrupt.load(Ordering::Relaxed) {
        "CORRUPTED: the echo differs from what was sent".to_string()
    } else {
        let w = counters.written.load(Ordering::Relaxed);
        let e = counters.echoed.load(Ordering::Relaxed);
        if w == e {
            format!(
                "all {} echoed back intact (drained in {:.1} s)",
                stats::bytes(w),
                drained_in.as_secs_f64()
            )
        } else {
            format!(
                "{} of {} echoed back (checked, intact so far)",
                stats::bytes(e),
                stats::bytes(w)
            )
        }
    };
    let _ = write!(t, "  {:<26}{}", "integrity", verdict);
    t
}
