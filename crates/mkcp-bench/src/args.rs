//! The command line of `mkcp bench` and the names it accepts: link scenarios, kcp
//! variants and endpoint pairs.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use mkcp_netem::LinkConfig;
use serde::{Deserialize, Serialize};

/// `mkcp bench`: goodput, CPU per GB, memory, wire overhead and echo RTT of mkcp and
/// V2Ray side by side, each endpoint a separate process, through a user-space emulated
/// link (mkcp-netem) on 127.0.0.1.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Repetitions of every (scenario, kcp variant, pair); tables and charts show medians.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
    /// Link scenarios, comma-separated: clean (the relay, no impairment), wan30 (30 ms
    /// one way, 2 % loss, 100 Mbit/s, 1-BDP queue), wan100 (100 ms, 5 %, 20 Mbit/s, 1-BDP
    /// queue), direct (no relay: client and server endpoints straight on loopback, with
    /// the raw-UDP and plain-TCP ceilings measured in the same run).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "clean,wan30,wan100"
    )]
    pub scenarios: Vec<LinkScenario>,
    /// kcpSettings variants, comma-separated: default (V2Ray's defaults), congestion
    /// (the same with `congestion: true`).
    #[arg(
        long = "kcp",
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "default,congestion"
    )]
    pub variants: Vec<KcpVariant>,
    /// Endpoint pairs (client-server), comma-separated: mkcp-mkcp, mkcp-v2ray,
    /// v2ray-mkcp, v2ray-v2ray (or mm, mv, vm, vv).
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "mkcp-mkcp,mkcp-v2ray,v2ray-mkcp,v2ray-v2ray"
    )]
    pub pairs: Vec<PairKind>,
    /// Directions of the bulk transfer, comma-separated: up (client to server: the bench
    /// writes into the client endpoint, the target behind the server sinks), down
    /// (server to client: the target sends a seeded stream, the bench reads and checks
    /// it at the client endpoint). Each direction is a run of its own.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        default_value = "up,down"
    )]
    pub directions: Vec<Direction>,
    /// Workloads, comma-separated: bulk (idle echo round trips, then one bulk transfer
    /// in each of --directions), echo-load (64-byte echoes on a second connection of
    /// the client while a first one uploads at full rate), streams (--streams concurrent
    /// uploads, each its own tunnelled connection). echo-load and streams are uploads
    /// only and run once per cell whatever --directions says. [default: bulk on every
    /// link, plus echo-load and streams on the rate-limited ones (wan30, wan100)]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub workloads: Vec<Workload>,
    /// Concurrent uploads of the streams workload.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u8).range(2..=64))]
    pub streams: u8,
    /// Length of each bulk transfer, e.g. 10s; with --bytes, the time a transfer may take.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_run_duration)]
    pub duration: Duration,
    /// Move this much in each bulk transfer instead of running for --duration, e.g.
    /// 64MiB: goodput is the amount over the time until the receiving application has
    /// all of it, and wire/payload counts every byte of the transfer (a timed run also
    /// counts, as wire, what is still in flight or buffered when it ends). Bulk
    /// workload only (the default workloads become bulk alone).
    #[arg(long, value_name = "SIZE", value_parser = parse_transfer_size)]
    pub bytes: Option<u64>,
    /// Timed 64-byte echo round trips per run (after 5 untimed ones); 0 skips the echo test.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub rtt_samples: usize,
    /// Upper bound on the time spent on echoes per run (fewer samples on slow links).
    #[arg(long, value_name = "DURATION", default_value = "8s", value_parser = parse_run_duration)]
    pub rtt_time: Duration,
    /// Folder for results.md, results.json and the SVG charts.
    #[arg(long, value_name = "DIR", default_value = "bench-results")]
    pub out: PathBuf,
    /// The mkcp binary to benchmark [default: $MKCP_BIN, else `mkcp` next to this
    /// executable].
    #[arg(long, value_name = "PATH")]
    pub mkcp_bin: Option<PathBuf>,
    /// The V2Ray binary [default: $MKCP_V2RAY_BIN, else v2ray on PATH, else /usr/bin/v2ray].
    #[arg(long, value_name = "PATH")]
    pub v2ray_bin: Option<PathBuf>,
    /// Do not run anything: rewrite results.md and the charts in --out from the records
    /// of an earlier results.json.
    #[arg(long, value_name = "FILE")]
    pub report_from: Option<PathBuf>,
    /// Base seed of the emulated links' random choices (run i uses SEED + 2i and
    /// SEED + 2i + 1 for its two directions).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,
}

fn parse_transfer_size(s: &str) -> Result<u64, String> {
    let n = mkcp_netem::parse::parse_size(s).map_err(|e| e.to_string())?;
    if n == 0 {
        return Err(format!("{s}: must be more than 0 bytes"));
    }
    Ok(n as u64)
}

