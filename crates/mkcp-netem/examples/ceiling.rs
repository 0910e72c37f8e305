//! Measures the relay's own ceiling on loopback: how many datagrams per second it forwards
//! with no impairment at all.
//!
//! ```text
//! cargo run --release -p mkcp-netem --example ceiling -- [seconds=3] [size=1300] [window=256]
//! ```
//!
//! A sender thread keeps at most `window` datagrams between itself and the sink (counted by
//! a shared atomic), so the relay, not the kernel's socket buffers, is the bottleneck and
//! nothing is lost to overflowing buffers. The relay runs on a one-thread tokio runtime;
//! sender and sink are plain blocking threads.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mkcp_netem::{LinkConfig, Relay};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let seconds = arg(1, 3);
    let size = arg(2, 1300) as usize;
    let window = arg(3, 256);

    let sink = UdpSocket::bind("127.0.0.1:0")?;
    sink.set_read_timeout(Some(Duration::from_millis(200)))?;
    let sink_addr = sink.local_addr()?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let relay = runtime.block_on(Relay::start(
        "127.0.0.1:0".parse().expect("address"),
        sink_addr,
        LinkConfig::default(),
        LinkConfig::default(),
    ))?;
    let relay_addr = relay.local_addr();
    // Drive the relay on its own thread.
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let relay_thread = thread::Builder::new().name("relay".into()).spawn(move || {
        runtime.block_on(async move {
            let _ = stop_rx.await;
            let stats = relay.stats();
            relay.shutdown().await;
            (stats, thread_cpu_seconds())
        })
    })?;

    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sink_thread = {
        let (received, stop) = (received.clone(), stop.clone());
        thread::Builder::new().name("sink".into()).spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                if sink.recv(&mut buf).is_ok() {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })?
    };

    let sender = UdpSocket::bind("127.0.0.1:0")?;
    sender.connect(relay_addr)?;
    let data = vec![0xabu8; size];
    let mut sent = 0u64;
    let start = Instant::now();
    let run_for = Duration::from_secs(seconds);
    let mut warm_received = 0;
    let mut measure_start = start;
    let warmup = Duration::from_millis(300);
    let mut warmed = false;
    while start.elapsed() < run_for + warmup {
        if !warmed && start.elapsed() >= warmup {
            warmed = true;
            warm_received = received.load(Ordering::Relaxed);
            measure_start = Instant::now();
        }
        if sent - received.load(Ordering::Relaxed) < window {
            sender.send(&data)?;
            sent += 1;
        } else {
            // Window full: leave the CPU to the relay rather than spin.
            thread::sleep(Duration::from_micros(20));
        }
    }
    let measured = received.load(Ordering::Relaxed) - warm_received;
    let elapsed = measure_start.elapsed();
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(());
    let (stats, relay_cpu) = relay_thread.join().expect("relay thread");
    let _ = sink_thread.join();

    let pps = measured as f64 / elapsed.as_secs_f64();
    println!(
        "relay ceiling, loopback, {size}-byte datagrams, window {window}: \
         {pps:.0} packets/s, {:.1} MB/s ({:.0} Mbit/s) over {elapsed:.2?}",
        pps * size as f64 / 1e6,
        pps * size as f64 * 8.0 / 1e6,
    );
    println!(
        "sent {sent}, relay in {}, relay out {}, received {}",
        stats.up.packets_in,
        stats.up.packets_out,
        received.load(Ordering::Relaxed)
    );
    if let Some(cpu) = relay_cpu {
        // The whole run, warm-up included, so compare with everything the relay moved.
        println!(
            "relay thread CPU {cpu:.2} s for {} datagrams: {:.0} datagrams per CPU-second",
            stats.up.packets_out,
            stats.up.packets_out as f64 / cpu
        );
    }
    Ok(())
}

/// CPU time (user + system) of the calling thread, from /proc (Linux only).
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Clock ticks are 100 per second on Linux.
    Some((utime + stime) / 100.0)
}
