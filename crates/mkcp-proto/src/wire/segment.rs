//! Segment codec: Data, Ack and CmdOnly segments (PROTOCOL.md §2).
//!
//! A decrypted datagram holds one or more segments back to back. [`Segment::parse`]
//! reads one; [`segments`] walks a whole plaintext and stops silently at the first
//! malformed segment, keeping what parsed before it (PROTOCOL.md §2.6). Parsing borrows the
//! input: a Data payload and an Ack number list are slices of the datagram.
//!
//! Emission never produces what V2Ray cannot parse: no empty Data segments and no Ack
//! segment with more than 255 numbers.

use super::WireError;

/// Option bit 0: the sender has closed its side (PROTOCOL.md §2.1).
pub const OPTION_CLOSE: u8 = 0x01;

/// Command byte of an Ack segment.
pub const CMD_ACK: u8 = 0;
/// Command byte of a Data segment.
pub const CMD_DATA: u8 = 1;
/// Command byte of a Terminate segment (CmdOnly).
pub const CMD_TERMINATE: u8 = 2;
/// Command byte of a Ping segment (CmdOnly).
pub const CMD_PING: u8 = 3;

/// Size of the fixed part of a Data segment.
pub const DATA_HEADER_LEN: usize = 18;
/// Size of the fixed part of an Ack segment.
pub const ACK_HEADER_LEN: usize = 17;
/// Size of a CmdOnly segment.
pub const CMD_LEN: usize = 16;
/// Largest number of entries one Ack segment can carry (the count is one byte).
pub const MAX_ACK_NUMBERS: usize = 255;

/// A Data segment (cmd 1): a piece of the stream (PROTOCOL.md §2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSegment<'a> {
    /// Conversation id.
    pub conv: u16,
    /// Option bits ([`OPTION_CLOSE`]).
    pub option: u8,
    /// Sender's clock at this (re)transmission, echoed back in Acks.
    pub timestamp: u32,
    /// Sequence number of this segment.
    pub number: u32,
    /// Sender's first unacknowledged number.
    pub sending_next: u32,
    /// Stream bytes.
    pub payload: &'a [u8],
}

/// The number list of an Ack segment, either as parsed bytes or as a list to emit.
#[derive(Clone, Copy, Debug)]
pub enum AckNumbers<'a> {
    /// Big-endian u32 values as they are on the wire (length a multiple of 4).
    Wire(&'a [u8]),
    /// Numbers to emit.
    List(&'a [u32]),
}

impl<'a> AckNumbers<'a> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            AckNumbers::Wire(b) => b.len() / 4,
            AckNumbers::List(l) => l.len(),
        }
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + 'a {
        let (wire, list): (&'a [u8], &'a [u32]) = match *self {
            AckNumbers::Wire(b) => (b, &[]),
            AckNumbers::List(l) => (&[], l),
        };
        wire.chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .chain(list.iter().copied())
    }
}

impl PartialEq for AckNumbers<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for AckNumbers<'_> {}

/// An Ack segment (cmd 0): selective acknowledgements plus window state (PROTOCOL.md §2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckSegment<'a> {
    /// Conversation id.
    pub conv: u16,
    /// Option bits ([`OPTION_CLOSE`]).
    pub option: u8,
    /// Absolute number of the first segment the receiver will not accept.
    pub receiving_window: u32,
    /// Receiver's next expected number (all below were consumed).
    pub receiving_next: u32,
    /// Echo of a Data timestamp for RTT measurement (0 if none).
    pub timestamp: u32,
    /// Individually acknowledged numbers.
    pub numbers: AckNumbers<'a>,
}

/// A CmdOnly segment (Terminate, Ping, or any command byte other than 0 and 1), PROTOCOL.md §2.4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdSegment {
    /// Conversation id.
    pub conv: u16,
    /// Raw command byte ([`CMD_TERMINATE`], [`CMD_PING`] or an unknown value).
    pub cmd: u8,
    /// Option bits ([`OPTION_CLOSE`]).
    pub option: u8,
    /// Sender's first unacknowledged number.
    pub sending_next: u32,
    /// Sender's next expected receive number.
    pub receiving_next: u32,
    /// Sender's current retransmission timeout in ms.
    pub peer_rto: u32,
}

