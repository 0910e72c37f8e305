//! Several flows through one bottleneck (issue 12 item 4), in virtual time: each
//! upload is its own session from its own socket, as V2Ray's dialer opens one per
//! tunnelled connection, so none may assume the whole bottleneck.

mod support;

use std::time::Duration;

use mkcp_proto::Config;
use mkcp_sim::link::LinkConfig;
use support::Flows;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What `n` concurrent uploads measured over `secs` after a warm-up.
struct Shared {
    /// Per-flow goodput (bytes/s).
    goodput: Vec<f64>,
    /// Datagrams offered to the upstream bottleneck, and dropped at its queue.
    offered: u64,
    queue_drops: u64,
    /// Wire bytes (both ways) per payload byte delivered.
    wire_ratio: f64,
}

fn jain(x: &[f64]) -> f64 {
    let s: f64 = x.iter().sum();
    let q: f64 = x.iter().map(|v| v * v).sum();
    s * s / (x.len() as f64 * q)
}

fn uploads(kcp: Config, link: LinkConfig, n: usize, warm: Duration, secs: u64) -> Shared {
    uploads_started(kcp, link, n, Duration::ZERO, warm, secs)
}

/// `n` uploads, flow `i` starting `i` gaps after the first (all at once for a zero gap);
/// measured over `secs` from `warm` after the last start.
fn uploads_started(
    kcp: Config,
    link: LinkConfig,
    n: usize,
    gap: Duration,
    warm: Duration,
    secs: u64,
) -> Shared {
    let mut f = Flows::new(n, kcp, link.clone(), link.clone().seed(link.seed + 1), 9);
    for i in 0..n {
        let t = f.net.now();
        f.c(i).app.to_send = vec![i as u8; 512 << 20];
        f.c(i).pump(t);
        if !gap.is_zero() {
            f.net.run_for(gap).unwrap();
        }
    }
    if !warm.is_zero() {
        f.net.run_for(warm).unwrap();
    }
    let got0: Vec<usize> = (0..n).map(|i| f.s(i).app.received.len()).collect();
    let (up0, down0) = (f.up_stats(), f.down_stats());
    f.net.run_for(Duration::from_secs(secs)).unwrap();
    let goodput: Vec<f64> = (0..n)
        .map(|i| (f.s(i).app.received.len() - got0[i]) as f64 / secs as f64)
        .collect();
    let (up, down) = (f.up_stats(), f.down_stats());
    let payload: f64 = goodput.iter().sum::<f64>() * secs as f64;
    let wire = (up.bytes_in - up0.bytes_in + down.bytes_in - down0.bytes_in) as f64;
    Shared {
        goodput,
        offered: up.packets_in - up0.packets_in,
        queue_drops: up.dropped_queue - up0.dropped_queue,
        wire_ratio: wire / payload,
    }
}

/// A link of `delay_ms` each way, `loss`, `bps` and a queue of `queue` bytes.
fn link(delay_ms: u64, loss: f64, bps: u64, queue: usize, seed: u64) -> LinkConfig {
    LinkConfig::default()
        .delay(ms(delay_ms))
        .loss(loss)
        .rate_bps(bps)
        .queue_bytes(queue)
        .seed(seed)
}

fn wan30(seed: u64) -> LinkConfig {
    link(30, 0.02, 100_000_000, 750_000, seed)
}

fn wan100(seed: u64) -> LinkConfig {
    link(100, 0.05, 20_000_000, 500_000, seed)
}

/// Prints the figures of `s` (flows through a link of `bps` with loss `loss`) after
/// `label` and asserts issue 12 item 4's targets: at least 90 % of what the link
/// carries in aggregate, Jain index at least 0.9, at most 1 % of the datagrams dropped
/// at the queue. Returns the printed line.
fn check_shared(label: &str, s: &Shared, bps: f64, loss: f64) -> String {
    let total: f64 = s.goodput.iter().sum();
    let cap = capacity(bps, loss);
    let report = format!(
        "{label}: total {:.2} MiB/s ({:.0} % of {:.2}), per flow {:?}, jain {:.3}, queue drops {} of {} ({:.2} %), wire/payload {:.3}",
        total / 1048576.0,
        total / cap * 100.0,
        cap / 1048576.0,
        s.goodput.iter().map(|g| format!("{:.2}", g / 1048576.0)).collect::<Vec<_>>(),
        jain(&s.goodput),
        s.queue_drops,
        s.offered,
        s.queue_drops as f64 * 100.0 / s.offered as f64,
        s.wire_ratio
    );
    println!("{report}");
    assert!(total >= 0.9 * cap, "{report}");
    assert!(jain(&s.goodput) >= 0.9, "{report}");
    assert!(s.queue_drops * 100 <= s.offered, "{report}");
    report
}

