//! A listener sharded over several sockets (`SO_REUSEPORT`): many sessions, each from
//! its own client socket, arrive intact, spread over more than one shard, none lost or
//! counted twice, and closing stops every shard. Bounded by tokio timeouts; nothing
//! waits on time.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mkcp::{Config, EndpointConfig, KcpListener, KcpStream, ListenerOptions};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::timeout;

/// Sessions of the spread test, each from its own UDP socket.
const SESSIONS: usize = 64;
/// Shards of the spread test: with 64 peers, the chance that the kernel's hash puts all
/// of them on one of 4 shards is 4^-63.
const SHARDS: usize = 4;
/// Bytes each session sends.
const PER_SESSION: usize = 48 * 1024;
/// Bound of each test's whole exchange (far above what it takes, even on a loaded CI).
const BOUND: Duration = Duration::from_secs(120);

fn sharded(shards: usize) -> ListenerOptions {
    let mut options = ListenerOptions::new(EndpointConfig::server(Config::default()));
    options.shards = shards;
    options
}

/// `len` seeded random bytes.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut data = vec![0u8; len];
    StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// One session: sends its payload, half-closes, and reads back the SHA-256 the server
/// computed over what it received. Returns its local address and whether it matched.
async fn session(server: SocketAddr, seed: u64) -> io::Result<(SocketAddr, bool)> {
    let data = payload(seed, PER_SESSION);
    let mut stream = KcpStream::connect(server, Config::default()).await?;
    let local = stream.local_addr()?;
    stream.write_all(&data).await?;
    stream.shutdown().await?;
    let mut digest = Vec::new();
    stream.read_to_end(&mut digest).await?;
    let want: [u8; 32] = Sha256::digest(&data).into();
    Ok((local, digest == want))
}

