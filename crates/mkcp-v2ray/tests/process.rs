//! Process management against the real binary: readiness, stats, kill, drop, death
//! signal, startup errors, config validation.

use std::io::{BufRead, BufReader};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mkcp_v2ray::net::{self, EchoServer};
use mkcp_v2ray::{
    free_tcp_port, free_udp_port, localhost, require_v2ray_or_skip, HeaderType, KcpParams,
    Listener, LogLevel, Ready, V2rayConfig, V2rayError, V2rayProcess,
};

/// Gone, or a zombie nobody reaped yet (PID 1 here may not reap orphans).
fn pid_dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st == "Z" || st == "X"),
    }
}

/// Polls `cond` until it holds (true) or `within` has passed (false).
fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn wait_dead(pid: u32, within: Duration) -> bool {
    wait_until(within, || pid_dead(pid))
}

#[test]
fn spawn_stats_kill() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    assert!(bin.version().unwrap().starts_with("V2Ray "));
    let udp = free_udp_port().unwrap();
    let cfg = V2rayConfig::server(udp, localhost(9), KcpParams::default());
    let mut p = V2rayProcess::spawn_with(&bin, &cfg).unwrap();
    let pid = p.pid();
    assert!(!pid_dead(pid));
    assert!(p.log().contains(mkcp_v2ray::STARTED_MARKER), "{}", p.log());
    assert!(p.config_path().exists() && p.log_path().exists());
    // The UDP port is really taken by V2Ray now.
    assert!(UdpSocket::bind(localhost(udp)).is_err());
    let cpu = p.cpu_time_secs().unwrap();
    let rss = p.peak_rss_bytes().unwrap();
    assert!((0.0..60.0).contains(&cpu), "cpu {cpu}");
    assert!(rss > 1 << 20 && rss < 1 << 30, "peak rss {rss}");
    assert!(p.rss_bytes().unwrap() <= rss);
    p.check_alive().unwrap();
    let st = p.kill().unwrap();
    assert!(!st.success());
    assert_eq!(p.kill().unwrap(), st, "kill is idempotent");
    assert!(pid_dead(pid));
    assert!(matches!(p.check_alive(), Err(V2rayError::Exited { .. })));
}

#[test]
fn drop_kills_even_across_threads() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    // Spawned in a short-lived thread: must survive that thread (death signal is tied to
    // the spawner thread, not the caller), then die when dropped.
    let echo = EchoServer::start().unwrap();
    let tcp = free_tcp_port().unwrap();
    let udp = free_udp_port().unwrap();
    let kcp = KcpParams::with(HeaderType::Srtp, Some(""));
    let (mut server, mut client, spawner) = std::thread::spawn({
        let bin = bin.clone();
        let kcp = kcp.clone();
        let target = echo.addr();
        move || {
            let s = V2rayProcess::spawn_with(&bin, &V2rayConfig::server(udp, target, kcp.clone()))
                .unwrap();
            let c = V2rayProcess::spawn_with(&bin, &V2rayConfig::client(tcp, localhost(udp), kcp))
                .unwrap();
            // "<pid>/task/<tid>": this thread's entry under /proc.
            let me = std::fs::read_link("/proc/thread-self").unwrap();
            (s, c, std::path::Path::new("/proc").join(me))
        }
    })
    .join()
    .unwrap();
    // The kernel sends death signals while the thread exits, before its /proc entry goes:
    // once the entry is gone, a wrongly tied signal would already be on its way.
    assert!(
        wait_until(Duration::from_secs(10), || !spawner.exists()),
        "{} still there",
        spawner.display()
    );
    // Both still work: a transfer through them succeeds and neither has exited.
    net::transfer_echo(localhost(tcp), 64 * 1024, 5, Duration::from_secs(20)).unwrap();
    server.check_alive().unwrap();
    client.check_alive().unwrap();
    let pids = [server.pid(), client.pid()];
    drop(server);
    drop(client);
    for pid in pids {
        assert!(pid_dead(pid), "pid {pid} survived drop");
    }
}

#[test]
fn error_level_uses_socket_readiness() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let cfg = V2rayConfig::client(free_tcp_port().unwrap(), localhost(9), KcpParams::default())
        .with_log_level(LogLevel::Error);
    let p = V2rayProcess::spawn_with(&bin, &cfg).unwrap();
    assert!(!p.log().contains("started"), "{}", p.log());
    let Listener::Tcp(addr) = cfg.listener() else {
        panic!("client listens on TCP")
    };
    std::net::TcpStream::connect(addr).unwrap();
}