impl CmdSegment {
    /// True for a Terminate segment.
    pub fn is_terminate(&self) -> bool {
        self.cmd == CMD_TERMINATE
    }
}

/// One mKCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Data (cmd 1).
    Data(DataSegment<'a>),
    /// Ack (cmd 0).
    Ack(AckSegment<'a>),
    /// Ping, Terminate or an unknown command.
    Cmd(CmdSegment),
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Segment<'a> {
    /// Conversation id of the segment.
    pub fn conv(&self) -> u16 {
        match self {
            Segment::Data(d) => d.conv,
            Segment::Ack(a) => a.conv,
            Segment::Cmd(c) => c.conv,
        }
    }

    /// Option byte of the segment.
    pub fn option(&self) -> u8 {
        match self {
            Segment::Data(d) => d.option,
            Segment::Ack(a) => a.option,
            Segment::Cmd(c) => c.option,
        }
    }

    /// Raw command byte.
    pub fn cmd(&self) -> u8 {
        match self {
            Segment::Data(_) => CMD_DATA,
            Segment::Ack(_) => CMD_ACK,
            Segment::Cmd(c) => c.cmd,
        }
    }

    /// Parses one segment from the start of `bytes`, returning it and the number of
    /// bytes it occupies. Applies exactly V2Ray's bounds checks (PROTOCOL.md §2.6), including
    /// its off-by-one for Data segments: a Data segment needs at least 15 bytes after
    /// the 4-byte prefix even when its payload is empty.
    pub fn parse(bytes: &'a [u8]) -> Result<(Segment<'a>, usize), WireError> {
        if bytes.len() < 4 {
            return Err(WireError::Truncated {
                what: "segment prefix",
                needed: 4,
                available: bytes.len(),
            });
        }
        let conv = be16(bytes, 0);
        let cmd = bytes[2];
        let option = bytes[3];
        let rest = &bytes[4..];
        match cmd {
            CMD_DATA => {
                if rest.len() < 15 {
                    return Err(WireError::Truncated {
                        what: "data segment header",
                        needed: 19,
                        available: bytes.len(),
                    });
                }
                let len = usize::from(be16(rest, 12));
                if rest.len() - 14 < len {
                    return Err(WireError::Truncated {
                        what: "data segment payload",
                        needed: DATA_HEADER_LEN + len,
                        available: bytes.len(),
                    });
                }
                let seg = DataSegment {
                    conv,
                    option,
                    timestamp: be32(rest, 0),
                    number: be32(rest, 4),
                    sending_next: be32(rest, 8),
                    payload: &rest[14..14 + len],
                };
                Ok((Segment::Data(seg), DATA_HEADER_LEN + len))
            }
            CMD_ACK => {
                if rest.len() < 13 {
                    return Err(WireError::Truncated {
                        what: "ack segment header",
                        needed: ACK_HEADER_LEN,
                        available: bytes.len(),
                    });
                }
                let count = usize::from(rest[12]);
                if rest.len() - 13 < 4 * count {
                    return Err(WireError::Truncated {
                        what: "ack segment numbers",
                        needed: ACK_HEADER_LEN + 4 * count,
                        available: bytes.len(),
                    });
                }
                let seg = AckSegment {
                    conv,
                    option,
                    receiving_window: be32(rest, 0),
                    receiving_next: be32(rest, 4),
                    timestamp: be32(rest, 8),
                    numbers: AckNumbers::Wire(&rest[13..13 + 4 * count]),
                };
                Ok((Segment::Ack(seg), ACK_HEADER_LEN + 4 * count))
            }
            _ => {
                if rest.len() < 12 {
                    return Err(WireError::Truncated {
                        what: "command segment",
                        needed: CMD_LEN,
                        available: bytes.len(),
                    });
                }
                let seg = CmdSegment {
                    conv,
                    cmd,
                    option,
                    sending_next: be32(rest, 0),
                    receiving_next: be32(rest, 4),
                    peer_rto: be32(rest, 8),
                };
                Ok((Segment::Cmd(seg), CMD_LEN))
            }
        }
    }

    /// Bytes this segment occupies on the wire.
    pub fn encoded_len(&self) -> usize {
        match self {
            Segment::Data(d) => DATA_HEADER_LEN + d.payload.len(),
            Segment::Ack(a) => ACK_HEADER_LEN + 4 * a.numbers.len(),
            Segment::Cmd(_) => CMD_LEN,
        }
    }

    /// Writes the segment at the start of `buf` and returns its length.
    ///
    /// Refuses what V2Ray could not parse or what the format cannot express: an empty
    /// Data payload, a payload over 65535 bytes, more than 255 ack numbers.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, WireError> {
        // Validate everything before writing anything.
        match self {
            Segment::Data(d) if d.payload.is_empty() => return Err(WireError::EmptyData),
            Segment::Data(d) if d.payload.len() > usize::from(u16::MAX) => {
                return Err(WireError::PayloadTooLarge {
                    len: d.payload.len(),
                })
            }
            Segment::Ack(a) if a.numbers.len() > MAX_ACK_NUMBERS => {
                return Err(WireError::TooManyAckNumbers {
                    count: a.numbers.len(),
                })
            }
            _ => {}
        }
        let len = self.encoded_len();
        if buf.len() < len {
            return Err(WireError::BufferTooSmall {
                needed: len,
                available: buf.len(),
            });
        }
        buf[0..2].copy_from_slice(&self.conv().to_be_bytes());
        buf[2] = self.cmd();
        buf[3] = self.option();
        match self {
            Segment::Data(d) => {
                let plen = d.payload.len() as u16; // checked above
                buf[4..8].copy_from_slice(&d.timestamp.to_be_bytes());
                buf[8..12].copy_from_slice(&d.number.to_be_bytes());
                buf[12..16].copy_from_slice(&d.sending_next.to_be_bytes());
                buf[16..18].copy_from_slice(&plen.to_be_bytes());
                buf[18..len].copy_from_slice(d.payload);
            }
            Segment::Ack(a) => {
                buf[4..8].copy_from_slice(&a.receiving_window.to_be_bytes());
                buf[8..12].copy_from_slice(&a.receiving_next.to_be_bytes());
                buf[12..16].copy_from_slice(&a.timestamp.to_be_bytes());
                buf[16] = a.numbers.len() as u8; // checked above
                for (i, n) in a.numbers.iter().enumerate() {
                    let at = ACK_HEADER_LEN + 4 * i;
                    buf[at..at + 4].copy_from_slice(&n.to_be_bytes());
                }
            }
            Segment::Cmd(c) => {
                buf[4..8].copy_from_slice(&c.sending_next.to_be_bytes());
                buf[8..12].copy_from_slice(&c.receiving_next.to_be_bytes());
                buf[12..16].copy_from_slice(&c.peer_rto.to_be_bytes());
            }
        }
        Ok(len)
    }
}

/// Iterator over the segments of one decrypted datagram; see [`segments`].
#[derive(Clone, Debug)]
pub struct Segments<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Segments<'a> {
    type Item = Segment<'a>;

    fn next(&mut self) -> Option<Segment<'a>> {
        match Segment::parse(self.rest) {
            Ok((seg, used)) => {
                self.rest = &self.rest[used..];
                Some(seg)
            }
            Err(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

/// Walks the segments of a decrypted datagram as V2Ray does (PROTOCOL.md §2.6): parsing stops
/// silently at the first malformed or truncated segment; the ones before it are kept.
pub fn segments(plaintext: &[u8]) -> Segments<'_> {
    Segments { rest: plaintext }
}
