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
        let h = self.header_len();
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
        self.header.write(&mut buf[..h], &mut self.rng);
        let n = self
            .envelope
            .seal(&mut buf[h..total], plaintext_len, &mut self.rng)?;
        Ok(h + n)
    }

    /// Opens a received datagram in place and returns the plaintext (PROTOCOL.md §1.6).
    pub fn open<'a>(&self, datagram: &'a mut [u8]) -> Result<&'a [u8], WireError> {
        let h = self.header_len();
        if datagram.len() > MAX_DATAGRAM {
            return Err(WireError::TooLong {
                len: datagram.len(),
            });
        }
        if datagram.len() <= h {
            return Err(WireError::TooShort {
                len: datagram.len(),
                min: h,
            });
        }
        self.envelope.open(&mut datagram[h..])
    }

    /// The envelope in use.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
}
