//! The runtime's batched data path allocates (next to) nothing per datagram: a counting
//! global allocator watches a loopback transfer through `KcpStream`s after a warm-up.
//!
//! The sans-IO core allocates nothing per datagram (`mkcp-proto/tests/allocations.rs`);
//! this checks that the runtime around it (socket task, batches, wakers, tokio) keeps
//! it so. The count covers every thread of the process, so it also includes whatever
//! tokio itself allocates while the transfer runs; the bound is per datagram moved
//! (sent and received, both ends).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mkcp::{Config, KcpListener, KcpStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::timeout;

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

/// Bytes per phase.
const PHASE: usize = 32 << 20;
/// Phases: one of warm-up, then the measured ones.
const PHASES: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_state_loopback_transfer_allocates_next_to_nothing_per_datagram() {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // The reader reports each phase's end, so the writer can take the counts between.
    let (phase_tx, mut phase_rx) = mpsc::channel::<usize>(4);
    let reader = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0;
        let mut next = PHASE;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            total += n;
            if total >= next {
                next += PHASE;
                let _ = phase_tx.send(total).await;
            }
        }
        io::Result::Ok((total, listener))
    });
    let mut stream = KcpStream::connect(addr, Config::default())
        .await
        .expect("connect");
    let chunk = vec![0x5Au8; 64 * 1024];
    let run = async {
        // One phase of warm-up, then two measured.
        let mut counts = Vec::new();
        for phase in 0..PHASES {
            if phase == 1 {
                counts.push((ALLOCS.load(Ordering::Relaxed), stream.stats()));
            }
            for _ in 0..PHASE / chunk.len() {
                stream.write_all(&chunk).await?;
            }
            phase_rx.recv().await;
        }
        counts.push((ALLOCS.load(Ordering::Relaxed), stream.stats()));
        stream.shutdown().await?;
        let (total, listener) = reader.await.expect("reader panicked")?;
        io::Result::Ok((counts, total, listener))
    };
    let (counts, total, _listener) = timeout(Duration::from_secs(240), run)
        .await
        .expect("transfer timed out")
        .expect("transfer failed");
    assert_eq!(total, PHASES * PHASE);
    let (a0, s0) = &counts[0];
    let (a1, s1) = &counts[1];
    let allocs = a1 - a0;
    // What the client sent the server received, and the other way round: each datagram
    // is handled twice (one send, one receive).
    let client_datagrams =
        (s1.datagrams_sent - s0.datagrams_sent) + (s1.datagrams_received - s0.datagrams_received);
    let data = s1.data_segments_sent - s0.data_segments_sent;
    let datagrams = 2 * client_datagrams;
    let per_datagram = allocs as f64 / datagrams as f64;
    eprintln!(
        "measured phases: {allocs} allocations, {client_datagrams} datagrams to and from \
         the client ({data} data segments, {} retransmitted): {per_datagram:.4} per datagram \
         sent or received",
        s1.retransmissions - s0.retransmissions
    );
    assert!(
        data > 10_000,
        "too little traffic to judge: {data} segments"
    );
    // What is left are the core's payload pools growing to a new high-water mark when
    // the scheduling lets more segments be in flight than during the warm-up: bounded
    // by the windows (a few thousand buffers over a connection's life), not per datagram.
    assert!(
        per_datagram < 0.05,
        "{allocs} allocations for {datagrams} datagrams ({per_datagram:.4} each)"
    );
}
