//! A rate limit that holds (issue 12 item 5): `Tuning::max_send_rate` caps a session's
//! goodput on a link faster than the cap, in both directions between mkcp peers, for a
//! V2Ray sender (shaped by the window we advertise) and for an mkcp sender to V2Ray;
//! a cap above what the link carries costs nothing.
//!
//! Goodput is measured in virtual time from the moment the receiver holds
//! [`WARMUP`] bytes to the last byte, so that startup does not count.
//!
//! `cargo test -p mkcp-proto --test rate_limit -- --nocapture` prints the figures.

mod support;

use std::time::{Duration, Instant};

use mkcp_proto::{Config, EndpointConfig};
use mkcp_sim::link::LinkConfig;
use mkcp_sim::net::Network;
use support::{addr, random_bytes, SimPeer};

const MIB: f64 = 1048576.0;
/// The cap of most tests: 2 MiB/s.
const CAP: u64 = 2 << 20;
/// Bytes received before the measurement starts.
const WARMUP: usize = 4 << 20;

/// 100 Mbit/s, `delay_ms` one way, `loss`, a queue of about one BDP at 30 ms.
fn link(delay_ms: u64, loss: f64, seed: u64) -> LinkConfig {
    LinkConfig::default()
        .delay(Duration::from_millis(delay_ms))
        .loss(loss)
        .rate_bps(100_000_000)
        .queue_bytes(750_000)
        .seed(seed)
}

fn config(v2ray: bool, cap: Option<u64>) -> Config {
    let mut c = Config::default();
    c.tuning.v2ray_compat = v2ray;
    c.tuning.max_send_rate = cap;
    c
}

/// One transfer of `len` bytes from `sender` to the other side over `link` both ways;
/// the client dials. Returns the receiver's steady goodput in MiB/s.
fn transfer(
    label: &str,
    client: Config,
    server: Config,
    upload: bool,
    link: LinkConfig,
    len: usize,
) -> f64 {
    let c_addr = addr("10.0.0.1:1000");
    let s_addr = addr("10.0.0.2:2000");
    let t0 = Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    net.set_link(c_addr, s_addr, link.clone());
    net.set_link(s_addr, c_addr, link.clone().seed(link.seed + 1));
    let mut srv = SimPeer::new(EndpointConfig::server(server), 11);
    srv.app.read_delay = Some(Duration::ZERO);
    let mut cli = SimPeer::client(client, 12, t0, s_addr);
    cli.app.read_delay = Some(Duration::ZERO);
    let data = random_bytes(3, len);
    if upload {
        cli.app.to_send = data.clone();
    } else {
        // A one-byte request opens the session on the server (a V2Ray dialer only
        // shows itself with data).
        let id = cli.app.id.expect("dialed");
        cli.ep.write(id, t0, b"?").expect("write");
        cli.pump(t0);
        srv.app.to_send = data.clone();
    }
    net.add_node(s_addr, srv);
    net.add_node(c_addr, cli);
    let (sender, receiver) = if upload {
        (c_addr, s_addr)
    } else {
        (s_addr, c_addr)
    };
    let now = net.now();
    net.node_mut::<SimPeer>(sender).expect("sender").pump(now);
    let received_at = |net: &mut Network, n: usize| {
        let done = net
            .run_until_cond(Duration::from_secs(600), |net| {
                net.node::<SimPeer>(receiver)
                    .is_some_and(|r| r.app.received.len() >= n)
            })
            .expect("simulation must not stall");
        assert!(done, "{label}: {n} bytes did not arrive");
        net.now()
    };
    let start = received_at(&mut net, WARMUP);
    let end = received_at(&mut net, len);
    let r = net.node::<SimPeer>(receiver).expect("receiver");
    assert!(r.app.received == data, "{label}: data differs");
    let goodput = (len - WARMUP) as f64 / MIB / (end - start).as_secs_f64();
    let up = net.link_stats(c_addr, s_addr);
    let down = net.link_stats(s_addr, c_addr);
    println!(
        "{label}: {goodput:.3} MiB/s over {:.1} s virtual; link drops up loss {} queue {}, down loss {} queue {}",
        (end - start).as_secs_f64(),
        up.dropped_loss,
        up.dropped_queue,
        down.dropped_loss,
        down.dropped_queue,
    );
    goodput
}

fn assert_near_cap(label: &str, goodput: f64) {
    let cap = CAP as f64 / MIB;
    assert!(
        (goodput - cap).abs() <= cap * 0.05,
        "{label}: {goodput:.3} MiB/s is not within 5 % of the {cap} MiB/s cap"
    );
}

#[test]
fn mkcp_upload_is_held_at_the_cap() {
    let label = "mkcp -> mkcp upload, 2 MiB/s cap, 100 Mbit/s 10 ms";
    let g = transfer(
        label,
        config(false, Some(CAP)),
        config(false, None),
        true,
        link(10, 0.0, 1),
        40 << 20,
    );
    assert_near_cap(label, g);
}

#[test]
fn mkcp_download_is_held_at_the_cap() {
    let label = "mkcp -> mkcp download, 2 MiB/s cap, 100 Mbit/s 10 ms";
    let g = transfer(
        label,
        config(false, None),
        config(false, Some(CAP)),
        false,
        link(10, 0.0, 2),
        40 << 20,
    );
    assert_near_cap(label, g);
}

/// On the lossy link of issue 12 the cap still holds (retransmissions count against
/// it, so goodput sits a little lower, still within 5 %).
#[test]
fn the_cap_holds_on_a_lossy_long_link() {
    let label = "mkcp -> mkcp upload, 2 MiB/s cap, 100 Mbit/s 30 ms 2 %";
    let g = transfer(
        label,
        config(false, Some(CAP)),
        config(false, None),
        true,
        link(30, 0.02, 3),
        40 << 20,
    );
    assert_near_cap(label, g);
}

