//! V2Ray JSON configuration for a plain mKCP endpoint (PROTOCOL.md §4).
//!
//! Two roles, both built from `dokodemo-door` + `freedom` so that V2Ray is nothing but an
//! mKCP transport in front of / behind a TCP socket:
//!
//! ```text
//!  server:  UDP 127.0.0.1:<kcp port> --mKCP--> dokodemo-door --TCP--> target
//!  client:  TCP 127.0.0.1:<tcp port> --> dokodemo-door --> freedom --mKCP--> server
//! ```

use std::fmt;
use std::net::SocketAddr;

use serde_json::{json, Map, Value};

/// A listening socket V2Ray will open; used to wait for readiness.
pub use mkcp_harness::process::Listener;

/// The `kcpSettings.header.type` obfuscation header (PROTOCOL.md §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HeaderType {
    /// No header (0 bytes).
    #[default]
    None,
    /// Fake SRTP (4 bytes).
    Srtp,
    /// Fake uTP (4 bytes).
    Utp,
    /// Fake WeChat video call (13 bytes).
    WechatVideo,
    /// Fake DTLS 1.2 (13 bytes).
    Dtls,
    /// Fake WireGuard (4 bytes).
    Wireguard,
}

impl HeaderType {
    /// All header types V2Ray 4.34 knows, in spec order.
    pub const ALL: [HeaderType; 6] = [
        HeaderType::None,
        HeaderType::Srtp,
        HeaderType::Utp,
        HeaderType::WechatVideo,
        HeaderType::Dtls,
        HeaderType::Wireguard,
    ];

    /// The JSON name (`"none"`, `"srtp"`, `"utp"`, `"wechat-video"`, `"dtls"`, `"wireguard"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HeaderType::None => "none",
            HeaderType::Srtp => "srtp",
            HeaderType::Utp => "utp",
            HeaderType::WechatVideo => "wechat-video",
            HeaderType::Dtls => "dtls",
            HeaderType::Wireguard => "wireguard",
        }
    }

    /// Header size in bytes on the wire (PROTOCOL.md §1.2).
    pub fn size(self) -> usize {
        match self {
            HeaderType::None => 0,
            HeaderType::Srtp | HeaderType::Utp | HeaderType::Wireguard => 4,
            HeaderType::WechatVideo | HeaderType::Dtls => 13,
        }
    }
}

impl fmt::Display for HeaderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// V2Ray's `kcpSettings`. [`Default`] gives V2Ray's own defaults (PROTOCOL.md §4) with no header
/// and no seed (legacy envelope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KcpParams {
    /// `mtu` (576..=1460).
    pub mtu: u32,
    /// `tti` in ms (10..=100).
    pub tti: u32,
    /// `uplinkCapacity` in MiB/s.
    pub uplink_capacity: u32,
    /// `downlinkCapacity` in MiB/s.
    pub downlink_capacity: u32,
    /// `congestion`.
    pub congestion: bool,
    /// `readBufferSize` in MiB (unused by V2Ray 4.34, PROTOCOL.md §3.12).
    pub read_buffer_size: u32,
    /// `writeBufferSize` in MiB.
    pub write_buffer_size: u32,
    /// `header.type`.
    pub header: HeaderType,
    /// `seed`: `None` = key absent (legacy envelope); `Some("")` = present and empty
    /// (AES-GCM with the key derived from the empty string, PROTOCOL.md §1.3).
    pub seed: Option<String>,
}

impl Default for KcpParams {
    fn default() -> Self {
        KcpParams {
            mtu: 1350,
            tti: 50,
            uplink_capacity: 5,
            downlink_capacity: 20,
            congestion: false,
            read_buffer_size: 2,
            write_buffer_size: 2,
            header: HeaderType::None,
            seed: None,
        }
    }
}

impl KcpParams {
    /// Defaults with the given header and seed.
    pub fn with(header: HeaderType, seed: Option<&str>) -> Self {
        KcpParams {
            header,
            seed: seed.map(str::to_owned),
            ..KcpParams::default()
        }
    }

    /// The `kcpSettings` JSON object. Every field is written explicitly; the `seed` key is
    /// present iff `self.seed` is `Some`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("mtu".into(), json!(self.mtu));
        m.insert("tti".into(), json!(self.tti));
        m.insert("uplinkCapacity".into(), json!(self.uplink_capacity));
        m.insert("downlinkCapacity".into(), json!(self.downlink_capacity));
        m.insert("congestion".into(), json!(self.congestion));
        m.insert("readBufferSize".into(), json!(self.read_buffer_size));
        m.insert("writeBufferSize".into(), json!(self.write_buffer_size));
        m.insert("header".into(), json!({ "type": self.header.as_str() }));
        if let Some(seed) = &self.seed {
            m.insert("seed".into(), json!(seed));
        }
        Value::Object(m)
    }

    /// Short label for test output, e.g. `wechat-video/seed="x"`.
    pub fn label(&self) -> String {
        match &self.seed {
            None => format!("{}/legacy", self.header),
            Some(s) => format!("{}/seed={s:?}", self.header),
        }
    }
}

/// V2Ray `log.loglevel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// `debug`
    Debug,
    /// `info`
    Info,
    /// `warning` (default): still prints the `V2Ray 4.34.0 started` line.
    #[default]
    Warning,
    /// `error`: no startup line.
    Error,
    /// `none`: no log at all.
    None,
}

