//! One measurement: start the two endpoints and the emulated link between them (none
//! for the direct scenario), run the workload (bulk: the idle echo test, then the bulk
//! transfer in one direction; echo-load: an upload with echoes on a second connection;
//! streams: several uploads at once), read the counters, tear everything down.
//!
//! ```text
//!  bench (writer / reader / echo) --TCP--> client endpoint --mKCP/UDP--> netem relay
//!      --UDP--> server endpoint --TCP--> bench target (sink / source / echo)
//! ```
//!
//! An upload writes into the client endpoint and counts what the sink receives; a
//! download asks the target's source for a seeded stream and counts what the bench reads
//! (and checks, byte for byte) at the client endpoint.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mkcp_harness::ports::{free_tcp_port, free_udp_port, localhost, retry_on_port_conflict};
use mkcp_netem::{Relay, RelayHandle, RelayStats};
use mkcp_v2ray::{KcpParams, V2rayBin};

use crate::args::{Direction, Implementation, KcpVariant, LinkScenario, PairKind, Workload};
use crate::procs::{load_average, EndpointProcess, MkcpProcess};
use crate::report::{EchoStats, Measurement};
use crate::stats::percentile;
use crate::target::{echo_rtts, BulkReader, BulkWriter, SourceRequest, Target};

/// Size of an echo message.
pub const ECHO_SIZE: usize = 64;
/// Untimed echo rounds before the timed ones.
pub const ECHO_WARMUP: usize = 5;
/// Untimed echo rounds of the echo-under-load workload (each may take several RTTs, and
/// the run's time is what bounds the samples).
pub const ECHO_LOAD_WARMUP: usize = 1;

/// What is shared by all runs: binaries, the TCP target and the relay's runtime.
pub struct Env {
    /// The mkcp binary, if any pair needs it.
    pub mkcp_bin: Option<PathBuf>,
    /// V2Ray, if any pair needs it.
    pub v2ray: Option<V2rayBin>,
    /// The sink/echo service behind the server endpoint.
    pub target: Target,
    /// Runs the netem relays (one worker thread of their own).
    pub runtime: tokio::runtime::Runtime,
}

impl Env {
    /// Starts the target and the relay runtime.
    pub fn new(mkcp_bin: Option<PathBuf>, v2ray: Option<V2rayBin>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-netem")
            .enable_all()
            .build()
            .context("starting the relay runtime")?;
        Ok(Env {
            mkcp_bin,
            v2ray,
            target: Target::start()?,
            runtime,
        })
    }
}

/// One cell of the matrix, one repetition.
#[derive(Debug, Clone, Copy)]
pub struct RunSpec {
    /// The link.
    pub scenario: LinkScenario,
    /// kcpSettings.
    pub variant: KcpVariant,
    /// Who runs client and server.
    pub pair: PairKind,
    /// What the run does.
    pub workload: Workload,
    /// Which way the bulk transfer goes.
    pub direction: Direction,
    /// Concurrent uploads of the streams workload.
    pub streams: u8,
    /// Repetition index, from 0.
    pub run: u32,
    /// Bulk transfer length; with `bytes`, the time the transfer may take.
    pub duration: Duration,
    /// Bytes to move in a bulk transfer (`None`: as much as `duration` allows).
    pub bytes: Option<u64>,
    /// Timed echo samples wanted.
    pub rtt_samples: usize,
    /// Time budget for the echo test.
    pub rtt_time: Duration,
    /// Link seed base.
    pub seed: u64,
}

/// The relay, shut down on drop.
struct RelayGuard<'a> {
    handle: Option<RelayHandle>,
    runtime: &'a tokio::runtime::Runtime,
}

impl RelayGuard<'_> {
    fn stats(&self) -> RelayStats {
        self.handle
            .as_ref()
            .map(RelayHandle::stats)
            .unwrap_or_default()
    }
    fn addr(&self) -> SocketAddr {
        self.handle
            .as_ref()
            .map(RelayHandle::local_addr)
            .expect("relay is running")
    }
}

impl Drop for RelayGuard<'_> {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(2), h.shutdown()).await
            });
        }
    }
}

fn kcp_params(variant: KcpVariant) -> KcpParams {
    variant.params()
}

/// How many times an endpoint is started on fresh ports before giving up.
const ATTEMPTS: usize = 3;

/// True if starting an endpoint failed because its port was taken meanwhile (the log
/// tail in the error says so, for mkcp and V2Ray alike).
fn is_port_conflict(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("in use")
}

