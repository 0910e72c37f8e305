//! Helpers shared by mkcp's test and benchmark harnesses: one copy of each.
//!
//! ```text
//!   net        std-only TCP echo / sink / source / echo-or-sink servers on 127.0.0.1,
//!              seeded payloads, bounded transfers that verify SHA-256, echo RTTs
//!   ports      free ports on 127.0.0.1 and the retry on a fresh port
//!   stats      nearest-rank percentile and median
//!   process    (Linux) children that die with their parent, /proc probes
//! ```
//!
//! Everything but `process` is portable std code, so the `mkcp` command can use the echo
//! server for `mkcp demo` on any platform. `process` holds the harness's only `unsafe`.
#![warn(missing_docs)]

pub mod net;
pub mod ports;
#[cfg(target_os = "linux")]
pub mod process;
pub mod stats;

pub use ports::{free_tcp_port, free_udp_port, localhost, retry_on_port_conflict};
