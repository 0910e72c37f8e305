//! Client helpers: bounded transfers through a path to the services of [`super::server`]
//! that verify SHA-256, and echo round-trip times.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::pattern::{hex, pattern_bytes, pattern_sha256, Pattern};
use super::server::SinkServer;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// Socket error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The overall timeout expired.
    #[error("timed out after {elapsed:?}: sent {sent}, received {received} of {expected} bytes")]
    Timeout {
        /// Time spent.
        elapsed: Duration,
        /// Bytes written so far.
        sent: u64,
        /// Bytes read back so far.
        received: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// The peer closed before everything arrived.
    #[error("connection closed early: received {received} of {expected} bytes")]
    Eof {
        /// Bytes read.
        received: u64,
        /// Bytes expected.
        expected: u64,
    },
    /// The data came back different.
    #[error("SHA-256 mismatch over {len} bytes: expected {expected}, got {got}")]
    Mismatch {
        /// Bytes compared.
        len: u64,
        /// Hex digest of what was sent.
        expected: String,
        /// Hex digest of what was received.
        got: String,
    },
}

fn io_err(context: &'static str) -> impl FnOnce(io::Error) -> TransferError {
    move |source| TransferError::Io { context, source }
}

/// Result of a successful transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferReport {
    /// Payload bytes (one direction).
    pub bytes: u64,
    /// From connect to the last byte.
    pub elapsed: Duration,
    /// SHA-256 of the payload (verified equal on both ends where applicable).
    pub sha256: [u8; 32],
}

impl TransferReport {
    /// Payload throughput in MiB/s.
    pub fn mib_per_sec(&self) -> f64 {
        self.bytes as f64 / (1024.0 * 1024.0) / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, TransferError> {
    let s = TcpStream::connect_timeout(&addr, timeout.min(CONNECT_TIMEOUT))
        .map_err(io_err("connecting"))?;
    s.set_nodelay(true).map_err(io_err("setting TCP_NODELAY"))?;
    Ok(s)
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads exactly `len` bytes (hashing them) before `deadline`.
fn read_hashed(
    s: &mut TcpStream,
    len: u64,
    deadline: Instant,
    sent: &AtomicU64,
    start: Instant,
) -> Result<[u8; 32], TransferError> {
    s.set_read_timeout(Some(POLL))
        .map_err(io_err("setting read timeout"))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut received = 0u64;
    while received < len {
        if Instant::now() >= deadline {
            return Err(TransferError::Timeout {
                elapsed: start.elapsed(),
                sent: sent.load(Ordering::Relaxed),
                received,
                expected: len,
            });
        }
        let want = (len - received).min(buf.len() as u64) as usize;
        match s.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(TransferError::Eof {
                    received,
                    expected: len,
                })
            }
            Ok(n) => {
                h.update(&buf[..n]);
                received += n as u64;
            }
            Err(e) if is_timeout(&e) => {}
            Err(e) => {
                return Err(TransferError::Io {
                    context: "reading",
                    source: e,
                })
            }
        }
    }
    Ok(h.finalize().into())
}

/// Spawns a thread writing `len` bytes of the pattern to `s`; returns their SHA-256.
fn spawn_writer(
    mut s: TcpStream,
    len: u64,
    seed: u64,
    timeout: Duration,
    sent: Arc<AtomicU64>,
) -> JoinHandle<io::Result<[u8; 32]>> {
    thread::spawn(move || {
        s.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let mut p = Pattern::new(seed);
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            p.fill(&mut buf[..n]);
            s.write_all(&buf[..n])?;
            h.update(&buf[..n]);
            left -= n as u64;
            sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(h.finalize().into())
    })
}

/// Sends `len` bytes of [`Pattern::new(seed)`](Pattern::new) to the echo service at
/// `addr` while reading the echo back, and checks the SHA-256 of what came back equals
/// what was sent. Everything (connect included) is bounded by `timeout`. The connection
/// is only closed after all data came back (V2Ray's mKCP has no clean half-close).
pub fn transfer_echo(
    addr: SocketAddr,
    len: u64,
    seed: u64,
    timeout: Duration,
) -> Result<TransferReport, TransferError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut s = connect(addr, timeout)?;
    let sent = Arc::new(AtomicU64::new(0));
    let writer = spawn_writer(
        s.try_clone().map_err(io_err("cloning socket"))?,
        len,
        seed,
        deadline.saturating_duration_since(Instant::now()),
        sent.clone(),
    );
    let read = read_hashed(&mut s, len, deadline, &sent, start);
    let elapsed = start.elapsed();
    if read.is_err() {
        // Unblock the writer.
        let _ = s.shutdown(Shutdown::Both);
    }
    let written = writer.join().expect("writer thread panicked");
    let got = read?;
    let expected = written.map_err(io_err("writing"))?;
    let _ = s.shutdown(Shutdown::Both);
    verified(len, elapsed, expected, got)
}