/// Starts a server endpoint of `imp` on a free UDP port forwarding to `target`.
fn start_server(
    env: &Env,
    imp: Implementation,
    variant: KcpVariant,
    target: SocketAddr,
) -> Result<(EndpointProcess, SocketAddr)> {
    let attempt = || {
        let port = free_udp_port().context("picking a UDP port")?;
        let r = match imp {
            Implementation::Mkcp => MkcpProcess::server(
                env.mkcp_bin.as_deref().context("no mkcp binary")?,
                localhost(port),
                target,
                variant.congestion(),
            )
            .map(EndpointProcess::Mkcp),
            Implementation::V2ray => EndpointProcess::v2ray_server(
                env.v2ray.as_ref().context("no V2Ray binary")?,
                port,
                target,
                &kcp_params(variant),
            ),
        };
        r.map(|p| (p, localhost(port)))
    };
    retry_on_port_conflict(ATTEMPTS, attempt, is_port_conflict)
        .context("starting the server endpoint")
}

/// Starts a client endpoint of `imp` on a free TCP port dialling `server`.
fn start_client(
    env: &Env,
    imp: Implementation,
    variant: KcpVariant,
    server: SocketAddr,
) -> Result<(EndpointProcess, SocketAddr)> {
    let attempt = || {
        let port = free_tcp_port().context("picking a TCP port")?;
        let r = match imp {
            Implementation::Mkcp => MkcpProcess::client(
                env.mkcp_bin.as_deref().context("no mkcp binary")?,
                localhost(port),
                server,
                variant.congestion(),
            )
            .map(EndpointProcess::Mkcp),
            Implementation::V2ray => EndpointProcess::v2ray_client(
                env.v2ray.as_ref().context("no V2Ray binary")?,
                port,
                server,
                &kcp_params(variant),
            ),
        };
        r.map(|p| (p, localhost(port)))
    };
    retry_on_port_conflict(ATTEMPTS, attempt, is_port_conflict)
        .context("starting the client endpoint")
}

/// How long the upload of the echo-under-load workload runs before the echoes start
/// (it fills the bottleneck's queue first): a fifth of the run, at most 2 s.
pub fn echo_load_warmup(duration: Duration) -> Duration {
    (duration / 5).min(Duration::from_secs(2))
}

