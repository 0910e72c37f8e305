//! Typed mKCP settings with V2Ray's defaults and ranges, and the values derived from
//! them (PROTOCOL.md §3.3, §3.4, §4). JSON import lives in `json` (cargo feature
//! `json`, on by default).

#[cfg(feature = "json")]
pub mod json;

#[cfg(feature = "json")]
pub use json::{Loaded, MaskOrder, Shape, Warning};

use crate::wire::header::HeaderError;
use crate::wire::{HeaderKind, Security};

/// One MiB, the unit of V2Ray's capacity and buffer settings.
pub const MIB: u32 = 1 << 20;

/// Errors in a configuration; each names the field, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A numeric field outside its allowed range.
    #[error("{field} = {value} is out of range: allowed {allowed}")]
    OutOfRange {
        /// JSON name of the field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// What is allowed, in words.
        allowed: &'static str,
    },
    /// A bad `header` setting.
    #[error("header: {0}")]
    Header(#[from] HeaderError),
    /// A `header` object without a `type`.
    #[error("header: missing \"type\" (allowed: none, srtp, utp, wechat-video, dtls, wireguard)")]
    HeaderTypeMissing,
    /// The text is not valid JSON.
    #[error("invalid JSON: {message}")]
    Json {
        /// What the JSON parser said (with line and column).
        message: String,
    },
    /// A JSON value of the wrong type (a string where a number belongs, a negative or
    /// fractional number for an unsigned field, ...).
    #[error("{field} = {found} is invalid: expected {expected}")]
    InvalidType {
        /// Path of the field, e.g. `mtu` or `finalmask.udp[0].settings.value`.
        field: String,
        /// What the field must be.
        expected: &'static str,
        /// The JSON value given.
        found: String,
    },
    /// The same key appears more than once with different letter case. V2Ray (Go's JSON
    /// decoder) matches keys case-insensitively and keeps whichever comes last, which
    /// this importer cannot tell; name the key once.
    #[error("{field} is given more than once with different letter case: {keys}")]
    AmbiguousKey {
        /// Path of the field.
        field: String,
        /// The spellings found.
        keys: String,
    },
    /// A `streamSettings` whose `network` is not mKCP.
    #[error("{field} = {network:?} is not mKCP: expected \"kcp\" or \"mkcp\"")]
    NotMkcp {
        /// Path of the `network` field.
        field: String,
        /// The network given (`tcp` when absent, V2Ray's default).
        network: String,
    },
    /// A whole V2Ray/Xray config without any mKCP settings.
    #[error("no mKCP settings found: no inbound or outbound has streamSettings.network \"kcp\" or \"mkcp\", and there is no transport.kcpSettings")]
    NoMkcpSettings,
    /// An error inside a part of a larger config.
    #[error("{location}: {error}")]
    At {
        /// Where, e.g. `inbounds[0].streamSettings.kcpSettings`.
        location: String,
        /// What is wrong there.
        error: Box<ConfigError>,
    },
    /// A security setting (`seed`, `header`, `finalmask`) found where it would not be
    /// applied: running without it would silently weaken or break the link, so the
    /// import fails instead.
    #[error("{field} would not be applied: {reason}; refusing to run without it")]
    NotApplied {
        /// Path of the setting, e.g. `kcpSettings.kcpSettings.seed`.
        field: String,
        /// Why it is not read there, and where it belongs.
        reason: String,
    },
    /// Two mKCP streams of one V2Ray/Xray config with different header or envelope
    /// settings: mkcp runs one set of settings and will not guess which.
    #[error("{other} and {first} both use mKCP, with different header or seed: mkcp runs one set of mKCP settings; use a file with one mKCP inbound or outbound, or a kcpSettings object")]
    ConflictingMkcpSettings {
        /// The first mKCP stream.
        first: String,
        /// The one that differs.
        other: String,
    },
    /// A V2Ray/Xray config feature that mkcp does not support.
    #[error("unsupported setting {field}: {reason}")]
    Unsupported {
        /// The field or mask.
        field: String,
        /// Why it is rejected.
        reason: String,
    },
}

impl ConfigError {
    /// The innermost error, without the [`ConfigError::At`] locations around it.
    pub fn innermost(&self) -> &ConfigError {
        match self {
            ConfigError::At { error, .. } => error.innermost(),
            other => other,
        }
    }