impl LogLevel {
    /// The JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::None => "none",
        }
    }

    /// Whether V2Ray 4.34 prints its `[Warning] v2ray.com/core: V2Ray 4.34.0 started`
    /// line at this level.
    pub fn prints_started_line(self) -> bool {
        matches!(self, LogLevel::Debug | LogLevel::Info | LogLevel::Warning)
    }
}

/// Which end of the mKCP link V2Ray plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// mKCP listener on UDP `listen`, forwarding each accepted stream to TCP `target`.
    Server {
        /// UDP address V2Ray listens on (mKCP).
        listen: SocketAddr,
        /// TCP address each mKCP stream is forwarded to.
        target: SocketAddr,
    },
    /// TCP listener on `listen`; each accepted TCP connection is dialled over mKCP to
    /// `server`.
    Client {
        /// TCP address V2Ray listens on.
        listen: SocketAddr,
        /// mKCP (UDP) address of the server.
        server: SocketAddr,
    },
}

/// A complete V2Ray configuration for one mKCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2rayConfig {
    /// Server or client.
    pub role: Role,
    /// mKCP settings.
    pub kcp: KcpParams,
    /// Log level (default `warning`).
    pub log_level: LogLevel,
}

impl V2rayConfig {
    /// Server role: mKCP on UDP `127.0.0.1:udp_port`, forwarding to TCP `target`.
    pub fn server(udp_port: u16, target: SocketAddr, kcp: KcpParams) -> Self {
        V2rayConfig {
            role: Role::Server {
                listen: SocketAddr::from(([127, 0, 0, 1], udp_port)),
                target,
            },
            kcp,
            log_level: LogLevel::default(),
        }
    }

    /// Client role: TCP on `127.0.0.1:tcp_port`, dialling mKCP to `server`.
    pub fn client(tcp_port: u16, server: SocketAddr, kcp: KcpParams) -> Self {
        V2rayConfig {
            role: Role::Client {
                listen: SocketAddr::from(([127, 0, 0, 1], tcp_port)),
                server,
            },
            kcp,
            log_level: LogLevel::default(),
        }
    }

    /// Sets the log level.
    pub fn with_log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// The socket V2Ray opens for its inbound.
    pub fn listener(&self) -> Listener {
        match self.role {
            Role::Server { listen, .. } => Listener::Udp(listen),
            Role::Client { listen, .. } => Listener::Tcp(listen),
        }
    }

    /// The full V2Ray JSON document.
    pub fn to_json(&self) -> Value {
        let log = json!({ "loglevel": self.log_level.as_str() });
        let stream = json!({ "network": "kcp", "kcpSettings": self.kcp.to_json() });
        match &self.role {
            Role::Server { listen, target } => json!({
                "log": log,
                "inbounds": [{
                    "tag": "mkcp-in",
                    "listen": listen.ip().to_string(),
                    "port": listen.port(),
                    "protocol": "dokodemo-door",
                    "settings": {
                        "address": target.ip().to_string(),
                        "port": target.port(),
                        "network": "tcp",
                        "followRedirect": false
                    },
                    "streamSettings": stream
                }],
                "outbounds": [{ "tag": "direct", "protocol": "freedom", "settings": {} }]
            }),
            Role::Client { listen, server } => json!({
                "log": log,
                "inbounds": [{
                    "tag": "tcp-in",
                    "listen": listen.ip().to_string(),
                    "port": listen.port(),
                    "protocol": "dokodemo-door",
                    "settings": {
                        "address": server.ip().to_string(),
                        "port": server.port(),
                        "network": "tcp",
                        "followRedirect": false
                    }
                }],
                "outbounds": [{
                    "tag": "mkcp-out",
                    "protocol": "freedom",
                    "settings": {},
                    "streamSettings": stream
                }]
            }),
        }
    }

    /// [`Self::to_json`] pretty-printed.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(&self.to_json()).expect("JSON value serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_presence() {
        let absent = KcpParams::default().to_json();
        assert!(absent.get("seed").is_none());
        let empty = KcpParams::with(HeaderType::Dtls, Some("")).to_json();
        assert_eq!(empty["seed"], json!(""));
        assert_eq!(empty["header"]["type"], json!("dtls"));
    }

    #[test]
    fn roles() {
        let target: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let s = V2rayConfig::server(4000, target, KcpParams::default()).to_json();
        assert_eq!(s["inbounds"][0]["streamSettings"]["network"], "kcp");
        assert_eq!(s["inbounds"][0]["port"], 4000);
        assert_eq!(s["inbounds"][0]["settings"]["port"], 9);
        assert_eq!(s["log"]["loglevel"], "warning");
        assert!(s.get("api").is_none() && s.get("stats").is_none());

        let c = V2rayConfig::client(
            5000,
            "127.0.0.1:4000".parse().unwrap(),
            KcpParams::default(),
        )
        .with_log_level(LogLevel::Error)
        .to_json();
        assert!(c["inbounds"][0].get("streamSettings").is_none());
        assert_eq!(c["inbounds"][0]["settings"]["port"], 4000);
        assert_eq!(c["outbounds"][0]["streamSettings"]["network"], "kcp");
        assert_eq!(c["log"]["loglevel"], "error");
    }
}
