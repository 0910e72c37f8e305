//! Our sender against a peer that behaves like V2Ray (`Tuning::v2ray_compat`): V2Ray
//! acknowledges only in its flush, once per TTI while busy (PROTOCOL.md §3.5, §3.6), so an
//! ack can come up to one TTI after the data arrived. Found by the interop tests of the
//! `mkcp` crate against the real V2Ray 4.34 binary. By the time V2Ray flushes an ack,
//! its application has usually read the data, so the ack's `receivingNext` already
//! covers every number it lists. Applying that cumulative point before the list freed
//! the segments without any RTT or delivery-rate sample: the RTO sat at its 30 ms floor
//! on the few short samples that survived, nearly every segment was retransmitted
//! spuriously, and the bandwidth estimate (so the pacing rate) starved. Once samples
//! flowed, a window of 2 x bandwidth x min RTT (min RTT: V2Ray acks at once when idle)
//! let only a few segments out per TTI; the window now also covers one TTI of ack delay.

mod support;

use std::time::Duration;

use mkcp_proto::{Config, ConnectionStats, EndpointConfig};
use mkcp_sim::link::LinkConfig;
use mkcp_sim::net::Network;
use support::{addr, random_bytes, SimPeer};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Sends `len` bytes from a default mkcp client to a V2Ray-like server over a clean
/// link with `delay` each way, while the peer sends as much back (full duplex, as an
/// echo); returns our connection's statistics.
fn bulk_to_v2ray_like_peer(len: usize, delay: Duration, tti: u32) -> (ConnectionStats, f64) {
    let mut ours = Config::default();
    ours.tti = tti;
    let mut v2ray = ours.clone();
    v2ray.tuning.v2ray_compat = true;
    let client = addr("10.0.0.1:1000");
    let server = addr("10.0.0.2:2000");
    let t0 = std::time::Instant::now();
    let mut net = Network::new(t0, LinkConfig::default());
    let link = LinkConfig::default().delay(delay).seed(7);
    net.set_link(client, server, link.clone());
    net.set_link(server, client, link);
    let mut srv = SimPeer::new(EndpointConfig::server(v2ray), 11);
    // Full duplex, as in an echo: the V2Ray-like side sends as much back.
    srv.app.to_send = random_bytes(6, len);
    net.add_node(server, srv);
    let mut c = SimPeer::client(ours, 12, t0, server);
    let data = random_bytes(5, len);
    c.app.to_send = data.clone();
    net.add_node(client, c);
    let done = net
        .run_until_cond(Duration::from_secs(120), |net| {
            net.node::<SimPeer>(server)
                .is_some_and(|s| s.app.received.len() >= len)
                && net
                    .node::<SimPeer>(client)
                    .is_some_and(|c| c.app.received.len() >= len)
        })
        .expect("simulation must not stall");
    assert!(done, "transfer did not finish");
    let s = net.node::<SimPeer>(server).expect("server");
    assert!(s.app.received == data, "data differs");
    let c = net.node::<SimPeer>(client).expect("client");
    let id = c.app.id.expect("client connection");
    let st = c.ep.connection_stats(id).expect("stats");
    let secs = (net.now() - t0).as_secs_f64();
    eprintln!(
        "  goodput {:.2} MiB/s each way ({secs:.2} s)",
        len as f64 / f64::from(1 << 20) / secs
    );
    (st, len as f64 / f64::from(1 << 20) / secs)
}

#[test]
fn acks_from_a_v2ray_peer_flush_give_rtt_and_rate_samples_no_spurious_retransmissions_and_full_windows(
) {
    for (delay, tti) in [(ms(0), 50), (ms(1), 50), (ms(5), 20), (ms(20), 100)] {
        let (st, goodput) = bulk_to_v2ray_like_peer(2 << 20, delay, tti);
        eprintln!(
            "delay {delay:?} tti {tti}: srtt {} ms, rto {} ms, min rtt {} us, bandwidth {} B/s, \
             {} retransmissions of {} data segments, {} RTO expiries",
            st.srtt_ms,
            st.rto_ms,
            st.min_rtt_us,
            st.bandwidth,
            st.retransmissions,
            st.data_segments_sent,
            st.timeouts
        );
        let rtt_ms = 2 * delay.as_millis() as u32;
        assert!(
            st.min_rtt_us > 0 && st.bandwidth > 0,
            "delay {delay:?} tti {tti}: no RTT or rate sample: {st:?}"
        );
        // The samples include the peer's ack delay (up to one TTI).
        assert!(
            st.srtt_ms >= rtt_ms,
            "delay {delay:?} tti {tti}: srtt below the path RTT: {st:?}"
        );
        // The window covers the peer's ack delay (before: a few segments per TTI,
        // about 0.4 MiB/s).
        assert!(
            goodput >= 1.0,
            "delay {delay:?} tti {tti}: goodput {goodput:.2} MiB/s: {st:?}"
        );
        assert!(
            st.retransmissions * 50 <= st.data_segments_sent,
            "delay {delay:?} tti {tti}: spurious retransmissions on a clean link: {st:?}"
        );
    }
}
