//! A V2Ray client + V2Ray server linked over mKCP on loopback.

use std::net::SocketAddr;

use crate::config::{KcpParams, LogLevel, V2rayConfig};
use crate::error::V2rayError;
use crate::locate::V2rayBin;
use crate::ports::{free_tcp_port, free_udp_port, localhost, retry_on_port_conflict};
use crate::process::V2rayProcess;

/// How many times [`V2rayPair::start`] retries with fresh ports on a port conflict.
const ATTEMPTS: usize = 3;

/// `TCP entry --> V2Ray client --mKCP--> V2Ray server --> TCP target`, all on 127.0.0.1.
#[derive(Debug)]
pub struct V2rayPair {
    /// The mKCP listener (server role).
    pub server: V2rayProcess,
    /// The mKCP dialer (client role).
    pub client: V2rayProcess,
    entry: SocketAddr,
    kcp_addr: SocketAddr,
}

impl V2rayPair {
    /// Starts a server forwarding to `target` and a client dialling it, with free ports
    /// (retrying on port conflicts) and log level `warning`.
    pub fn start(
        bin: &V2rayBin,
        target: SocketAddr,
        server_kcp: &KcpParams,
        client_kcp: &KcpParams,
    ) -> Result<Self, V2rayError> {
        Self::start_with_log(bin, target, server_kcp, client_kcp, LogLevel::default())
    }

    /// [`Self::start`] with an explicit log level for both processes.
    pub fn start_with_log(
        bin: &V2rayBin,
        target: SocketAddr,
        server_kcp: &KcpParams,
        client_kcp: &KcpParams,
        log_level: LogLevel,
    ) -> Result<Self, V2rayError> {
        retry_on_port_conflict(
            ATTEMPTS,
            || Self::try_start(bin, target, server_kcp, client_kcp, log_level),
            V2rayError::is_port_conflict,
        )
    }

    fn try_start(
        bin: &V2rayBin,
        target: SocketAddr,
        server_kcp: &KcpParams,
        client_kcp: &KcpParams,
        log_level: LogLevel,
    ) -> Result<Self, V2rayError> {
        let udp = free_udp_port().map_err(|e| V2rayError::io("picking UDP port", e))?;
        let tcp = free_tcp_port().map_err(|e| V2rayError::io("picking TCP port", e))?;
        let kcp_addr = localhost(udp);
        let server = V2rayProcess::spawn_with(
            bin,
            &V2rayConfig::server(udp, target, server_kcp.clone()).with_log_level(log_level),
        )?;
        let client = V2rayProcess::spawn_with(
            bin,
            &V2rayConfig::client(tcp, kcp_addr, client_kcp.clone()).with_log_level(log_level),
        )?;
        Ok(V2rayPair {
            server,
            client,
            entry: localhost(tcp),
            kcp_addr,
        })
    }

    /// The client's TCP inbound: connect here to reach `target` through mKCP.
    pub fn entry(&self) -> SocketAddr {
        self.entry
    }

    /// The server's mKCP (UDP) address.
    pub fn kcp_addr(&self) -> SocketAddr {
        self.kcp_addr
    }

    /// `Ok` while both processes run.
    pub fn check_alive(&mut self) -> Result<(), V2rayError> {
        self.server.check_alive()?;
        self.client.check_alive()
    }
}
