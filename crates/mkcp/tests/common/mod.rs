//! Stream helpers shared by the runtime's test binaries: seeded random bytes written
//! and read back with their SHA-256.
#![allow(dead_code)]

use std::io;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Writes `len` seeded random bytes in chunks of `chunk`; returns their SHA-256.
pub async fn write_random<W: AsyncWrite + Unpin>(
    w: &mut W,
    len: usize,
    chunk: usize,
    seed: u64,
) -> io::Result<[u8; 32]> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut h = Sha256::new();
    let mut buf = vec![0u8; chunk];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill_bytes(&mut buf[..n]);
        w.write_all(&buf[..n]).await?;
        h.update(&buf[..n]);
        left -= n;
    }
    Ok(h.finalize().into())
}

/// Reads to end-of-stream; returns (bytes, SHA-256).
pub async fn read_hashed<R: AsyncRead + Unpin>(r: &mut R) -> io::Result<(usize, [u8; 32])> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok((total, h.finalize().into()));
        }
        h.update(&buf[..n]);
        total += n;
    }
}
