//! The one place that names the mKCP runtime (`crates/mkcp`), so that the rest of the
//! command does not depend on where its types live.

pub use mkcp::{KcpListener, KcpStream, ListenerOptions, RateLimiter, StatsProbe};
