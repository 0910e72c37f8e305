//! Drives the real V2Ray binary (Debian `v2ray`, V2Ray 4.34) as an mKCP peer for interop
//! tests and benchmarks.
//!
//! ```text
//!   locate / require_v2ray_or_skip    find the binary (MKCP_V2RAY_BIN, PATH, /usr/bin/v2ray)
//!   V2rayConfig + KcpParams           JSON for a plain mKCP server or client (PROTOCOL.md §4)
//!   V2rayProcess                      spawn, wait ready, CPU/RSS stats, kill (also on drop)
//!   V2rayPair                         V2Ray client --mKCP--> V2Ray server on loopback
//!   net::*, ports::*                  std-only echo/sink/source servers, verified transfers,
//!                                     free ports (re-exported from mkcp-harness)
//! ```
//!
//! Typical interop test:
//!
//! ```no_run
//! use mkcp_v2ray::{net, require_v2ray_or_skip, HeaderType, KcpParams, V2rayPair};
//! use std::time::Duration;
//!
//! let Some(bin) = require_v2ray_or_skip() else { return };
//! let echo = net::EchoServer::start().unwrap();
//! let kcp = KcpParams::with(HeaderType::Srtp, Some("secret"));
//! let pair = V2rayPair::start(&bin, echo.addr(), &kcp, &kcp).unwrap();
//! net::transfer_echo(pair.entry(), 256 * 1024, 1, Duration::from_secs(30)).unwrap();
//! ```
#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod locate;
pub mod pair;
pub mod process;

pub use mkcp_harness::{net, ports};

pub use config::{HeaderType, KcpParams, Listener, LogLevel, Role, V2rayConfig};
pub use error::V2rayError;
pub use locate::{interop_skip_requested, locate, require_v2ray_or_skip, V2rayBin};
pub use pair::V2rayPair;
pub use ports::{free_tcp_port, free_udp_port, localhost, retry_on_port_conflict};
pub use process::{Ready, V2rayProcess, DEFAULT_READY_TIMEOUT, STARTED_MARKER};
