//! The relay on loopback: forwarding, delay, loss and rate, counters, limits, shutdown.
//!
//! Timing assertions are lower bounds the model guarantees (a packet never leaves early)
//! plus generous upper bounds; every wait is bounded.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mkcp_netem::{LinkConfig, Relay, RelayHandle, RelayOptions, RelayStats};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};

const LOCAL: &str = "127.0.0.1:0";
const LIMIT: Duration = Duration::from_secs(10);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn local() -> SocketAddr {
    LOCAL.parse().unwrap()
}

/// A UDP echo server on loopback.
async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
    let socket = UdpSocket::bind(LOCAL).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = vec![0; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    (addr, task)
}

/// Arrival times of everything received, in order.
struct Sink {
    addr: SocketAddr,
    count: Arc<AtomicU64>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    task: JoinHandle<()>,
}

async fn sink() -> Sink {
    let socket = UdpSocket::bind(LOCAL).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let (c, a) = (count.clone(), arrivals.clone());
    let task = tokio::spawn(async move {
        let mut buf = vec![0; 65536];
        while socket.recv(&mut buf).await.is_ok() {
            a.lock().unwrap().push(Instant::now());
            c.fetch_add(1, Ordering::Relaxed);
        }
    });
    Sink {
        addr,
        count,
        arrivals,
        task,
    }
}

/// Waits (bounded) until `cond` holds on the relay's stats; returns the last snapshot.
async fn wait_stats(relay: &RelayHandle, cond: impl Fn(&RelayStats) -> bool) -> RelayStats {
    let deadline = Instant::now() + LIMIT;
    loop {
        let s = relay.stats();
        if cond(&s) || Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(ms(5)).await;
    }
}

/// Sends `n` datagrams of `len` bytes in bursts of `burst`, yielding 1 ms between bursts
/// so that loopback socket buffers never overflow.
async fn send_paced(socket: &UdpSocket, to: SocketAddr, n: usize, len: usize, burst: usize) {
    let data = vec![0x5a; len];
    for i in 0..n {
        socket.send_to(&data, to).await.unwrap();
        if (i + 1) % burst == 0 {
            tokio::time::sleep(ms(1)).await;
        }
    }
}

#[tokio::test]
async fn forwards_both_ways_and_keeps_clients_apart() {
    let (server, echo) = echo_server().await;
    let relay = Relay::start(
        local(),
        server,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let a = UdpSocket::bind(LOCAL).await.unwrap();
    let b = UdpSocket::bind(LOCAL).await.unwrap();
    let mut buf = [0u8; 64];
    for round in 0..3u8 {
        a.send_to(&[b'a', round], relay.local_addr()).await.unwrap();
        b.send_to(&[b'b', round], relay.local_addr()).await.unwrap();
        let (n, from) = timeout(LIMIT, a.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], from), (&[b'a', round][..], relay.local_addr()));
        let (n, _) = timeout(LIMIT, b.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], &[b'b', round]);
    }
    let s = wait_stats(&relay, |s| s.down.packets_out == 6).await;
    assert_eq!(s.sessions, 2);
    assert_eq!(s.sessions_total, 2);
    assert_eq!(
        (s.up.packets_in, s.up.bytes_in, s.up.packets_out),
        (6, 12, 6)
    );
    assert_eq!(
        (s.down.packets_in, s.down.packets_out, s.down.bytes_out),
        (6, 6, 12)
    );
    assert_eq!(relay.target(), server);
    relay.shutdown().await;
    echo.abort();
}

