//! Background TCP services on 127.0.0.1 (echo, sink, source, and echo-or-sink chosen by
//! the first byte), each on an ephemeral port, in plain threads, stopping on drop.
//!
//! Every connection gives up after [`SERVER_IDLE_TIMEOUT`] of silence and at most
//! [`MAX_CONNECTIONS`] are served at once; dropping a server shuts its connections down
//! and joins its threads.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::pattern::Pattern;

/// A server connection that sees no traffic for this long is closed.
pub const SERVER_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// At most this many connections are served at once; further ones are closed at once.
pub const MAX_CONNECTIONS: usize = 256;

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

impl std::fmt::Debug for Background {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Background")
            .field("addr", &self.addr)
            .field("accepted", &self.accepted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
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
#[derive(Debug)]
pub struct EchoServer {
    bg: Background,
    received: Arc<AtomicU64>,
}

/// Echoes `s` until EOF (then half-closes) or an error, counting what arrives.
fn echo(s: &mut TcpStream, buf: &mut [u8], received: &AtomicU64) {
    loop {
        match s.read(buf) {
            Ok(0) => {
                let _ = s.shutdown(Shutdown::Write);
                break;
            }
            Ok(n) => {
                received.fetch_add(n as u64, Ordering::Relaxed);
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

impl EchoServer {
    /// Starts the server.
    pub fn start() -> io::Result<Self> {
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let handler: Handler = Arc::new(move |mut s: TcpStream| {
            let mut buf = vec![0u8; 64 * 1024];
            echo(&mut s, &mut buf, &counter);
        });
        Ok(EchoServer {
            bg: Background::start("echo", handler)?,
            received,
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

    /// Bytes received (and so echoed, or being echoed) over all connections so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// First byte of a [`MuxServer`] connection that selects the sink.
pub const MODE_SINK: u8 = b'S';
/// First byte of a [`MuxServer`] connection that selects the echo.
pub const MODE_ECHO: u8 = b'E';
/// First byte of a [`MuxServer`] connection that selects the source; a
/// [`SourceRequest`] follows it.
pub const MODE_SOURCE: u8 = b'D';
/// First byte of a [`MuxServer`] connection that selects the tagged sink: one tag byte
/// follows, then the data, counted both in [`MuxServer::sunk`] and in
/// [`MuxServer::sunk_tagged`] of that tag (per-stream counts of concurrent uploads).
pub const MODE_TAGGED_SINK: u8 = b'T';

/// What a [`MODE_SOURCE`] connection asks for: `len` bytes of
/// [`Pattern::new(seed)`](Pattern::new), or an endless stream if `len` is
/// [`SourceRequest::ENDLESS`]. On the wire: [`MODE_SOURCE`], then `seed` and `len` as
/// little-endian `u64`s ([`SourceRequest::encode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceRequest {
    /// Seed of the pattern.
    pub seed: u64,
    /// Bytes to send, or [`SourceRequest::ENDLESS`].
    pub len: u64,
}

impl SourceRequest {
    /// `len` meaning: send until the peer closes the connection.
    pub const ENDLESS: u64 = u64::MAX;
    /// Length of an encoded request, mode byte included.
    pub const ENCODED_LEN: usize = 17;

    /// The request's bytes, mode byte included.
    pub fn encode(&self) -> [u8; Self::ENCODED_LEN] {
        let mut b = [0u8; Self::ENCODED_LEN];
        b[0] = MODE_SOURCE;
        b[1..9].copy_from_slice(&self.seed.to_le_bytes());
        b[9..17].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Parses what follows the mode byte.
    pub fn decode(rest: &[u8; 16]) -> Self {
        let mut seed = [0u8; 8];
        let mut len = [0u8; 8];
        seed.copy_from_slice(&rest[..8]);
        len.copy_from_slice(&rest[8..]);
        SourceRequest {
            seed: u64::from_le_bytes(seed),
            len: u64::from_le_bytes(len),
        }
    }
}

/// Writes what `req` asks for to `s`, counting it in `sent`; after a bounded stream,
/// lingers until the peer closes (V2Ray has no clean half-close over mKCP).
fn source(s: &mut TcpStream, req: SourceRequest, buf: &mut [u8], sent: &AtomicU64) {
    let mut p = Pattern::new(req.seed);
    let mut left = req.len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        p.fill(&mut buf[..n]);
        if s.write_all(&buf[..n]).is_err() {
            return;
        }
        sent.fetch_add(n as u64, Ordering::Relaxed);
        if req.len != SourceRequest::ENDLESS {
            left -= n as u64;
        }
    }
    while matches!(s.read(buf), Ok(n) if n > 0) {}
}

/// TCP echo, sink and source on one port: the first byte of each connection picks the
/// service ([`MODE_ECHO`] echoes what follows, [`MODE_SOURCE`] sends the seeded stream
/// of the [`SourceRequest`] that follows, [`MODE_TAGGED_SINK`] and a tag byte discard and
/// count what follows under that tag, anything else, such as [`MODE_SINK`], discards
/// and counts it). One target thus serves uploads, downloads and a ping-pong without
/// restarting what sits in front of it. Stops on drop.
#[derive(Debug)]
pub struct MuxServer {
    bg: Background,
    sunk: Arc<AtomicU64>,
    sourced: Arc<AtomicU64>,
    tagged: Arc<[AtomicU64; 256]>,
}

/// Reads and discards `s` until EOF or an error, adding what arrives to `counter` (and
/// to `tagged`, if any).
fn sink(s: &mut TcpStream, buf: &mut [u8], counter: &AtomicU64, tagged: Option<&AtomicU64>) {
    loop {
        match s.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                counter.fetch_add(n as u64, Ordering::Relaxed);
                if let Some(t) = tagged {
                    t.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

impl MuxServer {
    /// Starts the server.
    pub fn start() -> io::Result<Self> {
        let sunk = Arc::new(AtomicU64::new(0));
        let sourced = Arc::new(AtomicU64::new(0));
        let tagged: Arc<[AtomicU64; 256]> = Arc::new(std::array::from_fn(|_| AtomicU64::new(0)));
        let (counter, sent, tags) = (sunk.clone(), sourced.clone(), tagged.clone());
        let handler: Handler = Arc::new(move |mut s: TcpStream| {
            let mut buf = vec![0u8; 256 * 1024];
            let mut mode = [0u8; 1];
            if s.read_exact(&mut mode).is_err() {
                return;
            }
            if mode[0] == MODE_ECHO {
                echo(&mut s, &mut buf, &AtomicU64::new(0));
                return;
            }
            if mode[0] == MODE_SOURCE {
                let mut rest = [0u8; 16];
                if s.read_exact(&mut rest).is_ok() {
                    source(
                        &mut s,
                        SourceRequest::decode(&rest),
                        &mut buf[..64 * 1024],
                        &sent,
                    );
                }
                return;
            }
            if mode[0] == MODE_TAGGED_SINK {
                let mut tag = [0u8; 1];
                if s.read_exact(&mut tag).is_ok() {
                    sink(&mut s, &mut buf, &counter, Some(&tags[usize::from(tag[0])]));
                }
                return;
            }
            sink(&mut s, &mut buf, &counter, None);
        });
        Ok(MuxServer {
            bg: Background::start("mux", handler)?,
            sunk,
            sourced,
            tagged,
        })
    }

    /// Listening address.
    pub fn addr(&self) -> SocketAddr {
        self.bg.addr
    }

    /// Bytes received by sink connections so far (all connections together).
    pub fn sunk(&self) -> u64 {
        self.sunk.load(Ordering::Relaxed)
    }

    /// Bytes written by source connections so far (all connections together; accepted
    /// by the kernel, not necessarily read by the peer).
    pub fn sourced(&self) -> u64 {
        self.sourced.load(Ordering::Relaxed)
    }

    /// Bytes received by [`MODE_TAGGED_SINK`] connections of `tag` so far (all of them
    /// together, since the server started).
    pub fn sunk_tagged(&self, tag: u8) -> u64 {
        self.tagged[usize::from(tag)].load(Ordering::Relaxed)
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

#[derive(Debug, Default)]
struct SinkState {
    total: u64,
    records: Vec<SinkRecord>,
}

/// TCP sink on 127.0.0.1: reads and discards everything, counting bytes (and optionally
/// hashing each connection). Stops on drop.
#[derive(Debug)]
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
        self.wait_until(timeout, |st| st.total >= bytes)
    }

    /// Waits until at least `n` connections have finished; false on timeout.
    pub fn wait_records(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(timeout, |st| st.records.len() >= n)
    }

    /// Waits (on the condition variable, woken by every change) until `done` holds.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&SinkState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut g = m.lock().unwrap_or_else(|e| e.into_inner());
        while !done(&g) {
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
#[derive(Debug)]
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::pattern::pattern_bytes;

    #[test]
    fn source_request_round_trips() {
        let r = SourceRequest {
            seed: 0x0102_0304_0506_0708,
            len: SourceRequest::ENDLESS,
        };
        let b = r.encode();
        assert_eq!(b[0], MODE_SOURCE);
        let mut rest = [0u8; 16];
        rest.copy_from_slice(&b[1..]);
        assert_eq!(SourceRequest::decode(&rest), r);
    }

    fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut v = vec![0u8; n];
        s.read_exact(&mut v).unwrap();
        v
    }

    #[test]
    fn mux_tagged_sink_counts_per_tag() {
        let m = MuxServer::start().unwrap();
        let mut a = TcpStream::connect(m.addr()).unwrap();
        a.write_all(&[MODE_TAGGED_SINK, 3]).unwrap();
        a.write_all(&[7u8; 1000]).unwrap();
        let mut b = TcpStream::connect(m.addr()).unwrap();
        b.write_all(&[MODE_TAGGED_SINK, 200]).unwrap();
        b.write_all(&[7u8; 500]).unwrap();
        let mut c = TcpStream::connect(m.addr()).unwrap();
        c.write_all(&[MODE_SINK]).unwrap();
        c.write_all(&[7u8; 20]).unwrap();
        drop((a, b, c));
        // The server counts after its read returns: wait (bounded) for the totals.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while m.sunk() < 1520 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(m.sunk(), 1520);
        assert_eq!(m.sunk_tagged(3), 1000);
        assert_eq!(m.sunk_tagged(200), 500);
        assert_eq!(m.sunk_tagged(0), 0);
    }

    #[test]
    fn mux_source_sends_the_seeded_pattern() {
        let m = MuxServer::start().unwrap();
        // Bounded: exactly `len` bytes, then the server lingers until we close.
        let mut s = TcpStream::connect(m.addr()).unwrap();
        s.write_all(
            &SourceRequest {
                seed: 9,
                len: 100_000,
            }
            .encode(),
        )
        .unwrap();
        assert_eq!(read_n(&mut s, 100_000), pattern_bytes(9, 100_000));
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut more = [0u8; 1];
        assert!(
            !matches!(s.read(&mut more), Ok(n) if n > 0),
            "nothing past len"
        );
        drop(s);
        // Endless: as much as we read, and the counter follows.
        let mut s = TcpStream::connect(m.addr()).unwrap();
        s.write_all(
            &SourceRequest {
                seed: 3,
                len: SourceRequest::ENDLESS,
            }
            .encode(),
        )
        .unwrap();
        assert_eq!(read_n(&mut s, 1 << 20), pattern_bytes(3, 1 << 20));
        // The server counts a chunk once its write returned, which may be after we
        // read it: wait for the counter (bounded), do not race it.
        let want = 100_000 + (1 << 20);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while m.sourced() < want && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(m.sourced() >= want, "sourced {} of {want}", m.sourced());
        assert_eq!(m.sunk(), 0);
    }
}
