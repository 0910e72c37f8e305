//! The link model, one rule per test.

use std::time::{Duration, Instant};

use mkcp_sim::link::{Link, LinkConfig, LinkStats, Verdict};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

/// Pushes `n` packets of `len` bytes, one every `gap`, each tagged with its index, and
/// collects every delivery as (delivery time, index), draining the link to the end.
fn run(cfg: LinkConfig, n: u32, len: usize, gap: Duration) -> (Vec<(Instant, u32)>, LinkStats) {
    let t0 = Instant::now();
    let mut link = Link::new(cfg);
    let mut out = Vec::new();
    for i in 0..n {
        let now = t0 + gap * i;
        while let Some(p) = link.poll_scheduled(now) {
            out.push(p);
        }
        link.push(now, len, i);
    }
    while let Some(at) = link.next_delivery() {
        while let Some(p) = link.poll_scheduled(at) {
            out.push(p);
        }
    }
    (out, link.stats())
}

fn check_accounting(s: &LinkStats, in_flight: u64) {
    assert_eq!(
        s.packets_in + s.duplicated,
        s.dropped_loss + s.dropped_queue + s.packets_out + in_flight,
        "{s:?}"
    );
}

#[test]
fn perfect_link_delivers_immediately_in_order() {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default());
    for i in 0..10 {
        assert_eq!(
            link.push(t0, 100, i),
            Verdict::Scheduled {
                at: t0,
                copy_at: None
            }
        );
    }
    let got: Vec<_> = std::iter::from_fn(|| link.poll(t0)).collect();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
    assert_eq!(link.stats().bytes_out, 1000);
    assert!(LinkConfig::default().is_perfect());
}

#[test]
fn delay_is_a_lower_bound_and_jitter_stays_within_its_range() {
    // Packets 100 ms apart: far enough that order-keeping never lifts a delivery.
    let mut delays: Vec<Duration> = Vec::new();
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().delay(ms(40)).jitter(ms(10)).seed(3));
    for i in 0..2000u32 {
        let sent = t0 + ms(100) * i;
        link.push(sent, 500, ());
        let at = link.next_delivery().unwrap();
        link.poll(at).unwrap();
        delays.push(at - sent);
    }
    let min = *delays.iter().min().unwrap();
    let max = *delays.iter().max().unwrap();
    assert!(min >= ms(40) && max <= ms(50), "{min:?} {max:?}");
    // Uniform: close to both ends, mean near the middle.
    assert!(min < ms(41) && max > ms(49), "{min:?} {max:?}");
    let mean = delays.iter().sum::<Duration>() / delays.len() as u32;
    assert!(mean > ms(44) && mean < ms(46), "{mean:?}");
}

#[test]
fn jitter_never_reorders() {
    let cfg = LinkConfig::default().delay(ms(20)).jitter(ms(15)).seed(9);
    let (out, _) = run(cfg, 5000, 200, us(300));
    assert!(out.windows(2).all(|w| w[0].1 < w[1].1));
    assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[test]
fn loss_rate_is_within_statistical_bounds() {
    let n = 100_000u32;
    for (seed, p) in [(1u64, 0.01f64), (2, 0.1), (3, 0.5)] {
        let (out, s) = run(LinkConfig::default().loss(p).seed(seed), n, 100, us(10));
        let expected = f64::from(n) * p;
        let sigma = (f64::from(n) * p * (1.0 - p)).sqrt();
        let dropped = s.dropped_loss as f64;
        assert!(
            (dropped - expected).abs() < 5.0 * sigma,
            "p {p}: dropped {dropped}, expected {expected} ± {}",
            5.0 * sigma
        );
        assert_eq!(out.len() as u64, s.packets_out);
        assert_eq!(s.packets_out + s.dropped_loss, u64::from(n));
        check_accounting(&s, 0);
    }
}

#[test]
fn total_loss_drops_everything_and_no_loss_drops_nothing() {
    let (out, s) = run(LinkConfig::default().loss(1.0), 1000, 10, us(1));
    assert!(out.is_empty());
    assert_eq!(s.dropped_loss, 1000);
    let (out, s) = run(LinkConfig::default().loss(0.0).seed(5), 1000, 10, us(1));
    assert_eq!(out.len(), 1000);
    assert_eq!(s.dropped(), 0);
}

#[test]
fn rate_limit_serializes_packets_back_to_back() {
    // 8 Mbit/s = 1 byte per microsecond: a 1000-byte packet takes exactly 1 ms.
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().rate_bps(8_000_000).delay(ms(10)));
    for i in 0..100u32 {
        link.push(t0, 1000, i);
    }
    assert_eq!(link.backlog_bytes(t0), 100_000);
    assert_eq!(link.backlog_bytes(t0 + ms(50)), 50_000);
    for i in 0..100u32 {
        let due = t0 + ms(10) + ms(1) * (i + 1);
        assert_eq!(link.next_delivery(), Some(due));
        assert_eq!(link.poll(due - Duration::from_nanos(1)), None);
        assert_eq!(link.poll(due), Some(i));
    }
    assert_eq!(link.backlog_bytes(t0 + ms(100)), 0);
}