    /// Wraps `self` as happening at `location`, joining nested locations with `.`. A
    /// [`ConfigError::NotApplied`] takes the location into its field instead, so that
    /// the message names the whole path of the setting.
    pub fn at(self, location: &str) -> ConfigError {
        match self {
            ConfigError::NotApplied { field, reason } => ConfigError::NotApplied {
                field: format!("{location}.{field}"),
                reason,
            },
            ConfigError::At {
                location: inner,
                error,
            } => ConfigError::At {
                location: format!("{location}.{inner}"),
                error,
            },
            other => ConfigError::At {
                location: location.to_string(),
                error: Box::new(other),
            },
        }
    }
}

/// Engine behaviour beyond V2Ray's settings (our improvements, PROTOCOL.md §6 "free to improve").
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tuning {
    /// Restore V2Ray's exact sending behaviour (x20 burst per flush, no window respect,
    /// no backoff, one segment per datagram) for comparison benchmarks.
    pub v2ray_compat: bool,
    /// Idle time without incoming datagrams before the connection closes (ms). V2Ray: 30000.
    pub idle_timeout_ms: u32,
    /// Interval of keep-alive pings while idle (ms). V2Ray pings every 5000 ms.
    pub ping_interval_ms: u32,
    /// Lower bound applied to the RTO (ms), so it is never 0.
    pub min_rto_ms: u32,
    /// Upper bound on the RTO after backoff (ms).
    pub max_rto_ms: u32,
    /// Most acknowledgement numbers queued per connection (bounds the ack list, which
    /// V2Ray lets grow without limit, PROTOCOL.md §5 item 29).
    pub max_ack_list: usize,
    /// Send each segment of a thin stream twice, in consecutive datagrams (at most 4
    /// segments outstanding: interactive traffic; a bulk stream never duplicates). A
    /// lost small message then rarely waits for a retransmission timeout: it costs at
    /// most twice the thin stream's data bytes. Default on; V2Ray peers accept it.
    pub thin_stream_copies: bool,
    /// Send a retransmission twice when, lost again, it would hold the window's left
    /// edge until the window fills (a bulk stream on a long lossy path stalls on
    /// these). At most one copy per lost segment, none while the window has room.
    /// Default on.
    pub retransmission_copies: bool,
    /// Most bytes per second one connection sends as Data segments (payload plus the
    /// 18-byte segment header, retransmissions included; docs/DESIGN.md "Rate limits").
    /// `None` (the default): no cap, the pacer follows the measured path rate. A cap
    /// bounds our pacer, and towards a V2Ray sender (which we cannot pace) the receive
    /// window we advertise. At least [`MIN_SEND_RATE`]. Not applied with
    /// [`Tuning::v2ray_compat`], which models V2Ray.
    pub max_send_rate: Option<u64>,
}

/// The smallest [`Tuning::max_send_rate`] (bytes/s): below it one datagram would take
/// more than a second.
pub const MIN_SEND_RATE: u64 = 1024;

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            v2ray_compat: false,
            idle_timeout_ms: 30_000,
            ping_interval_ms: 5_000,
            min_rto_ms: 30,
            max_rto_ms: 12_500,
            max_ack_list: 1024,
            thin_stream_copies: true,
            retransmission_copies: true,
            max_send_rate: None,
        }
    }
}

/// mKCP settings (V2Ray `kcpSettings`) plus our engine tuning.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Maximum datagram size, 576..=1460 (V2Ray default 1350).
    pub mtu: u32,
    /// Transmission time interval in ms, 10..=100 (default 50).
    pub tti: u32,
    /// Uplink capacity in MiB/s, 0..=4095 (default 5); sizes the sending window.
    pub uplink_capacity: u32,
    /// Downlink capacity in MiB/s, 0..=4095 (default 20); sizes the receiving window.
    pub downlink_capacity: u32,
    /// Loss-based congestion control (default off).
    pub congestion: bool,
    /// Read buffer in bytes (default 2 MiB). V2Ray ignores it; we use it to bound
    /// received data waiting for the application.
    pub read_buffer_size: u32,
    /// Write buffer in bytes (default 2 MiB); bounds queued outgoing segments.
    pub write_buffer_size: u32,
    /// Obfuscation header.
    pub header: HeaderKind,
    /// Security envelope.
    pub security: Security,
    /// Engine tuning (not part of V2Ray's settings).
    pub tuning: Tuning,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            mtu: 1350,
            tti: 50,
            uplink_capacity: 5,
            downlink_capacity: 20,
            congestion: false,
            read_buffer_size: 2 * MIB,
            write_buffer_size: 2 * MIB,
            header: HeaderKind::None,
            security: Security::Legacy,
            tuning: Tuning::default(),
        }
    }
}

