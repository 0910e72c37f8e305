//! Obfuscation headers: fake protocol bytes in front of every datagram (PROTOCOL.md §1.2, §8.1).
//!
//! Receivers never look at them; they only skip [`HeaderKind::size`] bytes. Senders keep
//! the small amount of state (counters, ids) that makes the bytes look plausible.

use rand::RngCore;

/// Which header is prepended to every datagram.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderKind {
    /// No header (JSON `none` or no `header` key).
    #[default]
    None,
    /// Fake SRTP (4 bytes).
    Srtp,
    /// Fake uTP (4 bytes).
    Utp,
    /// Fake WeChat video call (13 bytes).
    WechatVideo,
    /// Fake DTLS 1.2 record (13 bytes).
    Dtls,
    /// Fake WireGuard (4 bytes).
    Wireguard,
    /// Xray's fake DNS query; holds the encoded question name (labels + 0 byte).
    Dns {
        /// The domain as written in the config.
        domain: String,
    },
}

/// Default domain of the Xray `dns` header.
pub const DNS_DEFAULT_DOMAIN: &str = "www.baidu.com";

/// Errors in a header configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The type name is not one of the known headers.
    #[error("unknown header type {name:?} (allowed: {allowed})")]
    UnknownType {
        /// The name given.
        name: String,
        /// The names accepted where it was given.
        allowed: &'static str,
    },
    /// A DNS label is 64 bytes or longer.
    #[error("dns header domain {domain:?} has a label of {len} bytes (at most 63 allowed)")]
    LabelTooLong {
        /// The domain.
        domain: String,
        /// Length of the offending label.
        len: usize,
    },
    /// The encoded DNS name would make an absurdly large header.
    #[error(
        "dns header domain {domain:?} is too long (at most 255 bytes once encoded as DNS labels)"
    )]
    DomainTooLong {
        /// The domain.
        domain: String,
    },
    /// The domain has an empty label (leading, trailing or doubled dot) or a backslash
    /// escape other than `\.` and `\\`; peers disagree on how to encode those, which
    /// would change the header size.
    #[error("dns header domain {domain:?} is not supported: {reason}")]
    BadDomain {
        /// The domain.
        domain: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Names accepted for `kcpSettings.header.type` (V2Ray, plus Xray's `dns`).
pub const KCP_HEADER_NAMES: &str = "none, srtp, utp, wechat-video, dtls, wireguard, dns";
/// Names accepted for the `header` of an Xray finalmask (`mkcp-legacy` or `header-*`).
pub const FINALMASK_HEADER_NAMES: &str = "dns, dtls, srtp, utp, wechat, wireguard";

impl HeaderKind {
    /// Parses a `kcpSettings.header.type` name (case-insensitive): V2Ray's `none`, `srtp`,
    /// `utp`, `wechat-video`, `dtls`, `wireguard`, and Xray's `dns` (with the default
    /// domain; use [`HeaderKind::dns`] for another one).
    pub fn from_name(name: &str) -> Result<HeaderKind, HeaderError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "none" => HeaderKind::None,
            "srtp" => HeaderKind::Srtp,
            "utp" => HeaderKind::Utp,
            "wechat-video" => HeaderKind::WechatVideo,
            "dtls" => HeaderKind::Dtls,
            "wireguard" => HeaderKind::Wireguard,
            "dns" => HeaderKind::Dns {
                domain: DNS_DEFAULT_DOMAIN.to_string(),
            },
            _ => {
                return Err(HeaderError::UnknownType {
                    name: name.to_string(),
                    allowed: KCP_HEADER_NAMES,
                })
            }
        })
    }

    /// Parses the header name of an Xray finalmask (`mkcp-legacy` `header`, or the suffix
    /// of a `header-*` mask), case-insensitive: `dns`, `dtls`, `srtp`, `utp`, `wechat`,
    /// `wireguard` (PROTOCOL.md §8.3; note `wechat`, not `wechat-video`, and no `none`).
    pub fn from_finalmask_name(name: &str) -> Result<HeaderKind, HeaderError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "srtp" => HeaderKind::Srtp,
            "utp" => HeaderKind::Utp,
            "wechat" => HeaderKind::WechatVideo,
            "dtls" => HeaderKind::Dtls,
            "wireguard" => HeaderKind::Wireguard,
            "dns" => HeaderKind::Dns {
                domain: DNS_DEFAULT_DOMAIN.to_string(),
            },
            _ => {
                return Err(HeaderError::UnknownType {
                    name: name.to_string(),
                    allowed: FINALMASK_HEADER_NAMES,
                })
            }
        })
    }

    /// A `dns` header for `domain` (empty means the default domain), validated.
    pub fn dns(domain: &str) -> Result<HeaderKind, HeaderError> {
        let domain = if domain.is_empty() {
            DNS_DEFAULT_DOMAIN
        } else {
            domain
        };
        encode_dns_name(domain)?;
        Ok(HeaderKind::Dns {
            domain: domain.to_string(),
        })
    }

    /// The V2Ray JSON name of this header.
    pub fn name(&self) -> &'static str {
        match self {
            HeaderKind::None => "none",
            HeaderKind::Srtp => "srtp",
            HeaderKind::Utp => "utp",
            HeaderKind::WechatVideo => "wechat-video",
            HeaderKind::Dtls => "dtls",
            HeaderKind::Wireguard => "wireguard",
            HeaderKind::Dns { .. } => "dns",
        }
    }

    /// Header size H in bytes.
    pub fn size(&self) -> usize {
        match self {
            HeaderKind::None => 0,
            HeaderKind::Srtp | HeaderKind::Utp | HeaderKind::Wireguard => 4,
            HeaderKind::WechatVideo | HeaderKind::Dtls => 13,
            HeaderKind::Dns { domain } => 16 + encode_dns_name(domain).map_or(1, |n| n.len()),
        }
    }
}

