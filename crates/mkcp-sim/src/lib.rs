//! Deterministic simulated network for mKCP tests and benchmarks.
//!
//! ```text
//!   net::Network   virtual clock; nodes at SocketAddrs driven through the sans-IO calls
//!        |         (handle_datagram, poll_transmit, poll_timeout, handle_timeout)
//!        v
//!   link::Link     one direction of a path: loss, duplication, bottleneck rate and queue,
//!                  delay, jitter, reordering; seeded, pure, generic over the packet type
//! ```
//!
//! Nothing here reads a clock or sleeps: time is a value passed in, randomness comes from
//! per-link seeded generators, so the same inputs always give the same run. The link model
//! is also what `mkcp-netem` applies to real UDP traffic.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod link;
pub mod net;

pub use link::{Link, LinkConfig, LinkStats, Verdict};
pub use net::{NetStats, Network, Node, SimError};