const SEGMENT_DATA_HEADER: u32 = 18;

impl Config {
    /// Checks every field against V2Ray's ranges, and rejects the values where V2Ray's
    /// arithmetic would overflow or divide by zero (PROTOCOL.md §5 item 26).
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn range(
            field: &'static str,
            v: u32,
            lo: u32,
            hi: u32,
            allowed: &'static str,
        ) -> Result<(), ConfigError> {
            if v < lo || v > hi {
                return Err(ConfigError::OutOfRange {
                    field,
                    value: u64::from(v),
                    allowed,
                });
            }
            Ok(())
        }
        range("mtu", self.mtu, 576, 1460, "576 to 1460")?;
        range("tti", self.tti, 10, 100, "10 to 100 (ms)")?;
        range(
            "uplinkCapacity",
            self.uplink_capacity,
            0,
            4095,
            "0 to 4095 (MiB/s)",
        )?;
        range(
            "downlinkCapacity",
            self.downlink_capacity,
            0,
            4095,
            "0 to 4095 (MiB/s)",
        )?;
        range(
            "readBufferSize",
            self.read_buffer_size,
            1,
            u32::MAX,
            "1 byte or more",
        )?;
        range(
            "writeBufferSize",
            self.write_buffer_size,
            1,
            u32::MAX,
            "1 byte or more",
        )?;
        if let Some(rate) = self.tuning.max_send_rate {
            if rate < MIN_SEND_RATE {
                return Err(ConfigError::OutOfRange {
                    field: "max_send_rate",
                    value: rate,
                    allowed: "at least 1024 bytes/s",
                });
            }
        }
        if let HeaderKind::Dns { domain } = &self.header {
            HeaderKind::dns(domain)?;
        }
        if self.mss() < 64 {
            return Err(ConfigError::OutOfRange {
                field: "mtu",
                value: u64::from(self.mtu),
                allowed: "large enough to leave 64 payload bytes after header and envelope",
            });
        }
        Ok(())
    }

    /// Header size H.
    pub fn header_size(&self) -> u32 {
        self.header.size() as u32
    }

    /// Our MSS: payload bytes per Data segment so that the whole datagram fits the MTU
    /// (header, nonce, tag and the 18-byte segment header all accounted for).
    pub fn mss(&self) -> u32 {
        let overhead = self.header_size()
            + (self.security.prefix_len() + self.security.suffix_len()) as u32
            + SEGMENT_DATA_HEADER;
        self.mtu.saturating_sub(overhead)
    }

    /// V2Ray's MSS: `mtu - H - overhead - 18`, where the GCM overhead is 16 (PROTOCOL.md §3.3).
    pub fn v2ray_mss(&self) -> u32 {
        self.mtu.saturating_sub(
            self.header_size() + self.security.v2ray_overhead() as u32 + SEGMENT_DATA_HEADER,
        )
    }

    /// Bytes V2Ray's writer adds to each segment (header + its notion of overhead).
    pub fn writer_overhead(&self) -> u32 {
        self.header_size() + self.security.v2ray_overhead() as u32
    }

    fn window(&self, capacity: u32) -> u32 {
        let per_tick = 1000 / self.tti.max(1);
        let w = capacity.wrapping_mul(MIB) / self.mtu.max(1) / per_tick.max(1);
        w.max(8)
    }

    /// Sending window in segments: `max(8, uplink × 2^20 / mtu / (1000 / tti))`.
    pub fn sending_window(&self) -> u32 {
        self.window(self.uplink_capacity)
    }

    /// Receiving window in segments: `max(8, downlink × 2^20 / mtu / (1000 / tti))`.
    pub fn receiving_window(&self) -> u32 {
        self.window(self.downlink_capacity)
    }

    /// Maximum number of queued outgoing segments: `writeBufferSize / mtu`.
    pub fn send_buffer_segments(&self) -> u32 {
        self.write_buffer_size / self.mtu.max(1)
    }
}
