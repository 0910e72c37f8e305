//! Running `v2ray` as a child process: spawn, wait for readiness, measure, kill.
//!
//! No orphans: the child is killed (SIGKILL) and reaped when the [`V2rayProcess`] is
//! dropped or [`V2rayProcess::kill`]ed, and it is started with
//! `prctl(PR_SET_PDEATHSIG, SIGKILL)` so the kernel kills it if the test process dies
//! without running destructors (panic=abort, SIGKILL, ...). Because the death signal is
//! tied to the *thread* that forked, all children are forked by one long-lived helper
//! thread, so a process may be spawned in one thread and used or dropped in another.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{Listener, V2rayConfig};
use crate::error::V2rayError;
use crate::locate::{locate, V2rayBin};

/// How long [`V2rayProcess::spawn`] waits for readiness.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The line V2Ray 4.34 logs (level Warning, so visible at `warning`, `info`, `debug`)
/// once every inbound and outbound has started, after the timestamp and `[Warning] `.
/// Readiness matches any version: `v2ray.com/core: V2Ray <version> started`.
pub const STARTED_MARKER: &str = "v2ray.com/core: V2Ray 4.34.0 started";

/// True if `log` contains V2Ray's "started" line (any version).
pub fn log_has_started_line(log: &str) -> bool {
    log.lines()
        .any(|l| l.contains("v2ray.com/core: V2Ray ") && l.trim_end().ends_with(" started"))
}

/// A readiness condition for [`V2rayProcess::spawn_json`]; all given conditions must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ready {
    /// The log contains the "started" line ([`STARTED_MARKER`]; needs log level `warning`
    /// or more verbose).
    StartedLine,
    /// The process owns a socket bound/listening on this address's port
    /// (checked through `/proc/<pid>/fd` and `/proc/net/{tcp,udp}{,6}`; no packets are
    /// sent, so no spurious mKCP session or outbound dial is triggered).
    Listening(Listener),
    /// A fixed delay after spawning.
    Delay(Duration),
}

/// A running `v2ray` process with its config and log in a private temp directory.
#[derive(Debug)]
pub struct V2rayProcess {
    child: Child,
    pid: u32,
    exit: Option<ExitStatus>,
    config_path: PathBuf,
    log_path: PathBuf,
    // Dropped after the child is killed (field order is irrelevant: Drop kills first).
    _dir: tempfile::TempDir,
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Forks every child from one thread that lives as long as the process, so that
/// PR_SET_PDEATHSIG (which fires when the forking *thread* exits) only fires when the
/// whole test process goes away.
fn spawn_via_helper(cmd: Command) -> io::Result<Child> {
    static HELPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let tx = HELPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("mkcp-v2ray-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawn helper thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread dropped the request"))?
}

impl V2rayProcess {
    /// Locates the binary ([`locate`]) and starts V2Ray with `config`, waiting (bounded by
    /// [`DEFAULT_READY_TIMEOUT`]) until its inbound socket exists and, at log levels that
    /// print it, the "started" line has been logged.
    pub fn spawn(config: &V2rayConfig) -> Result<Self, V2rayError> {
        Self::spawn_with(&locate()?, config)
    }

    /// [`Self::spawn`] with an explicit binary.
    pub fn spawn_with(bin: &V2rayBin, config: &V2rayConfig) -> Result<Self, V2rayError> {
        let mut ready = vec![Ready::Listening(config.listener())];
        if config.log_level.prints_started_line() {
            ready.push(Ready::StartedLine);
        }
        Self::spawn_json(bin, &config.to_json(), &ready, DEFAULT_READY_TIMEOUT)
    }

