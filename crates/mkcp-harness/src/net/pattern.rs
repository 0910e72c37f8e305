//! Seeded test payloads: a deterministic byte stream, its SHA-256, hex digests.

use std::io::{self, Read};

use sha2::{Digest, Sha256};

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
}