#[test]
fn rate_limit_caps_throughput_of_an_overload() {
    // Offer 2x the 10 Mbit/s rate for one second with an unbounded queue: the last
    // delivery is 2 s after the start (everything serialized at 10 Mbit/s), not 1 s.
    let (out, s) = run(
        LinkConfig::default().rate_bps(10_000_000),
        2000,
        1250,
        us(500),
    );
    assert_eq!(out.len(), 2000);
    let span = out.last().unwrap().0 - out.first().unwrap().0;
    // 1999 packets of 1 ms after the first.
    assert_eq!(span, ms(1999));
    assert_eq!(s.bytes_out, 2_500_000);
}

#[test]
fn input_below_the_rate_is_not_queued() {
    // 1250-byte packets every 2 ms at 10 Mbit/s (1 ms each): no waiting, one-way time is
    // always exactly serialization + delay.
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().rate_bps(10_000_000).delay(ms(5)));
    for i in 0..500u32 {
        let now = t0 + ms(2) * i;
        link.push(now, 1250, i);
        assert_eq!(link.next_delivery(), Some(now + ms(6)));
        assert_eq!(link.poll(now + ms(6)), Some(i));
    }
}

#[test]
fn full_queue_drops_the_tail() {
    // 8 kbit/s = 1000 bytes per second; queue of 3000 bytes.
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().rate_bps(8_000).queue_bytes(3000));
    let verdicts: Vec<_> = (0..5u32).map(|i| link.push(t0, 1000, i)).collect();
    let s = |at| Verdict::Scheduled { at, copy_at: None };
    assert_eq!(
        verdicts,
        vec![
            s(t0 + ms(1000)),
            s(t0 + ms(2000)),
            s(t0 + ms(3000)),
            Verdict::QueueFull,
            Verdict::QueueFull
        ]
    );
    assert_eq!(link.stats().dropped_queue, 2);
    // Half a second later 500 bytes have left: room for exactly 500 more.
    assert_eq!(link.backlog_bytes(t0 + ms(500)), 2500);
    assert_eq!(link.push(t0 + ms(500), 501, 10), Verdict::QueueFull);
    assert_eq!(link.push(t0 + ms(500), 500, 11), s(t0 + ms(3500)));
    // An empty queue admits a packet larger than the whole queue.
    assert_eq!(link.push(t0 + ms(4000), 5000, 12), s(t0 + ms(9000)));
    assert_eq!(link.stats().dropped_queue, 3);
}

#[test]
fn limit_bounds_packets_held() {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().delay(ms(100)).limit(3));
    let v: Vec<_> = (0..5u32).map(|i| link.push(t0, 10, i)).collect();
    assert!(matches!(v[2], Verdict::Scheduled { .. }));
    assert_eq!(v[3], Verdict::QueueFull);
    assert_eq!(link.in_flight(), 3);
    assert_eq!(link.stats().dropped_queue, 2);
}

#[test]
fn reordering_actually_reorders() {
    let cfg = LinkConfig::default()
        .delay(ms(10))
        .reorder(0.2, ms(5))
        .seed(11);
    let (out, s) = run(cfg, 10_000, 100, ms(1));
    assert_eq!(out.len(), 10_000);
    let inversions = out.windows(2).filter(|w| w[0].1 > w[1].1).count();
    // About 20% of packets are held back 5 ms and overtaken by the next ~5.
    assert!(
        (1500..2500).contains(&inversions),
        "inversions: {inversions}"
    );
    // Held-back packets arrive exactly reorder_extra late.
    let late = out
        .iter()
        .filter(|(at, i)| *at - out[0].0 == ms(1) * *i + ms(5))
        .count();
    assert!((1800..2200).contains(&late), "late: {late}");
    check_accounting(&s, 0);
}

#[test]
fn without_reorder_probability_nothing_is_reordered() {
    let cfg = LinkConfig::default()
        .delay(ms(10))
        .reorder(0.0, ms(50))
        .seed(11);
    let (out, _) = run(cfg, 1000, 100, us(100));
    assert!(out.windows(2).all(|w| w[0].1 < w[1].1));
}

