//! The command line: `mkcp server | client | netem | demo`, parsed with clap's derive API.
//!
//! mKCP settings are `Option`s so that a flag given on the command line can be told apart
//! from a default: flags override `--config`, which overrides V2Ray's defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use mkcp_proto::config::MaskOrder;
use mkcp_proto::HeaderKind;

/// TCP over V2Ray's mKCP: a tunnel like kcptun that talks to V2Ray 4.34 on the wire.
#[derive(Debug, Parser)]
#[command(name = "mkcp", version, long_about = None)]
#[command(propagate_version = true)]
// A flag given twice takes the later value: `mkcp run` appends its flags to a tunnel's.
#[command(args_override_self = true)]
pub struct Cli {
    /// Logging: -v for debug, -vv for trace (RUST_LOG overrides).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only log warnings and errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log format on stderr: text (one human-readable line per event) or json (one JSON
    /// object per line: timestamp, level, fields, message).
    #[arg(long, value_name = "FORMAT", global = true, default_value = "text",
          value_parser = parse_log_format)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!(
            "log-format = {s:?} is invalid: expected text or json"
        )),
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accept mKCP sessions on a UDP address and connect each to a TCP target.
    Server(ServerArgs),
    /// Accept TCP connections and carry each over its own mKCP conversation to a server.
    Client(ClientArgs),
    /// A UDP relay that emulates a bad link (delay, jitter, loss, duplication, reordering,
    /// rate limit) each way.
    Netem(NetemArgs),
    /// Run a self-contained tunnel over an emulated lossy link on 127.0.0.1 and show live
    /// goodput, RTT and retransmissions.
    Demo(DemoArgs),
    /// Check a config file and flags without starting anything: print the effective mKCP
    /// settings (seed redacted) and exit 0 when valid, 2 when not.
    Check(CheckArgs),
    /// Run the tunnels of an mkcp tunnels file (JSON) in one process; flags after the file
    /// apply to every tunnel and override the file.
    Run(RunFileArgs),
    /// Benchmark mkcp and V2Ray side by side over emulated links (goodput, CPU per GB,
    /// memory, wire overhead, echo RTT); writes a markdown report and SVG charts.
    #[cfg(feature = "bench")]
    Bench(mkcp_bench::BenchArgs),
}

/// `mkcp server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// UDP address to accept mKCP sessions on, e.g. 0.0.0.0:4000.
    #[arg(long, short = 'l', value_name = "UDP_ADDR")]
    pub listen: String,
    /// TCP address each session is connected to, e.g. 127.0.0.1:22.
    #[arg(long, short = 't', value_name = "TCP_ADDR")]
    pub target: String,
    /// Connect to the target as soon as a session opens, not at its first data. Needed
    /// when the target speaks first (SMTP, MySQL) and the client waits for it; each
    /// spoofed opener then costs a target connection (what goes back stays limited).
    #[arg(long)]
    pub connect_on_open: bool,
    /// UDP sockets sharing the listening port (SO_REUSEPORT, Linux), each served by its
    /// own task so that sessions use every core; the kernel keeps each client address
    /// on one socket. 1 = one socket. Default: the number of available cores (1 on other
    /// systems than Linux).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub shards: Option<u16>,
    #[command(flatten)]
    pub kcp: KcpArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `mkcp client`.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// TCP address to accept connections on, e.g. 127.0.0.1:2222.
    #[arg(long, short = 'l', value_name = "TCP_ADDR")]
    pub listen: String,
    /// UDP address of the mKCP server (mkcp server, or V2Ray with an mKCP inbound).
    #[arg(long, short = 's', value_name = "UDP_ADDR")]
    pub server: String,
    #[command(flatten)]
    pub kcp: KcpArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `mkcp run`.
#[derive(Debug, Args)]
pub struct RunFileArgs {
    /// The tunnels file: {"tunnels": [{"command": "server", "listen": ..., ...}, ...]}.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Check every tunnel's settings and print them without starting anything.
    #[arg(long)]
    pub check: bool,
    /// Flags of `mkcp server`/`mkcp client` for every tunnel, e.g. --stats 10.
    #[arg(
        value_name = "FLAGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub flags: Vec<String>,
}

/// `mkcp check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub kcp: KcpArgs,
}

