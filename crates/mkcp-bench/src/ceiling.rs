//! The ceilings of the `direct` scenario, measured in this process: plain UDP on
//! loopback (one `send_to` per datagram into one `recv_from` loop) and plain loopback
//! TCP moved by the bench's own writer into its own sink, with no endpoint between.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mkcp_harness::process::cpu_time_secs;
use serde::{Deserialize, Serialize};

use crate::target::{BulkWriter, Target};

/// Size of a raw-UDP datagram: a full mKCP datagram under V2Ray's defaults.
pub const RAW_DATAGRAM: usize = 1350;

/// Untimed start of each ceiling (sockets and buffers settle).
const WARMUP: Duration = Duration::from_millis(200);

/// What one repetition measured of the two ceilings. MB = 10^6 bytes, GB = 10^9 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// Repetition index, from 0.
    pub run: u32,
    /// Raw UDP: bytes received per second (MB/s).
    pub raw_udp_mb_s: f64,
    /// Raw UDP: CPU seconds of sender and receiver per GB received.
    pub raw_udp_cpu_s_per_gb: f64,
    /// Datagrams the sender handed to the kernel that the receiver did not get (its
    /// socket buffer was full), as a fraction of those sent.
    pub raw_udp_lost: f64,
    /// Plain loopback TCP from the bench's writer to its sink (MB/s).
    pub tcp_mb_s: f64,
    /// Plain TCP: CPU seconds of writer and sink per GB.
    pub tcp_cpu_s_per_gb: f64,
}

/// CPU seconds of this process so far.
fn own_cpu() -> Result<f64> {
    cpu_time_secs(std::process::id()).context("reading /proc/self/stat")
}

/// Measures both ceilings for `duration` each.
pub fn measure(
    target: &Target,
    run: u32,
    duration: Duration,
    cancel: &AtomicBool,
) -> Result<Ceilings> {
    let (raw_udp_mb_s, raw_udp_cpu_s_per_gb, raw_udp_lost) = raw_udp(duration, cancel)?;
    let (tcp_mb_s, tcp_cpu_s_per_gb) = plain_tcp(target, duration, cancel)?;
    Ok(Ceilings {
        run,
        raw_udp_mb_s,
        raw_udp_cpu_s_per_gb,
        raw_udp_lost,
        tcp_mb_s,
        tcp_cpu_s_per_gb,
    })
}

/// Waits `d` in steps, failing if `cancel` is set.
fn wait(d: Duration, cancel: &AtomicBool) -> Result<()> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if cancel.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        thread::sleep((end - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// One sender thread, one receiver thread, [`RAW_DATAGRAM`]-byte datagrams on
/// 127.0.0.1: (MB/s received, CPU s per GB received, fraction lost).
fn raw_udp(duration: Duration, cancel: &AtomicBool) -> Result<(f64, f64, f64)> {
    let rx = UdpSocket::bind("127.0.0.1:0").context("binding the raw-UDP receiver")?;
    rx.set_read_timeout(Some(Duration::from_millis(50)))?;
    let to = rx.local_addr()?;
    let tx = UdpSocket::bind("127.0.0.1:0").context("binding the raw-UDP sender")?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let receiver = {
        let (stop, received) = (stop.clone(), received.clone());
        thread::Builder::new()
            .name("bench-udp-rx".into())
            .spawn(move || {
                let mut buf = vec![0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = rx.recv(&mut buf) {
                        received.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            })?
    };
    let sender = {
        let (stop, sent) = (stop.clone(), sent.clone());
        thread::Builder::new()
            .name("bench-udp-tx".into())
            .spawn(move || {
                let buf = vec![0x5au8; RAW_DATAGRAM];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = tx.send_to(&buf, to) {
                        sent.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            })?
    };
    let result = (|| {
        wait(WARMUP, cancel)?;
        let (r0, s0, c0, t0) = (
            received.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed),
            own_cpu()?,
            Instant::now(),
        );
        wait(duration, cancel)?;
        let (r1, s1, c1, secs) = (
            received.load(Ordering::Relaxed),
            sent.load(Ordering::Relaxed),
            own_cpu()?,
            t0.elapsed().as_secs_f64(),
        );
        let bytes = (r1 - r0) as f64;
        if bytes <= 0.0 {
            bail!("no raw UDP datagram arrived");
        }
        let sent = (s1 - s0) as f64;
        let lost = if sent > 0.0 {
            (1.0 - bytes / sent).max(0.0)
        } else {
            0.0
        };
        Ok((bytes / 1e6 / secs, (c1 - c0) / (bytes / 1e9), lost))
    })();
    stop.store(true, Ordering::Relaxed);
    let _ = sender.join();
    let _ = receiver.join();
    result
}

/// The bench's bulk writer straight into the target's sink: (MB/s, CPU s per GB).
fn plain_tcp(target: &Target, duration: Duration, cancel: &AtomicBool) -> Result<(f64, f64)> {
    let writer = BulkWriter::start(target.addr()).context("plain TCP to the sink")?;
    let result = (|| {
        wait(WARMUP, cancel)?;
        let (b0, c0, t0) = (target.sunk(), own_cpu()?, Instant::now());
        wait(duration, cancel)?;
        let (b1, c1, secs) = (target.sunk(), own_cpu()?, t0.elapsed().as_secs_f64());
        let bytes = (b1 - b0) as f64;
        if bytes <= 0.0 || writer.failed() {
            bail!("plain TCP moved nothing");
        }
        Ok((bytes / 1e6 / secs, (c1 - c0) / (bytes / 1e9)))
    })();
    let stopped = writer.stop();
    let r = result?;
    stopped?;
    Ok(r)
}
