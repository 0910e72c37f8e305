//! The steady-state data path allocates nothing per packet (style rule 5): a counting
//! global allocator watches a bulk transfer between two endpoints in memory.

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mkcp_proto::endpoint::{EndpointConfig, Event};
use mkcp_proto::{Config, Endpoint};
use rand::rngs::StdRng;
use rand::SeedableRng;

struct Counting;
static ALLOCS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn steady_state_transfer_allocates_nothing_per_packet() {
    let mut now = Instant::now();
    let saddr: SocketAddr = "10.0.0.1:1".parse().unwrap();
    let caddr: SocketAddr = "10.0.0.2:2".parse().unwrap();
    let mut server = Endpoint::new(
        EndpointConfig::server(Config::default()),
        StdRng::seed_from_u64(1),
    );
    let mut client = Endpoint::new(
        EndpointConfig::client(Config::default()),
        StdRng::seed_from_u64(2),
    );
    let cid = client.connect(now, saddr).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let mut buf = vec![0u8; 2048];
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut sid = None;
    let mut received = 0usize;
    let mut packets = 0u64;
    let mut step = |now: Instant,
                    server: &mut Endpoint,
                    client: &mut Endpoint,
                    sid: &mut Option<_>,
                    received: &mut usize,
                    packets: &mut u64| {
        while client.write(cid, now, &chunk).unwrap_or(0) > 0 {}
        while let Some(t) = client.poll_transmit(now, &mut buf) {
            server.handle_datagram(now, caddr, &mut buf[..t.len]);
            *packets += 1;
        }
        while let Some(e) = server.poll_event() {
            if let Event::NewConnection(id) = e {
                *sid = Some(id);
            }
        }
        if let Some(id) = *sid {
            while let Ok(Some(n)) = server.read(id, now, &mut rbuf) {
                if n == 0 {
                    break;
                }
                *received += n;
            }
        }
        while let Some(t) = server.poll_transmit(now, &mut buf) {
            client.handle_datagram(now, saddr, &mut buf[..t.len]);
            *packets += 1;
        }
        while client.poll_event().is_some() {}
        server.handle_timeout(now);
        client.handle_timeout(now);
    };
    // Warm up: buffers, pools and queues reach their working size.
    for _ in 0..2000 {
        now += Duration::from_micros(200);
        step(
            now,
            &mut server,
            &mut client,
            &mut sid,
            &mut received,
            &mut packets,
        );
    }
    let (p0, r0) = (packets, received);
    let a0 = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..5000 {
        now += Duration::from_micros(200);
        step(
            now,
            &mut server,
            &mut client,
            &mut sid,
            &mut received,
            &mut packets,
        );
    }
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let pkts = packets - p0;
    let bytes = received - r0;
    println!("{pkts} datagrams, {bytes} bytes delivered, {allocs} allocations");
    assert!(bytes > 50 << 20, "transfer did not run: {bytes} bytes");
    assert!(
        (allocs as f64) < pkts as f64 * 0.001,
        "{allocs} allocations for {pkts} datagrams"
    );
}