/// Sends `len` bytes of [`Pattern::new(seed)`](Pattern::new) to `addr` (typically a path
/// ending at `sink`) and waits until `sink` has counted them all; the connection is
/// closed only then. `elapsed` runs from connect until the sink saw the last byte.
/// Use one transfer at a time per sink (it counts bytes over all connections).
pub fn transfer_to_sink(
    addr: SocketAddr,
    sink: &SinkServer,
    len: u64,
    seed: u64,
    timeout: Duration,
) -> Result<TransferReport, TransferError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let before = sink.total();
    let s = connect(addr, timeout)?;
    let sent = Arc::new(AtomicU64::new(0));
    let writer = spawn_writer(
        s.try_clone().map_err(io_err("cloning socket"))?,
        len,
        seed,
        deadline.saturating_duration_since(Instant::now()),
        sent.clone(),
    );
    let arrived = sink.wait_total(
        before + len,
        deadline.saturating_duration_since(Instant::now()),
    );
    let elapsed = start.elapsed();
    if !arrived {
        let _ = s.shutdown(Shutdown::Both);
    }
    let written = writer.join().expect("writer thread panicked");
    let _ = s.shutdown(Shutdown::Both);
    if !arrived {
        return Err(TransferError::Timeout {
            elapsed,
            sent: sent.load(Ordering::Relaxed),
            received: sink.total() - before,
            expected: len,
        });
    }
    let sha256 = written.map_err(io_err("writing"))?;
    Ok(TransferReport {
        bytes: len,
        elapsed,
        sha256,
    })
}

/// Reads `len` bytes from `addr` (typically a path ending at a [`SourceServer`](super::server::SourceServer) started
/// with the same `len` and `seed`), checks their SHA-256 against the pattern, then closes.
pub fn receive_from_source(
    addr: SocketAddr,
    len: u64,
    seed: u64,
    timeout: Duration,
) -> Result<TransferReport, TransferError> {
    let start = Instant::now();
    let mut s = connect(addr, timeout)?;
    let got = read_hashed(&mut s, len, start + timeout, &AtomicU64::new(0), start);
    let elapsed = start.elapsed();
    let _ = s.shutdown(Shutdown::Both);
    let got = got?;
    verified(len, elapsed, pattern_sha256(seed, len), got)
}

/// The report of a transfer of `len` bytes whose digest `got` must equal `expected`.
fn verified(
    len: u64,
    elapsed: Duration,
    expected: [u8; 32],
    got: [u8; 32],
) -> Result<TransferReport, TransferError> {
    if got != expected {
        return Err(TransferError::Mismatch {
            len,
            expected: hex(&expected),
            got: hex(&got),
        });
    }
    Ok(TransferReport {
        bytes: len,
        elapsed,
        sha256: got,
    })
}

/// Round-trip time samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RttStats {
    /// The measured samples, in measurement order.
    pub samples: Vec<Duration>,
}

impl RttStats {
    /// Nearest-rank percentile, `p` in 0..=100 (zero if there are no samples); see
    /// [`crate::stats::percentile_sorted`].
    pub fn percentile(&self, p: f64) -> Duration {
        let mut v = self.samples.clone();
        v.sort();
        crate::stats::percentile_sorted(&v, p).unwrap_or(Duration::ZERO)
    }

    /// Median.
    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    /// Arithmetic mean.
    pub fn mean(&self) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        self.samples.iter().sum::<Duration>() / self.samples.len() as u32
    }
}

/// Ping-pong over one connection to an echo service: `warmup` untimed rounds, then
/// `count` timed rounds of writing `msg_size` bytes and reading them back (verified).
/// Bounded by `timeout` overall.
pub fn echo_rtt(
    addr: SocketAddr,
    msg_size: usize,
    warmup: usize,
    count: usize,
    timeout: Duration,
) -> Result<RttStats, TransferError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut s = connect(addr, timeout)?;
    let mut samples = Vec::with_capacity(count);
    let mut back = vec![0u8; msg_size];
    for i in 0..warmup + count {
        let msg = pattern_bytes(i as u64, msg_size);
        let t0 = Instant::now();
        s.set_write_timeout(Some(
            deadline
                .saturating_duration_since(t0)
                .max(Duration::from_millis(1)),
        ))
        .map_err(io_err("setting write timeout"))?;
        s.write_all(&msg).map_err(io_err("writing"))?;
        let mut got = 0;
        while got < msg_size {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = s.shutdown(Shutdown::Both);
                return Err(TransferError::Timeout {
                    elapsed: start.elapsed(),
                    sent: ((i + 1) * msg_size) as u64,
                    received: (i * msg_size + got) as u64,
                    expected: ((warmup + count) * msg_size) as u64,
                });
            }
            s.set_read_timeout(Some(left.min(POLL)))
                .map_err(io_err("setting read timeout"))?;
            match s.read(&mut back[got..]) {
                Ok(0) => {
                    return Err(TransferError::Eof {
                        received: (i * msg_size + got) as u64,
                        expected: ((warmup + count) * msg_size) as u64,
                    })
                }
                Ok(n) => got += n,
                Err(e) if is_timeout(&e) => {}
                Err(e) => {
                    return Err(TransferError::Io {
                        context: "reading",
                        source: e,
                    })
                }
            }
        }
        let rtt = t0.elapsed();
        if back != msg {
            return Err(TransferError::Mismatch {
                len: msg_size as u64,
                expected: hex(&Sha256::digest(&msg)),
                got: hex(&Sha256::digest(&back)),
            });
        }
        if i >= warmup {
            samples.push(rtt);
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    Ok(RttStats { samples })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile() {
        let s = RttStats {
            samples: (1..=10).map(Duration::from_millis).collect(),
        };
        assert_eq!(s.p50(), Duration::from_millis(5));
        assert_eq!(s.percentile(100.0), Duration::from_millis(10));
        assert_eq!(s.percentile(0.0), Duration::from_millis(1));
    }
}
