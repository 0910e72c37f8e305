//! CPU cost of the sans-IO core: one connection pair moving bulk data, no sockets.
//!
//! ```text
//! cargo bench -p mkcp-proto --bench pair
//! ```
//!
//! Two [`Endpoint`]s (a dialer and a listener) exchange datagrams through in-memory
//! queues with a 1 ms virtual one-way delay, no loss and no rate limit. Every datagram
//! is sealed by one endpoint's codec and opened by the other's, acknowledgements flow
//! back, timers run on a virtual clock. The figure criterion reports is stream bytes
//! delivered per second of *wall-clock* time for the whole pair, i.e. the CPU work of
//! sender plus receiver on one core: a ceiling for what the protocol engine alone could
//! carry, before any system call.
//!
//! Variants: the legacy envelope and AES-128-GCM, with default `kcpSettings` and with
//! `congestion: true`.

use std::collections::VecDeque;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mkcp_proto::endpoint::{ConnId, Endpoint, EndpointConfig, Event};
use mkcp_proto::{Config, Security};
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Stream bytes moved per iteration.
const TRANSFER: usize = 4 << 20;
/// One-way delay of the in-memory link (virtual).
const DELAY: Duration = Duration::from_millis(1);
/// Bound on virtual time per transfer, so a stuck engine fails instead of spinning.
const MAX_VIRTUAL: Duration = Duration::from_secs(600);

/// One direction of the in-memory link: a FIFO (constant delay keeps order) with a pool
/// of buffers, so the harness allocates nothing in steady state.
#[derive(Default)]
struct Pipe {
    queue: VecDeque<(Instant, Vec<u8>)>,
    pool: Vec<Vec<u8>>,
}

impl Pipe {
    fn next(&self) -> Option<Instant> {
        self.queue.front().map(|(t, _)| *t)
    }
}

/// Moves every datagram `from` wants to send now into `pipe`.
fn drain(ep: &mut Endpoint, now: Instant, pipe: &mut Pipe) -> bool {
    let mut moved = false;
    loop {
        let mut buf = pipe.pool.pop().unwrap_or_default();
        buf.resize(2048, 0);
        match ep.poll_transmit(now, &mut buf) {
            Some(t) => {
                buf.truncate(t.len);
                pipe.queue.push_back((now + DELAY, buf));
                moved = true;
            }
            None => {
                pipe.pool.push(buf);
                return moved;
            }
        }
    }
}

/// Delivers everything due in `pipe` to `to`.
fn deliver(pipe: &mut Pipe, now: Instant, to: &mut Endpoint, from: SocketAddr) {
    while pipe.next().is_some_and(|t| t <= now) {
        let (_, mut buf) = pipe.queue.pop_front().expect("checked");
        to.handle_datagram(now, from, &mut buf);
        pipe.pool.push(buf);
    }
}

/// Transfers [`TRANSFER`] bytes from a dialer to a listener; returns the virtual time.
fn transfer(kcp: &Config, payload: &[u8], scratch: &mut [u8]) -> Duration {
    let client_addr: SocketAddr = "10.0.0.1:1000".parse().expect("address");
    let server_addr: SocketAddr = "10.0.0.2:2000".parse().expect("address");
    let t0 = Instant::now();
    let mut now = t0;
    let mut client = Endpoint::new(EndpointConfig::client(kcp.clone()), rng(1));
    let mut server = Endpoint::new(EndpointConfig::server(kcp.clone()), rng(2));
    let id = client.connect(now, server_addr).expect("connect");
    let mut server_id: Option<ConnId> = None;
    let (mut up, mut down) = (Pipe::default(), Pipe::default());
    let (mut sent, mut received) = (0usize, 0usize);

    while received < payload.len() {
        assert!(
            now - t0 < MAX_VIRTUAL,
            "transfer stalled at {received} bytes"
        );
        // Application: the client writes what fits, the server reads what arrived.
        while sent < payload.len() {
            match client.write(id, now, &payload[sent..]).expect("write") {
                0 => break,
                n => sent += n,
            }
        }
        while let Some(ev) = server.poll_event() {
            if let Event::NewConnection(sid) = ev {
                server_id.get_or_insert(sid);
            }
        }
        while let Some(ev) = client.poll_event() {
            black_box(ev);
        }
        if let Some(sid) = server_id {
            while let Some(n) = server.read(sid, now, scratch).expect("read") {
                if n == 0 {
                    break;
                }
                received += n;
            }
        }
        // Network: datagrams out, then advance to the next event.
        let moved = drain(&mut client, now, &mut up) | drain(&mut server, now, &mut down);
        if moved {
            continue;
        }
        let next = [
            up.next(),
            down.next(),
            client.poll_timeout(),
            server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next else {
            panic!(
                "nothing scheduled with {received} of {} bytes",
                payload.len()
            );
        };
        now = now.max(next);
        deliver(&mut up, now, &mut server, client_addr);
        deliver(&mut down, now, &mut client, server_addr);
        client.handle_timeout(now);
        server.handle_timeout(now);
    }
    now - t0
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

fn pair(c: &mut Criterion) {
    let payload: Vec<u8> = (0..TRANSFER).map(|i| (i * 31 + 7) as u8).collect();
    let mut scratch = vec![0u8; 256 * 1024];
    let mut g = c.benchmark_group("pair");
    g.throughput(Throughput::Bytes(TRANSFER as u64));
    g.sample_size(10);
    let variants = [
        ("legacy/default", Security::Legacy, false),
        ("legacy/congestion", Security::Legacy, true),
        (
            "aes-128-gcm/default",
            Security::AesGcm {
                seed: "benchmark".into(),
            },
            false,
        ),
    ];
    for (name, security, congestion) in variants {
        let mut kcp = Config::default();
        kcp.security = security;
        kcp.congestion = congestion;
        let virt = transfer(&kcp, &payload, &mut scratch);
        eprintln!(
            "pair/{name}: {} MiB in {:.3} s of virtual time",
            TRANSFER >> 20,
            virt.as_secs_f64()
        );
        g.bench_function(name, |b| {
            b.iter(|| transfer(&kcp, black_box(&payload), &mut scratch))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = pair
}
criterion_main!(benches);