/// Payload bytes/s a link of `bps` with loss `loss` can carry in 1350-byte datagrams of
/// 1326 payload bytes.
fn capacity(bps: f64, loss: f64) -> f64 {
    bps / 8.0 * (1.0 - loss) * 1326.0 / 1350.0
}

/// Issue 12 item 4: 4 uploads through one 30 ms / 2 % / 100 Mbit/s bottleneck reach
/// at least 90 % of what it carries, Jain index at least 0.9, queue drops at most 1 % of
/// datagrams, with congestion off (default) and on. Before the fix: 9 % queue drops, wire 1.18x.
#[test]
fn four_uploads_share_one_bottleneck_fairly_without_overflowing_it() {
    // Several link seeds: how the flows start decides their shares, and one seed is
    // one sample of that (Jain 0.93-0.99 over seeds 3, 5, 7, 11, 13 on this code).
    for (seed, congestion) in [3, 5, 7].into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let mut kcp = Config::default();
        kcp.congestion = congestion;
        let s = uploads(kcp, wan30(seed), 4, Duration::from_secs(5), 20);
        let report = check_shared(
            &format!("seed {seed}, congestion {congestion}"),
            &s,
            100e6,
            0.02,
        );
        assert!(s.wire_ratio <= 1.08, "{report}");
    }
}

/// Issue 12 item 4 on the long link: 4 uploads started together through the 100 ms /
/// 5 % / 20 Mbit/s bottleneck with a one-BDP queue, measured from the start as the
/// benchmark does (10 s, startups included): at most 1 % of the datagrams dropped at
/// the queue, at least 90 % of what the link carries, Jain index at least 0.9, with
/// congestion off and on. Before startup's window was held to two BDPs and an overflow
/// ended startup: 2.5-3.3 % queue drops (the startups overran the queue, twice).
#[test]
fn four_uploads_on_the_long_lossy_link_start_without_overflowing_its_queue() {
    for (seed, congestion) in [3, 5, 7].into_iter().flat_map(|s| [(s, false), (s, true)]) {
        let mut kcp = Config::default();
        kcp.congestion = congestion;
        let s = uploads(kcp, wan100(seed), 4, Duration::ZERO, 10);
        check_shared(
            &format!("seed {seed}, congestion {congestion}"),
            &s,
            20e6,
            0.05,
        );
    }
}

/// Open (issue 12 item 4): the same four uploads when their sessions start one after
/// another, as a browser's connections do, measured from the first start with a 256 KiB
/// queue. The shares at the end of each flow's startup persist (the estimate falls by a
/// share of itself at a standing queue and probes up by a share of itself), and a flow
/// that starts on a standing queue counts it in its minimum RTT. Session 4's code: Jain
/// 0.64-0.99 over gaps of 20 ms to 1 s and seeds 3, 5, 7, one flow at 0.08 MiB/s, queue
/// drops up to 4.7 %. With the probe floor (8 segments per round trip for every flow):
/// Jain 0.75-0.92, smallest flow 0.57 MiB/s, queue drops 0.6-5.7 % (most in startups).
/// With startup's window at two BDPs: Jain 0.61-0.99, queue drops 0.9-2.2 % (the first
/// flow keeps the largest share when the others start 60 ms or more after it).
/// (The real relay's starved streams were a different cause, the lost hellos:
/// `hello.rs`.)
#[test]
#[ignore = "open: issue 12 item 4 (staggered starts do not converge to fair shares)"]
fn four_uploads_starting_one_after_another_share_fairly() {
    for gap in [20, 60, 200, 1000] {
        for seed in [3, 5, 7] {
            let link = wan30(seed).queue_bytes(256 << 10);
            let s = uploads_started(Config::default(), link, 4, ms(gap), Duration::ZERO, 10);
            let report =
                format!(
                "gap {gap} ms, seed {seed}: per flow {:?} MiB/s, jain {:.3}, queue drops {:.2} %",
                s.goodput.iter().map(|g| format!("{:.2}", g / 1048576.0)).collect::<Vec<_>>(),
                jain(&s.goodput),
                s.queue_drops as f64 * 100.0 / s.offered as f64,
            );
            println!("{report}");
            assert!(jain(&s.goodput) >= 0.9, "{report}");
            assert!(s.queue_drops * 100 <= s.offered, "{report}");
        }
    }
}
