//! Real V2Ray client -> real V2Ray server over loopback mKCP, TCP echo behind the server,
//! for every header type x envelope (legacy, seed "some-seed", seed ""). Each test runs
//! the three envelopes of one header type concurrently; SHA-256 of the echo is checked.

mod common;

use common::{run_concurrently, CELL_BYTES};
use mkcp_v2ray::{require_v2ray_or_skip, HeaderType, KcpParams};

/// The three envelopes: seed key absent, non-empty seed, empty-but-present seed.
const ENVELOPES: [Option<&str>; 3] = [None, Some("some-seed"), Some("")];

fn header_cells(header: HeaderType) {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let cells = ENVELOPES
        .iter()
        .map(|seed| {
            let k = KcpParams::with(header, *seed);
            (k.clone(), k)
        })
        .collect();
    run_concurrently(&bin, cells, CELL_BYTES);
}

#[test]
fn header_none() {
    header_cells(HeaderType::None);
}

#[test]
fn header_srtp() {
    header_cells(HeaderType::Srtp);
}

#[test]
fn header_utp() {
    header_cells(HeaderType::Utp);
}

#[test]
fn header_wechat_video() {
    header_cells(HeaderType::WechatVideo);
}

#[test]
fn header_dtls() {
    header_cells(HeaderType::Dtls);
}

#[test]
fn header_wireguard() {
    header_cells(HeaderType::Wireguard);
}
