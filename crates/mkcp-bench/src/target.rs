//! The TCP service behind the server endpoint ([`Target`], the harness's
//! [`MuxServer`](mkcp_harness::net::MuxServer)), and the two loads that go through the
//! tunnel to it: a bulk writer and a 64-byte echo ping-pong.
//!
//! The first byte of each connection picks the service: `S` discards and counts
//! everything (a sink), `E` echoes everything back. One target thus serves both tests
//! without restarting the endpoints.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The sink + echo TCP server behind the server endpoint (on 127.0.0.1; stops on drop).
pub use mkcp_harness::net::MuxServer as Target;
pub use mkcp_harness::net::{MODE_ECHO, MODE_SINK};

/// How often blocked threads look at their stop flag.
const POLL: Duration = Duration::from_millis(50);

fn connect(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to the client endpoint at {addr}"))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// A thread writing as fast as the tunnel takes it into a sink connection, until stopped.
#[derive(Debug)]
pub struct BulkWriter {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
    thread: Option<JoinHandle<io::Result<()>>>,
    socket: TcpStream,
}

impl BulkWriter {
    /// Connects to `entry` (the client endpoint), selects the sink and starts writing.
    pub fn start(entry: SocketAddr) -> Result<Self> {
        let mut s = connect(entry)?;
        s.set_write_timeout(Some(POLL))?;
        s.write_all(&[MODE_SINK]).context("selecting the sink")?;
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, written) = (stop.clone(), written.clone());
            let mut s = s.try_clone()?;
            thread::Builder::new()
                .name("bench-writer".into())
                .spawn(move || write_loop(&mut s, &stop, &written))?
        };
        Ok(BulkWriter {
            stop,
            written,
            thread: Some(thread),
            socket: s,
        })
    }

    /// Bytes accepted by the client endpoint's TCP socket so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Whether the writer thread has stopped (by an error) while it should still run.
    pub fn failed(&self) -> bool {
        self.thread.as_ref().is_some_and(JoinHandle::is_finished)
    }

    /// Stops writing, closes the connection and returns the writer's error, if any.
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.socket.shutdown(Shutdown::Both);
        match self.thread.take() {
            Some(t) => match t.join() {
                Ok(r) => r.context("writing to the client endpoint"),
                Err(_) => bail!("the writer thread panicked"),
            },
            None => Ok(()),
        }
    }
}

impl Drop for BulkWriter {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn write_loop(s: &mut TcpStream, stop: &AtomicBool, written: &AtomicU64) -> io::Result<()> {
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
    while !stop.load(Ordering::Relaxed) {
        match s.write(&chunk) {
            Ok(0) => return Err(io::Error::new(ErrorKind::WriteZero, "connection closed")),
            Ok(n) => {
                written.fetch_add(n as u64, Ordering::Relaxed);
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
    let mut samples = Vec::with_capacity(count);
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
}