/// Accepts sessions until `stop`; each is hashed to its end and answered with the
/// digest. The address of every accepted peer goes to `peers`. Returns the listener.
fn spawn_hasher(
    listener: KcpListener,
    peers: mpsc::UnboundedSender<SocketAddr>,
    mut stop: oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<KcpListener> {
    tokio::spawn(async move {
        loop {
            let (mut stream, peer) = tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => break,
                },
            };
            let _ = peers.send(peer);
            tokio::spawn(async move {
                let mut received = Vec::new();
                stream.read_to_end(&mut received).await?;
                stream.write_all(&Sha256::digest(&received)).await?;
                stream.shutdown().await?;
                // Keep the stream until the client has read the digest and closed.
                let mut rest = [0u8; 1];
                let _ = stream.read(&mut rest).await;
                io::Result::Ok(())
            });
        }
        listener
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spread_over_shards_none_lost_and_close_stops_every_shard() {
    let listener = KcpListener::bind_with_options("127.0.0.1:0", sharded(SHARDS))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    assert_eq!(
        listener.shards(),
        SHARDS,
        "the port is shared by {SHARDS} sockets"
    );
    let probe = listener.probe();
    let (peers_tx, mut peers_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel();
    let server = spawn_hasher(listener, peers_tx, stop_rx);

    let clients: Vec<_> = (0..SESSIONS as u64)
        .map(|seed| tokio::spawn(session(addr, seed)))
        .collect();
    let mut locals = HashSet::new();
    timeout(BOUND, async {
        for (i, client) in clients.into_iter().enumerate() {
            let (local, intact) = client.await.expect("client task").expect("session");
            assert!(intact, "session {i}: the server's digest differs");
            locals.insert(local.port());
        }
    })
    .await
    .expect("every session completes");
    assert_eq!(locals.len(), SESSIONS, "each session had its own socket");

    // Every session was accepted exactly once, from its own client socket.
    let mut accepted = Vec::new();
    while accepted.len() < SESSIONS {
        let peer = timeout(BOUND, peers_rx.recv())
            .await
            .expect("accepted")
            .expect("server running");
        accepted.push(peer.port());
    }
    let accepted_set: HashSet<u16> = accepted.iter().copied().collect();
    assert_eq!(accepted_set, locals, "the accepted peers are the clients");
    assert_eq!(
        accepted_set.len(),
        accepted.len(),
        "no session accepted twice"
    );

    // Spread over shards, none created twice (on two shards) or lost.
    let per_shard: Vec<u64> = probe
        .shard_stats()
        .iter()
        .map(|s| s.sessions_created)
        .collect();
    assert_eq!(per_shard.len(), SHARDS);
    assert_eq!(
        per_shard.iter().sum::<u64>(),
        SESSIONS as u64,
        "sessions per shard {per_shard:?}"
    );
    assert!(
        per_shard.iter().filter(|&&n| n > 0).count() > 1,
        "sessions on more than one shard: {per_shard:?}"
    );
    assert_eq!(probe.stats().sessions_created, SESSIONS as u64);
    assert_eq!(probe.stats().sessions_refused, 0);

    // Closing stops every shard: the port is free again for a plain socket (no
    // SO_REUSEPORT), which no shard's socket would allow.
    let _ = stop_tx.send(());
    let listener = timeout(BOUND, server)
        .await
        .expect("the accept loop stops")
        .expect("server task");
    timeout(BOUND, listener.close()).await.expect("close");
    std::net::UdpSocket::bind(addr).expect("every shard's socket is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_waits_for_every_shard_and_frees_the_port() {
    let listener = KcpListener::bind_with_options("127.0.0.1:0", sharded(3))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // A session on whichever shard the hash picks, still open when closing.
    let mut client = KcpStream::connect(addr, Config::default())
        .await
        .expect("connect");
    client.write_all(b"hello").await.expect("write");
    let (mut accepted, _) = timeout(BOUND, listener.accept())
        .await
        .expect("accepted")
        .expect("accept");
    let mut buf = [0u8; 5];
    accepted.read_exact(&mut buf).await.expect("read");
    assert_eq!(&buf, b"hello");
    assert_eq!(listener.live_sessions(), 1);
    assert_eq!(listener.shard_live_sessions().iter().sum::<usize>(), 1);

    timeout(BOUND, listener.close()).await.expect("close");
    // The client was told (end of stream), and no shard holds the port.
    let mut rest = Vec::new();
    timeout(BOUND, client.read_to_end(&mut rest))
        .await
        .expect("the client is told")
        .expect("end of stream");
    std::net::UdpSocket::bind(addr).expect("every shard's socket is closed");
}

#[tokio::test]
async fn a_held_port_is_refused_even_to_shards() {
    // A plain listener holds the port: a sharded one cannot join it.
    let plain = KcpListener::bind("127.0.0.1:0", Config::default())
        .await
        .expect("bind");
    let addr = plain.local_addr().expect("addr");
    let err = KcpListener::bind_with_options(addr, sharded(2))
        .await
        .expect_err("the port is taken");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    plain.close().await;

    // A sharded listener holds it: neither a second sharded one (say a second server
    // started by mistake) nor a plain one can take its traffic.
    let first = KcpListener::bind_with_options(addr, sharded(2))
        .await
        .expect("bind sharded");
    let err = KcpListener::bind_with_options(addr, sharded(2))
        .await
        .expect_err("the port is taken");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    let err = KcpListener::bind(addr, Config::default())
        .await
        .expect_err("the port is taken");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    first.close().await;
}

#[tokio::test]
async fn one_shard_is_one_socket() {
    for shards in [0, 1] {
        let listener = KcpListener::bind_with_options("127.0.0.1:0", sharded(shards))
            .await
            .expect("bind");
        assert_eq!(listener.shards(), 1);
        assert_eq!(listener.shard_stats().len(), 1);
        listener.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_datagrams_are_reported_over_every_shard() {
    const SOURCES: usize = 16;
    const EACH: u64 = 3;
    let listener = KcpListener::bind_with_options("127.0.0.1:0", sharded(SHARDS))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Datagrams that fail authentication (random bytes under the legacy envelope), each
    // source its own socket, so the kernel's hash spreads them over the shards.
    let mut sources = HashSet::new();
    for s in 0..SOURCES {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind source");
        sources.insert(sock.local_addr().expect("addr"));
        for d in 0..EACH {
            sock.send_to(&payload(s as u64 * 10 + d, 120), addr)
                .expect("send");
        }
    }
    let want = SOURCES as u64 * EACH;
    timeout(BOUND, async {
        while listener.stats().dropped_invalid < want {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every datagram is seen");
    let per_shard: Vec<u64> = listener
        .shard_stats()
        .iter()
        .map(|s| s.dropped_invalid)
        .collect();
    assert_eq!(per_shard.iter().sum::<u64>(), want, "{per_shard:?}");
    assert!(
        per_shard.iter().filter(|&&n| n > 0).count() > 1,
        "spread over the shards: {per_shard:?}"
    );
    // Merged over the shards: every source once, with its count, busiest first.
    let reported = listener.take_invalid_sources();
    assert_eq!(reported.len(), SOURCES);
    assert!(reported.iter().all(|&(_, n)| n == EACH), "{reported:?}");
    let reported: HashSet<SocketAddr> = reported.into_iter().map(|(a, _)| a).collect();
    assert_eq!(reported, sources);
    assert!(listener.take_invalid_sources().is_empty(), "taken once");
    assert_eq!(listener.stats().sessions_created, 0);
    listener.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_table_is_divided_between_shards() {
    const TABLE: usize = 8;
    const SHARDS_HERE: usize = 2;
    const PEERS: usize = 32;
    let mut options = sharded(SHARDS_HERE);
    options.endpoint.max_sessions = TABLE;
    let listener = KcpListener::bind_with_options("127.0.0.1:0", options)
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Four times as many peers as the table holds, each from its own socket.
    let mut clients = Vec::new();
    for _ in 0..PEERS {
        let mut c = KcpStream::connect(addr, Config::default())
            .await
            .expect("connect");
        c.write_all(b"x").await.expect("write");
        clients.push(c);
    }
    // Wait until every peer has been either given a session or turned away.
    timeout(BOUND, async {
        loop {
            let s = listener.stats();
            if s.sessions_created + s.sessions_refused >= PEERS as u64 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("every peer is seen");
    let per_shard = listener.shard_live_sessions();
    assert!(
        per_shard.iter().all(|&n| n <= TABLE / SHARDS_HERE),
        "each shard holds at most its share: {per_shard:?}"
    );
    assert!(listener.live_sessions() <= TABLE);
    drop(clients);
    listener.abort();
}
