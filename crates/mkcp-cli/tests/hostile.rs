//! `mkcp server` on a hostile network: a spoofed-source Ping (the legacy envelope
//! needs no key to forge) in front of a target that speaks first gets back at most
//! what it sent, and opens no target connection.

mod common;

use std::io::Write;
use std::net::{TcpListener, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::Proc;
use mkcp_proto::wire::segment::{CmdSegment, Segment, CMD_PING};
use mkcp_proto::{Codec, HeaderKind, Security};

/// A TCP target that sends a 1000-byte banner to every connection (SSH, SMTP and many
/// databases speak first); counts its accepts.
fn banner_target() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = Arc::new(AtomicUsize::new(0));
    let a = accepts.clone();
    thread::spawn(move || {
        let mut held = Vec::new();
        for mut s in listener.incoming().flatten() {
            a.fetch_add(1, Ordering::SeqCst);
            let _ = s.write_all(&[b'B'; 1000]);
            held.push(s);
        }
    });
    (addr, accepts)
}

#[test]
fn a_spoofed_ping_gets_back_at_most_what_it_sent_and_no_target_connection() {
    let (target, accepts) = banner_target();
    let target = target.to_string();
    let mut server = Proc::spawn(&[
        "-v",
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target,
    ]);
    let udp = server.listening_addr("udp");

    // The attacker's datagram, from a spoofed loopback address.
    let sock = UdpSocket::bind("127.0.0.2:0").unwrap();
    let mut codec = Codec::with_os_rng(HeaderKind::None, &Security::Legacy);
    let mut buf = vec![0u8; 2048];
    let off = codec.plaintext_offset();
    let n = Segment::Cmd(CmdSegment {
        conv: 0x1234,
        cmd: CMD_PING,
        option: 0,
        sending_next: 0,
        receiving_next: 0,
        peer_rto: 100,
    })
    .emit(&mut buf[off..])
    .unwrap();
    let len = codec.seal(&mut buf, n).unwrap();
    sock.send_to(&buf[..len], udp).unwrap();
    let sent = len as u64;

    // The session opens, proves nothing, and is reaped (10 s): events in the log.
    server.wait_stderr("mKCP session opened", Duration::from_secs(5));
    server.wait_stderr("ended before any data", Duration::from_secs(20));

    // Everything the server sent to the spoofed address is queued on the socket by now.
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut back = 0u64;
    let mut rbuf = [0u8; 2048];
    while let Ok((n, _)) = sock.recv_from(&mut rbuf) {
        back += n as u64;
    }
    eprintln!("spoofed Ping: {sent} B sent, {back} B came back");
    // At most three times what it sent (mkcp_proto::AMPLIFICATION_FACTOR, QUIC's
    // bound); before the budget, 580 KB.
    assert!(back <= 3 * sent, "{back} bytes came back for {sent} sent");
    assert_eq!(
        accepts.load(Ordering::SeqCst),
        0,
        "a target connection was opened"
    );
    let log = server.stderr();
    assert!(
        !log.contains("mKCP session accepted"),
        "a session that carried no data was logged as accepted: {log}"
    );
}

/// With `--connect-on-open` a target that speaks first reaches a client that waits
/// for it (through `mkcp client`): the banner fits the budget the client's own
/// datagrams give, and the client's acknowledgement lifts the limit.
#[test]
fn connect_on_open_serves_a_target_that_speaks_first() {
    use std::io::Read;
    let (target, accepts) = banner_target();
    let target = target.to_string();
    let mut server = Proc::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target,
        "--connect-on-open",
    ]);
    let udp = server.listening_addr("udp").to_string();
    let mut client = Proc::spawn(&["client", "--listen", "127.0.0.1:0", "--server", &udp]);
    let entry = client.listening_addr("tcp");
    let mut tcp = std::net::TcpStream::connect(entry).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut banner = [0u8; 1000];
    tcp.read_exact(&mut banner).expect("the banner arrives");
    assert!(banner.iter().all(|&b| b == b'B'));
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

/// A flood of spoofed openers from 40 addresses fills the session table (16384) while
/// a real client transfers through `mkcp client`: the fakes are evicted, the real
/// session is never refused, and the transfer completes.
#[test]
fn a_flood_of_spoofed_openers_does_not_lock_out_a_real_client() {
    use mkcp_v2ray::net::{self, EchoServer};
    use std::sync::atomic::AtomicBool;
    let echo = EchoServer::start().unwrap();
    let target = echo.addr().to_string();
    let mut server = Proc::spawn(&["server", "--listen", "127.0.0.1:0", "--target", &target]);
    let udp = server.listening_addr("udp");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let (st, se) = (stop.clone(), sent.clone());
    let flood = thread::spawn(move || {
        let socks: Vec<UdpSocket> = (1..=40)
            .map(|i| UdpSocket::bind(format!("127.0.10.{i}:0")).unwrap())
            .collect();
        let mut codec = Codec::with_os_rng(HeaderKind::None, &Security::Legacy);
        let mut buf = vec![0u8; 2048];
        let off = codec.plaintext_offset();
        let mut conv: u16 = 0;
        while !st.load(Ordering::SeqCst) {
            for s in &socks {
                let n = Segment::Cmd(CmdSegment {
                    conv,
                    cmd: CMD_PING,
                    option: 0,
                    sending_next: 0,
                    receiving_next: 0,
                    peer_rto: 100,
                })
                .emit(&mut buf[off..])
                .unwrap();
                let len = codec.seal(&mut buf, n).unwrap();
                let _ = s.send_to(&buf[..len], udp);
                se.fetch_add(1, Ordering::SeqCst);
            }
            conv = conv.wrapping_add(1);
            // About 5,000 openers per second (the flood was 2,000): the table
            // fills in about 3 s and stays full, as fakes live 10 s unless evicted.
            thread::sleep(Duration::from_millis(8));
        }
    });
    // Well past the table's size (16384), whatever the server's socket dropped.
    while sent.load(Ordering::SeqCst) < 40_000 {
        thread::sleep(Duration::from_millis(50));
    }
    let mut client = Proc::spawn(&[
        "client",
        "--listen",
        "127.0.0.1:0",
        "--server",
        &udp.to_string(),
    ]);
    let entry = client.listening_addr("tcp");
    let started = std::time::Instant::now();
    let report = net::transfer_echo(entry, 1 << 20, 1, Duration::from_secs(30));
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    flood.join().unwrap();
    // The summary lines (one per 10 s) show the fakes were evicted: the table was full.
    let evicting = |stderr: &str| {
        stderr
            .lines()
            .find(|l| l.contains(" evicted ") && !l.contains(" 0 evicted "))
            .map(str::to_owned)
    };
    let mut line = evicting(&server.stderr());
    for _ in 0..30 {
        if line.is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(500));
        line = evicting(&server.stderr());
    }
    let line = line.expect("a summary line with evictions");
    eprintln!(
        "flood of {} spoofed openers: a 1 MiB echo took {took:?}; {line}",
        sent.load(Ordering::SeqCst)
    );
    report.expect("the real client's transfer completes during the flood");
}
