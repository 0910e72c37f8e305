//! Std-only (no tokio) TCP test utilities on 127.0.0.1: background echo / sink / source
//! servers that stop on drop ([`server`]), seeded pseudo-random data ([`pattern`]), and
//! bounded transfers that verify SHA-256 ([`transfer`]).
//!
//! Everything is bounded in time: server connections give up after
//! [`SERVER_IDLE_TIMEOUT`] of silence, client helpers take an overall timeout, and
//! dropping a server shuts its connections down and joins its threads.
//!
//! ```
//! use mkcp_harness::net::{self, EchoServer};
//! use std::time::Duration;
//!
//! let echo = EchoServer::start().unwrap();
//! let r = net::transfer_echo(echo.addr(), 64 * 1024, 7, Duration::from_secs(10)).unwrap();
//! assert_eq!(r.sha256, net::pattern_sha256(7, 64 * 1024));
//! ```

pub mod pattern;
pub mod server;
pub mod transfer;

pub use pattern::{hex, pattern_bytes, pattern_sha256, Pattern};
pub use server::{
    EchoServer, MuxServer, SinkRecord, SinkServer, SourceRequest, SourceServer, MAX_CONNECTIONS,
    MODE_ECHO, MODE_SINK, MODE_SOURCE, MODE_TAGGED_SINK, SERVER_IDLE_TIMEOUT,
};
pub use transfer::{
    echo_rtt, receive_from_source, transfer_echo, transfer_to_sink, RttStats, TransferError,
    TransferReport,
};