/// Options of the long-running tunnel commands.
#[derive(Debug, Args)]
#[command(next_help_heading = "Operation")]
pub struct RunArgs {
    /// Print one line of statistics every SECS seconds (0 = off).
    #[arg(long, value_name = "SECS", default_value_t = 0, allow_negative_numbers = true,
          value_parser = parse_stats_interval)]
    pub stats: u64,
    /// Once one direction of a session has ended, close the session when the other has
    /// been silent for SECS seconds (0 = wait for both to end). V2Ray has no half-close,
    /// so this is how sessions with V2Ray peers end (V2Ray does the same).
    #[arg(long, value_name = "SECS", default_value_t = 5, allow_negative_numbers = true,
          value_parser = parse_linger)]
    pub linger: u64,
    /// Check the settings and addresses, print the effective settings (seed redacted) and
    /// exit (0 valid, 2 not) without binding or starting anything.
    #[arg(long)]
    pub check: bool,
    /// Serve metrics over HTTP on this TCP address, e.g. 127.0.0.1:9100: GET /metrics
    /// (Prometheus text format) and GET /metrics.json.
    #[arg(long, value_name = "TCP_ADDR")]
    pub metrics: Option<String>,
}

/// The `kcpSettings` of V2Ray as flags. Unset flags take the value from `--config`, or
/// else V2Ray's default.
#[derive(Args, Default, Clone)]
#[command(next_help_heading = "mKCP settings (V2Ray kcpSettings; flags override --config)")]
pub struct KcpArgs {
    /// V2Ray config file: a kcpSettings object, {"kcpSettings": ...}, a streamSettings
    /// object, {"streamSettings": ...}, or a whole V2Ray/Xray config (its mKCP
    /// streamSettings). A seed or header it would not apply is an error.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Maximum datagram size in bytes, 576 to 1460 [default: 1350].
    #[arg(long, value_name = "BYTES", allow_negative_numbers = true,
          value_parser = parse_u32("mtu", "576 to 1460"))]
    pub mtu: Option<u32>,
    /// Transmission time interval in ms, 10 to 100 [default: 50].
    #[arg(long, value_name = "MS", allow_negative_numbers = true,
          value_parser = parse_u32("tti", "10 to 100 (ms)"))]
    pub tti: Option<u32>,
    /// Uplink capacity in MiB/s, 0 to 4095: sizes the first sending window (as in V2Ray);
    /// not a rate limit, mkcp paces at the measured path rate (to cap: --max-rate)
    /// [default: 5].
    #[arg(long, value_name = "MIB_S", allow_negative_numbers = true,
          value_parser = parse_u32("uplinkCapacity", "0 to 4095 (MiB/s)"))]
    pub uplink: Option<u32>,
    /// Downlink capacity in MiB/s, 0 to 4095: sizes the receive window with
    /// --read-buffer (the larger wins); not a rate limit (to cap: --max-rate)
    /// [default: 20].
    #[arg(long, value_name = "MIB_S", allow_negative_numbers = true,
          value_parser = parse_u32("downlinkCapacity", "0 to 4095 (MiB/s)"))]
    pub downlink: Option<u32>,
    /// Loss-based congestion control [default: false].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true",
          value_parser = parse_bool("congestion"))]
    pub congestion: Option<bool>,
    /// Read buffer in MiB, 0 to 4095 (0 = 512 KiB) [default: 2].
    #[arg(long, value_name = "MIB", allow_negative_numbers = true,
          value_parser = parse_u32("readBufferSize", "0 to 4095 (MiB; 0 means 512 KiB)"))]
    pub read_buffer: Option<u32>,
    /// Write buffer in MiB, 0 to 4095 (0 = 512 KiB) [default: 2].
    #[arg(long, value_name = "MIB", allow_negative_numbers = true,
          value_parser = parse_u32("writeBufferSize", "0 to 4095 (MiB; 0 means 512 KiB)"))]
    pub write_buffer: Option<u32>,
    /// Obfuscation header: none, srtp, utp, wechat-video, dtls, wireguard, dns (Xray)
    /// [default: none].
    #[arg(long, value_name = "TYPE", value_parser = parse_header)]
    pub header: Option<HeaderKind>,
    /// Seed: encrypts every datagram with AES-128-GCM (key from the seed). Without a
    /// seed V2Ray's legacy envelope is used, which is obfuscation, not encryption. Both
    /// ends must use the same header and seed.
    #[arg(long, value_name = "SEED")]
    pub seed: Option<String>,
    /// Read the seed from a file (its first line; e.g. a systemd credential), so that it
    /// is not visible in `ps`. Without --seed and --seed-file, the seed of --config
    /// applies, else the MKCP_SEED environment variable.
    #[arg(long, value_name = "PATH", conflicts_with = "seed")]
    pub seed_file: Option<PathBuf>,
    /// How an Xray finalmask.udp list in --config is read: last-outermost (Xray v26.6.22
    /// and later) or first-outermost (v26.1.31 to v26.6.1) [default: last-outermost].
    #[arg(long, value_name = "ORDER", value_parser = parse_mask_order)]
    pub finalmask_order: Option<MaskOrder>,
    /// Most each session sends per second, e.g. 2MiB, 500KiB, 2MB (bytes; "/s" may
    /// follow) or 16mbit (bits). Data segments count, retransmissions included; a V2Ray
    /// sender is held to it by the window we advertise. Set it on both ends to cap both
    /// directions between mkcp peers [default: no limit].
    #[arg(long, value_name = "RATE", help_heading = "Rate limits (mkcp only)",
          value_parser = parse_max_rate("max-rate"))]
    pub max_rate: Option<u64>,
    /// Most all sessions of this process send per second together, same units as
    /// --max-rate. Every datagram counts (data, acknowledgements, headers)
    /// [default: no limit].
    #[arg(long, value_name = "RATE", help_heading = "Rate limits (mkcp only)",
          value_parser = parse_max_rate("max-rate-total"))]
    pub max_rate_total: Option<u64>,
}

