//! Exit codes on signals: a graceful stop exits 0, a second signal during it forces the
//! exit with 130.

mod common;

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

use common::Proc;

#[test]
fn second_signal_forces_exit_130() {
    // A server that never answers, so the session's close handshake cannot finish and
    // the graceful stop waits (up to its grace period) for it.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = silent.local_addr().unwrap().to_string();
    let mut client = Proc::spawn(&["client", "--listen", "127.0.0.1:0", "--server", &server]);
    let entry = client.listening_addr("tcp");
    let mut s = TcpStream::connect(entry).unwrap();
    s.write_all(b"hello").unwrap();
    // The session exists once its datagrams reach the (silent) server.
    let mut buf = [0u8; 2048];
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    silent.recv_from(&mut buf).expect("the client sends");
    client.signal(libc::SIGTERM);
    client.wait_stderr("SIGTERM received: stopping", Duration::from_secs(10));
    client.signal(libc::SIGINT);
    let status = client.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(130), "{}", client.stderr());
    assert!(client.stderr().contains("received again: exiting now"));
}

#[test]
fn graceful_stop_exits_0() {
    let mut server = Proc::spawn(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        "127.0.0.1:9",
    ]);
    server.listening_addr("udp");
    server.signal(libc::SIGINT);
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}
