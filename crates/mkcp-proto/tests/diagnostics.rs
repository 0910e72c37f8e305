//! The endpoint remembers who sends datagrams that fail authentication, so a runtime
//! can name the peer whose seed or header does not match (bounded, drained per report).

use std::net::SocketAddr;
use std::time::Instant;

use mkcp_proto::endpoint::EndpointConfig;
use mkcp_proto::{Config, Endpoint};
use rand::rngs::StdRng;
use rand::SeedableRng;

#[test]
fn sources_of_invalid_datagrams_are_reported_busiest_first_and_bounded() {
    let mut ep = Endpoint::new(
        EndpointConfig::server(Config::default()),
        StdRng::seed_from_u64(1),
    );
    let now = Instant::now();
    let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
    let b: SocketAddr = "10.0.0.2:2".parse().unwrap();
    for i in 0..5 {
        let mut junk = vec![i as u8; 40];
        ep.handle_datagram(now, a, &mut junk);
    }
    let mut junk = vec![9u8; 40];
    ep.handle_datagram(now, b, &mut junk);
    assert_eq!(ep.take_invalid_sources(), vec![(a, 5), (b, 1)]);
    assert!(
        ep.take_invalid_sources().is_empty(),
        "drained by each report"
    );
    for port in 0..100u16 {
        let peer = SocketAddr::from(([10, 0, 1, 1], port));
        let mut junk = vec![7u8; 40];
        ep.handle_datagram(now, peer, &mut junk);
    }
    assert_eq!(ep.take_invalid_sources().len(), 16);
    assert_eq!(ep.stats().dropped_invalid, 106);
}
