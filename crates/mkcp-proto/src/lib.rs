//! Sans-IO core of **mKCP**, V2Ray's KCP-based transport: reliable streams over UDP.
//!
//! ```text
//!   Endpoint  (endpoint.rs): many connections on one UDP socket, keyed by (peer, conv)
//!      |
//!   Connection (conn/): state machine, send/receive windows, RTT/RTO, acks
//!      |
//!   wire/header.rs    obfuscation headers (srtp, utp, wechat-video, dtls, wireguard, dns)
//!   wire/envelope.rs  legacy FNV+xor, AES-128-GCM (seed), raw
//!   wire/segment.rs   Data / Ack / CmdOnly segments
//!   config.rs         kcpSettings, defaults, ranges, derived windows and MSS
//! ```
//!
//! Nothing here touches sockets or clocks: time and datagrams are inputs, datagrams and
//! events are outputs. The `mkcp` crate puts this on tokio; `mkcp-sim` drives it in a
//! deterministic simulated network.
//!
//! # Cargo features
//!
//! * `json` (default): `config::json`, the import of V2Ray/Xray settings from JSON
//!   (`Config::from_kcp_settings_json`, `from_json_any` and the other `from_*_json` /
//!   `from_*_value` constructors), with `serde_json`. Without it
//!   (`default-features = false`) the crate has no `serde_json` dependency and a
//!   [`Config`] is built in code (`Config::default()` and its fields).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod conn;
pub mod endpoint;
pub mod wire;

pub use config::{Config, ConfigError, Tuning};
pub use conn::{
    ConnEvent, Connection, ConnectionError, ConnectionStats, State, AMPLIFICATION_FACTOR,
    CMD_HELLO, CMD_HELLO_HEARD, STALL_US, UNPROVEN_US,
};
pub use endpoint::{
    ConnId, Endpoint, EndpointConfig, EndpointError, EndpointStats, Event, Transmit,
};
pub use wire::{Codec, HeaderKind, Security, WireError};

/// The engine's internal building blocks, for this crate's own vector tests (the RTT
/// estimator, the send buffer and V2Ray's ack list reproduce V2Ray's traces step by
/// step). Not a stable API: anything here may change in any release.
#[doc(hidden)]
pub mod internals {
    pub use crate::conn::recv::{AckBatch, V2rayAckList};
    pub use crate::conn::rtt::RttEstimator;
    pub use crate::conn::send::{SendBuffer, V2raySent};
    pub use crate::conn::seq::{Seq, WireTime};
}