/// Like the derived one, with the seed redacted.
impl std::fmt::Debug for KcpArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KcpArgs")
            .field("config", &self.config)
            .field("mtu", &self.mtu)
            .field("tti", &self.tti)
            .field("uplink", &self.uplink)
            .field("downlink", &self.downlink)
            .field("congestion", &self.congestion)
            .field("read_buffer", &self.read_buffer)
            .field("write_buffer", &self.write_buffer)
            .field("header", &self.header)
            .field("seed", &self.seed.as_ref().map(|_| "<redacted>"))
            .field("seed_file", &self.seed_file)
            .field("finalmask_order", &self.finalmask_order)
            .field("max_rate", &self.max_rate)
            .field("max_rate_total", &self.max_rate_total)
            .finish()
    }
}

/// `mkcp netem`.
#[derive(Debug, Args, Clone)]
pub struct NetemArgs {
    /// UDP address to listen on (clients send here).
    #[arg(long, short = 'l', value_name = "UDP_ADDR")]
    pub listen: String,
    /// UDP address to forward to.
    #[arg(long, value_name = "UDP_ADDR")]
    pub to: String,
    #[command(flatten)]
    pub link: LinkArgs,
    /// Overrides for the down direction (target -> client); unset values copy the up
    /// direction.
    #[command(flatten)]
    pub down: DownLinkArgs,
    /// Print the counters every SECS seconds (0 = only on exit).
    #[arg(long, value_name = "SECS", default_value_t = 0, value_parser = parse_stats_interval)]
    pub stats: u64,
}