fn parse_run_duration(s: &str) -> Result<Duration, String> {
    let d = mkcp_netem::parse::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(3600) {
        return Err(format!("{s}: must be between 100ms and 1h"));
    }
    Ok(d)
}

/// An emulated link between client and server (the same each way).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum LinkScenario {
    /// The relay with no impairment: loopback speed, limited by the relay itself.
    Clean,
    /// 30 ms one way, 2 % random loss each way, 100 Mbit/s bottleneck, 750 kB queue (1 BDP).
    Wan30,
    /// 100 ms one way, 5 % random loss each way, 20 Mbit/s bottleneck, 500 kB queue (1 BDP).
    Wan100,
    /// No relay: the client endpoint sends straight to the server endpoint on loopback.
    Direct,
}

impl LinkScenario {
    /// Short name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            LinkScenario::Clean => "clean",
            LinkScenario::Wan30 => "wan30",
            LinkScenario::Wan100 => "wan100",
            LinkScenario::Direct => "direct",
        }
    }

    /// Whether the endpoints talk through the netem relay (all but [`LinkScenario::Direct`]).
    pub fn has_relay(self) -> bool {
        !matches!(self, LinkScenario::Direct)
    }

    /// Human description for tables.
    pub fn describe(self) -> &'static str {
        match self {
            LinkScenario::Direct => "direct loopback, no relay",
            LinkScenario::Clean => "clean loopback",
            LinkScenario::Wan30 => "30 ms, 2 %, 100 Mbit/s",
            LinkScenario::Wan100 => "100 ms, 5 %, 20 Mbit/s",
        }
    }

    /// The bottleneck rate in bits per second, if any.
    pub fn rate_bps(self) -> Option<u64> {
        match self {
            LinkScenario::Clean | LinkScenario::Direct => None,
            LinkScenario::Wan30 => Some(100_000_000),
            LinkScenario::Wan100 => Some(20_000_000),
        }
    }

    /// Random loss probability each way.
    pub fn loss(self) -> f64 {
        match self {
            LinkScenario::Clean | LinkScenario::Direct => 0.0,
            LinkScenario::Wan30 => 0.02,
            LinkScenario::Wan100 => 0.05,
        }
    }

    /// One-way delay.
    pub fn delay(self) -> Duration {
        match self {
            LinkScenario::Clean | LinkScenario::Direct => Duration::ZERO,
            LinkScenario::Wan30 => Duration::from_millis(30),
            LinkScenario::Wan100 => Duration::from_millis(100),
        }
    }

    /// Bottleneck queue: one bandwidth-delay product (rate × round-trip time).
    pub fn queue_bytes(self) -> usize {
        match self.rate_bps() {
            Some(bps) => (bps as f64 / 8.0 * 2.0 * self.delay().as_secs_f64()) as usize,
            None => 0,
        }
    }

    /// The link's capacity in bytes per second of UDP payload, if limited.
    pub fn capacity_bytes_per_sec(self) -> Option<f64> {
        self.rate_bps().map(|b| b as f64 / 8.0)
    }

    /// The path's round-trip time without queueing (twice the one-way delay), in ms.
    pub fn path_rtt_ms(self) -> f64 {
        2.0 * self.delay().as_secs_f64() * 1000.0
    }

    /// The most application payload this link can carry one way, in MB/s, if it is
    /// rate-limited: rate × (1 − loss) × `payload_share` (the payload's share of a full
    /// datagram, [`crate::limits::payload_share`]).
    pub fn limit_mb_s(self, payload_share: f64) -> Option<f64> {
        self.capacity_bytes_per_sec()
            .map(|b| b * (1.0 - self.loss()) * payload_share / 1e6)
    }

    /// The link model for one direction, with the given random seed.
    pub fn link(self, seed: u64) -> LinkConfig {
        let mut l = LinkConfig::default()
            .delay(self.delay())
            .loss(self.loss())
            .seed(seed);
        if let Some(bps) = self.rate_bps() {
            l = l.rate_bps(bps).queue_bytes(self.queue_bytes());
        }
        l
    }
}

impl fmt::Display for LinkScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a run does through the tunnel.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// 64-byte echo round trips on the idle link, then one bulk transfer in the run's
    /// direction.
    #[default]
    Bulk,
    /// One connection uploads at full rate while a second connection of the same client
    /// endpoint does 64-byte echo round trips.
    EchoLoad,
    /// `--streams` concurrent uploads, each its own tunnelled TCP connection (so its own
    /// mKCP session and UDP socket), through the same link.
    Streams,
}

impl Workload {
    /// All, in table order.
    pub const ALL: [Workload; 3] = [Workload::Bulk, Workload::EchoLoad, Workload::Streams];

