//! `mkcp bench` without the CLI: the same arguments and report.
//!
//! ```text
//! cargo run --release -p mkcp-bench --example bench -- --pairs v2ray-v2ray --runs 1
//! ```

use clap::Parser;
use mkcp_bench::BenchArgs;

/// End-to-end benchmarks of mkcp and V2Ray over an emulated link.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    mkcp_bench::run(Cli::parse().bench).await
}
