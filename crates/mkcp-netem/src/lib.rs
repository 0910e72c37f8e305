//! User-space link emulator on real UDP sockets: delay, jitter, loss, duplication,
//! reordering, and a rate-limited bottleneck with a bounded queue, each way.
//!
//! There is no `tc netem` to lean on here (no root, no qdisc), so [`Relay`] does the same
//! job in user space: clients send to the relay's address, the relay forwards to a target
//! through [`mkcp_sim::link::Link`] models driven by real time, and replies come back the
//! same way through a second link.
//!
//! ```text
//!   client --> relay (listen) --[up: LinkConfig]-->   target
//!   client <-- relay (listen) <--[down: LinkConfig]-- target
//! ```
//!
//! [`parse`] turns netem-style option values (`30ms`, `2%`, `100mbit`, `64kb`) into the
//! numbers a [`LinkConfig`] takes, for the `mkcp netem` command line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mkcp_netem::{parse, LinkConfig, Relay};
//!
//! let up = LinkConfig::default()
//!     .delay(parse::parse_duration("30ms")?)
//!     .loss(parse::parse_percent("2%")?)
//!     .rate_bps(parse::parse_rate("100mbit")?)
//!     .queue_bytes(parse::parse_size("256kb")?)
//!     .seed(1);
//! let down = up.clone().seed(2);
//! let relay = Relay::start("127.0.0.1:9000".parse()?, "127.0.0.1:4000".parse()?, up, down).await?;
//! // ... run traffic through 127.0.0.1:9000 ...
//! let stats = relay.stats();
//! println!("up: {} in, {} lost, {} out", stats.up.packets_in, stats.up.dropped(), stats.up.packets_out);
//! relay.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod parse;
pub mod relay;

pub use mkcp_sim::link::{LinkConfig, LinkStats};
pub use parse::ParseError;
pub use relay::{Relay, RelayHandle, RelayOptions, RelayStats};
