//! The demo's streams: the seeded byte pattern they write and check, how much each may
//! have in flight, and the counters they share with the display.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// Most bytes a stream may have written but not yet seen echoed back: two seconds of the
/// echo goodput measured lately (`echo_bytes_per_sec`, all streams), shared among the
/// streams, at least 512 KiB and at most one second of the link rate (or 8 MiB).
///
/// While the limit is what holds a stream back, goodput is about limit / round trip, so
/// the limit grows every round until the path is full; it never holds more than about two
/// seconds of data, which bounds what the final drain costs.
pub fn in_flight_limit(echo_bytes_per_sec: u64, rate_bps: u64, streams: u16) -> u64 {
    let streams = u64::from(streams.max(1));
    let floor = 512 * 1024;
    let cap = (rate_bps / 8 / streams).clamp(floor, 8 * 1024 * 1024);
    (echo_bytes_per_sec.saturating_mul(2) / streams).clamp(floor, cap)
}

/// Deterministic test bytes: 8 bytes per position block, from SplitMix64.
fn pattern_block(key: u64, block: u64) -> [u8; 8] {
    let mut z = key ^ block.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).to_le_bytes()
}

/// Fills `out` with the pattern bytes at stream offsets `offset..`.
fn fill_pattern(key: u64, offset: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let pos = offset + i as u64;
        *b = pattern_block(key, pos / 8)[(pos % 8) as usize];
    }
}

/// Counters shared by the demo's tasks.
#[derive(Default)]
pub(super) struct Counters {
    /// Bytes written by the demo streams.
    pub(super) written: AtomicU64,
    /// Bytes read back by the demo streams (and found correct).
    pub(super) echoed: AtomicU64,
    /// A stream saw a byte that differs from what it sent.
    pub(super) corrupt: AtomicBool,
    /// The current [`in_flight_limit`] per stream.
    pub(super) in_flight_limit: AtomicU64,
}

/// One demo stream: writes the pattern until `stop_at`, then half-closes and reads the
/// echo to the end, checking every byte.
pub(super) async fn demo_stream(
    entry: SocketAddr,
    key: u64,
    stop_at: tokio::time::Instant,
    counters: Arc<Counters>,
) -> Result<()> {
    let s = TcpStream::connect(entry)
        .await
        .with_context(|| format!("connecting to the mkcp client at {entry}"))?;
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let written = Arc::new(AtomicU64::new(0));
    let echoed = Arc::new(AtomicU64::new(0));
    let room = Arc::new(Notify::new());

    let writer = {
        let (written, echoed, room, counters) = (
            written.clone(),
            echoed.clone(),
            room.clone(),
            counters.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let w = written.load(Ordering::Relaxed);
                let in_flight = w - echoed.load(Ordering::Relaxed);
                let limit = counters.in_flight_limit.load(Ordering::Relaxed);
                if in_flight + buf.len() as u64 > limit {
                    let notified = room.notified();
                    tokio::select! {
                        _ = notified => continue,
                        _ = tokio::time::sleep_until(stop_at) => break,
                    }
                }
                fill_pattern(key, w, &mut buf);
                // `write` (unlike `write_all`) is cancel-safe: when the time is up first,
                // nothing was written, so `written` stays exact.
                let n = tokio::select! {
                    r = wr.write(&buf) => r.context("writing to the tunnel")?,
                    _ = tokio::time::sleep_until(stop_at) => break,
                };
                if n == 0 {
                    bail!("the tunnel accepted no more data");
                }
                written.fetch_add(n as u64, Ordering::Relaxed);
                counters.written.fetch_add(n as u64, Ordering::Relaxed);
                if tokio::time::Instant::now() >= stop_at {
                    break;
                }
            }
            wr.shutdown()
                .await
                .context("closing the tunnel for writing")?;
            anyhow::Ok(())
        })
    };

    let mut buf = vec![0u8; 64 * 1024];
    let mut expect = vec![0u8; 64 * 1024];
    let mut pos = 0u64;
    loop {
        let n = rd.read(&mut buf).await.context("reading the echo")?;
        if n == 0 {
            break;
        }
        fill_pattern(key, pos, &mut expect[..n]);
        if buf[..n] != expect[..n] {
            counters.corrupt.store(true, Ordering::Relaxed);
            bail!("the echo differs from what was sent near byte {pos}");
        }
        pos += n as u64;
        echoed.store(pos, Ordering::Relaxed);
        counters.echoed.fetch_add(n as u64, Ordering::Relaxed);
        room.notify_one();
    }
    writer.await.context("writer task")??;
    let sent = written.load(Ordering::Relaxed);
    if pos != sent {
        bail!("the echo ended after {pos} of {sent} bytes");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_limit_follows_goodput_within_bounds() {
        assert_eq!(in_flight_limit(0, 100_000_000, 1), 512 * 1024);
        assert_eq!(in_flight_limit(1_000_000, 100_000_000, 1), 2_000_000);
        assert_eq!(in_flight_limit(1_000_000, 100_000_000, 2), 1_000_000);
        assert_eq!(in_flight_limit(50_000_000, 100_000_000, 1), 8 * 1024 * 1024);
        assert_eq!(in_flight_limit(50_000_000, 1_000_000, 1), 512 * 1024);
    }

    #[test]
    fn pattern_is_position_addressed() {
        let mut a = vec![0u8; 100];
        fill_pattern(7, 0, &mut a);
        let mut b = vec![0u8; 37];
        fill_pattern(7, 63, &mut b);
        assert_eq!(&a[63..], &b[..]);
        let mut c = vec![0u8; 100];
        fill_pattern(8, 0, &mut c);
        assert_ne!(a, c);
    }
}
