//! Std-only (no tokio) TCP test utilities on 127.0.0.1: background echo / sink / source
//! servers that stop on drop, seeded pseudo-random data, and bounded transfers that
//! verify SHA-256.
//!
//! Everything is bounded in time: server connections give up after
//! [`SERVER_IDLE_TIMEOUT`] of silence, client helpers take an overall timeout, and
//! dropping a server shuts its connections down and joins its threads.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A server connection that sees no traffic for this long is closed.
pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many connections are served at once; further ones are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);

// ---------------------------------------------------------------------------------------
// Seeded data

/// Deterministic pseudo-random byte stream (SplitMix64) from a `u64` seed.
/// Not cryptographic; only for test payloads. Implements [`Read`] (never ends).
#[derive(Debug, Clone)]
pub struct Pattern {
    state: u64,
    word: [u8; 8],
    pos: usize,
}

impl Pattern {
    /// Stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Pattern {
            state: seed,
            word: [0; 8],
            pos: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_le_bytes()
    }

    /// Fills `out` with the next bytes of the stream.
    pub fn fill(&mut self, out: &mut [u8]) {
        let mut i = 0;
        while i < out.len() {
            if self.pos == 8 {
                if out.len() - i >= 8 {
                    out[i..i + 8].copy_from_slice(&self.next_word());
                    i += 8;
                    continue;
                }
                self.word = self.next_word();
                self.pos = 0;
            }
            out[i] = self.word[self.pos];
            self.pos += 1;
            i += 1;
        }
    }
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fill(buf);
        Ok(buf.len())
    }
}

/// The first `len` bytes of [`Pattern::new(seed)`](Pattern::new).
pub fn pattern_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    Pattern::new(seed).fill(&mut v);
    v
}

/// SHA-256 of the first `len` bytes of [`Pattern::new(seed)`](Pattern::new).
pub fn pattern_sha256(seed: u64, len: u64) -> [u8; 32] {
    let mut p = Pattern::new(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        p.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n as u64;
    }
    h.finalize().into()
}

/// Lower-case hex of a digest.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Background servers

type Handler = Arc<dyn Fn(TcpStream) + Send + Sync>;

struct Conn {
    stream: TcpStream,
    handle: JoinHandle<()>,
}

/// Accept loop + per-connection threads; stops and joins everything on drop.
struct Background {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicU64>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl Background {
    fn start(name: &str, handler: Handler) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicU64::new(0));
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let (stop2, accepted2, conns2) = (stop.clone(), accepted.clone(), conns.clone());
        let accept = thread::Builder::new()
            .name(format!("{name}-accept"))
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            accepted2.fetch_add(1, Ordering::Relaxed);
                            let mut list = conns2.lock().unwrap_or_else(|e| e.into_inner());
                            list.retain(|c| !c.handle.is_finished());
                            if list.len() >= MAX_CONNECTIONS {
                                continue; // dropped => closed
                            }
                            let Ok(registry) = stream.try_clone() else {
                                continue;
                            };
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.set_nodelay(true);
                            let _ = stream.set_read_timeout(Some(SERVER_IDLE_TIMEOUT));
                            let _ = stream.set_write_timeout(Some(SERVER_IDLE_TIMEOUT));
                            let h = handler.clone();
                            if let Ok(handle) = thread::Builder::new()
                                .name("test-server-conn".into())
                                .spawn(move || h(stream))
                            {
                                list.push(Conn {
                                    stream: registry,
                                    handle,
                                });
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })?;
        Ok(Background {
            addr,
            stop,
            accepted,
            accept: Some(accept),
            conns,
        })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for c in conns {
            let _ = c.stream.shutdown(Shutdown::Both);
            let _ = c.handle.join();
        }
    }
}

/// TCP echo server on 127.0.0.1 (ephemeral port) running in background threads.
/// Each connection echoes everything until EOF, then half-closes. Stops on drop.
pub struct EchoServer {
    bg: Background,
}