/// Runs one measurement. Every step is bounded in time; every process and the relay are
/// gone when this returns, whatever happened.
pub fn run_one(env: &Env, spec: &RunSpec, cancel: &AtomicBool) -> Result<Measurement> {
    let load_before = load_average();
    let (mut server, server_addr) =
        start_server(env, spec.pair.server(), spec.variant, env.target.addr())?;
    let relay = if spec.scenario.has_relay() {
        let up = spec.scenario.link(spec.seed + 2 * u64::from(spec.run));
        let down = spec.scenario.link(spec.seed + 2 * u64::from(spec.run) + 1);
        let handle = env
            .runtime
            .block_on(Relay::start(
                "127.0.0.1:0".parse().expect("address"),
                server_addr,
                up,
                down,
            ))
            .context("starting the netem relay")?;
        Some(RelayGuard {
            handle: Some(handle),
            runtime: &env.runtime,
        })
    } else {
        None
    };
    let dial = relay.as_ref().map_or(server_addr, RelayGuard::addr);
    let (mut client, entry) = start_client(env, spec.pair.client(), spec.variant, dial)?;

    // 1. Echo round trips on the idle link (bulk runs).
    let rtts = if spec.rtt_samples > 0 && spec.workload == Workload::Bulk {
        echo_rtts(
            entry,
            ECHO_SIZE,
            ECHO_WARMUP,
            spec.rtt_samples,
            spec.rtt_time,
            cancel,
        )
        .context("echo test")?
    } else {
        Vec::new()
    };
    check(cancel, &mut client, &mut server)?;
    // Let the echo session's close settle before the bulk transfer.
    thread::sleep(Duration::from_millis(200));

    // 2. The load for a fixed time.
    let relay_stats = || relay.as_ref().map(RelayGuard::stats).unwrap_or_default();
    let relay0 = relay_stats();
    let cpu_c0 = client.cpu_secs()?;
    let cpu_s0 = server.cpu_secs()?;
    let start = Instant::now();
    let load = Load::start(env, entry, spec)?;
    let deadline = start + spec.duration;
    let mut completed: Option<Duration> = None;
    let stop_echo = AtomicBool::new(false);
    let load_echo = thread::scope(|scope| -> Result<Option<Vec<f64>>> {
        // Echo under load: the second connection's ping-pong on a thread of its own,
        // from the end of the warm-up to the end of the run.
        let stop_echo = &stop_echo;
        let echo = (spec.workload == Workload::EchoLoad).then(|| {
            scope.spawn(move || -> Result<Vec<f64>> {
                let begin = start + echo_load_warmup(spec.duration);
                while Instant::now() < begin {
                    if stop_echo.load(Ordering::Relaxed) {
                        return Ok(Vec::new());
                    }
                    thread::sleep((begin - Instant::now()).min(Duration::from_millis(20)));
                }
                // The first round (the session's start) is untimed.
                echo_rtts(
                    entry,
                    ECHO_SIZE,
                    ECHO_LOAD_WARMUP,
                    1_000_000,
                    deadline.saturating_duration_since(Instant::now()),
                    stop_echo,
                )
                .context("echoes under load")
            })
        });
        let waited = (|| -> Result<()> {
            // A sized transfer ends when the receiver has it all: looked at often, as
            // the time it took is the measure.
            let tick = Duration::from_millis(if spec.bytes.is_some() { 2 } else { 50 });
            while Instant::now() < deadline {
                thread::sleep((deadline - Instant::now()).min(tick));
                if let Some(n) = spec.bytes {
                    if load.delivered(env).iter().sum::<u64>() >= n {
                        completed = Some(start.elapsed());
                        return Ok(());
                    }
                }
                check(cancel, &mut client, &mut server)?;
                if load.failed() || echo.as_ref().is_some_and(|e| e.is_finished()) {
                    break;
                }
            }
            Ok(())
        })();
        if waited.is_err() {
            stop_echo.store(true, Ordering::Relaxed);
        }
        let samples = echo.map(|h| {
            h.join()
                .map_err(|_| anyhow::anyhow!("the echo thread panicked"))?
        });
        // Why the wait stopped (a dead endpoint, Ctrl-C) explains a failed echo too.
        waited?;
        samples.transpose()
    })?;
    let elapsed = completed.unwrap_or_else(|| start.elapsed());
    let delivered = load.delivered(env);
    let sunk: u64 = delivered.iter().sum();
    let relay1 = relay_stats();
    let cpu_client = client.cpu_secs()? - cpu_c0;
    let cpu_server = server.cpu_secs()? - cpu_s0;
    let rss_client = client.peak_rss()?;
    let rss_server = server.peak_rss()?;
    let sent = load.sent(env);
    let early = load.failed();
    let load_result = load.stop();
    if early {
        load_result.context("the bulk transfer stopped early")?;
        bail!("the bulk transfer stopped early");
    }
    // A starved stream among several is a result (Jain's index shows it), nothing
    // delivered at all is a failure.
    if sunk == 0 {
        bail!(
            "no byte reached the {} in {:.1} s ({sent} bytes written into the {} endpoint); \
             client: {}; server: {}",
            match spec.direction {
                Direction::Up => "sink",
                Direction::Down => "client application",
            },
            elapsed.as_secs_f64(),
            match spec.direction {
                Direction::Up => "client",
                Direction::Down => "server",
            },
            client.log_tail(),
            server.log_tail()
        );
    }
    if let Some(e) = &load_echo {
        if e.is_empty() {
            bail!("no echo came back under load");
        }
    }
    if let (Some(n), None) = (spec.bytes, completed) {
        bail!(
            "the {n}-byte transfer did not complete within {:.0} s (--duration): {sunk} bytes \
             delivered",
            spec.duration.as_secs_f64()
        );
    }
    let wire_up = relay1.up.bytes_in - relay0.up.bytes_in;
    let wire_down = relay1.down.bytes_in - relay0.down.bytes_in;
    let dropped = (relay1.up.dropped() + relay1.down.dropped())
        - (relay0.up.dropped() + relay0.down.dropped());
    let packets = (relay1.up.packets_in + relay1.down.packets_in)
        - (relay0.up.packets_in + relay0.down.packets_in);
    let (data0, data1) = match spec.direction {
        Direction::Up => (relay0.up, relay1.up),
        Direction::Down => (relay0.down, relay1.down),
    };
    let secs = elapsed.as_secs_f64();
    let gb = sunk as f64 / 1e9;
    drop(client);
    drop(relay);
    drop(server);
    Ok(Measurement {
        goodput_mb_s: sunk as f64 / 1e6 / secs,
        payload_bytes: sunk,
        seconds: secs,
        cpu_client_s: cpu_client,
        cpu_server_s: cpu_server,
        cpu_client_s_per_gb: cpu_client / gb,
        cpu_server_s_per_gb: cpu_server / gb,
        rss_client_bytes: rss_client,
        rss_server_bytes: rss_server,
        wire_up_bytes: wire_up,
        wire_down_bytes: wire_down,
        wire_ratio: spec
            .scenario
            .has_relay()
            .then(|| (wire_up + wire_down) as f64 / sunk as f64),
        relay_packets: packets,
        relay_dropped: dropped,
        rtt_samples: rtts.len(),
        rtt_p50_ms: percentile(&rtts, 50.0),
        rtt_p99_ms: percentile(&rtts, 99.0),
        load_average: load_before,
        load_echo: load_echo.as_deref().map(EchoStats::of),
        streams_mb_s: if spec.workload == Workload::Streams {
            delivered.iter().map(|&d| d as f64 / 1e6 / secs).collect()
        } else {
            Vec::new()
        },
        queue_dropped: data1.dropped_queue - data0.dropped_queue,
        queue_offered: data1.packets_in - data0.packets_in,
    })
}

