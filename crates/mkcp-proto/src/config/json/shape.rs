//! What kind of document a config file is ([`Shape`]), reading it as that, and the final
//! check that no `kcpSettings` or `finalmask` holding security settings was left unread.

use std::fmt;

use serde_json::Value;

use super::kcp::read_kcp_settings;
use super::obj::{join, key_matches, Obj, Reader};
use super::stream::{
    is_mkcp_network, is_stream_key, network_of, read_stream_settings, read_whole_config,
    STREAM_KEYS, WHOLE_CONFIG_KEYS,
};
use super::MaskOrder;
use crate::config::{Config, ConfigError};

/// What kind of document held the mKCP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shape {
    /// A bare `kcpSettings` object, e.g. `{"mtu": 1400, "seed": "..."}`.
    KcpSettings,
    /// `{"kcpSettings": {...}}`.
    KcpSettingsWrapper,
    /// A `streamSettings` object, e.g. `{"network": "kcp", "kcpSettings": {...}}`.
    StreamSettings,
    /// `{"streamSettings": {...}}` (also a single inbound or outbound object).
    StreamSettingsWrapper,
    /// A whole V2Ray or Xray config (`inbounds`, `outbounds`, `transport`, or the v3 and
    /// v4 keys `inbound`, `outbound`, `inboundDetour`, `outboundDetour`).
    WholeConfig,
}

impl Shape {
    /// Decides the shape from the top-level keys (matched case-insensitively).
    pub fn detect(value: &Value) -> Shape {
        let Value::Object(map) = value else {
            return Shape::KcpSettings;
        };
        let has = |names: &[&str]| map.keys().any(|k| names.iter().any(|n| key_matches(k, n)));
        if has(&WHOLE_CONFIG_KEYS) {
            Shape::WholeConfig
        } else if has(&STREAM_KEYS) && !only(map, "kcpSettings") {
            Shape::StreamSettings
        } else if has(&["streamSettings"]) {
            Shape::StreamSettingsWrapper
        } else if has(&["kcpSettings"]) {
            Shape::KcpSettingsWrapper
        } else {
            Shape::KcpSettings
        }
    }
}

/// Whether the only stream key of `map` is `key`.
fn only(map: &serde_json::Map<String, Value>, key: &str) -> bool {
    map.keys()
        .filter(|k| STREAM_KEYS.iter().any(|n| key_matches(k, n)))
        .all(|k| key_matches(k, key))
}

/// A warning about a config file: something given that is not applied.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// A key this importer does not know (and V2Ray ignores).
    UnknownKey {
        /// JSON path of the key.
        path: String,
        /// The known key it is probably a misspelling of.
        suggestion: Option<&'static str>,
    },
    /// A known setting that mkcp accepts but does not apply.
    NotApplied {
        /// JSON path of the setting.
        path: String,
        /// Why.
        reason: String,
    },
    /// Another mKCP stream of a whole config with other (non-security) settings.
    OtherStreamIgnored {
        /// Where the ignored stream is.
        path: String,
        /// The stream whose settings are used.
        used: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey {
                path,
                suggestion: Some(s),
            } => write!(f, "unknown key {path} is ignored (did you mean {s:?}?)"),
            Warning::UnknownKey { path, .. } => write!(f, "unknown key {path} is ignored"),
            Warning::NotApplied { path, reason } => write!(f, "{path} is not applied: {reason}"),
            Warning::OtherStreamIgnored { path, used } => write!(
                f,
                "{path} also uses mKCP, with other settings; only those of {used} are used"
            ),
        }
    }
}

/// The result of [`Config::from_json_any`]: the settings, where they were found, and
/// warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Loaded {
    /// The validated settings.
    pub config: Config,
    /// What kind of document it was.
    pub shape: Shape,
    /// Where the settings were found, in words: `kcpSettings object`, `kcpSettings`,
    /// `streamSettings object`, `streamSettings`, or a path such as
    /// `inbounds[1].streamSettings`.
    pub found: String,
    /// Keys given but not applied, one warning each.
    pub warnings: Vec<Warning>,
    /// The order a `finalmask.udp` list was read in, when there was one (the Xray version
    /// assumption, to be stated to the user).
    pub finalmask_order: Option<MaskOrder>,
}