/// A cap of 64 MiB/s on a 100 Mbit/s (11.9 MiB/s) link: goodput as without a cap, over
/// three link seeds (a cap paces the first flight, and a single lossy run can diverge
/// from there by a percent either way: over seeds 4-13, eight came out identical, one
/// 1.2 % lower and one 0.05 % lower).
#[test]
fn a_cap_above_the_link_costs_nothing() {
    let len = 48 << 20;
    let (mut free, mut capped) = (0.0, 0.0);
    for seed in [4, 5, 6] {
        free += transfer(
            "mkcp upload, no cap, 100 Mbit/s 30 ms 2 %",
            config(false, None),
            config(false, None),
            true,
            link(30, 0.02, seed),
            len,
        );
        capped += transfer(
            "mkcp upload, 64 MiB/s cap, 100 Mbit/s 30 ms 2 %",
            config(false, Some(64 << 20)),
            config(false, None),
            true,
            link(30, 0.02, seed),
            len,
        );
    }
    assert!(
        capped >= free * 0.99,
        "a cap above the link cost goodput: {:.3} MiB/s against {:.3} without (mean of 3)",
        capped / 3.0,
        free / 3.0
    );
}

/// A V2Ray sender (the `v2ray_compat` model) cannot be paced by us; the window our
/// receiver advertises holds it at the receiver's cap.
#[test]
fn a_v2ray_sender_is_held_at_the_receivers_cap() {
    let label = "V2Ray -> mkcp download, 2 MiB/s cap on the mkcp side, 100 Mbit/s 10 ms";
    let g = transfer(
        label,
        config(false, Some(CAP)),
        config(true, None),
        false,
        link(10, 0.0, 5),
        40 << 20,
    );
    assert_near_cap(label, g);
}

#[test]
fn an_mkcp_sender_to_v2ray_is_held_at_its_cap() {
    let label = "mkcp -> V2Ray upload, 2 MiB/s cap, 100 Mbit/s 10 ms";
    let g = transfer(
        label,
        config(false, Some(CAP)),
        config(true, None),
        true,
        link(10, 0.0, 6),
        40 << 20,
    );
    assert_near_cap(label, g);
}

#[test]
fn a_cap_below_the_minimum_is_rejected() {
    let mut c = Config::default();
    c.tuning.max_send_rate = Some(mkcp_proto::config::MIN_SEND_RATE - 1);
    let e = c.validate().expect_err("a cap of 1023 bytes/s");
    assert!(e.to_string().contains("max_send_rate"), "{e}");
    c.tuning.max_send_rate = Some(mkcp_proto::config::MIN_SEND_RATE);
    assert_eq!(c.validate(), Ok(()));
}

/// The cap holds at every moment, startup included: over any 100 ms the sender's
/// datagrams carry at most 100 ms of the cap plus the pacer's burst (4 datagrams).
#[test]
fn no_burst_exceeds_the_cap_from_the_first_datagram() {
    let c_addr = addr("10.0.0.1:1000");
    let s_addr = addr("10.0.0.2:2000");
    let t0 = Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    net.set_link(c_addr, s_addr, link(10, 0.0, 7));
    net.set_link(s_addr, c_addr, link(10, 0.0, 8));
    net.add_node(
        s_addr,
        SimPeer::new(EndpointConfig::server(config(false, None)), 11),
    );
    let mut cli = SimPeer::client(config(false, Some(CAP)), 12, t0, s_addr);
    cli.app.to_send = random_bytes(4, 8 << 20);
    cli.pump(t0);
    net.add_node(c_addr, cli);
    let step = Duration::from_millis(10);
    let mut sent = vec![0u64];
    for _ in 0..300 {
        net.run_for(step).expect("simulation must not stall");
        sent.push(net.link_stats(c_addr, s_addr).bytes_in);
    }
    // 1350-byte datagrams carry 1344 bytes of what the pacer counts.
    let per_100ms = CAP as f64 / 10.0 * 1350.0 / 1344.0;
    let burst = 4.0 * 1350.0;
    let worst = sent
        .windows(11)
        .map(|w| w[10] - w[0])
        .max()
        .expect("samples");
    println!(
        "most sent in 100 ms: {worst} bytes (cap: {per_100ms:.0} + burst {burst:.0}); {} in 3 s",
        sent[300]
    );
    assert!(
        worst as f64 <= per_100ms + burst,
        "{worst} bytes in 100 ms at a 2 MiB/s cap"
    );
    // And it is not idle either: 3 s carried at least 95 % of 3 s of the cap.
    assert!(sent[300] as f64 >= 0.95 * 3.0 * CAP as f64, "{}", sent[300]);
}

/// The V2Ray sender with a cap above the link: shaped as without a cap.
#[test]
fn a_cap_above_the_link_costs_a_v2ray_sender_nothing() {
    let len = 16 << 20;
    let free = transfer(
        "V2Ray -> mkcp, no cap, 100 Mbit/s 30 ms 2 %",
        config(false, None),
        config(true, None),
        false,
        link(30, 0.02, 9),
        len,
    );
    let capped = transfer(
        "V2Ray -> mkcp, 64 MiB/s cap, 100 Mbit/s 30 ms 2 %",
        config(false, Some(64 << 20)),
        config(true, None),
        false,
        link(30, 0.02, 9),
        len,
    );
    assert!(
        capped >= free * 0.99,
        "a cap above the link cost goodput: {capped:.3} MiB/s against {free:.3} without"
    );
}
