//! The ceilings of the `direct` scenario, measured in this process: plain UDP on
//! loopback (one `send_to` per datagram into one `recv_from` loop) and plain loopback
//! TCP moved by the bench's own writer into its own sink, with no endpoint between.

use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mkcp_harness::process::cpu_time_secs;
use serde::{Deserialize, Serialize};

use crate::target::{BulkWriter, Target};

/// Size of a raw-UDP datagram: a full mKCP datagram under V2Ray's defaults.
pub const RAW_DATAGRAM: usize = 1350;

/// Most raw-UDP datagrams in flight (sent, not yet received): fewer than the default
/// receive buffer holds, so the receiver drops none and the sender does no work that is
/// thrown away (an unpaced sender loses half its datagrams on loopback and slows the
/// receiver down).
pub const RAW_WINDOW: usize = 64;

/// A full window that does not move for this long is written off as lost.
const RAW_GIVE_UP: Duration = Duration::from_millis(20);

/// Untimed start of each ceiling (sockets and buffers settle).
const WARMUP: Duration = Duration::from_millis(200);

/// What one repetition measured of the two ceilings. MB = 10^6 bytes, GB = 10^9 bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ceilings {
    /// Repetition index, from 0.
    pub run: u32,
    /// Raw UDP: bytes received per second (MB/s).
    pub raw_udp_mb_s: f64,
    /// Raw UDP: CPU seconds of the sender thread per GB sent plus the receiver thread's
    /// per GB received.
    pub raw_udp_cpu_s_per_gb: f64,
    /// Raw UDP: the receiver thread's part of [`Self::raw_udp_cpu_s_per_gb`] (the rest
    /// is the sender's, waits for the window included).
    #[serde(default)]
    pub raw_udp_rx_cpu_s_per_gb: f64,
    /// Datagrams the sender handed to the kernel that the receiver did not get (its
    /// socket buffer was full), as a fraction of those sent (about 0 with the window).
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
    let (raw_udp_mb_s, raw_udp_cpu_s_per_gb, raw_udp_rx_cpu_s_per_gb, raw_udp_lost) =
        raw_udp(duration, cancel)?;
    let (tcp_mb_s, tcp_cpu_s_per_gb) = plain_tcp(target, duration, cancel)?;
    Ok(Ceilings {
        run,
        raw_udp_mb_s,
        raw_udp_cpu_s_per_gb,
        raw_udp_rx_cpu_s_per_gb,
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

/// The id of the calling thread (`/proc/thread-self` links to `<pid>/task/<tid>`).
fn own_thread_id() -> Option<u32> {
    std::fs::read_link("/proc/thread-self")
        .ok()?
        .file_name()?
        .to_str()?
        .parse()
        .ok()
}

/// CPU seconds of thread `tid` of this process so far: the run time in ns of
/// `/proc/self/task/<tid>/schedstat`, else utime + stime of its `stat` in `USER_HZ`
/// (100) ticks. (Not `/proc/<tid>/stat`: that one sums the whole process.)
fn thread_cpu(tid: u32) -> Result<f64> {
    let dir = format!("/proc/self/task/{tid}");
    if let Ok(s) = std::fs::read_to_string(format!("{dir}/schedstat")) {
        if let Some(ns) = s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
        {
            return Ok(ns as f64 / 1e9);
        }
    }
    let stat = std::fs::read_to_string(format!("{dir}/stat"))
        .with_context(|| format!("reading {dir}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // After ")" come fields 3.. ; utime and stime are fields 14 and 15.
    let tick = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<u64>().ok());
    match (tick(14), tick(15)) {
        (Some(u), Some(s)) => Ok((u + s) as f64 / 100.0),
        _ => bail!("cannot parse {dir}/stat"),
    }
}

/// One side of the raw-UDP test: its thread's id (0 until known) and its byte count.
#[derive(Default)]
struct Side {
    tid: AtomicU32,
    bytes: AtomicU64,
}

impl Side {
    fn announce(&self) {
        self.tid
            .store(own_thread_id().unwrap_or(u32::MAX), Ordering::Relaxed);
    }

    /// (bytes, CPU seconds of the thread) now.
    fn sample(&self) -> Result<(u64, f64)> {
        let tid = self.tid.load(Ordering::Relaxed);
        if tid == 0 || tid == u32::MAX {
            bail!("the raw-UDP thread's id is unknown (no /proc/thread-self?)");
        }
        Ok((self.bytes.load(Ordering::Relaxed), thread_cpu(tid)?))
    }
}

/// One sender thread, one receiver thread, [`RAW_DATAGRAM`]-byte datagrams on
/// 127.0.0.1, at most [`RAW_WINDOW`] in flight: (MB/s received, CPU s per GB, the
/// receiver's part of it, fraction lost). The CPU figure is the sender thread's seconds per GB it sent plus the receiver
/// thread's per GB it received (the sender's waits for the window, `sched_yield`, count
/// as its CPU).
fn raw_udp(duration: Duration, cancel: &AtomicBool) -> Result<(f64, f64, f64, f64)> {
    let rx = UdpSocket::bind("127.0.0.1:0").context("binding the raw-UDP receiver")?;
    rx.set_read_timeout(Some(Duration::from_millis(50)))?;
    let to = rx.local_addr()?;
    let tx = UdpSocket::bind("127.0.0.1:0").context("binding the raw-UDP sender")?;
    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Side::default());
    let sent = Arc::new(Side::default());
    let receiver = {
        let (stop, side) = (stop.clone(), received.clone());
        thread::Builder::new()
            .name("bench-udp-rx".into())
            .spawn(move || {
                side.announce();
                let mut buf = vec![0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = rx.recv(&mut buf) {
                        side.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            })?
    };
    let sender = {
        let (stop, side, peer) = (stop.clone(), sent.clone(), received.clone());
        thread::Builder::new()
            .name("bench-udp-tx".into())
            .spawn(move || {
                side.announce();
                let buf = vec![0x5au8; RAW_DATAGRAM];
                let window = (RAW_WINDOW * RAW_DATAGRAM) as u64;
                // Bytes given up on: sent, never received (dropped by a full buffer).
                let mut written_off = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let mut waiting: Option<(Instant, u64)> = None;
                    loop {
                        let got = peer.bytes.load(Ordering::Relaxed);
                        let out = side.bytes.load(Ordering::Relaxed);
                        if out.saturating_sub(got + written_off) < window
                            || stop.load(Ordering::Relaxed)
                        {
                            break;
                        }
                        match waiting {
                            Some((since, seen)) if seen == got => {
                                if since.elapsed() > RAW_GIVE_UP {
                                    written_off = out - got;
                                }
                            }
                            _ => waiting = Some((Instant::now(), got)),
                        }
                        thread::yield_now();
                    }
                    if let Ok(n) = tx.send_to(&buf, to) {
                        side.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            })?
    };
    let result = (|| {
        wait(WARMUP, cancel)?;
        let (r0, rc0) = received.sample()?;
        let (s0, sc0) = sent.sample()?;
        let t0 = Instant::now();
        wait(duration, cancel)?;
        let (r1, rc1) = received.sample()?;
        let (s1, sc1) = sent.sample()?;
        let secs = t0.elapsed().as_secs_f64();
        let got = (r1 - r0) as f64;
        let put = (s1 - s0) as f64;
        if got <= 0.0 || put <= 0.0 {
            bail!("no raw UDP datagram arrived");
        }
        let lost = (1.0 - got / put).max(0.0);
        let rx_cpu = (rc1 - rc0) / (got / 1e9);
        let cpu = (sc1 - sc0) / (put / 1e9) + rx_cpu;
        Ok((got / 1e6 / secs, cpu, rx_cpu, lost))
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
