//! `mkcp server --shards 2` end to end on 127.0.0.1: the server holds two UDP sockets on
//! its port (read from /proc), several connections at once through `mkcp client` arrive
//! intact (SHA-256), and SIGTERM stops it cleanly.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use common::Proc;
use mkcp_v2ray::net::{self, EchoServer};

/// The inodes of the sockets `pid` holds (from `/proc/PID/fd`).
fn socket_inodes(pid: i32) -> HashSet<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read /proc/PID/fd");
    dir.filter_map(|entry| {
        let link = std::fs::read_link(entry.ok()?.path()).ok()?;
        let link = link.to_str()?;
        link.strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// How many of `pid`'s UDP (IPv4) sockets are bound to `addr`'s port.
fn udp_sockets_on(pid: i32, addr: SocketAddr) -> usize {
    let inodes = socket_inodes(pid);
    let table = std::fs::read_to_string("/proc/net/udp").expect("read /proc/net/udp");
    let port = format!(":{:04X}", addr.port());
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            fields.len() > 9
                && fields[1].ends_with(&port)
                && fields[9].parse().is_ok_and(|i: u64| inodes.contains(&i))
        })
        .count()
}

#[test]
fn a_sharded_server_carries_connections_intact() {
    let echo = EchoServer::start().expect("echo server");
    let target = echo.addr().to_string();
    let mut server = Proc::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target,
        "--shards",
        "2",
    ]);
    let udp = server.listening_addr("udp");
    server.wait_stderr("2 UDP sockets share udp", Duration::from_secs(10));
    assert_eq!(
        udp_sockets_on(server.pid(), udp),
        2,
        "the server holds two sockets on its port"
    );

    let udp = udp.to_string();
    let mut client = Proc::spawn(&["client", "--listen", "127.0.0.1:0", "--server", &udp]);
    let entry = client.listening_addr("tcp");
    // Eight connections at once, each its own mKCP session from its own client port, so
    // the kernel's hash spreads them over the two sockets.
    let workers: Vec<_> = (0..8u64)
        .map(|seed| {
            thread::spawn(move || {
                net::transfer_echo(entry, 1 << 20, seed, Duration::from_secs(60))
                    .unwrap_or_else(|e| panic!("transfer {seed}: {e}"))
            })
        })
        .collect();
    for w in workers {
        let report = w.join().expect("transfer thread");
        assert_eq!(report.bytes, 1 << 20);
    }

    for p in [&mut client, &mut server] {
        p.signal(libc::SIGTERM);
        let status = p
            .wait_exit(Duration::from_secs(10))
            .expect("exits after SIGTERM");
        assert!(status.success(), "exit status {status:?}");
    }
}

#[test]
fn shards_must_be_at_least_one() {
    let (status, _, stderr) = common::run(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--target",
            "127.0.0.1:9",
            "--shards",
            "0",
        ],
        Duration::from_secs(10),
    );
    assert_eq!(status.code(), Some(2), "a usage error: {stderr}");
    assert!(stderr.contains("--shards"), "names the flag: {stderr}");
}

#[test]
fn shards_flag_is_in_help_and_readme() {
    let (status, help, _) = common::run(&["server", "--help"], Duration::from_secs(10));
    assert!(status.success());
    assert!(help.contains("--shards"), "--shards not in server --help");
    let readme = include_str!("../../../README.md");
    assert!(
        readme.contains("| `--shards N`"),
        "--shards missing from README's flag tables"
    );
}
