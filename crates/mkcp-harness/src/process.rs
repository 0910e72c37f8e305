//! Child processes that never outlive the test or benchmark that started them, and what
//! `/proc` tells about a process: CPU time, resident memory, the sockets it owns, the
//! load average. Linux only.
//!
//! [`spawn_tied`] starts a child with `prctl(PR_SET_PDEATHSIG, SIGKILL)`, so the kernel
//! kills it if the parent dies without running destructors (panic=abort, SIGKILL, ...).
//! The death signal is tied to the *thread* that forked, so all children are forked by
//! one long-lived helper thread: a child may be spawned in one thread and used or dropped
//! in another. This module holds the harness's only `unsafe` code.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;

/// Makes `cmd`'s child receive SIGKILL when the thread that forks it exits (and refuse to
/// start if the parent is already gone). [`spawn_tied`] applies it and forks from a
/// thread that lives as long as the process; use this directly only when the spawning
/// thread outlives the child anyway.
pub fn die_with_parent(cmd: &mut Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: `pre_exec` closures run in the forked child before exec, where only
    // async-signal-safe calls are allowed. This one makes two system calls, prctl and
    // getppid (both async-signal-safe), allocates nothing, takes no lock and touches no
    // memory of the parent but the copied `parent` value.
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
            // The parent may have died between fork and prctl: then no signal will come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` with [`die_with_parent`] from one helper thread that lives as long as the
/// process, so the death signal fires only when the whole process goes away.
pub fn spawn_tied(mut cmd: Command) -> io::Result<Child> {
    static HELPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    die_with_parent(&mut cmd);
    let tx = HELPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        // If the thread cannot be started, requests fail below ("spawner thread is gone").
        let _ = thread::Builder::new()
            .name("mkcp-harness-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
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

/// A socket a process should own once it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// A TCP listening socket.
    Tcp(SocketAddr),
    /// A bound UDP socket.
    Udp(SocketAddr),
}

/// CPU time (utime + stime) of process `pid` so far, in seconds (`/proc/<pid>/stat`).
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
    // SAFETY: sysconf only reads a configuration value; it has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Ok(ticks as f64 / hz)
}

/// A `kB` field of `/proc/<pid>/status`, such as `VmHWM:`, in bytes.
fn status_bytes(pid: u32, key: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no {key} in /proc/{pid}/status"),
            )
        })
}

/// Peak resident set size (`VmHWM` of `/proc/<pid>/status`) in bytes.
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmHWM:")
}

/// Current resident set size (`VmRSS` of `/proc/<pid>/status`) in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmRSS:")
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

/// True if process `pid` owns a socket bound to `listener`'s port (TCP: in LISTEN state),
/// read from `/proc/<pid>/fd` and `/proc/net/{tcp,udp}{,6}`: no packet is sent, so
/// asking never starts a session or a dial.
pub fn owns_socket(pid: u32, listener: Listener) -> bool {
    let (tables, port, listening) = match listener {
        Listener::Tcp(a) => (["/proc/net/tcp", "/proc/net/tcp6"], a.port(), true),
        Listener::Udp(a) => (["/proc/net/udp", "/proc/net/udp6"], a.port(), false),
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
fn socket_line_matches(line: &str, port: u16, listening: bool, inodes: &HashSet<u64>) -> bool {
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
fn socket_inodes(pid: u32) -> HashSet<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return HashSet::new();
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
        let inodes = HashSet::from([4242]);
        let line = "   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0";
        assert!(socket_line_matches(line, 0x1F90, true, &inodes));
        assert!(!socket_line_matches(line, 0x1F91, true, &inodes));
        assert!(!socket_line_matches(
            line,
            0x1F90,
            true,
            &HashSet::from([1])
        ));
        let established = line.replace(" 0A ", " 01 ");
        assert!(!socket_line_matches(&established, 0x1F90, true, &inodes));
        assert!(socket_line_matches(&established, 0x1F90, false, &inodes));
    }

    #[test]
    fn own_process_is_measurable() {
        let me = std::process::id();
        assert!(cpu_time_secs(me).unwrap() >= 0.0);
        // RSS first: the peak read after it can only be as high or higher (other test
        // threads may allocate between the two reads).
        let rss = rss_bytes(me).unwrap();
        let peak = peak_rss_bytes(me).unwrap();
        assert!(peak > 0 && rss <= peak);
        assert!(load_average().is_some());
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

    #[test]
    fn tied_child_runs_and_is_reaped() {
        let mut child = spawn_tied(Command::new("true")).unwrap();
        assert!(child.wait().unwrap().success());
    }
}