#[test]
fn startup_failures_are_reported_quickly() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    // Invalid MTU: V2Ray refuses the config and exits.
    let t0 = Instant::now();
    let bad = V2rayConfig::server(
        free_udp_port().unwrap(),
        localhost(9),
        KcpParams {
            mtu: 575,
            ..KcpParams::default()
        },
    );
    let err = V2rayProcess::spawn_with(&bin, &bad).unwrap_err();
    assert!(
        matches!(&err, V2rayError::Exited { log, .. } if log.contains("invalid mKCP MTU size: 575")),
        "{err}"
    );
    assert!(!err.is_port_conflict());

    // UDP port already taken.
    let holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let err = V2rayProcess::spawn_with(
        &bin,
        &V2rayConfig::server(port, localhost(9), KcpParams::default()),
    )
    .unwrap_err();
    assert!(err.is_port_conflict(), "{err}");
    // Both failures were seen as exits, not after DEFAULT_READY_TIMEOUT (that would be
    // NotReady); the time is printed, not asserted (wall clock on a loaded machine).
    eprintln!("two startup failures reported in {:?}", t0.elapsed());

    // A readiness condition that never holds: bounded, and the process is killed.
    let cfg = V2rayConfig::server(free_udp_port().unwrap(), localhost(9), KcpParams::default());
    let never = Ready::Listening(Listener::Tcp(localhost(free_tcp_port().unwrap())));
    let err = V2rayProcess::spawn_json(&bin, &cfg.to_json(), &[never], Duration::from_millis(500))
        .unwrap_err();
    match err {
        // It gave up after the timeout it was given, never before it.
        V2rayError::NotReady { waited, .. } => assert!(waited >= Duration::from_millis(500)),
        other => panic!("expected NotReady, got {other}"),
    }
}

#[test]
fn config_validation_matches_spec_ranges() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let check =
        |kcp: KcpParams| bin.test_config(&V2rayConfig::server(1, localhost(9), kcp).to_json());
    let base = KcpParams::default;
    for header in HeaderType::ALL {
        for seed in [None, Some(""), Some("x")] {
            check(KcpParams::with(header, seed)).unwrap();
        }
    }
    for (mtu, tti) in [(576, 10), (1460, 100)] {
        check(KcpParams { mtu, tti, ..base() }).unwrap();
    }
    check(KcpParams {
        uplink_capacity: 0,
        downlink_capacity: 0,
        read_buffer_size: 0,
        write_buffer_size: 0,
        ..base()
    })
    .unwrap();
    for (kcp, msg) in [
        (
            KcpParams { mtu: 575, ..base() },
            "invalid mKCP MTU size: 575",
        ),
        (
            KcpParams {
                mtu: 1461,
                ..base()
            },
            "invalid mKCP MTU size: 1461",
        ),
        (KcpParams { tti: 9, ..base() }, "invalid mKCP TTI: 9"),
        (KcpParams { tti: 101, ..base() }, "invalid mKCP TTI: 101"),
    ] {
        match check(kcp) {
            Err(V2rayError::ConfigRejected { message, .. }) => {
                assert!(message.contains(msg), "{message}")
            }
            other => panic!("expected rejection with {msg:?}, got {other:?}"),
        }
    }
}

/// Helper process for `pdeathsig_kills_v2ray_when_test_process_dies`; does nothing
/// unless started by it.
#[test]
#[ignore = "helper, run by pdeathsig_kills_v2ray_when_test_process_dies"]
fn pdeathsig_child() {
    if std::env::var_os("MKCP_PDEATHSIG_CHILD").is_none() {
        return;
    }
    let bin = mkcp_v2ray::locate().unwrap();
    let p = V2rayProcess::spawn_with(
        &bin,
        &V2rayConfig::server(free_udp_port().unwrap(), localhost(9), KcpParams::default()),
    )
    .unwrap();
    println!("V2RAY_PID={}", p.pid());
    std::thread::sleep(Duration::from_secs(30));
}

#[test]
fn pdeathsig_kills_v2ray_when_test_process_dies() {
    if require_v2ray_or_skip().is_none() {
        return;
    }
    // Become a subreaper so the orphaned v2ray is re-parented to us and can be reaped
    // here (PID 1 of a container may never reap it, leaving a zombie behind).
    // SAFETY: plain prctl call without pointers.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "pdeathsig_child", "--ignored", "--nocapture"])
        .env("MKCP_PDEATHSIG_CHILD", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(pid) = line.strip_prefix("V2RAY_PID=") {
                let _ = tx.send(pid.trim().parse::<u32>().unwrap());
            }
        }
    });
    let pid = rx.recv_timeout(Duration::from_secs(20));
    child.kill().unwrap(); // SIGKILL: no destructors run in the child
    child.wait().unwrap();
    let pid = pid.expect("child never reported the v2ray pid");
    let dead = wait_dead(pid, Duration::from_secs(5));
    // Reap it (it is our child now); ECHILD if someone else did.
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        let mut status = 0;
        // SAFETY: waitpid with a valid status pointer.
        let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        if r != 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) };
    assert!(dead, "v2ray {pid} outlived its SIGKILLed parent");
}