/// The load of one run: its workload, in its direction.
enum Load {
    /// Writing into the client endpoint; the target's sink counts. `sunk0` is the sink's
    /// count at the start.
    Up { writer: BulkWriter, sunk0: u64 },
    /// Reading (and checking) at the client endpoint what the target's source sends.
    /// `sourced0` is the source's count at the start.
    Down { reader: BulkReader, sourced0: u64 },
    /// Several uploads, each into the tagged sink of its index; `sunk0` are the tags'
    /// counts at the start.
    Streams {
        writers: Vec<BulkWriter>,
        sunk0: Vec<u64>,
    },
}

impl Load {
    fn start(env: &Env, entry: SocketAddr, spec: &RunSpec) -> Result<Self> {
        Ok(match (spec.workload, spec.direction) {
            (Workload::Streams, _) => {
                let n = spec.streams.max(1);
                let sunk0 = (0..n).map(|i| env.target.sunk_tagged(i)).collect();
                let writers = (0..n)
                    .map(|i| {
                        BulkWriter::start_tagged(entry, i)
                            .with_context(|| format!("starting upload {} of {n}", i + 1))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Load::Streams { writers, sunk0 }
            }
            (_, Direction::Up) => {
                let sunk0 = env.target.sunk();
                Load::Up {
                    writer: BulkWriter::start_sized(entry, spec.bytes.unwrap_or(u64::MAX))?,
                    sunk0,
                }
            }
            (_, Direction::Down) => {
                let sourced0 = env.target.sourced();
                let len = spec.bytes.unwrap_or(SourceRequest::ENDLESS);
                Load::Down {
                    reader: BulkReader::start_sized(entry, download_seed(spec), len)?,
                    sourced0,
                }
            }
        })
    }

    /// Payload bytes the receiving application got so far, per stream.
    fn delivered(&self, env: &Env) -> Vec<u64> {
        match self {
            Load::Up { sunk0, .. } => vec![env.target.sunk() - sunk0],
            Load::Down { reader, .. } => vec![reader.received()],
            Load::Streams { sunk0, .. } => sunk0
                .iter()
                .zip(0u8..)
                .map(|(s0, i)| env.target.sunk_tagged(i) - s0)
                .collect(),
        }
    }

    /// Payload bytes the sending application handed to its endpoint so far.
    fn sent(&self, env: &Env) -> u64 {
        match self {
            Load::Up { writer, .. } => writer.written(),
            Load::Down { sourced0, .. } => env.target.sourced() - sourced0,
            Load::Streams { writers, .. } => writers.iter().map(BulkWriter::written).sum(),
        }
    }

    fn failed(&self) -> bool {
        match self {
            Load::Up { writer, .. } => writer.failed(),
            Load::Down { reader, .. } => reader.failed(),
            Load::Streams { writers, .. } => writers.iter().any(BulkWriter::failed),
        }
    }

    fn stop(self) -> Result<()> {
        match self {
            Load::Up { writer, .. } => writer.stop(),
            Load::Down { reader, .. } => reader.stop(),
            Load::Streams { writers, .. } => {
                let mut first = Ok(());
                for w in writers {
                    let r = w.stop();
                    if first.is_ok() {
                        first = r;
                    }
                }
                first
            }
        }
    }
}

/// The pattern seed of a run's download (any value works; this one differs per run).
fn download_seed(spec: &RunSpec) -> u64 {
    spec.seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(u64::from(spec.run))
}

fn check(
    cancel: &AtomicBool,
    client: &mut EndpointProcess,
    server: &mut EndpointProcess,
) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    client.check_alive().context("client endpoint")?;
    server.check_alive().context("server endpoint")?;
    Ok(())
}