/// Encodes a domain as DNS labels ending in a zero byte (PROTOCOL.md §8.1). `\.` is a literal
/// dot inside a label and `\\` a literal backslash; other escapes and empty labels are
/// rejected because implementations disagree on them (and the header size would differ).
pub fn encode_dns_name(domain: &str) -> Result<Vec<u8>, HeaderError> {
    let bad = |reason: &'static str| HeaderError::BadDomain {
        domain: domain.to_string(),
        reason,
    };
    let mut out = Vec::with_capacity(domain.len() + 2);
    let mut label: Vec<u8> = Vec::new();
    let mut bytes = domain.bytes();
    let end_label = |label: &mut Vec<u8>, out: &mut Vec<u8>| -> Result<(), HeaderError> {
        if label.is_empty() {
            return Err(bad("empty label (leading, trailing or doubled dot)"));
        }
        let len = u8::try_from(label.len())
            .ok()
            .filter(|&n| n < 64)
            .ok_or_else(|| HeaderError::LabelTooLong {
                domain: domain.to_string(),
                len: label.len(),
            })?;
        out.push(len);
        out.append(label);
        Ok(())
    };
    while let Some(b) = bytes.next() {
        match b {
            b'\\' => match bytes.next() {
                Some(e @ (b'.' | b'\\')) => label.push(e),
                _ => return Err(bad("only \\. and \\\\ escapes are supported")),
            },
            b'.' => end_label(&mut label, &mut out)?,
            b => label.push(b),
        }
    }
    end_label(&mut label, &mut out)?;
    out.push(0);
    if out.len() > 255 {
        return Err(HeaderError::DomainTooLong {
            domain: domain.to_string(),
        });
    }
    Ok(out)
}

/// A header writer with its per-instance state (PROTOCOL.md §1.2 "State / randomness").
#[derive(Clone, Debug)]
pub struct Header {
    kind: HeaderKind,
    state: State,
}

#[derive(Clone, Debug)]
enum State {
    Stateless,
    Srtp {
        counter: u16,
    },
    Utp {
        connection_id: u16,
    },
    Wechat {
        sequence: u32,
    },
    Dtls {
        epoch: u16,
        sequence: u32,
        length: u16,
    },
    Dns {
        name: Vec<u8>,
    },
}

