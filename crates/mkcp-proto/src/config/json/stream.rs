//! `streamSettings` objects and whole V2Ray/Xray configs: which `kcpSettings` and
//! `finalmask` a stream uses (its own, or the global `transport.kcpSettings`).

use serde_json::Value;

use super::finalmask::read_finalmask;
use super::kcp::{read_kcp_settings, KcpSettings};
use super::obj::{invalid_type, join, key_matches, Obj, Reader};
use super::Warning;
use crate::config::{Config, ConfigError};

/// The keys of a V2Ray 4.34 or Xray `streamSettings` object.
pub(super) const STREAM_KEYS: [&str; 21] = [
    "network",
    "method",
    "security",
    "tlsSettings",
    "xtlsSettings",
    "realitySettings",
    "tcpSettings",
    "rawSettings",
    "kcpSettings",
    "wsSettings",
    "httpSettings",
    "dsSettings",
    "quicSettings",
    "grpcSettings",
    "gunSettings",
    "httpupgradeSettings",
    "splithttpSettings",
    "xhttpSettings",
    "hysteriaSettings",
    "sockopt",
    "finalmask",
];

/// The top-level keys that make a document a whole V2Ray/Xray config.
pub(super) const WHOLE_CONFIG_KEYS: [&str; 7] = [
    "inbounds",
    "outbounds",
    "inbound",
    "outbound",
    "inboundDetour",
    "outboundDetour",
    "transport",
];

/// A stream's `network`, or Xray's alias `method` (v26.7.11), which overrides it; `None`
/// when neither is set.
pub(super) fn network_of<'a>(stream: &Obj<'a>) -> Result<Option<&'a str>, ConfigError> {
    let network = stream.get_str("network")?;
    let method = stream.get_str("method")?;
    Ok(method.or(network))
}

pub(super) fn is_mkcp_network(network: &str) -> bool {
    network.eq_ignore_ascii_case("kcp") || network.eq_ignore_ascii_case("mkcp")
}

/// If `item` (an inbound or outbound) has a `streamSettings` with an mKCP network,
/// returns it. Anything else (other networks, odd shapes) is not what we look for and is
/// skipped, except a `network` of the wrong JSON type inside an object.
fn stream_settings_if_mkcp<'a>(
    item: &'a Value,
    path: &str,
) -> Result<Option<&'a Value>, ConfigError> {
    let Value::Object(_) = item else {
        return Ok(None);
    };
    let Some(item) = Obj::new(item, path)? else {
        return Ok(None);
    };
    let Some(stream) = item.get("streamSettings")? else {
        return Ok(None);
    };
    let Some(stream_obj) = Obj::new(stream, &item.field("streamSettings"))? else {
        return Ok(None);
    };
    match network_of(&stream_obj)? {
        Some(network) if is_mkcp_network(network) => Ok(Some(stream)),
        _ => Ok(None),
    }
}

/// Reads a `streamSettings` object found at `location` ("" when it is the whole input);
/// `global_kcp` is the `transport.kcpSettings` used when the stream has no `kcpSettings` of
/// its own. Returns whether the global ones were used.
pub(super) fn read_stream_settings<'a>(
    value: &'a Value,
    global_kcp: Option<&'a Value>,
    location: &str,
    rd: &mut Reader<'a>,
) -> Result<(Config, bool), ConfigError> {
    let wrap = |e: ConfigError| {
        if location.is_empty() {
            e
        } else {
            e.at(location)
        }
    };
    let not_mkcp = |network: &str| {
        wrap(ConfigError::NotMkcp {
            field: "network".to_string(),
            network: network.to_string(),
        })
    };
    let Some(stream) = Obj::new(value, "").map_err(wrap)? else {
        return Err(not_mkcp("tcp"));
    };
    let network = network_of(&stream).map_err(wrap)?.unwrap_or("tcp");
    if !is_mkcp_network(network) {
        return Err(not_mkcp(network));
    }
    if let (Some(n), Some(m)) = (
        stream.get_str("network").map_err(wrap)?,
        stream.get_str("method").map_err(wrap)?,
    ) {
        if !n.eq_ignore_ascii_case(m) {
            rd.warnings.push(Warning::NotApplied {
                path: join(location, "network"),
                reason: format!("Xray's \"method\": {m:?} overrides it (Xray >= v26.7.11)"),
            });
        }
    }
    rd.check_keys(
        &stream,
        location,
        "streamSettings",
        &STREAM_KEYS,
        &["kcpSettings", "finalmask", "network"],
    )
    .map_err(wrap)?;
    let own_kcp = stream.get("kcpSettings").map_err(wrap)?;
    let (kcp, used_global) = match (own_kcp, global_kcp) {
        (Some(own), _) => (
            read_kcp_settings(own, &join(location, "kcpSettings"), rd)
                .map_err(|e| wrap(e.at("kcpSettings")))?,
            false,
        ),
        (None, Some(global)) => {
            let user = if location.is_empty() {
                "this streamSettings"
            } else {
                location
            };
            let global = read_kcp_settings(global, "transport.kcpSettings", rd)
                .map_err(|e| e.at(&format!("transport.kcpSettings (used by {user})")))?;
            (global, true)
        }
        (None, None) => (
            KcpSettings {
                config: Config::default(),
                has_header: false,
                has_seed: false,
            },
            false,
        ),
    };
    let mut config = kcp.config;
    if let Some(finalmask) = stream.get("finalmask").map_err(wrap)? {
        for (given, key) in [(kcp.has_header, "header"), (kcp.has_seed, "seed")] {
            if given {
                return Err(wrap(ConfigError::Unsupported {
                    field: format!("kcpSettings.{key}"),
                    reason: "cannot be combined with finalmask (Xray >= 26.1.31 rejects it \
                             too); express it as an mkcp-legacy mask instead"
                        .to_string(),
                }));
            }
        }
        let (header, security) = read_finalmask(finalmask, location, rd).map_err(wrap)?;
        config.header = header;
        config.security = security;
    }
    config.validate().map_err(wrap)?;
    Ok((config, used_global))
}