#[test]
fn duplication_delivers_copies() {
    let n = 20_000u32;
    let cfg = LinkConfig::default().duplicate(0.25).delay(ms(3)).seed(21);
    let (out, s) = run(cfg, n, 100, us(100));
    let expected = f64::from(n) * 0.25;
    let sigma = (f64::from(n) * 0.25 * 0.75).sqrt();
    assert!(
        (s.duplicated as f64 - expected).abs() < 5.0 * sigma,
        "{s:?}"
    );
    assert_eq!(out.len() as u64, u64::from(n) + s.duplicated);
    // Every index arrives once or twice, copies right behind the original.
    let mut seen = vec![0u8; n as usize];
    for &(_, i) in &out {
        seen[i as usize] += 1;
    }
    assert!(seen.iter().all(|&c| c == 1 || c == 2));
    assert_eq!(
        seen.iter().filter(|&&c| c == 2).count() as u64,
        s.duplicated
    );
    check_accounting(&s, 0);
}

#[test]
fn duplicate_reports_both_delivery_times() {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().duplicate(1.0).delay(ms(7)));
    assert_eq!(
        link.push(t0, 10, 'x'),
        Verdict::Scheduled {
            at: t0 + ms(7),
            copy_at: Some(t0 + ms(7))
        }
    );
    assert_eq!(link.poll(t0 + ms(7)), Some('x'));
    assert_eq!(link.poll(t0 + ms(7)), Some('x'));
    assert_eq!(link.poll(t0 + ms(7)), None);
}

#[test]
fn same_seed_gives_identical_trace_and_another_seed_does_not() {
    let cfg = |seed| {
        LinkConfig::default()
            .delay(ms(20))
            .jitter(ms(8))
            .loss(0.05)
            .duplicate(0.02)
            .reorder(0.05, ms(6))
            .rate_bps(50_000_000)
            .queue_bytes(30_000)
            .seed(seed)
    };
    // Relative times so that two runs with different base instants compare equal.
    let rel = |(out, s): (Vec<(Instant, u32)>, LinkStats)| {
        let base = out[0].0;
        (
            out.into_iter()
                .map(|(at, i)| (at - base, i))
                .collect::<Vec<_>>(),
            s,
        )
    };
    let a = rel(run(cfg(42), 20_000, 1300, us(150)));
    let b = rel(run(cfg(42), 20_000, 1300, us(150)));
    let c = rel(run(cfg(43), 20_000, 1300, us(150)));
    assert_eq!(a, b);
    assert_ne!(a.0, c.0);
    assert!(a.1.dropped_queue > 0 && a.1.dropped_loss > 0 && a.1.duplicated > 0);
    check_accounting(&a.1, 0);
}

#[test]
fn changing_config_mid_run_keeps_packets_in_flight() {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().delay(ms(10)));
    link.push(t0, 10, 1);
    link.set_config(LinkConfig::default().loss(1.0));
    assert_eq!(link.push(t0 + ms(1), 10, 2), Verdict::Lost);
    assert_eq!(link.poll(t0 + ms(10)), Some(1));
    link.set_config(LinkConfig::default());
    assert!(matches!(
        link.push(t0 + ms(20), 10, 3),
        Verdict::Scheduled { .. }
    ));
    assert_eq!(link.poll(t0 + ms(20)), Some(3));
}

#[test]
fn clear_drops_everything_in_flight() {
    let t0 = Instant::now();
    let mut link = Link::new(LinkConfig::default().delay(ms(10)).rate_bps(1_000_000));
    for i in 0..10 {
        link.push(t0, 1000, i);
    }
    assert_eq!(link.clear(), 10);
    assert_eq!(link.next_delivery(), None);
    assert_eq!(link.backlog_bytes(t0), 0);
    check_accounting(&link.stats(), 0);
}

#[test]
fn time_going_backwards_does_not_panic() {
    let t0 = Instant::now() + Duration::from_secs(10);
    let mut link = Link::new(
        LinkConfig::default()
            .rate_bps(1_000_000)
            .jitter(ms(3))
            .delay(ms(1)),
    );
    for i in 0..100u32 {
        let now = if i % 2 == 0 {
            t0 + ms(u64::from(i))
        } else {
            t0 - ms(u64::from(i))
        };
        link.push(now, 1000, i);
        let _ = link.poll(now);
    }
    check_accounting(&link.stats(), link.in_flight() as u64);
}
