//! The std-only TCP utilities, directly over loopback (no V2Ray involved).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mkcp_v2ray::net::{self, EchoServer, SinkServer, SourceServer, TransferError};

#[test]
fn echo_roundtrip_verifies_sha256() {
    let echo = EchoServer::start().unwrap();
    let r = net::transfer_echo(echo.addr(), 8 << 20, 42, Duration::from_secs(20)).unwrap();
    assert_eq!(r.bytes, 8 << 20);
    assert_eq!(r.sha256, net::pattern_sha256(42, 8 << 20));
    let rtt = net::echo_rtt(echo.addr(), 64, 2, 50, Duration::from_secs(10)).unwrap();
    assert_eq!(rtt.samples.len(), 50);
    assert!(rtt.p50() < Duration::from_millis(50));
    assert_eq!(echo.accepted(), 2);
}

#[test]
fn sink_and_source() {
    let sink = SinkServer::start_hashing().unwrap();
    let r = net::transfer_to_sink(sink.addr(), &sink, 3 << 20, 9, Duration::from_secs(20)).unwrap();
    assert!(sink.wait_records(1, Duration::from_secs(5)));
    assert_eq!(sink.records()[0].bytes, 3 << 20);
    assert_eq!(sink.records()[0].sha256, Some(r.sha256));
    assert_eq!(sink.total(), 3 << 20);

    let src = SourceServer::start(5 << 20, 77).unwrap();
    net::receive_from_source(src.addr(), 5 << 20, 77, Duration::from_secs(20)).unwrap();
    // Wrong seed is detected.
    let err =
        net::receive_from_source(src.addr(), 5 << 20, 78, Duration::from_secs(20)).unwrap_err();
    assert!(matches!(err, TransferError::Mismatch { .. }), "{err}");
}

#[test]
fn corrupted_echo_is_detected() {
    // A "bad echo" that flips one byte.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = vec![0u8; 1000];
        s.read_exact(&mut buf).unwrap();
        buf[500] ^= 1;
        s.write_all(&buf).unwrap();
    });
    let err = net::transfer_echo(addr, 1000, 1, Duration::from_secs(10)).unwrap_err();
    assert!(
        matches!(err, TransferError::Mismatch { len: 1000, .. }),
        "{err}"
    );
    t.join().unwrap();
}

#[test]
fn silent_and_closing_peers_are_bounded() {
    // Accepts but never answers: Timeout within the bound.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let t0 = Instant::now();
    let err = net::transfer_echo(addr, 1 << 20, 1, Duration::from_millis(700)).unwrap_err();
    assert!(
        matches!(err, TransferError::Timeout { received: 0, .. }),
        "{err}"
    );
    // Timeout (not a hang): bounded by the 700 ms given; the time is printed, not asserted.
    eprintln!("silent peer: Timeout after {:?}", t0.elapsed());
    let err = net::echo_rtt(addr, 64, 0, 5, Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, TransferError::Timeout { .. }), "{err}");

    // Closes at once: Eof.
    let l2 = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr2 = l2.local_addr().unwrap();
    let t = std::thread::spawn(move || drop(l2.accept()));
    let err = net::transfer_echo(addr2, 4096, 1, Duration::from_secs(5)).unwrap_err();
    assert!(
        matches!(err, TransferError::Eof { .. } | TransferError::Io { .. }),
        "{err}"
    );
    t.join().unwrap();
    drop(l);
}

#[test]
fn servers_stop_on_drop_even_with_open_connections() {
    let echo = EchoServer::start().unwrap();
    let addr = echo.addr();
    let mut held = TcpStream::connect(addr).unwrap();
    held.write_all(b"hi").unwrap();
    let mut b = [0u8; 2];
    held.read_exact(&mut b).unwrap();
    let t0 = Instant::now();
    drop(echo);
    eprintln!("drop with an open connection took {:?}", t0.elapsed());
    // Our held connection was shut down and the port no longer accepts.
    held.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    assert_eq!(held.read(&mut b).unwrap_or(0), 0);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err());
}
