//! The `mkcp` binary against the real V2Ray 4.34 (`/usr/bin/v2ray`), both ways:
//!
//! * `mkcp client` -> V2Ray server (dokodemo-door inbound over kcp) -> echo;
//! * V2Ray client (freedom outbound over kcp) -> `mkcp server` -> echo.
//!
//! The mkcp side is configured the way a user would: with `--config` pointing at the
//! V2Ray JSON of the other side (the first kcp streamSettings is used), or with flags.
//! These fail when V2Ray is missing, unless `MKCP_SKIP_INTEROP=1`.

mod common;

use std::time::Duration;

use common::Proc;
use mkcp_v2ray::{
    free_tcp_port, free_udp_port, net, require_v2ray_or_skip, retry_on_port_conflict, HeaderType,
    KcpParams, LogLevel, V2rayConfig, V2rayError, V2rayProcess,
};

const TRANSFER: u64 = 2 << 20;
const TIMEOUT: Duration = Duration::from_secs(60);

/// Starts V2Ray with `make(port)`, retrying on a port taken in the meantime.
fn spawn_v2ray(
    bin: &mkcp_v2ray::V2rayBin,
    mut make: impl FnMut() -> V2rayConfig,
) -> (V2rayProcess, V2rayConfig) {
    let attempt = || {
        let config = make().with_log_level(LogLevel::Warning);
        V2rayProcess::spawn_with(bin, &config).map(|p| (p, config))
    };
    retry_on_port_conflict(5, attempt, V2rayError::is_port_conflict)
        .unwrap_or_else(|e| panic!("starting v2ray: {e}"))
}

#[test]
fn mkcp_client_against_v2ray_server() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let echo = net::EchoServer::start().unwrap();
    for kcp in [
        KcpParams::default(),
        KcpParams::with(HeaderType::WechatVideo, Some("interop seed")),
    ] {
        let (_v2ray, config) = spawn_v2ray(&bin, || {
            V2rayConfig::server(free_udp_port().unwrap(), echo.addr(), kcp.clone())
        });
        let mkcp_v2ray::Role::Server { listen, .. } = config.role else {
            unreachable!()
        };
        // The V2Ray server's own config file configures our client.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v2ray-server.json");
        std::fs::write(&file, config.to_json_string()).unwrap();
        let server = listen.to_string();
        let mut client = Proc::spawn(&[
            "client",
            "--listen",
            "127.0.0.1:0",
            "--server",
            &server,
            "--config",
            file.to_str().unwrap(),
        ]);
        let entry = client.listening_addr("tcp");
        assert!(
            client
                .stderr()
                .contains("mKCP settings from inbounds[0].streamSettings of"),
            "{}",
            client.stderr()
        );
        for seed in 0..2 {
            net::transfer_echo(entry, TRANSFER, seed, TIMEOUT)
                .unwrap_or_else(|e| panic!("{}: transfer {seed}: {e}", kcp.label()));
        }
    }
}

#[test]
fn v2ray_client_against_mkcp_server() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let echo = net::EchoServer::start().unwrap();
    for (kcp, flags) in [
        (KcpParams::default(), vec![]),
        (
            KcpParams::with(HeaderType::Srtp, Some("another seed")),
            vec!["--header", "srtp", "--seed", "another seed"],
        ),
    ] {
        let target = echo.addr().to_string();
        let mut args = vec!["server", "--listen", "127.0.0.1:0", "--target", &target];
        args.extend(flags.iter().copied());
        let mut server = Proc::spawn(&args);
        let udp = server.listening_addr("udp");
        let (v2ray, config) = spawn_v2ray(&bin, || {
            V2rayConfig::client(free_tcp_port().unwrap(), udp, kcp.clone())
        });
        let mkcp_v2ray::Role::Client { listen: entry, .. } = config.role else {
            unreachable!()
        };
        for seed in 0..2 {
            net::transfer_echo(entry, TRANSFER, seed, TIMEOUT)
                .unwrap_or_else(|e| panic!("{}: transfer {seed}: {e}", kcp.label()));
        }
        drop(v2ray);
        server.wait_stderr("mKCP session accepted", Duration::from_secs(1));
    }
}
