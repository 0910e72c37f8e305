//! The `mkcp` binary end to end on 127.0.0.1: tunnel integrity (SHA-256), half-close,
//! graceful SIGTERM shutdown, runtime errors, the legacy-envelope warning, `mkcp netem`
//! and `mkcp demo`.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use common::{run, Proc};
use mkcp_v2ray::net::{self, EchoServer};
use sha2::{Digest, Sha256};

/// `mkcp server` in front of `target` and `mkcp client` in front of it, with `kcp` flags
/// on both. Returns (server, client, client's TCP address).
fn tunnel(target: SocketAddr, kcp: &[&str]) -> (Proc, Proc, SocketAddr) {
    let target = target.to_string();
    let mut server_args = vec!["server", "--listen", "127.0.0.1:0", "--target", &target];
    server_args.extend_from_slice(kcp);
    let mut server = Proc::spawn(&server_args);
    let udp = server.listening_addr("udp").to_string();
    let mut client_args = vec!["client", "--listen", "127.0.0.1:0", "--server", &udp];
    client_args.extend_from_slice(kcp);
    let mut client = Proc::spawn(&client_args);
    let entry = client.listening_addr("tcp");
    (server, client, entry)
}

#[test]
fn tunnel_carries_data_intact_both_ways() {
    let echo = EchoServer::start().unwrap();
    let (_server, _client, entry) = tunnel(
        echo.addr(),
        &[
            "--seed",
            "s3cret",
            "--header",
            "wechat-video",
            "--tti",
            "20",
        ],
    );
    // Two connections at once, each its own mKCP conversation; SHA-256 checked.
    let workers: Vec<_> = (0..2u64)
        .map(|seed| {
            thread::spawn(move || {
                net::transfer_echo(entry, 4 << 20, seed, Duration::from_secs(60))
                    .unwrap_or_else(|e| panic!("transfer {seed}: {e}"))
            })
        })
        .collect();
    for w in workers {
        let report = w.join().unwrap();
        assert_eq!(report.bytes, 4 << 20);
    }
}

#[test]
fn half_close_travels_through_the_tunnel() {
    let echo = EchoServer::start().unwrap();
    let (_server, _client, entry) = tunnel(echo.addr(), &[]);
    let data = net::pattern_bytes(7, 1 << 20);
    let mut s = TcpStream::connect(entry).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let sent = data.clone();
    let writer = thread::spawn(move || {
        w.write_all(&sent).unwrap();
        // Our end of stream must reach the echo server (as a TCP FIN), whose own end of
        // stream must come back to us: read_to_end below only returns on EOF.
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).expect("echo ends with EOF");
    writer.join().unwrap();
    assert_eq!(back.len(), data.len());
    assert_eq!(Sha256::digest(&back), Sha256::digest(&data));
}

#[test]
fn sigterm_closes_sessions_and_exits_quickly() {
    let echo = EchoServer::start().unwrap();
    let (mut server, mut client, entry) = tunnel(echo.addr(), &["--stats", "1"]);
    // An open session with some traffic.
    let mut s = TcpStream::connect(entry).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"ping through the tunnel").unwrap();
    let mut buf = [0u8; 23];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping through the tunnel");
    // --stats prints lines on stdout.
    client.wait_stdout("sessions 1 active", Duration::from_secs(5));

    for p in [&mut client, &mut server] {
        let start = Instant::now();
        p.signal(libc::SIGTERM);
        let status = p
            .wait_exit(Duration::from_secs(6))
            .expect("exits within 6 s of SIGTERM");
        assert!(status.success(), "exit status {status:?}");
        eprintln!("exited {:?} after SIGTERM", start.elapsed());
        assert!(p.stderr().contains("SIGTERM received"), "{}", p.stderr());
    }
    // The tunnelled TCP connection was closed, not left hanging.
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn runtime_error_is_one_line_with_exit_code_1() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _out, err) = run(
        &["server", "--listen", &addr, "--target", "127.0.0.1:9"],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("mkcp: error: cannot listen for mKCP on udp ") && last.contains("in use"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.contains("error")).count(),
        1,
        "{err}"
    );
}

#[test]
fn legacy_envelope_off_loopback_is_warned_about() {
    let mut server = Proc::spawn(&["server", "--listen", "0.0.0.0:0", "--target", "127.0.0.1:9"]);
    let line = server.wait_stderr("not encryption", Duration::from_secs(10));
    assert!(
        line.contains("WARN") && line.contains("legacy envelope"),
        "{line}"
    );
    // With a seed, or on loopback, there is no warning.
    let mut quiet = Proc::spawn(&[
        "server",
        "--listen",
        "0.0.0.0:0",
        "--target",
        "127.0.0.1:9",
        "--seed",
        "x",
    ]);
    quiet.listening_addr("udp");
    assert!(!quiet.stderr().contains("WARN"), "{}", quiet.stderr());
}