impl Header {
    /// A fresh header instance with random initial state drawn from `rng`.
    pub fn new(kind: HeaderKind, rng: &mut dyn RngCore) -> Header {
        let r16 = (rng.next_u32() & 0xFFFF) as u16;
        let state = match &kind {
            HeaderKind::None | HeaderKind::Wireguard => State::Stateless,
            HeaderKind::Srtp => State::Srtp { counter: r16 },
            HeaderKind::Utp => State::Utp { connection_id: r16 },
            HeaderKind::WechatVideo => State::Wechat {
                sequence: u32::from(r16),
            },
            HeaderKind::Dtls => State::Dtls {
                epoch: r16,
                sequence: 0,
                length: 17,
            },
            HeaderKind::Dns { domain } => State::Dns {
                name: encode_dns_name(domain).unwrap_or_else(|_| vec![0]),
            },
        };
        Header { kind, state }
    }

    /// SRTP header whose next write carries `counter + 1` (for test vectors).
    pub fn srtp_with_counter(counter: u16) -> Header {
        Header {
            kind: HeaderKind::Srtp,
            state: State::Srtp { counter },
        }
    }

    /// uTP header with a fixed connection id (for test vectors).
    pub fn utp_with_connection_id(connection_id: u16) -> Header {
        Header {
            kind: HeaderKind::Utp,
            state: State::Utp { connection_id },
        }
    }

    /// WeChat-video header whose next write carries `sequence + 1` (for test vectors).
    pub fn wechat_with_sequence(sequence: u32) -> Header {
        Header {
            kind: HeaderKind::WechatVideo,
            state: State::Wechat { sequence },
        }
    }

    /// DTLS header of a fresh instance with a fixed epoch (for test vectors).
    pub fn dtls_with_epoch(epoch: u16) -> Header {
        Header {
            kind: HeaderKind::Dtls,
            state: State::Dtls {
                epoch,
                sequence: 0,
                length: 17,
            },
        }
    }

    /// The kind of header.
    pub fn kind(&self) -> &HeaderKind {
        &self.kind
    }

    /// Writes the next header into `out` (exactly [`HeaderKind::size`] bytes) and
    /// advances the counters.
    pub fn write(&mut self, out: &mut [u8], rng: &mut dyn RngCore) {
        match &mut self.state {
            State::Stateless => {
                if self.kind == HeaderKind::Wireguard {
                    out[..4].copy_from_slice(&[0x04, 0, 0, 0]);
                }
            }
            State::Srtp { counter } => {
                *counter = counter.wrapping_add(1);
                out[0] = 0xB5;
                out[1] = 0xE8;
                out[2..4].copy_from_slice(&counter.to_be_bytes());
            }
            State::Utp { connection_id } => {
                out[0..2].copy_from_slice(&connection_id.to_be_bytes());
                out[2] = 0x01;
                out[3] = 0x00;
            }
            State::Wechat { sequence } => {
                *sequence = sequence.wrapping_add(1);
                out[0] = 0xA1;
                out[1] = 0x08;
                out[2..6].copy_from_slice(&sequence.to_be_bytes());
                out[6..13].copy_from_slice(&[0x00, 0x10, 0x11, 0x18, 0x30, 0x22, 0x30]);
            }
            State::Dtls {
                epoch,
                sequence,
                length,
            } => {
                out[0..3].copy_from_slice(&[0x17, 0xFE, 0xFD]);
                out[3..5].copy_from_slice(&epoch.to_be_bytes());
                out[5..7].copy_from_slice(&[0, 0]);
                out[7..11].copy_from_slice(&sequence.to_be_bytes());
                out[11..13].copy_from_slice(&length.to_be_bytes());
                *sequence = sequence.wrapping_add(1);
                *length += 17;
                if *length > 100 {
                    *length -= 50;
                }
            }
            State::Dns { name } => {
                let id = (rng.next_u32() & 0xFFFF) as u16;
                Self::write_dns(out, id, name);
            }
        }
    }

    fn write_dns(out: &mut [u8], id: u16, name: &[u8]) {
        out[0..2].copy_from_slice(&id.to_be_bytes());
        out[2..12].copy_from_slice(&[0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0]);
        let n = name.len();
        out[12..12 + n].copy_from_slice(name);
        out[12 + n..16 + n].copy_from_slice(&[0x00, 0x01, 0x00, 0x01]);
    }

    /// Writes a DNS header with a chosen transaction id (for test vectors). Does nothing
    /// for other header kinds.
    pub fn write_dns_with_id(&self, out: &mut [u8], id: u16) {
        if let State::Dns { name } = &self.state {
            Self::write_dns(out, id, name);
        }
    }
}