/// Link impairments (both directions unless overridden with `--down-*`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Link (both directions)")]
pub struct LinkArgs {
    /// One-way delay, e.g. 30ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration("delay"))]
    pub delay: Option<Duration>,
    /// Extra random delay per packet, 0..=JITTER (never reorders), e.g. 5ms.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration("jitter"))]
    pub jitter: Option<Duration>,
    /// Packet loss, e.g. 2%.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent("loss"))]
    pub loss: Option<f64>,
    /// Packet duplication, e.g. 1%.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent("dup"))]
    pub dup: Option<f64>,
    /// Packets held back by --reorder-gap so that later ones overtake them, e.g. 1%.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent("reorder"))]
    pub reorder: Option<f64>,
    /// How long a reordered packet is held back [default: 10ms].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration("reorder-gap"))]
    pub reorder_gap: Option<Duration>,
    /// Bottleneck rate with a unit, e.g. 100mbit, 20mibit, 1mbps (bytes/s) (unlimited if
    /// absent).
    #[arg(long, value_name = "RATE", value_parser = parse_rate("rate"))]
    pub rate: Option<u64>,
    /// Bottleneck queue (tail drop), e.g. 256kb [default: 1/10 s at --rate, >= 64kb].
    #[arg(long, value_name = "SIZE", value_parser = parse_size("queue"))]
    pub queue: Option<usize>,
    /// Seed of the random choices; the down direction uses SEED+1 [default: 1].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

/// `--down-*` overrides for the target -> client direction.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Down direction overrides (target -> client)")]
pub struct DownLinkArgs {
    /// Down-direction delay.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration("down-delay"))]
    pub down_delay: Option<Duration>,
    /// Down-direction jitter.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration("down-jitter"))]
    pub down_jitter: Option<Duration>,
    /// Down-direction loss.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent("down-loss"))]
    pub down_loss: Option<f64>,
    /// Down-direction duplication.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent("down-dup"))]
    pub down_dup: Option<f64>,
    /// Down-direction reordering.
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent("down-reorder"))]
    pub down_reorder: Option<f64>,
    /// Down-direction rate.
    #[arg(long, value_name = "RATE", value_parser = parse_rate("down-rate"))]
    pub down_rate: Option<u64>,
    /// Down-direction queue.
    #[arg(long, value_name = "SIZE", value_parser = parse_size("down-queue"))]
    pub down_queue: Option<usize>,
}

/// `mkcp demo`.
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// One-way delay of the emulated link, each way.
    #[arg(long, value_name = "DURATION", default_value = "30ms",
          value_parser = parse_duration("delay"))]
    pub delay: Duration,
    /// Packet loss of the emulated link, each way.
    #[arg(long, value_name = "PERCENT", default_value = "2%",
          value_parser = parse_percent("loss"))]
    pub loss: f64,
    /// Bottleneck rate of the emulated link, each way.
    #[arg(long, value_name = "RATE", default_value = "100mbit",
          value_parser = parse_rate("rate"))]
    pub rate: u64,
    /// How long to push data: seconds, or with a unit (2500ms).
    #[arg(long, value_name = "SECS", default_value = "10",
          value_parser = parse_demo_duration)]
    pub duration: Duration,
    /// TCP connections pushing data at once, each over its own mKCP conversation.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub streams: u16,
    /// Seed of the link's random choices (same seed, same drops for the same traffic).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub link_seed: u64,
    #[command(flatten)]
    pub kcp: KcpArgs,
}

// ---------------------------------------------------------------------------------------
// Value parsers: every message names the setting, the value and what is allowed.

/// A whole number; the message of a malformed one gives the field's own range (the
/// range itself is checked with the file's values, in `config`).
fn parse_u32(
    field: &'static str,
    allowed: &'static str,
) -> impl Fn(&str) -> Result<u32, String> + Clone {
    move |s: &str| {
        s.trim()
            .parse::<u32>()
            .map_err(|_| format!("{field} = {s:?} is invalid: expected a whole number, {allowed}"))
    }
}

fn parse_bool(field: &'static str) -> impl Fn(&str) -> Result<bool, String> + Clone {
    move |s: &str| match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "{field} = {s:?} is invalid: expected true or false"
        )),
    }
}

fn parse_header(s: &str) -> Result<HeaderKind, String> {
    HeaderKind::from_name(s.trim()).map_err(|e| format!("header: {e}"))
}

fn parse_mask_order(s: &str) -> Result<MaskOrder, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "last-outermost" => Ok(MaskOrder::LastOutermost),
        "first-outermost" => Ok(MaskOrder::FirstOutermost),
        _ => Err(format!(
            "finalmask-order = {s:?} is invalid: expected last-outermost (Xray >= v26.6.22) \
             or first-outermost (Xray v26.1.31 to v26.6.1)"
        )),
    }
}

fn parse_stats_interval(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n <= 86_400 => Ok(n),
        _ => Err(format!(
            "stats = {s:?} is invalid: expected whole seconds from 0 (off) to 86400"
        )),
    }
}

fn parse_linger(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(n) if n <= 86_400 => Ok(n),
        _ => Err(format!(
            "linger = {s:?} is invalid: expected whole seconds from 0 (wait for both directions) to 86400"
        )),
    }
}

fn parse_duration(field: &'static str) -> impl Fn(&str) -> Result<Duration, String> + Clone {
    move |s: &str| mkcp_netem::parse::parse_duration(s).map_err(|e| format!("{field}: {e}"))
}