/// Reads a whole V2Ray or Xray config: every inbound, then outbound, whose
/// `streamSettings.network` is mKCP, or else the global `transport.kcpSettings`. The
/// first mKCP stream is used; the others must have the same header and envelope (an
/// error otherwise), and are warned about when their other settings differ. Returns the
/// settings and which part they came from.
pub(super) fn read_whole_config<'a>(
    config: &'a Value,
    rd: &mut Reader<'a>,
) -> Result<(Config, String), ConfigError> {
    let root = Obj::new(config, "")?.ok_or(ConfigError::NoMkcpSettings)?;
    for key in ["seed", "header"] {
        if root.get(key)?.is_some() {
            return Err(ConfigError::NotApplied {
                field: key.to_string(),
                reason: format!(
                    "{key:?} is not read at the top level of a V2Ray config; it belongs in \
                     the kcpSettings of a streamSettings"
                ),
            });
        }
    }
    let transport_kcp = match root.get("transport")? {
        Some(t) => match Obj::new(t, "transport")? {
            Some(t) => t.get("kcpSettings")?,
            None => None,
        },
        None => None,
    };
    // V2Ray 4 reads the current lists and the older v3 keys.
    const LISTS: [(&str, bool); 6] = [
        ("inbounds", true),
        ("inbound", false),
        ("inboundDetour", true),
        ("outbounds", true),
        ("outbound", false),
        ("outboundDetour", true),
    ];
    let mut found: Vec<(Config, String)> = Vec::new();
    for (key, is_list) in LISTS {
        let Some(value) = root.get(key)? else {
            continue;
        };
        let items: Vec<(String, &Value)> = match (is_list, value) {
            (true, Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("{key}[{i}]"), item))
                .collect(),
            (true, other) => return Err(invalid_type(key, "an array", other)),
            (false, item) => vec![(key.to_string(), item)],
        };
        for (path, item) in items {
            let Some(stream) = stream_settings_if_mkcp(item, &path)? else {
                continue;
            };
            let location = format!("{path}.streamSettings");
            let (config, used_global) = read_stream_settings(stream, transport_kcp, &location, rd)?;
            let used = if used_global {
                format!("{location} (kcpSettings from transport.kcpSettings)")
            } else {
                location
            };
            found.push((config, used));
        }
    }
    let mut streams = found.into_iter();
    let Some((first, first_at)) = streams.next() else {
        return match transport_kcp {
            Some(kcp) => {
                let config = read_kcp_settings(kcp, "transport.kcpSettings", rd)
                    .and_then(|k| k.config.validate().map(|()| k.config))
                    .map_err(|e| e.at("transport.kcpSettings"))?;
                Ok((config, "transport.kcpSettings".to_string()))
            }
            None => Err(ConfigError::NoMkcpSettings),
        };
    };
    for (other, other_at) in streams {
        if other.header != first.header || other.security != first.security {
            return Err(ConfigError::ConflictingMkcpSettings {
                first: first_at,
                other: other_at,
            });
        }
        if other != first {
            rd.warnings.push(Warning::OtherStreamIgnored {
                path: other_at,
                used: first_at.clone(),
            });
        }
    }
    Ok((first, first_at))
}

/// Whether `key` names a stream settings object.
pub(super) fn is_stream_key(key: &str) -> bool {
    key_matches(key, "streamSettings")
}