    /// Short name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Bulk => "bulk",
            Workload::EchoLoad => "echo-load",
            Workload::Streams => "streams",
        }
    }

    /// The workloads of `scenario` given `--workloads` (`asked`): those asked, or, if
    /// none were, bulk everywhere and echo-load and streams where a bottleneck makes
    /// them tell something (a queue to wait in, a rate to share).
    pub fn for_scenario(scenario: LinkScenario, asked: &[Workload]) -> Vec<Workload> {
        if !asked.is_empty() {
            return dedup_keep_order(asked);
        }
        if scenario.rate_bps().is_some() {
            Workload::ALL.to_vec()
        } else {
            vec![Workload::Bulk]
        }
    }

    /// The directions this workload runs in, given `--directions` (the new workloads are
    /// uploads only).
    pub fn directions(self, asked: &[Direction]) -> Vec<Direction> {
        match self {
            Workload::Bulk => asked.to_vec(),
            Workload::EchoLoad | Workload::Streams => vec![Direction::Up],
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kcpSettings both ends use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum KcpVariant {
    /// V2Ray's defaults: mtu 1350, tti 50, uplink 5, downlink 20, no congestion control,
    /// 2 MiB buffers, no header, legacy envelope.
    Default,
    /// The defaults with `congestion: true`.
    Congestion,
}

impl KcpVariant {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            KcpVariant::Default => "default",
            KcpVariant::Congestion => "congestion",
        }
    }

    /// Whether `congestion` is on.
    pub fn congestion(self) -> bool {
        matches!(self, KcpVariant::Congestion)
    }

    /// The kcpSettings both ends run with (V2Ray's defaults, `congestion` as named).
    pub fn params(self) -> mkcp_v2ray::KcpParams {
        mkcp_v2ray::KcpParams {
            congestion: self.congestion(),
            ..mkcp_v2ray::KcpParams::default()
        }
    }
}

impl fmt::Display for KcpVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which implementation runs each end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Implementation {
    /// The `mkcp` binary (`mkcp client` / `mkcp server`).
    Mkcp,
    /// V2Ray 4.34.
    V2ray,
}

impl Implementation {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Mkcp => "mkcp",
            Implementation::V2ray => "v2ray",
        }
    }
}

/// A client implementation and a server implementation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, ValueEnum, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PairKind {
    /// mkcp client and mkcp server.
    #[value(name = "mkcp-mkcp", alias = "mm")]
    MkcpMkcp,
    /// mkcp client, V2Ray server.
    #[value(name = "mkcp-v2ray", alias = "mv")]
    MkcpV2ray,
    /// V2Ray client, mkcp server.
    #[value(name = "v2ray-mkcp", alias = "vm")]
    V2rayMkcp,
    /// V2Ray client and V2Ray server.
    #[value(name = "v2ray-v2ray", alias = "vv")]
    V2rayV2ray,
}

impl PairKind {
    /// All four, in table order.
    pub const ALL: [PairKind; 4] = [
        PairKind::MkcpMkcp,
        PairKind::MkcpV2ray,
        PairKind::V2rayMkcp,
        PairKind::V2rayV2ray,
    ];

    /// The client's implementation.
    pub fn client(self) -> Implementation {
        match self {
            PairKind::MkcpMkcp | PairKind::MkcpV2ray => Implementation::Mkcp,
            _ => Implementation::V2ray,
        }
    }

    /// The server's implementation.
    pub fn server(self) -> Implementation {
        match self {
            PairKind::MkcpMkcp | PairKind::V2rayMkcp => Implementation::Mkcp,
            _ => Implementation::V2ray,
        }
    }

    /// `client-server`, e.g. `mkcp-v2ray`.
    pub fn name(self) -> &'static str {
        match self {
            PairKind::MkcpMkcp => "mkcp-mkcp",
            PairKind::MkcpV2ray => "mkcp-v2ray",
            PairKind::V2rayMkcp => "v2ray-mkcp",
            PairKind::V2rayV2ray => "v2ray-v2ray",
        }
    }

    /// `client → server` for tables.
    pub fn arrow(self) -> String {
        format!("{} → {}", self.client().name(), self.server().name())
    }

    /// Whether either end is V2Ray.
    pub fn needs_v2ray(self) -> bool {
        self.client() == Implementation::V2ray || self.server() == Implementation::V2ray
    }

    /// Whether either end is mkcp.
    pub fn needs_mkcp(self) -> bool {
        self.client() == Implementation::Mkcp || self.server() == Implementation::Mkcp
    }
}

impl fmt::Display for PairKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way the bulk transfer of a run goes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    ValueEnum,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Client → server (an upload): the application at the client writes.
    #[default]
    #[value(alias = "upload")]
    Up,
    /// Server → client (a download): the application behind the server writes.
    #[value(alias = "download")]
    Down,
}

impl Direction {
    /// Both, in table order.
    pub const ALL: [Direction; 2] = [Direction::Up, Direction::Down];

    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Removes repeated entries, keeping the first occurrence of each.
pub fn dedup_keep_order<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for &i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}