fn parse_percent(field: &'static str) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |s: &str| mkcp_netem::parse::parse_percent(s).map_err(|e| format!("{field}: {e}"))
}

/// A rate with a unit: a bare number is refused, as `--loss 2` is (it would be bit/s).
fn parse_rate(field: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s: &str| match mkcp_netem::parse::parse_rate(s) {
        Ok(_) if s.trim().chars().all(|c| c.is_ascii_digit() || c == '.') => Err(format!(
            "{field} {s:?}: missing unit; write e.g. \"{}mbit\" (units: bit, kbit, mbit, \
             gbit, kibit, mibit for bits/s; bps, kbps, mbps for bytes/s)",
            s.trim()
        )),
        Ok(0) => Err(format!(
            "{field}: rate {s:?} passes nothing; omit the flag for an unlimited link"
        )),
        Ok(bps) => Ok(bps),
        Err(e) => Err(format!("{field}: {e}")),
    }
}

/// A rate limit in bytes per second: a size per second (`2MiB`, `2MiB/s`, `500kb`) or a
/// bit rate with netem's units (`16mbit`, `1mbps`); at least 1 KiB/s.
pub fn parse_max_rate(field: &'static str) -> impl Fn(&str) -> Result<u64, String> + Clone {
    move |s: &str| {
        let t = s.trim();
        let t = t
            .strip_suffix("/s")
            .or_else(|| t.strip_suffix("/S"))
            .unwrap_or(t);
        let lower = t.to_ascii_lowercase();
        let unit_at = lower
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(lower.len());
        if unit_at == lower.len() {
            return Err(format!(
                "{field} {s:?}: missing unit; write e.g. \"2MiB\" (bytes per second: B, KB, \
                 MB, GB, KiB, MiB, GiB) or \"16mbit\" (bits per second: kbit, mbit, gbit, \
                 kibit, mibit)"
            ));
        }
        let bytes = if lower.ends_with("bit") || lower.ends_with("bps") {
            mkcp_netem::parse::parse_rate(t)
                .map(|bits| bits / 8)
                .map_err(|e| format!("{field}: {e}"))?
        } else {
            mkcp_netem::parse::parse_size(t)
                .map(|b| b as u64)
                .map_err(|e| format!("{field}: {e} (or a bit rate, e.g. \"16mbit\")"))?
        };
        if bytes < mkcp_proto::config::MIN_SEND_RATE {
            return Err(format!(
                "{field} {s:?} is below the smallest limit, 1KiB (1024 bytes per second); \
                 leave the flag out for no limit"
            ));
        }
        Ok(bytes)
    }
}

fn parse_size(field: &'static str) -> impl Fn(&str) -> Result<usize, String> + Clone {
    move |s: &str| mkcp_netem::parse::parse_size(s).map_err(|e| format!("{field}: {e}"))
}

/// A duration with a unit (`1500ms`, `2s`), or a bare number of seconds (`10`, `2.5`).
fn parse_demo_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        mkcp_netem::parse::parse_duration(&format!("{t}s"))
    } else {
        mkcp_netem::parse::parse_duration(t)
    }
    .map_err(|e| format!("duration: {e}"))?;
    if d < Duration::from_millis(500) || d > Duration::from_secs(3600) {
        return Err(format!(
            "duration = {s:?} is out of range: allowed 500ms to 3600s"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "mkcp",
            "server",
            "--listen",
            "127.0.0.1:0",
            "--target",
            "127.0.0.1:1",
            "--mtu",
            "1400",
            "--congestion",
            "--header",
            "WeChat-Video",
            "--seed",
            "",
        ])
        .unwrap();
        let Command::Server(s) = cli.command else {
            panic!("not server")
        };
        assert_eq!(s.kcp.mtu, Some(1400));
        assert_eq!(s.kcp.congestion, Some(true));
        assert_eq!(s.kcp.header, Some(HeaderKind::WechatVideo));
        assert_eq!(s.kcp.seed.as_deref(), Some(""));
        assert_eq!(s.kcp.tti, None);
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = Cli::try_parse_from(["mkcp", "demo", "--loss", "2"]).unwrap_err();
        assert!(e.to_string().contains("loss"), "{e}");
        let e = Cli::try_parse_from(["mkcp", "demo", "--header", "zip"]).unwrap_err();
        assert!(e.to_string().contains("unknown header type"), "{e}");
    }
}