    /// Starts V2Ray with an arbitrary JSON config and waits until every `ready` condition
    /// holds, at most `timeout` (then the process is killed and
    /// [`V2rayError::NotReady`] returned). If the process exits meanwhile,
    /// [`V2rayError::Exited`] carries its log.
    pub fn spawn_json(
        bin: &V2rayBin,
        config: &Value,
        ready: &[Ready],
        timeout: Duration,
    ) -> Result<Self, V2rayError> {
        let dir = tempfile::Builder::new()
            .prefix("mkcp-v2ray-")
            .tempdir()
            .map_err(|e| V2rayError::io("creating temp dir", e))?;
        let config_path = dir.path().join("config.json");
        let log_path = dir.path().join("v2ray.log");
        let text = serde_json::to_string_pretty(config).expect("JSON value serialises");
        fs::write(&config_path, text).map_err(|e| V2rayError::io("writing config", e))?;
        let log = File::create(&log_path).map_err(|e| V2rayError::io("creating log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| V2rayError::io("cloning log fd", e))?;

        let mut cmd = Command::new(bin.path());
        cmd.arg("-config")
            .arg(&config_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
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
                // The parent may have died between fork and prctl.
                if libc::getppid() != parent {
                    return Err(io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = spawn_via_helper(cmd)
            .map_err(|e| V2rayError::io(format!("starting {}", bin.path().display()), e))?;
        let pid = child.id();
        let mut proc = V2rayProcess {
            child,
            pid,
            exit: None,
            config_path,
            log_path,
            _dir: dir,
        };
        proc.wait_ready(ready, timeout)?;
        Ok(proc)
    }

    fn wait_ready(&mut self, ready: &[Ready], timeout: Duration) -> Result<(), V2rayError> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            let pending: Vec<&Ready> = ready
                .iter()
                .filter(|r| !self.condition_holds(r, start))
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= timeout {
                let waiting_for = format!("{pending:?}");
                let _ = self.kill();
                return Err(V2rayError::NotReady {
                    waited: start.elapsed(),
                    waiting_for,
                    log: self.log(),
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn condition_holds(&self, r: &Ready, start: Instant) -> bool {
        match r {
            Ready::StartedLine => log_has_started_line(&self.log()),
            Ready::Delay(d) => start.elapsed() >= *d,
            Ready::Listening(l) => owns_socket(self.pid, *l),
        }
    }

    /// OS process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Path of the JSON config file given to V2Ray.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Path of the captured stdout+stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Captured stdout+stderr so far (lossy UTF-8).
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// `Ok` while the process runs; [`V2rayError::Exited`] (with the log) once it exited.
    pub fn check_alive(&mut self) -> Result<(), V2rayError> {
        if self.exit.is_none() {
            self.exit = self
                .child
                .try_wait()
                .map_err(|e| V2rayError::io("waiting for v2ray", e))?;
        }
        match self.exit {
            None => Ok(()),
            Some(status) => Err(V2rayError::Exited {
                status,
                log: self.log(),
            }),
        }
    }

    /// Total CPU time (user + system) consumed so far, in seconds, from
    /// `/proc/<pid>/stat`.
    pub fn cpu_time_secs(&self) -> io::Result<f64> {
        cpu_time_secs(self.pid)
    }

    /// Peak resident set size (`VmHWM` of `/proc/<pid>/status`) in bytes.
    pub fn peak_rss_bytes(&self) -> io::Result<u64> {
        status_kib(self.pid, "VmHWM:").map(|k| k * 1024)
    }

    /// Current resident set size (`VmRSS`) in bytes.
    pub fn rss_bytes(&self) -> io::Result<u64> {
        status_kib(self.pid, "VmRSS:").map(|k| k * 1024)
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent: later calls return the same
    /// status.
    pub fn kill(&mut self) -> Result<ExitStatus, V2rayError> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        // An error here means it already exited; wait() below reaps it either way.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map_err(|e| V2rayError::io("reaping v2ray", e))?;
        self.exit = Some(status);
        Ok(status)
    }
}

impl Drop for V2rayProcess {
    fn drop(&mut self) {
        let _ = self.kill();
        if thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(30)..];
            eprintln!(
                "--- v2ray pid {} log tail ({}) ---\n{}\n--- end ---",
                self.pid,
                self.config_path.display(),
                tail.join("\n")
            );
        }
    }
}

/// CPU time (utime + stime) of any process, in seconds.
pub fn cpu_time_secs(pid: u32) -> io::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat"))?;
    // After ")" come fields 3.. ; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let parse = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad /proc stat field"))
    };
    let ticks = parse(14 - 3)? + parse(15 - 3)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok(ticks as f64 / hz)
}

fn status_kib(pid: u32, key: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{key} not found")))
}

fn socket_inodes(pid: u32) -> HashSet<u64> {
    let mut set = HashSet::new();
    if let Ok(rd) = fs::read_dir(format!("/proc/{pid}/fd")) {
        for entry in rd.flatten() {
            if let Ok(target) = fs::read_link(entry.path()) {
                let t = target.to_string_lossy();
                if let Some(n) = t
                    .strip_prefix("socket:[")
                    .and_then(|r| r.strip_suffix(']'))
                    .and_then(|n| n.parse().ok())
                {
                    set.insert(n);
                }
            }
        }
    }
    set
}

/// True if process `pid` owns a socket bound to `listener`'s port (TCP: in LISTEN state).
fn owns_socket(pid: u32, listener: Listener) -> bool {
    let (files, port, need_listen) = match listener {
        Listener::Tcp(a) => (["/proc/net/tcp", "/proc/net/tcp6"], a.port(), true),
        Listener::Udp(a) => (["/proc/net/udp", "/proc/net/udp6"], a.port(), false),
    };
    let inodes = socket_inodes(pid);
    if inodes.is_empty() {
        return false;
    }
    files.iter().any(|f| {
        let Ok(text) = fs::read_to_string(f) else {
            return false;
        };
        text.lines().skip(1).any(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                return false;
            }
            let local_port = cols[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            let listen_ok = !need_listen || cols[3] == "0A";
            let inode_ok = cols[9].parse::<u64>().is_ok_and(|i| inodes.contains(&i));
            local_port == Some(port) && listen_ok && inode_ok
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_stats() {
        let me = std::process::id();
        assert!(cpu_time_secs(me).unwrap() >= 0.0);
        assert!(status_kib(me, "VmHWM:").unwrap() > 0);
    }

    #[test]
    fn sees_own_sockets() {
        let me = std::process::id();
        let t = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(owns_socket(me, Listener::Tcp(t.local_addr().unwrap())));
        assert!(owns_socket(me, Listener::Udp(u.local_addr().unwrap())));
        let ta = t.local_addr().unwrap();
        drop(t);
        assert!(!owns_socket(me, Listener::Tcp(ta)));
    }
}