impl EchoServer {
    /// Starts the server.
    pub fn start() -> io::Result<Self> {
        let handler: Handler = Arc::new(|mut s: TcpStream| {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        let _ = s.shutdown(Shutdown::Write);
                        break;
                    }
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        Ok(EchoServer {
            bg: Background::start("echo", handler)?,
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.bg.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.bg.accepted.load(Ordering::Relaxed)
    }
}

/// One finished connection seen by a [`SinkServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRecord {
    /// Bytes received before EOF / error / idle timeout.
    pub bytes: u64,
    /// SHA-256 of those bytes, if the sink hashes.
    pub sha256: Option<[u8; 32]>,
}

#[derive(Default)]
struct SinkState {
    total: u64,
    records: Vec<SinkRecord>,
}

/// TCP sink on 127.0.0.1: reads and discards everything, counting bytes (and optionally
/// hashing each connection). Stops on drop.
pub struct SinkServer {
    bg: Background,
    state: Arc<(Mutex<SinkState>, Condvar)>,
}

impl SinkServer {
    /// Starts a counting sink (no hashing: cheapest, for throughput measurements).
    pub fn start() -> io::Result<Self> {
        Self::start_inner(false)
    }

    /// Starts a sink that also computes the SHA-256 of each connection's data.
    pub fn start_hashing() -> io::Result<Self> {
        Self::start_inner(true)
    }

    fn start_inner(hashing: bool) -> io::Result<Self> {
        let state: Arc<(Mutex<SinkState>, Condvar)> = Arc::default();
        let st = state.clone();
        let handler: Handler = Arc::new(move |mut s: TcpStream| {
            let mut buf = vec![0u8; 256 * 1024];
            let mut hasher = hashing.then(Sha256::new);
            let mut bytes = 0u64;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        bytes += n as u64;
                        if let Some(h) = hasher.as_mut() {
                            h.update(&buf[..n]);
                        }
                        let (m, cv) = &*st;
                        m.lock().unwrap_or_else(|e| e.into_inner()).total += n as u64;
                        cv.notify_all();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let (m, cv) = &*st;
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .records
                .push(SinkRecord {
                    bytes,
                    sha256: hasher.map(|h| h.finalize().into()),
                });
            cv.notify_all();
        });
        Ok(SinkServer {
            bg: Background::start("sink", handler)?,
            state,
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.bg.addr
    }

    /// Bytes received so far over all connections.
    pub fn total(&self) -> u64 {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner()).total
    }

    /// Connections that have finished (EOF or error), in order of finishing.
    pub fn records(&self) -> Vec<SinkRecord> {
        self.state
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .records
            .clone()
    }

    /// Waits until [`Self::total`] ≥ `bytes`; false on timeout.
    pub fn wait_total(&self, bytes: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        while g.total < bytes {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Waits until at least `n` connections have finished; false on timeout.
    pub fn wait_records(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        while g.records.len() < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

/// TCP source on 127.0.0.1: on each connection writes `len` bytes of
/// [`Pattern::new(seed)`](Pattern::new), then keeps the connection open until the peer
/// closes it (or the idle timeout), so no data is lost to an early close. Stops on drop.
pub struct SourceServer {
    bg: Background,
}

impl SourceServer {
    /// Starts the source.
    pub fn start(len: u64, seed: u64) -> io::Result<Self> {
        let handler: Handler = Arc::new(move |mut s: TcpStream| {
            let mut p = Pattern::new(seed);
            let mut buf = vec![0u8; 64 * 1024];
            let mut left = len;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                p.fill(&mut buf[..n]);
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
                left -= n as u64;
            }
            // Linger until the peer closes: V2Ray has no clean half-close over mKCP.
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        });
        Ok(SourceServer {
            bg: Background::start("source", handler)?,
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.bg.addr
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.bg.accepted.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------
// Client helpers

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

/// Reads `len` bytes from `addr` (typically a path ending at a [`SourceServer`] started
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
    let expected = pattern_sha256(seed, len);
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
    /// Nearest-rank percentile, `p` in 0..=100 (zero if there are no samples).
    pub fn percentile(&self, p: f64) -> Duration {
        if self.samples.is_empty() {
            return Duration::ZERO;
        }
        let mut v = self.samples.clone();
        v.sort();
        let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[rank.clamp(1, v.len()) - 1]
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
    fn pattern_is_deterministic_and_chunking_invariant() {
        let whole = pattern_bytes(7, 1000);
        let mut p = Pattern::new(7);
        let mut parts = vec![0u8; 1000];
        let (a, rest) = parts.split_at_mut(3);
        p.fill(a);
        let (b, c) = rest.split_at_mut(509);
        p.fill(b);
        p.fill(c);
        assert_eq!(whole, parts);
        assert_ne!(pattern_bytes(8, 1000), whole);
        assert_eq!(
            pattern_sha256(7, 1000),
            <[u8; 32]>::from(Sha256::digest(&whole))
        );
    }

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
