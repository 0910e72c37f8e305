//! The process-wide rate limit on 127.0.0.1: streams on separate sockets (as `mkcp
//! client` dials them) share one [`RateLimiter`]; every byte they send passes its
//! bucket, and what it let through never exceeds the rate over the runtime's own clock
//! (the accounting is asserted, not wall-clock speed).
//!
//! The speed itself is a benchmark figure (docs/BENCHMARKS.md "Rate limits").

use std::io;
use std::time::Duration;

use mkcp::{Config, KcpListener, KcpStream, RateLimiter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const MIB: usize = 1 << 20;

/// A batch the driver may take on its last budget byte (96 datagrams).
const BATCH_SLACK: u64 = 96 * 1460;

#[tokio::test]
async fn streams_of_separate_sockets_share_one_limit() -> io::Result<()> {
    const STREAMS: usize = 3;
    const LEN: usize = 2 * MIB;
    let rate = 4 * MIB as u64;
    let total = RateLimiter::new(rate);
    let listener = KcpListener::bind("127.0.0.1:0", Config::default()).await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let mut readers = Vec::new();
        for _ in 0..STREAMS {
            let (mut s, _) = listener.accept().await?;
            readers.push(tokio::spawn(async move {
                let mut data = Vec::new();
                s.read_to_end(&mut data).await?;
                io::Result::Ok(data)
            }));
        }
        let mut got = Vec::new();
        for r in readers {
            got.push(r.await.map_err(io::Error::other)??);
        }
        io::Result::Ok(got)
    });
    let mut writers = Vec::new();
    for i in 0..STREAMS {
        let mut s = KcpStream::connect_with(addr, Config::default(), Some(total.clone())).await?;
        writers.push(tokio::spawn(async move {
            let data = vec![i as u8 + 1; LEN];
            s.write_all(&data).await?;
            s.shutdown().await?;
            // Keep the stream until the server has read everything.
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await?;
            io::Result::Ok(())
        }));
    }
    let got = timeout(Duration::from_secs(60), server)
        .await
        .map_err(io::Error::other)?
        .map_err(io::Error::other)??;
    for w in writers {
        timeout(Duration::from_secs(10), w)
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::other)??;
    }
    let mut lens: Vec<(usize, u8)> = got.iter().map(|d| (d.len(), d[0])).collect();
    lens.sort_unstable();
    let want: Vec<(usize, u8)> = (0..STREAMS).map(|i| (LEN, i as u8 + 1)).collect();
    assert_eq!(lens, want);
    assert!(got.iter().all(|d| d.iter().all(|b| *b == d[0])));

    // Every byte the clients sent went through the shared bucket...
    let a = total.accounting();
    assert!(
        a.bytes >= (STREAMS * LEN) as u64,
        "{} bytes charged for {} of payload",
        a.bytes,
        STREAMS * LEN
    );
    // ... and it let through no more than the rate over the runtime's clock.
    let (first, last) = (a.first.expect("charged"), a.last.expect("charged"));
    let allowed = a.burst + BATCH_SLACK + (rate as f64 * (last - first).as_secs_f64()) as u64;
    assert!(
        a.bytes <= allowed,
        "{} bytes in {:?}: more than {allowed} at {rate} B/s",
        a.bytes,
        last - first
    );
    println!(
        "{} bytes in {:?} of the runtime's clock: {:.2} MiB/s under a {} MiB/s limit",
        a.bytes,
        last - first,
        a.bytes as f64 / (1 << 20) as f64 / (last - first).as_secs_f64(),
        rate >> 20
    );
    Ok(())
}

#[tokio::test]
async fn removing_the_limit_lets_a_stream_go_on() -> io::Result<()> {
    let listener = KcpListener::bind("127.0.0.1:0", Config::default()).await?;
    let limiter = RateLimiter::new(64 * 1024);
    listener.set_rate_limiter(Some(limiter.clone()));
    let addr = listener.local_addr()?;
    let mut c = KcpStream::connect(addr, Config::default()).await?;
    let (mut s, _) = timeout(Duration::from_secs(5), listener.accept())
        .await
        .map_err(io::Error::other)??;
    c.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    timeout(Duration::from_secs(5), s.read_exact(&mut buf))
        .await
        .map_err(io::Error::other)??;
    // The server's acknowledgements went through the listener's limiter.
    assert!(limiter.accounting().bytes > 0);
    listener.set_rate_limiter(None);
    let before = limiter.accounting().bytes;
    s.write_all(b"pong").await?;
    timeout(Duration::from_secs(5), c.read_exact(&mut buf))
        .await
        .map_err(io::Error::other)??;
    assert_eq!(&buf, b"pong");
    assert_eq!(limiter.accounting().bytes, before);
    Ok(())
}
