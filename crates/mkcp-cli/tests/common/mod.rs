//! Running the built `mkcp` binary in tests: spawn with captured output, wait for log
//! lines, signal, and always kill and reap on drop (and via `PR_SET_PDEATHSIG` if the test
//! process itself dies), so no process is left behind.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mkcp")
}

/// A command for the binary with logging made predictable.
pub fn mkcp_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

/// Runs the binary to completion (bounded by `timeout`) and returns (status, stdout,
/// stderr).
pub fn run(args: &[&str], timeout: Duration) -> (ExitStatus, String, String) {
    let mut p = Proc::spawn(args);
    let status = p
        .wait_exit(timeout)
        .unwrap_or_else(|| panic!("mkcp {args:?} did not exit within {timeout:?}"));
    (status, p.stdout(), p.stderr())
}

#[derive(Default)]
struct Output {
    lines: Vec<String>,
    closed: bool,
}

type Shared = Arc<(Mutex<Output>, Condvar)>;

fn collect(stream: impl Read + Send + 'static) -> Shared {
    let shared: Shared = Arc::default();
    let s = shared.clone();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let (m, cv) = &*s;
            m.lock().unwrap().lines.push(line);
            cv.notify_all();
        }
        let (m, cv) = &*s;
        m.lock().unwrap().closed = true;
        cv.notify_all();
    });
    shared
}

/// A running `mkcp`.
pub struct Proc {
    child: Child,
    stdout: Shared,
    stderr: Shared,
    status: Option<ExitStatus>,
    args: Vec<String>,
}

impl Proc {
    /// Starts `mkcp args...`.
    pub fn spawn(args: &[&str]) -> Proc {
        let mut cmd = mkcp_command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        // Killed by the kernel if this test's thread dies without running Drop.
        mkcp_harness::process::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawning mkcp");
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Proc {
            child,
            stdout,
            stderr,
            status: None,
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn text(s: &Shared) -> String {
        s.0.lock().unwrap().lines.join("\n")
    }

    /// Everything printed on stdout so far.
    pub fn stdout(&self) -> String {
        Self::text(&self.stdout)
    }

    /// Everything printed on stderr so far.
    pub fn stderr(&self) -> String {
        Self::text(&self.stderr)
    }

    fn wait_line(&mut self, s: &Shared, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &**s;
        let mut out = m.lock().unwrap();
        loop {
            if let Some(l) = out.lines.iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            let now = Instant::now();
            if out.closed || now >= deadline {
                let seen = out.lines.join("\n");
                drop(out);
                let status = self.child.try_wait().ok().flatten();
                panic!(
                    "mkcp {:?}: no line containing {needle:?} within {timeout:?} (exit: {status:?}); output:\n{seen}\n--- stderr ---\n{}",
                    self.args,
                    self.stderr()
                );
            }
            out = cv.wait_timeout(out, deadline - now).unwrap().0;
        }
    }

    /// Waits for a stderr (log) line containing `needle`.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        let s = self.stderr.clone();
        self.wait_line(&s, needle, timeout)
    }

    /// Waits for a stdout line containing `needle`.
    pub fn wait_stdout(&mut self, needle: &str, timeout: Duration) -> String {
        let s = self.stdout.clone();
        self.wait_line(&s, needle, timeout)
    }

    /// Waits for the log line `... listening on <proto> ADDR ...` and returns ADDR.
    pub fn listening_addr(&mut self, proto: &str) -> SocketAddr {
        let needle = format!("listening on {proto} ");
        let line = self.wait_stderr(&needle, Duration::from_secs(10));
        let rest = &line[line.find(&needle).unwrap() + needle.len()..];
        let addr = rest.split([',', ' ']).next().unwrap();
        addr.parse()
            .unwrap_or_else(|e| panic!("bad address {addr:?} in {line:?}: {e}"))
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`).
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; the child is not reaped yet (we hold it).
        let r = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(r, 0, "kill({}, {sig})", self.pid());
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                self.status = Some(st);
                // Let the readers drain what is left.
                for s in [&self.stdout, &self.stderr] {
                    let (m, cv) = &**s;
                    let out = m.lock().unwrap();
                    let _ = cv.wait_timeout_while(out, Duration::from_secs(2), |o| !o.closed);
                }
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() {
            eprintln!(
                "--- mkcp {:?} stderr ---\n{}\n--- stdout ---\n{}\n--- end ---",
                self.args,
                self.stderr(),
                self.stdout()
            );
        }
    }
}
