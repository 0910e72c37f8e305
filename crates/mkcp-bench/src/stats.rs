//! Medians and percentiles: the harness's one definition ([`mkcp_harness::stats`]).

pub use mkcp_harness::stats::{median, percentile};
