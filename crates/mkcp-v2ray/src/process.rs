//! Running `v2ray` as a child process: spawn, wait for readiness, measure, kill.
//!
//! No orphans: the child is killed (SIGKILL) and reaped when the [`V2rayProcess`] is
//! dropped or [`V2rayProcess::kill`]ed, and it is started with
//! [`mkcp_harness::process::spawn_tied`], so the kernel kills it if the test process dies
//! without running destructors (panic=abort, SIGKILL, ...); it may be spawned in one
//! thread and used or dropped in another.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use mkcp_harness::process;

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
        let child = process::spawn_tied(cmd)
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
            Ready::Listening(l) => process::owns_socket(self.pid, *l),
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
        process::cpu_time_secs(self.pid)
    }

    /// Peak resident set size (`VmHWM` of `/proc/<pid>/status`) in bytes.
    pub fn peak_rss_bytes(&self) -> io::Result<u64> {
        process::peak_rss_bytes(self.pid)
    }

    /// Current resident set size (`VmRSS`) in bytes.
    pub fn rss_bytes(&self) -> io::Result<u64> {
        process::rss_bytes(self.pid)
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
pub use mkcp_harness::process::cpu_time_secs;
