//! A wrong --seed or --header leaves a trace on both ends: the server names the peer
//! whose datagrams fail authentication, the client warns when its server does not
//! answer and closes the TCP side well before the 30 s idle timeout.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::Proc;

#[test]
fn a_seed_mismatch_is_reported_on_both_ends_and_the_tcp_side_closes_early() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap().to_string();
    thread::spawn(move || for _ in target.incoming() {});
    let mut server = Proc::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target_addr,
        "--seed",
        "right",
    ]);
    let udp = server.listening_addr("udp").to_string();
    let mut client = Proc::spawn(&[
        "client",
        "--listen",
        "127.0.0.1:0",
        "--server",
        &udp,
        "--seed",
        "wrong",
        "--header",
        "dtls",
    ]);
    let tcp = client.listening_addr("tcp");
    let started = Instant::now();
    let mut app = TcpStream::connect(tcp).unwrap();
    app.write_all(b"hello?").unwrap();

    let warned = client.wait_stderr("no reply from the mKCP server", Duration::from_secs(20));
    assert!(warned.contains(&udp), "{warned}");
    assert!(warned.contains("--seed and --header"), "{warned}");

    // The application learns at once that nothing will come: its connection closes.
    app.set_read_timeout(Some(Duration::from_secs(25))).unwrap();
    let mut buf = [0u8; 16];
    let closed = matches!(app.read(&mut buf), Ok(0) | Err(_));
    let after = started.elapsed();
    assert!(closed, "the TCP side stayed open");
    let why = client.wait_stderr("never answered", Duration::from_secs(5));
    assert!(why.contains("closing the TCP connection"), "{why}");
    eprintln!("TCP side closed {after:?} after the dial");

    // The server names the peer whose datagrams fail (in its 10 s report).
    let report = server.wait_stderr("failed authentication", Duration::from_secs(25));
    assert!(report.contains("127.0.0.1:"), "{report}");
    assert!(report.contains("do --seed and --header match"), "{report}");
}

#[test]
fn an_idle_session_whose_server_answers_is_not_closed() {
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let target_addr = target.local_addr().unwrap().to_string();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in target.incoming().flatten() {
            held.push(s);
        }
    });
    let mut server = Proc::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        &target_addr,
    ]);
    let udp = server.listening_addr("udp").to_string();
    let mut client = Proc::spawn(&["client", "--listen", "127.0.0.1:0", "--server", &udp]);
    let tcp = client.listening_addr("tcp");
    let mut app = TcpStream::connect(tcp).unwrap();
    // Nothing is sent either way for longer than the client's no-answer limits: the
    // server's keep-alives are the answer.
    app.set_read_timeout(Some(Duration::from_secs(17))).unwrap();
    let mut buf = [0u8; 16];
    match app.read(&mut buf) {
        Err(e)
            if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("the idle connection ended: {other:?}; {}", client.stderr()),
    }
    assert!(
        !client.stderr().contains("no reply from the mKCP server"),
        "{}",
        client.stderr()
    );
    app.write_all(b"still here").unwrap();
}