#[test]
fn netem_relays_with_delay_and_prints_counters() {
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let echo_addr = echo.local_addr().unwrap().to_string();
    echo.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let echoer = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            if let Ok((n, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..n], from);
            }
        }
    });
    let mut relay = Proc::spawn(&[
        "netem",
        "--listen",
        "127.0.0.1:0",
        "--to",
        &echo_addr,
        "--delay",
        "20ms",
        "--down-delay",
        "10ms",
        "--loss",
        "0%",
    ]);
    let relay_addr = relay.listening_addr("udp");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    for i in 0..10u8 {
        let start = Instant::now();
        sock.send_to(&[i; 100], relay_addr).unwrap();
        let mut buf = [0u8; 200];
        let (n, _) = sock.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 100]);
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "{:?}",
            start.elapsed()
        );
    }
    relay.signal(libc::SIGINT);
    let status = relay.wait_exit(Duration::from_secs(5)).expect("exits");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    echoer.join().unwrap();
    assert!(status.success());
    let out = relay.stdout();
    let packets_in = out
        .lines()
        .find(|l| l.starts_with("packets in"))
        .unwrap_or_default();
    assert_eq!(
        packets_in.split_whitespace().collect::<Vec<_>>(),
        ["packets", "in", "10", "10"],
        "{out}"
    );
}

#[test]
fn demo_runs_and_exits_cleanly() {
    let (status, out, err) = run(&["demo", "--duration", "2"], Duration::from_secs(90));
    assert!(status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("mkcp demo summary"), "{out}");
    assert!(out.contains("echoed back intact"), "{out}");
    let goodput = out
        .lines()
        .find(|l| l.trim_start().starts_with("goodput (average)"))
        .unwrap();
    assert!(goodput.contains("bit/s"), "{goodput}");
}

/// One round trip of `msg` through the tunnel entry.
fn round_trip(entry: SocketAddr, msg: &[u8]) -> std::io::Result<()> {
    let mut s = TcpStream::connect(entry)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back)?;
    assert_eq!(back, msg);
    Ok(())
}

#[test]
fn quiet_logs_only_problems() {
    let echo = EchoServer::start().unwrap();
    let target = echo.addr().to_string();
    // -q prints no "listening" line to learn the port from, so the server gets a fresh
    // port (retried if another process takes it first). Readiness is a session through
    // it: the quiet server has bound its socket, accepted a session and dialled the
    // target, each of which logs an info line without -q.
    let (mut server, mut client) = mkcp_v2ray::retry_on_port_conflict(
        5,
        || {
            let udp = mkcp_v2ray::localhost(mkcp_v2ray::free_udp_port()?).to_string();
            let mut server = Proc::spawn(&["-q", "server", "--listen", &udp, "--target", &target]);
            let mut client = Proc::spawn(&["client", "--listen", "127.0.0.1:0", "--server", &udp]);
            let entry = client.listening_addr("tcp");
            match round_trip(entry, b"quiet") {
                Ok(()) => Ok((server, client)),
                Err(e) => {
                    let _ = server.wait_exit(Duration::from_secs(1));
                    Err(std::io::Error::other(format!(
                        "{e}; server: {}",
                        server.stderr()
                    )))
                }
            }
        },
        |e| e.to_string().contains("in use"),
    )
    .unwrap();
    for p in [&mut server, &mut client] {
        p.signal(libc::SIGTERM);
        let status = p.wait_exit(Duration::from_secs(6)).expect("exits");
        assert!(status.success(), "{status:?}: {}", p.stderr());
    }
    // The client, not quiet, logged its events: the server's silence is -q at work, not
    // nothing having happened.
    assert!(
        client.stderr().contains("SIGTERM received"),
        "{}",
        client.stderr()
    );
    assert_eq!(server.stderr(), "", "-q printed info lines");
}

#[cfg(feature = "bench")]
#[test]
fn bench_is_a_subcommand_with_the_bench_feature() {
    let (status, out, err) = run(&["bench", "--help"], Duration::from_secs(10));
    assert!(status.success(), "{err}");
    assert!(out.contains("--pairs"), "{out}");
}

#[cfg(not(feature = "bench"))]
#[test]
fn bench_is_left_out_without_the_bench_feature() {
    let (status, _out, err) = run(&["bench", "--help"], Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("unknown command \"bench\""), "{err}");
}
