//! The wire layer: what one UDP datagram looks like (PROTOCOL.md §1, §2, §8).
//!
//! ```text
//! +------------------+--------------------------------------------+
//! | header (H bytes) | envelope( segment | segment | ... )         |
//! +------------------+--------------------------------------------+
//!   header.rs          envelope.rs (legacy, AES-128-GCM, raw)
//!                      segment.rs (Data, Ack, CmdOnly)
//! ```
//!
//! [`Codec`] puts the layers together for one socket: it seals outgoing plaintext into
//! a datagram and opens incoming datagrams back into plaintext.

pub mod envelope;
pub mod header;
pub mod segment;

pub use envelope::{Envelope, Security};
pub use header::{Header, HeaderKind};
pub use segment::{segments, AckNumbers, AckSegment, CmdSegment, DataSegment, Segment, Segments};

use std::ops::Range;

use rand::rngs::StdRng;
use rand::SeedableRng;

/// Largest datagram V2Ray can receive (its read buffers are 2048 bytes, PROTOCOL.md §1.1).
pub const MAX_DATAGRAM: usize = 2048;

/// Errors of the wire layer: decoding a datagram or encoding a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended before a complete field.
    #[error("truncated {what}: need {needed} bytes, have {available}")]
    Truncated {
        /// Which part was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// The output buffer cannot hold what is being written.
    #[error("output buffer too small: need {needed} bytes, have {available}")]
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
    /// An empty Data segment was to be emitted; V2Ray cannot parse one at the end of a datagram.
    #[error("refusing to emit an empty data segment (V2Ray rejects it)")]
    EmptyData,
    /// A Data payload longer than the 16-bit length field.
    #[error("data payload of {len} bytes exceeds the 65535-byte length field")]
    PayloadTooLarge {
        /// Payload length.
        len: usize,
    },
    /// An Ack with more numbers than its one-byte count can say.
    #[error("ack segment with {count} numbers exceeds the limit of 255")]
    TooManyAckNumbers {
        /// Number of entries.
        count: usize,
    },
    /// The datagram is too short for the configured header and envelope.
    #[error("datagram of {len} bytes is too short (needs more than {min})")]
    TooShort {
        /// Datagram length (after the header for envelope checks).
        len: usize,
        /// Length that must be exceeded.
        min: usize,
    },
    /// The datagram is longer than any mKCP peer may send or receive.
    #[error("datagram of {len} bytes exceeds the 2048-byte limit")]
    TooLong {
        /// Datagram length.
        len: usize,
    },
    /// Legacy envelope: the FNV-1a checksum does not match.
    #[error("legacy envelope checksum mismatch")]
    ChecksumMismatch,
    /// Legacy envelope: the length field does not match the datagram.
    #[error("legacy envelope length field says {declared}, datagram holds {actual}")]
    LengthMismatch {
        /// Declared plaintext length.
        declared: usize,
        /// Actual plaintext length.
        actual: usize,
    },
    /// AES-GCM authentication failed (wrong seed or tampered datagram).
    #[error("AES-GCM authentication failed (wrong seed or corrupted datagram)")]
    AuthenticationFailed,
}

/// Header writer plus envelope for one socket: seals and opens whole datagrams.
///
/// Outgoing layout in the caller's buffer: the plaintext is written at
/// [`Codec::plaintext_offset`], at most [`Codec::max_plaintext`] bytes, then
/// [`Codec::seal`] fills in the header and envelope around it.
#[derive(Debug)]
pub struct Codec {
    header: Header,
    envelope: Envelope,
    rng: StdRng,
}

impl Codec {
    /// Builds a codec; `rng` supplies header randomness and GCM nonces (use a
    /// CSPRNG-seeded [`StdRng`] in production, a fixed seed in tests).
    pub fn new(header: HeaderKind, security: &Security, mut rng: StdRng) -> Codec {
        let header = Header::new(header, &mut rng);
        Codec {
            header,
            envelope: Envelope::new(security),
            rng,
        }
    }

    /// Builds a codec from parts (tests use fixed header state).
    pub fn from_parts(header: Header, envelope: Envelope, rng: StdRng) -> Codec {
        Codec {
            header,
            envelope,
            rng,
        }
    }

    /// Builds a codec with an RNG seeded from the operating system.
    pub fn with_os_rng(header: HeaderKind, security: &Security) -> Codec {
        Codec::new(header, security, StdRng::from_entropy())
    }

    /// Header size H.
    pub fn header_len(&self) -> usize {
        self.header.kind().size()
    }

    /// Where the plaintext starts in an outgoing datagram buffer.
    pub fn plaintext_offset(&self) -> usize {
        self.header_len() + self.envelope.prefix_len()
    }

    /// Total bytes added around the plaintext.
    pub fn overhead(&self) -> usize {
        self.plaintext_offset() + self.envelope.suffix_len()
    }

    /// Largest plaintext that keeps the datagram within `max_datagram` bytes.
    pub fn max_plaintext(&self, max_datagram: usize) -> usize {
        max_datagram.saturating_sub(self.overhead())
    }