/// Reads `value` as a document of `shape`, then checks nothing with a seed, header or
/// mask was left unread.
pub(super) fn load(
    value: &Value,
    shape: Shape,
    mask_order: MaskOrder,
) -> Result<Loaded, ConfigError> {
    let mut rd = Reader::default();
    rd.mask_order = mask_order;
    let (config, found) = match shape {
        Shape::KcpSettings => {
            let kcp = read_kcp_settings(value, "", &mut rd)?;
            kcp.config.validate()?;
            (kcp.config, "kcpSettings object".to_string())
        }
        Shape::KcpSettingsWrapper => {
            let root = Obj::new(value, "")?.ok_or(ConfigError::NoMkcpSettings)?;
            rd.check_keys(
                &root,
                "",
                "this {\"kcpSettings\": ...} object",
                &["kcpSettings"],
                &[],
            )?;
            let kcp = root.get("kcpSettings")?.unwrap_or(&Value::Null);
            let config = read_kcp_settings(kcp, "kcpSettings", &mut rd)
                .and_then(|k| k.config.validate().map(|()| k.config))
                .map_err(|e| e.at("kcpSettings"))?;
            (config, "kcpSettings".to_string())
        }
        Shape::StreamSettings => {
            let (config, _) = read_stream_settings(value, None, "", &mut rd)?;
            (config, "streamSettings object".to_string())
        }
        Shape::StreamSettingsWrapper => {
            let root = Obj::new(value, "")?.ok_or(ConfigError::NoMkcpSettings)?;
            // The other keys of an inbound or outbound object are fine.
            const OUTER: [&str; 12] = [
                "streamSettings",
                "port",
                "listen",
                "protocol",
                "settings",
                "tag",
                "sniffing",
                "allocate",
                "mux",
                "proxySettings",
                "sendThrough",
                "domainStrategy",
            ];
            rd.check_keys(
                &root,
                "",
                "this {\"streamSettings\": ...} object",
                &OUTER,
                &[],
            )?;
            let stream = root.get("streamSettings")?.unwrap_or(&Value::Null);
            let (config, _) = read_stream_settings(stream, None, "streamSettings", &mut rd)?;
            (config, "streamSettings".to_string())
        }
        Shape::WholeConfig => read_whole_config(value, &mut rd)?,
    };
    check_unapplied(value, "", false, &rd)?;
    Ok(Loaded {
        config,
        shape,
        found,
        finalmask_order: rd.finalmask_read.then_some(mask_order),
        warnings: rd.warnings,
    })
}

/// Fails when a `kcpSettings` holding a `seed` or `header`, or a `finalmask` of an mKCP
/// stream, was not applied: running without it would silently downgrade the link.
/// `in_other_stream` is set inside a `streamSettings` whose network is not mKCP, whose
/// `finalmask` belongs to that other transport.
fn check_unapplied(
    value: &Value,
    path: &str,
    in_other_stream: bool,
    rd: &Reader<'_>,
) -> Result<(), ConfigError> {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = join(path, key);
                if key_matches(key, "kcpSettings") && !rd.was_applied(child) {
                    if let Value::Object(kcp) = child {
                        let given = kcp.iter().find(|(k, v)| {
                            (key_matches(k, "seed") && !v.is_null()) || key_matches(k, "header")
                        });
                        if let Some((k, _)) = given {
                            return Err(ConfigError::NotApplied {
                                field: join(&child_path, k),
                                reason: unapplied_reason(path, map, in_other_stream),
                            });
                        }
                    }
                }
                if key_matches(key, "finalmask")
                    && !child.is_null()
                    && !in_other_stream
                    && !rd.was_applied(child)
                {
                    return Err(ConfigError::NotApplied {
                        field: child_path,
                        reason: "finalmask is only read in the streamSettings of an mKCP \
                                 inbound or outbound"
                            .to_string(),
                    });
                }
                let other = if is_stream_key(key) {
                    !stream_is_mkcp(child)
                } else {
                    in_other_stream
                };
                check_unapplied(child, &child_path, other, rd)?;
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                check_unapplied(item, &format!("{path}[{i}]"), in_other_stream, rd)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn stream_is_mkcp(stream: &Value) -> bool {
    match Obj::new(stream, "") {
        Ok(Some(obj)) => matches!(network_of(&obj), Ok(Some(n)) if is_mkcp_network(n)),
        _ => false,
    }
}

fn unapplied_reason(
    parent: &str,
    map: &serde_json::Map<String, Value>,
    in_other_stream: bool,
) -> String {
    let network = Obj {
        map,
        path: String::new(),
    };
    if in_other_stream || network.has_any(&["network", "method"]) {
        let n = network_of(&network).ok().flatten().unwrap_or("tcp");
        return format!(
            "the network of this streamSettings is {n:?}, not mKCP, so its kcpSettings are \
             not used"
        );
    }
    if parent.ends_with("kcpSettings") {
        return "a kcpSettings inside kcpSettings is not read".to_string();
    }
    if key_matches(parent, "transport") {
        return "transport.kcpSettings is only used by mKCP streamSettings without a \
                kcpSettings of their own, and there is none"
            .to_string();
    }
    format!(
        "kcpSettings are not read at {}",
        if parent.is_empty() {
            "the top level"
        } else {
            parent
        }
    )
}
