//! The TCP service behind the server endpoint ([`Target`], the harness's
//! [`MuxServer`](mkcp_harness::net::MuxServer)), and the loads that go through the
//! tunnel to it: a bulk writer (upload), a bulk reader (download) and a 64-byte echo
//! ping-pong.
//!
//! The first byte of each connection picks the service: `S` discards and counts
//! everything (a sink), `D` sends a seeded pseudo-random stream (a source; seed and
//! length follow the byte), `E` echoes everything back. One target thus serves every
//! test without restarting the endpoints.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The sink + echo TCP server behind the server endpoint (on 127.0.0.1; stops on drop).
pub use mkcp_harness::net::MuxServer as Target;
pub use mkcp_harness::net::{SourceRequest, MODE_ECHO, MODE_SINK, MODE_SOURCE, MODE_TAGGED_SINK};

use mkcp_harness::net::Pattern;

/// How often blocked threads look at their stop flag.
const POLL: Duration = Duration::from_millis(50);

fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to the client endpoint at {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// A thread moving bulk data over one connection of the client endpoint, with a stop
/// flag and a byte counter: the part the writer and the reader share.
#[derive(Debug)]
struct Worker {
    stop: Arc<AtomicBool>,
    count: Arc<AtomicU64>,
    thread: Option<JoinHandle<io::Result<()>>>,
    socket: TcpStream,
    /// What the thread does, for errors ("writing to", "reading from").
    doing: &'static str,
}

impl Worker {
    /// Runs `work(socket, stop, count)` on a thread named `name` over a clone of `socket`.
    fn start(
        socket: TcpStream,
        name: &str,
        doing: &'static str,
        work: impl FnOnce(&mut TcpStream, &AtomicBool, &AtomicU64) -> io::Result<()> + Send + 'static,
    ) -> Result<Worker> {
        let stop = Arc::new(AtomicBool::new(false));
        let count = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, count) = (stop.clone(), count.clone());
            let mut s = socket.try_clone()?;
            thread::Builder::new()
                .name(name.into())
                .spawn(move || work(&mut s, &stop, &count))?
        };
        Ok(Worker {
            stop,
            count,
            thread: Some(thread),
            socket,
            doing,
        })
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn failed(&self) -> bool {
        self.thread.as_ref().is_some_and(JoinHandle::is_finished)
    }

    fn finish(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.socket.shutdown(Shutdown::Both);
        match self.thread.take() {
            Some(t) => match t.join() {
                Ok(r) => r.with_context(|| format!("{} the client endpoint", self.doing)),
                Err(_) => bail!("the thread {} the client endpoint panicked", self.doing),
            },
            None => Ok(()),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A thread writing as fast as the tunnel takes it into a sink connection, until stopped.
#[derive(Debug)]
pub struct BulkWriter(Worker);

impl BulkWriter {
    /// Connects to `entry` (the client endpoint), selects the sink and starts writing.
    pub fn start(entry: SocketAddr) -> Result<Self> {
        Self::start_sized(entry, u64::MAX)
    }

    /// As [`Self::start`], but writes `len` bytes in all, then holds the connection open
    /// (idle) until stopped.
    pub fn start_sized(entry: SocketAddr, len: u64) -> Result<Self> {
        let mut s = connect(entry)?;
        s.set_write_timeout(Some(POLL))?;
        s.write_all(&[MODE_SINK]).context("selecting the sink")?;
        Worker::start(s, "bench-writer", "writing to", move |s, stop, written| {
            write_loop(s, stop, written, len)
        })
        .map(BulkWriter)
    }

    /// Connects to `entry`, selects the tagged sink with `tag` (the target counts this
    /// connection's bytes under it: [`Target::sunk_tagged`]) and starts writing.
    pub fn start_tagged(entry: SocketAddr, tag: u8) -> Result<Self> {
        let mut s = connect(entry)?;
        s.set_write_timeout(Some(POLL))?;
        s.write_all(&[MODE_TAGGED_SINK, tag])
            .context("selecting the tagged sink")?;
        Worker::start(s, "bench-writer", "writing to", |s, stop, written| {
            write_loop(s, stop, written, u64::MAX)
        })
        .map(BulkWriter)
    }

    /// Bytes accepted by the client endpoint's TCP socket so far.
    pub fn written(&self) -> u64 {
        self.0.count()
    }

    /// Whether the writer thread has stopped (by an error) while it should still run.
    pub fn failed(&self) -> bool {
        self.0.failed()
    }

    /// Stops writing, closes the connection and returns the writer's error, if any.
    pub fn stop(mut self) -> Result<()> {
        self.0.finish()
    }
}

/// A thread reading as fast as the tunnel delivers from an endless source connection,
/// checking every byte against the seeded pattern, until stopped.
#[derive(Debug)]
pub struct BulkReader(Worker);

impl BulkReader {
    /// Connects to `entry` (the client endpoint), asks the target for the endless
    /// stream of `seed` and starts reading it.
    pub fn start(entry: SocketAddr, seed: u64) -> Result<Self> {
        Self::start_sized(entry, seed, SourceRequest::ENDLESS)
    }

    /// As [`Self::start`], but asks for `len` bytes of the stream (the target then holds
    /// the connection open, so the reader waits, idle, until stopped).
    pub fn start_sized(entry: SocketAddr, seed: u64, len: u64) -> Result<Self> {
        let mut s = connect(entry)?;
        s.set_read_timeout(Some(POLL))?;
        s.set_write_timeout(Some(Duration::from_secs(5)))?;
        let req = SourceRequest { seed, len };
        s.write_all(&req.encode())
            .context("asking the target for a stream")?;
        Worker::start(
            s,
            "bench-reader",
            "reading from",
            move |s, stop, received| read_loop(s, seed, stop, received),
        )
        .map(BulkReader)
    }

    /// Bytes read from the client endpoint and found equal to the pattern so far.
    pub fn received(&self) -> u64 {
        self.0.count()
    }

    /// Whether the reader thread has stopped (an error, a wrong byte, an early close)
    /// while it should still run.
    pub fn failed(&self) -> bool {
        self.0.failed()
    }

    /// Stops reading, closes the connection and returns the reader's error, if any.
    pub fn stop(mut self) -> Result<()> {
        self.0.finish()
    }
}

fn read_loop(
    s: &mut TcpStream,
    seed: u64,
    stop: &AtomicBool,
    received: &AtomicU64,
) -> io::Result<()> {
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut expected = vec![0u8; buf.len()];
    let mut offset = 0u64;
    while !stop.load(Ordering::Relaxed) {
        match s.read(&mut buf) {
            Ok(0) if stop.load(Ordering::Relaxed) => return Ok(()),
            Ok(0) => {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!("the stream ended after {offset} bytes"),
                ))
            }
            Ok(n) => {
                pattern.fill(&mut expected[..n]);
                if let Some(i) = buf[..n]
                    .iter()
                    .zip(&expected[..n])
                    .position(|(a, b)| a != b)
                {
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        format!(
                            "byte {} of the stream differs from the seeded pattern",
                            offset + i as u64
                        ),
                    ));
                }
                offset += n as u64;
                received.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) if stop.load(Ordering::Relaxed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Writes until stopped, or until `limit` bytes are written (then idles until stopped).
fn write_loop(
    s: &mut TcpStream,
    stop: &AtomicBool,
    written: &AtomicU64,
    limit: u64,
) -> io::Result<()> {
    // Incompressible-looking bytes (a fixed xorshift stream): nothing on the path
    // compresses, but this keeps the payload from being all zeros.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let chunk: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut left = limit;
    while !stop.load(Ordering::Relaxed) {
        if left == 0 {
            thread::sleep(POLL);
            continue;
        }
        let n = left.min(chunk.len() as u64) as usize;
        match s.write(&chunk[..n]) {
            Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "connection closed")),
            Ok(n) => {
                written.fetch_add(n as u64, Ordering::Relaxed);
                left -= n as u64;
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) if stop.load(Ordering::Relaxed) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Round trips of `size`-byte messages through `entry` to the echo service: `warmup`
/// untimed rounds, then up to `count` timed ones, stopping early at `budget` or when
/// `cancel` is set. Returns the samples in milliseconds.
pub fn echo_rtts(
    entry: SocketAddr,
    size: usize,
    warmup: usize,
    count: usize,
    budget: Duration,
    cancel: &AtomicBool,
) -> Result<Vec<f64>> {
    let start = Instant::now();
    let deadline = start + budget;
    let mut s = connect(entry)?;
    s.set_read_timeout(Some(POLL))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(&[MODE_ECHO])
        .context("selecting the echo service")?;
    let mut samples = Vec::with_capacity(count.min(4096));
    let mut msg = vec![0u8; size];
    let mut back = vec![0u8; size];
    for i in 0..warmup + count {
        if Instant::now() >= deadline || cancel.load(Ordering::Relaxed) {
            break;
        }
        for (j, b) in msg.iter_mut().enumerate() {
            *b = (i * 31 + j) as u8;
        }
        let t0 = Instant::now();
        s.write_all(&msg).context("writing an echo request")?;
        let mut got = 0;
        while got < size {
            match s.read(&mut back[got..]) {
                Ok(0) => bail!("the echo connection closed after {i} round trips"),
                Ok(n) => got += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    if Instant::now() >= deadline + Duration::from_secs(5)
                        || cancel.load(Ordering::Relaxed)
                    {
                        bail!("an echo reply did not come back within the time budget");
                    }
                }
                Err(e) => return Err(e).context("reading an echo reply"),
            }
        }
        if back != msg {
            bail!("the echo reply differs from the request");
        }
        if i >= warmup {
            samples.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_sinks_and_echoes() {
        let t = Target::start().unwrap();
        let cancel = AtomicBool::new(false);
        let rtts = echo_rtts(t.addr(), 64, 2, 10, Duration::from_secs(5), &cancel).unwrap();
        assert_eq!(rtts.len(), 10);
        let w = BulkWriter::start(t.addr()).unwrap();
        let start = Instant::now();
        while t.sunk() < 1_000_000 && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!w.failed());
        w.stop().unwrap();
        assert!(t.sunk() >= 1_000_000);
    }

    #[test]
    fn target_sources_and_the_reader_checks() {
        let t = Target::start().unwrap();
        let r = BulkReader::start(t.addr(), 42).unwrap();
        let start = Instant::now();
        while r.received() < 1_000_000 && !r.failed() && start.elapsed() < Duration::from_secs(10) {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!r.failed());
        assert!(r.received() >= 1_000_000);
        r.stop().unwrap();
        assert!(t.sourced() >= 1_000_000);
    }

    #[test]
    fn the_reader_rejects_a_wrong_stream() {
        // A source of another seed: the reader must fail on the first chunk.
        let t = Target::start().unwrap();
        let mut s = connect(t.addr()).unwrap();
        s.write_all(&SourceRequest { seed: 1, len: 4096 }.encode())
            .unwrap();
        let mut got = vec![0u8; 4096];
        s.read_exact(&mut got).unwrap();
        let stop = AtomicBool::new(false);
        let received = AtomicU64::new(0);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let feeder = thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            c.write_all(&got).unwrap();
            // Keep the connection open until the reader has judged.
            let mut b = [0u8; 1];
            let _ = c.read(&mut b);
        });
        let mut c = connect(addr).unwrap();
        let e = read_loop(&mut c, 2, &stop, &received).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{e}");
        assert_eq!(received.load(Ordering::Relaxed), 0);
        drop(c);
        feeder.join().unwrap();
    }
}