    /// Seals `plaintext_len` bytes already placed at `buf[plaintext_offset()..]`:
    /// writes the header and the envelope and returns the datagram length.
    ///
    /// Refuses datagrams over [`MAX_DATAGRAM`] bytes, which V2Ray cannot receive
    /// (PROTOCOL.md §1.1); nothing (not even the header counters) changes on error.
    pub fn seal(&mut self, buf: &mut [u8], plaintext_len: usize) -> Result<usize, WireError> {
        let total = self.write_header(buf, plaintext_len)?;
        let h = self.header_len();
        let n = self
            .envelope
            .seal(&mut buf[h..total], plaintext_len, &mut self.rng)?;
        Ok(h + n)
    }

    /// Checks that a datagram of `plaintext_len` bytes of plaintext fits in `buf` and
    /// on the wire, then writes the header; returns the datagram's length.
    fn write_header(&mut self, buf: &mut [u8], plaintext_len: usize) -> Result<usize, WireError> {
        let total = self.overhead() + plaintext_len;
        if total > MAX_DATAGRAM {
            return Err(WireError::TooLong { len: total });
        }
        if buf.len() < total {
            return Err(WireError::BufferTooSmall {
                needed: total,
                available: buf.len(),
            });
        }
        let h = self.header_len();
        self.header.write(&mut buf[..h], &mut self.rng);
        Ok(total)
    }

    /// Like [`Codec::seal`], but with the legacy envelope it only checks the lengths and
    /// writes the header: the checksum and the cascade are left to [`Codec::finish_seals`],
    /// which does several datagrams side by side. Returns the datagram length and whether
    /// it still needs finishing (never with AES-GCM or raw, which are sealed here).
    pub(crate) fn seal_deferred(
        &mut self,
        buf: &mut [u8],
        plaintext_len: usize,
    ) -> Result<(usize, bool), WireError> {
        if *self.envelope.security() != Security::Legacy {
            return self.seal(buf, plaintext_len).map(|n| (n, false));
        }
        Ok((self.write_header(buf, plaintext_len)?, true))
    }

    /// Finishes the legacy seal of `datagrams`, each exactly as long as
    /// [`Codec::seal_deferred`] said, their checksums side by side. The slices are
    /// shortened to the envelopes in the process.
    pub(crate) fn finish_seals(&self, datagrams: &mut [&mut [u8]]) {
        let h = self.header_len();
        for d in datagrams.iter_mut() {
            let whole = std::mem::take(d);
            *d = &mut whole[h..];
        }
        // Cannot fail: seal_deferred checked every length (at most MAX_DATAGRAM).
        let sealed = envelope::legacy_seal_many(datagrams);
        debug_assert!(sealed.is_ok(), "{sealed:?}");
    }

    /// Opens several received datagrams in place, as [`Codec::open`] does each, the
    /// legacy envelope's checksums [`envelope::LEGACY_LANES`] at a time side by side:
    /// `results[i]` is where `datagrams[i]`'s plaintext is, or why it is invalid. Only
    /// the first `min(datagrams.len(), results.len())` datagrams are opened.
    pub fn open_many(
        &self,
        datagrams: &mut [&mut [u8]],
        results: &mut [Result<Range<usize>, WireError>],
    ) {
        let n = datagrams.len().min(results.len());
        let (datagrams, results) = (&mut datagrams[..n], &mut results[..n]);
        if *self.envelope.security() != Security::Legacy {
            for (d, r) in datagrams.iter_mut().zip(results.iter_mut()) {
                let len = d.len();
                *r = self.open(d).map(|_| self.plaintext_range(len));
            }
            return;
        }
        let h = self.header_len();
        let lanes = envelope::LEGACY_LANES;
        for (group, results) in datagrams.chunks_mut(lanes).zip(results.chunks_mut(lanes)) {
            let count = group.len();
            let mut bodies: [&mut [u8]; envelope::LEGACY_LANES] = Default::default();
            let mut opened: [Result<(), WireError>; envelope::LEGACY_LANES] =
                std::array::from_fn(|_| Ok(()));
            for ((d, body), r) in group
                .iter_mut()
                .zip(bodies.iter_mut())
                .zip(results.iter_mut())
            {
                let len = d.len();
                *r = self
                    .check_header_len(len)
                    .and_then(|()| envelope::legacy_floor(len - h))
                    .map(|()| self.plaintext_range(len));
                if r.is_ok() {
                    *body = &mut d[h..];
                }
            }
            envelope::legacy_open_many(&mut bodies[..count], &mut opened);
            for (r, o) in results.iter_mut().zip(opened) {
                if r.is_ok() {
                    if let Err(e) = o {
                        *r = Err(e);
                    }
                }
            }
        }
    }

    /// Where the plaintext of a valid received datagram of `len` bytes is.
    fn plaintext_range(&self, len: usize) -> Range<usize> {
        self.plaintext_offset()..len - self.envelope.suffix_len()
    }

    /// The length checks of [`Codec::open`] before the envelope's.
    fn check_header_len(&self, len: usize) -> Result<(), WireError> {
        let h = self.header_len();
        if len > MAX_DATAGRAM {
            return Err(WireError::TooLong { len });
        }
        if len <= h {
            return Err(WireError::TooShort { len, min: h });
        }
        Ok(())
    }

    /// Opens a received datagram in place and returns the plaintext (PROTOCOL.md §1.6).
    pub fn open<'a>(&self, datagram: &'a mut [u8]) -> Result<&'a [u8], WireError> {
        self.check_header_len(datagram.len())?;
        self.envelope.open(&mut datagram[self.header_len()..])
    }

    /// The envelope in use.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
}
