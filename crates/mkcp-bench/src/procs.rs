//! Endpoint processes: the `mkcp` binary and V2Ray, started with a role, waited for
//! until their socket exists, measured through `/proc`, and killed on drop.

use std::fs::{self, File};
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
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

/// Which socket tells that an endpoint is ready.
#[derive(Debug, Clone, Copy)]
enum Socket {
    Tcp(SocketAddr),
    Udp(SocketAddr),
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
        Self::spawn(bin, &args, Socket::Udp(udp))
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
        Self::spawn(bin, &args, Socket::Tcp(tcp))
    }

    fn spawn(bin: &Path, args: &[String], ready: Socket) -> Result<Self> {
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
        die_with_parent(&mut cmd);
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
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
            if owns_socket(p.child.id(), ready) {
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

/// Asks the kernel to SIGKILL the child when the thread that forked it exits, so that no
/// endpoint outlives a benchmark that crashed or was killed.
fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
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
        mkcp_v2ray::process::cpu_time_secs(self.pid()).context("reading /proc/<pid>/stat")
    }

    /// Peak resident set size (VmHWM) in bytes.
    pub fn peak_rss(&self) -> Result<u64> {
        peak_rss_bytes(self.pid())
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

/// Peak resident set size (`VmHWM` of `/proc/<pid>/status`) in bytes.
pub fn peak_rss_bytes(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| anyhow!("no VmHWM in /proc/{pid}/status"))
}

/// The 1-minute load average from `/proc/loadavg`.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// True if process `pid` has a socket bound to the address's port (TCP: listening).
fn owns_socket(pid: u32, socket: Socket) -> bool {
    let (tables, port, listening) = match socket {
        Socket::Tcp(a) => (["/proc/net/tcp", "/proc/net/tcp6"], a.port(), true),
        Socket::Udp(a) => (["/proc/net/udp", "/proc/net/udp6"], a.port(), false),
    };
    let inodes = socket_inodes(pid);
    if inodes.is_empty() {
        return false;
    }
    tables.iter().any(|t| {
        fs::read_to_string(t).is_ok_and(|text| {
            text.lines()
                .skip(1)
                .any(|line| socket_line_matches(line, port, listening, &inodes))
        })
    })
}

/// One line of `/proc/net/{tcp,udp}`: local port (hex after the colon), state (0A =
/// LISTEN) and inode (10th column).
fn socket_line_matches(line: &str, port: u16, listening: bool, inodes: &[u64]) -> bool {
    let cols: Vec<&str> = line.split_whitespace().collect();
    if cols.len() < 10 {
        return false;
    }
    let local_port = cols[1]
        .rsplit(':')
        .next()
        .and_then(|p| u16::from_str_radix(p, 16).ok());
    local_port == Some(port)
        && (!listening || cols[3] == "0A")
        && cols[9].parse::<u64>().is_ok_and(|i| inodes.contains(&i))
}

/// Inodes of the sockets among `pid`'s file descriptors.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let s = target.to_string_lossy().into_owned();
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_table_line_is_read() {
        let line = "   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        assert!(socket_line_matches(line, 0x1F90, true, &[4242]));
        assert!(!socket_line_matches(line, 0x1F91, true, &[4242]));
        assert!(!socket_line_matches(line, 0x1F90, true, &[1]));
        let established = line.replace(" 0A ", " 01 ");
        assert!(!socket_line_matches(&established, 0x1F90, true, &[4242]));
        assert!(socket_line_matches(&established, 0x1F90, false, &[4242]));
    }

    #[test]
    fn own_process_is_measurable() {
        assert!(peak_rss_bytes(std::process::id()).unwrap() > 0);
        assert!(load_average().is_some());
    }

    #[test]
    fn own_udp_socket_is_found() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let a = s.local_addr().unwrap();
        assert!(owns_socket(std::process::id(), Socket::Udp(a)));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(owns_socket(
            std::process::id(),
            Socket::Tcp(l.local_addr().unwrap())
        ));
    }
}
