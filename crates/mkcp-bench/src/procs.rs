//! Endpoint processes: the `mkcp` binary and V2Ray, started with a role, waited for
//! until their socket exists, measured through `/proc`, and killed on drop.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use mkcp_harness::process::{self, Listener};
use mkcp_v2ray::{KcpParams, V2rayBin, V2rayConfig, V2rayProcess};

/// How long a process gets to open its socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the mkcp binary: `explicit`, else `$MKCP_BIN`, else `mkcp` next to the current
/// executable (which is that binary itself under `mkcp bench`) or one folder up (tests and
/// examples live in `target/<profile>/deps` and `target/<profile>/examples`).
pub fn locate_mkcp(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return check_file(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("MKCP_BIN") {
        return check_file(PathBuf::from(p)).context("MKCP_BIN");
    }
    let exe = std::env::current_exe().context("finding the current executable")?;
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join("mkcp");
        if candidate.is_file() {
            return Ok(candidate);
        }
        dir = d.parent();
    }
    bail!(
        "cannot find the mkcp binary next to {}; build it (cargo build --release -p mkcp-cli) \
         or pass --mkcp-bin / set MKCP_BIN",
        exe.display()
    )
}

fn check_file(p: PathBuf) -> Result<PathBuf> {
    if p.is_file() {
        Ok(p)
    } else {
        bail!("{} is not a file", p.display())
    }
}

/// A running `mkcp client` or `mkcp server`, killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct MkcpProcess {
    child: Child,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl MkcpProcess {
    /// `mkcp server --listen <udp> --target <tcp> --congestion=<bool>`.
    pub fn server(
        bin: &Path,
        udp: SocketAddr,
        target: SocketAddr,
        congestion: bool,
    ) -> Result<Self> {
        let args = vec![
            "server".to_string(),
            "--listen".into(),
            udp.to_string(),
            "--target".into(),
            target.to_string(),
            format!("--congestion={congestion}"),
        ];
        Self::spawn(bin, &args, Listener::Udp(udp))
    }

    /// `mkcp client --listen <tcp> --server <udp> --congestion=<bool>`.
    pub fn client(
        bin: &Path,
        tcp: SocketAddr,
        server: SocketAddr,
        congestion: bool,
    ) -> Result<Self> {
        let args = vec![
            "client".to_string(),
            "--listen".into(),
            tcp.to_string(),
            "--server".into(),
            server.to_string(),
            format!("--congestion={congestion}"),
        ];
        Self::spawn(bin, &args, Listener::Tcp(tcp))
    }

    fn spawn(bin: &Path, args: &[String], ready: Listener) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("mkcp-bench-")
            .tempdir()
            .context("creating a temp dir")?;
        let log_path = dir.path().join("mkcp.log");
        let log = File::create(&log_path).context("creating the log file")?;
        let log2 = log.try_clone().context("cloning the log fd")?;
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        let child =
            process::spawn_tied(cmd).with_context(|| format!("starting {}", bin.display()))?;
        let mut p = MkcpProcess {
            child,
            log_path,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = p.child.try_wait().context("waiting for mkcp")? {
                bail!(
                    "{} {} exited with {status}: {}",
                    bin.display(),
                    args.join(" "),
                    p.log_tail()
                );
            }
            if process::owns_socket(p.child.id(), ready) {
                return Ok(p);
            }
            if start.elapsed() > READY_TIMEOUT {
                bail!(
                    "{} {} did not open {ready:?} within {READY_TIMEOUT:?}: {}",
                    bin.display(),
                    args.join(" "),
                    p.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines of the process's output.
    pub fn log_tail(&self) -> String {
        tail(&fs::read_to_string(&self.log_path).unwrap_or_default())
    }
}

impl Drop for MkcpProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One end of a benchmarked pair.
#[derive(Debug)]
pub enum EndpointProcess {
    /// The mkcp binary.
    Mkcp(MkcpProcess),
    /// V2Ray.
    V2ray(V2rayProcess),
}

impl EndpointProcess {
    /// A V2Ray server on UDP `port` forwarding to `target`.
    pub fn v2ray_server(
        bin: &V2rayBin,
        port: u16,
        target: SocketAddr,
        kcp: &KcpParams,
    ) -> Result<Self> {
        V2rayProcess::spawn_with(bin, &V2rayConfig::server(port, target, kcp.clone()))
            .map(EndpointProcess::V2ray)
            .map_err(|e| anyhow!("starting the V2Ray server: {e}"))
    }

    /// A V2Ray client on TCP `port` dialling `server`.
    pub fn v2ray_client(
        bin: &V2rayBin,
        port: u16,
        server: SocketAddr,
        kcp: &KcpParams,
    ) -> Result<Self> {
        V2rayProcess::spawn_with(bin, &V2rayConfig::client(port, server, kcp.clone()))
            .map(EndpointProcess::V2ray)
            .map_err(|e| anyhow!("starting the V2Ray client: {e}"))
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        match self {
            EndpointProcess::Mkcp(p) => p.child.id(),
            EndpointProcess::V2ray(p) => p.pid(),
        }
    }

    /// CPU seconds (user + system) used so far.
    pub fn cpu_secs(&self) -> Result<f64> {
        process::cpu_time_secs(self.pid()).context("reading /proc/<pid>/stat")
    }

    /// Peak resident set size (VmHWM) in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        let pid = self.pid();
        process::peak_rss_bytes(pid).with_context(|| format!("reading /proc/{pid}/status"))
    }

    /// An error (with the log tail) if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self {
            EndpointProcess::Mkcp(p) => match p.child.try_wait()? {
                None => Ok(()),
                Some(status) => bail!("mkcp exited with {status}: {}", p.log_tail()),
            },
            EndpointProcess::V2ray(p) => p.check_alive().map_err(|e| anyhow!("{e}")),
        }
    }

    /// The last lines of the process's output.
    pub fn log_tail(&self) -> String {
        match self {
            EndpointProcess::Mkcp(p) => p.log_tail(),
            EndpointProcess::V2ray(p) => tail(&p.log()),
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let t = lines[lines.len().saturating_sub(8)..].join(" | ");
    if t.is_empty() {
        "(no output)".into()
    } else {
        t
    }
}

/// The 1-minute load average from `/proc/loadavg`.
pub use mkcp_harness::process::load_average;