#[tokio::test]
async fn delay_is_honoured_each_way() {
    let (server, echo) = echo_server().await;
    let relay = Relay::start(
        local(),
        server,
        LinkConfig::default().delay(ms(40)),
        LinkConfig::default().delay(ms(60)).jitter(ms(10)).seed(3),
    )
    .await
    .unwrap();
    let client = UdpSocket::bind(LOCAL).await.unwrap();
    let mut buf = [0u8; 64];
    for i in 0..5u8 {
        let sent = Instant::now();
        client.send_to(&[i], relay.local_addr()).await.unwrap();
        let n = timeout(LIMIT, client.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let rtt = sent.elapsed();
        assert_eq!(&buf[..n], &[i]);
        // The model never releases early: 40 ms up + at least 60 ms down.
        assert!(rtt >= ms(100), "rtt {rtt:?}");
        assert!(rtt < ms(1000), "rtt {rtt:?}");
    }
    relay.shutdown().await;
    echo.abort();
}

#[tokio::test]
async fn loss_counters_are_consistent() {
    let sink = sink().await;
    let relay = Relay::start(
        local(),
        sink.addr,
        LinkConfig::default().loss(0.3).delay(ms(2)).seed(99),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let client = UdpSocket::bind(LOCAL).await.unwrap();
    let n = 1000u64;
    send_paced(&client, relay.local_addr(), n as usize, 200, 20).await;
    let s = wait_stats(&relay, |s| {
        s.up.packets_in == n && s.up.packets_out + s.up.dropped() == n
    })
    .await;
    assert_eq!(s.up.packets_in, n);
    assert_eq!(s.up.bytes_in, n * 200);
    assert_eq!(s.up.packets_out + s.up.dropped_loss, n);
    assert_eq!(s.up.dropped_queue, 0);
    // 30 % of 1000, within 5 sigma (sigma = 14.5).
    assert!((228..=372).contains(&s.up.dropped_loss), "{s:?}");
    // Everything the link let out reached the target.
    let deadline = Instant::now() + LIMIT;
    while sink.count.load(Ordering::Relaxed) < s.up.packets_out && Instant::now() < deadline {
        tokio::time::sleep(ms(5)).await;
    }
    assert_eq!(sink.count.load(Ordering::Relaxed), s.up.packets_out);
    assert_eq!(s.send_errors, 0);
    relay.shutdown().await;
    sink.task.abort();
}

#[tokio::test]
async fn rate_limit_is_honoured() {
    let sink = sink().await;
    // 4 Mbit/s: a 1000-byte datagram takes 2 ms to serialize.
    let relay = Relay::start(
        local(),
        sink.addr,
        LinkConfig::default().rate_bps(4_000_000),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let client = UdpSocket::bind(LOCAL).await.unwrap();
    let n = 100u64;
    let start = Instant::now();
    send_paced(&client, relay.local_addr(), n as usize, 1000, 10).await;
    let s = wait_stats(&relay, |s| s.up.packets_out == n).await;
    assert_eq!(s.up.packets_out, n);
    let deadline = Instant::now() + LIMIT;
    while sink.count.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(ms(5)).await;
    }
    let arrivals = sink.arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len() as u64, n);
    let took = *arrivals.last().unwrap() - start;
    // 100 datagrams at 2 ms each: never faster than 200 ms...
    assert!(took >= ms(200), "took {took:?}");
    assert!(took < ms(2000), "took {took:?}");
    // ...and the k-th datagram (from 1) never before k * 2 ms: serializations of
    // successive datagrams occupy disjoint intervals after the start.
    for (k, at) in arrivals.iter().enumerate() {
        assert!(
            *at - start >= ms(2) * (k as u32 + 1),
            "datagram {k} after {:?}",
            *at - start
        );
    }
    relay.shutdown().await;
    sink.task.abort();
}

#[tokio::test]
async fn full_bottleneck_queue_drops() {
    let sink = sink().await;
    // 800 kbit/s = 100 bytes per ms; a 5000-byte queue holds 5 datagrams of 1000 bytes.
    let relay = Relay::start(
        local(),
        sink.addr,
        LinkConfig::default().rate_bps(800_000).queue_bytes(5000),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let client = UdpSocket::bind(LOCAL).await.unwrap();
    let n = 40u64;
    let data = [0u8; 1000];
    for _ in 0..n {
        client.send_to(&data, relay.local_addr()).await.unwrap();
    }
    let s = wait_stats(&relay, |s| {
        s.up.packets_in == n && s.up.packets_out + s.up.dropped() == n
    })
    .await;
    assert_eq!(s.up.packets_out + s.up.dropped_queue, n, "{s:?}");
    // 40 datagrams arrive within a few ms, while one takes 10 ms to leave.
    assert!(s.up.dropped_queue >= 20, "{s:?}");
    relay.shutdown().await;
    sink.task.abort();
}

#[tokio::test]
async fn links_can_be_changed_while_running() {
    let (server, echo) = echo_server().await;
    let relay = Relay::start(
        local(),
        server,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let client = UdpSocket::bind(LOCAL).await.unwrap();
    let mut buf = [0u8; 16];
    client.send_to(b"1", relay.local_addr()).await.unwrap();
    timeout(LIMIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();

    // set_links completes once the relay applied the change.
    relay
        .set_links(LinkConfig::default().loss(1.0), LinkConfig::default())
        .await;
    client.send_to(b"2", relay.local_addr()).await.unwrap();
    let s = wait_stats(&relay, |s| s.up.dropped_loss == 1).await;
    assert_eq!((s.up.dropped_loss, s.up.packets_out), (1, 1), "{s:?}");
    // The datagram was dropped on the way up, so no echo is on its way.
    let pending = client.try_recv(&mut buf);
    assert!(pending.is_err(), "{pending:?}");

    relay
        .set_links(LinkConfig::default(), LinkConfig::default())
        .await;
    client.send_to(b"3", relay.local_addr()).await.unwrap();
    let n = timeout(LIMIT, client.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], b"3");
    relay.shutdown().await;
    echo.abort();
}

#[tokio::test]
async fn session_limit_and_idle_expiry() {
    let (server, echo) = echo_server().await;
    let options = RelayOptions::default()
        .max_sessions(1)
        .session_idle(ms(100));
    let relay = Relay::start_with(
        local(),
        server,
        LinkConfig::default(),
        LinkConfig::default(),
        options,
    )
    .await
    .unwrap();
    let a = UdpSocket::bind(LOCAL).await.unwrap();
    let b = UdpSocket::bind(LOCAL).await.unwrap();
    let mut buf = [0u8; 16];
    a.send_to(b"a", relay.local_addr()).await.unwrap();
    timeout(LIMIT, a.recv(&mut buf)).await.unwrap().unwrap();
    b.send_to(b"b", relay.local_addr()).await.unwrap();
    let s = wait_stats(&relay, |s| s.sessions_rejected == 1).await;
    assert_eq!((s.sessions, s.sessions_rejected), (1, 1));

    // After the idle time (swept about once a second) a's session is gone and b gets in.
    let s = wait_stats(&relay, |s| s.sessions == 0).await;
    assert_eq!(s.sessions, 0);
    b.send_to(b"b", relay.local_addr()).await.unwrap();
    let n = timeout(LIMIT, b.recv(&mut buf)).await.unwrap().unwrap();
    assert_eq!(&buf[..n], b"b");
    assert_eq!(relay.stats().sessions_total, 2);
    relay.shutdown().await;
    echo.abort();
}

#[tokio::test]
async fn shutdown_stops_forwarding_and_frees_the_port() {
    let (server, echo) = echo_server().await;
    let relay = Relay::start(
        local(),
        server,
        LinkConfig::default().delay(ms(500)),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let addr = relay.local_addr();
    let client = UdpSocket::bind(LOCAL).await.unwrap();
    client.send_to(b"lost in flight", addr).await.unwrap();
    wait_stats(&relay, |s| s.up.packets_in == 1).await;
    timeout(LIMIT, relay.shutdown()).await.unwrap();
    // The port is free again: the relay's socket was closed.
    let rebound = UdpSocket::bind(addr).await;
    assert!(rebound.is_ok(), "{rebound:?}");
    let mut buf = [0u8; 32];
    assert!(timeout(ms(700), client.recv(&mut buf)).await.is_err());
    echo.abort();
}

#[tokio::test]
async fn dropping_the_handle_stops_the_relay() {
    let (server, echo) = echo_server().await;
    let relay = Relay::start(
        local(),
        server,
        LinkConfig::default(),
        LinkConfig::default(),
    )
    .await
    .unwrap();
    let addr = relay.local_addr();
    drop(relay);
    let deadline = Instant::now() + LIMIT;
    loop {
        if UdpSocket::bind(addr).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "relay still bound to {addr}");
        tokio::time::sleep(ms(5)).await;
    }
    echo.abort();
}

#[tokio::test]
async fn closed_target_port_is_counted_not_fatal() {
    // Bind then drop a socket to find a port nobody listens on.
    let dead = UdpSocket::bind(LOCAL).await.unwrap().local_addr().unwrap();
    let relay = Relay::start(local(), dead, LinkConfig::default(), LinkConfig::default())
        .await
        .unwrap();
    let client = UdpSocket::bind(LOCAL).await.unwrap();
    for _ in 0..5 {
        client.send_to(b"x", relay.local_addr()).await.unwrap();
        tokio::time::sleep(ms(5)).await;
    }
    let s = wait_stats(&relay, |s| s.up.packets_out == 5).await;
    assert_eq!(s.up.packets_out, 5);
    // The relay is still alive and answering stats; ICMP refusals show up as errors.
    assert!(s.recv_errors + s.send_errors <= 5);
    relay.shutdown().await;
}
