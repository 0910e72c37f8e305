//! V2Ray `kcpSettings` JSON import (spec §4) and Xray finalmask import (spec §8.3).
//!
//! Three entry points, each with a `&str` and a [`serde_json::Value`] form:
//!
//! * [`Config::from_kcp_settings_json`]: a `kcpSettings` object;
//! * [`Config::from_stream_settings_json`]: a `streamSettings` object with `network`
//!   `"kcp"` or `"mkcp"`, its `kcpSettings` and, for Xray >= 26.1.31, its
//!   `finalmask.udp` masks;
//! * [`Config::from_v2ray_config_json`]: a whole V2Ray/Xray config file; the first
//!   inbound or outbound using mKCP is taken (or else the global `transport.kcpSettings`).
//!
//! The rules follow what V2Ray 4.34 accepts, which is what its Go JSON decoder does:
//!
//! * Object keys match **case-insensitively** (`"MTU"` sets `mtu`), except the `type` key
//!   of a `header` object, which V2Ray looks up exactly. A key spelled twice with
//!   different case is rejected ([`ConfigError::AmbiguousKey`]) because Go keeps the last
//!   one in document order, which cannot be recovered here.
//! * `null` means "absent" (default), except for `header`, where V2Ray fails.
//! * Numbers must be non-negative integers (`1350.0` and `-1` are errors).
//! * Unknown keys are ignored, as V2Ray does.
//! * `//`, `/* */` and `#` comments are allowed outside strings, as in V2Ray's config
//!   reader.
//!
//! Deliberate differences from V2Ray (spec §5 item 26): capacities and buffer sizes of
//! 4096 MiB or more, whose `× 1048576` overflows V2Ray's u32 arithmetic and silently
//! gives nonsense (a window of 8, a send buffer of 0), are rejected here.
//!
//! ```
//! use mkcp_proto::Config;
//!
//! let config = Config::from_kcp_settings_json(r#"{"mtu": 1400, "seed": "s3cret"}"#)?;
//! assert_eq!(config.mtu, 1400);
//! assert_eq!(config.security.name(), "aes-128-gcm");
//! assert!(Config::from_kcp_settings_json(r#"{"tti": 5}"#).is_err());
//! # Ok::<(), mkcp_proto::ConfigError>(())
//! ```

use serde_json::{Map, Value};

use super::{Config, ConfigError, MIB};
use crate::wire::{HeaderKind, Security};

/// Largest capacity (MiB/s) or buffer size (MiB) accepted: `4096 × 1048576` overflows u32.
pub const MAX_MIB: u32 = 4095;

/// What V2Ray uses for a `readBufferSize`/`writeBufferSize` of 0: 512 KiB.
pub const ZERO_BUFFER_BYTES: u32 = 512 * 1024;

const CAPACITY_ALLOWED: &str =
    "0 to 4095 (MiB/s; 4096 and more overflow V2Ray's u32 arithmetic, which then silently uses a window of 8)";
const BUFFER_ALLOWED: &str =
    "0 to 4095 (MiB; 0 means 512 KiB; 4096 and more overflow V2Ray's u32 arithmetic)";

impl Config {
    /// Reads a V2Ray `kcpSettings` object (spec §4) with V2Ray's defaults and checks.
    ///
    /// Errors name the field, the value and what is allowed, e.g.
    /// `mtu = 575 is out of range: allowed 576 to 1460`.
    pub fn from_kcp_settings_json(json: &str) -> Result<Config, ConfigError> {
        Config::from_kcp_settings_value(&parse_json(json)?)
    }

    /// [`Config::from_kcp_settings_json`] on an already parsed JSON value.
    pub fn from_kcp_settings_value(kcp_settings: &Value) -> Result<Config, ConfigError> {
        let kcp = read_kcp_settings(kcp_settings)?;
        kcp.config.validate()?;
        Ok(kcp.config)
    }

    /// Reads a `streamSettings` object whose `network` is `"kcp"` or `"mkcp"`: its
    /// `kcpSettings` (absent = defaults) and, if present, Xray's `finalmask.udp` masks.
    pub fn from_stream_settings_json(json: &str) -> Result<Config, ConfigError> {
        Config::from_stream_settings_value(&parse_json(json)?)
    }

    /// [`Config::from_stream_settings_json`] on an already parsed JSON value.
    pub fn from_stream_settings_value(stream_settings: &Value) -> Result<Config, ConfigError> {
        let (config, _) = read_stream_settings(stream_settings, None, "")?;
        Ok(config)
    }

    /// Reads a whole V2Ray or Xray config file and returns the mKCP settings of the first
    /// inbound, then outbound, whose `streamSettings.network` is `"kcp"`/`"mkcp"`, or else
    /// the global `transport.kcpSettings`. The string says which part was used, e.g.
    /// `inbounds[0].streamSettings` (a stream without its own `kcpSettings` takes the
    /// global ones, as in V2Ray; the string then says so).
    pub fn from_v2ray_config_json(json: &str) -> Result<(Config, String), ConfigError> {
        Config::from_v2ray_config_value(&parse_json(json)?)
    }

    /// [`Config::from_v2ray_config_json`] on an already parsed JSON value.
    pub fn from_v2ray_config_value(config: &Value) -> Result<(Config, String), ConfigError> {
        let root = Obj::new(config, "")?.ok_or(ConfigError::NoMkcpSettings)?;
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
                let (config, used_global) = read_stream_settings(stream, transport_kcp, &location)?;
                let used = if used_global {
                    format!("{location} (kcpSettings from transport.kcpSettings)")
                } else {
                    location
                };
                return Ok((config, used));
            }
        }
        match transport_kcp {
            Some(kcp) => {
                let config = Config::from_kcp_settings_value(kcp)
                    .map_err(|e| e.at("transport.kcpSettings"))?;
                Ok((config, "transport.kcpSettings".to_string()))
            }
            None => Err(ConfigError::NoMkcpSettings),
        }
    }
}

/// Parses JSON text after blanking out `//`, `/* */` and `#` comments.
fn parse_json(text: &str) -> Result<Value, ConfigError> {
    serde_json::from_str(&strip_comments(text)).map_err(|e| ConfigError::Json {
        message: e.to_string(),
    })
}

/// Replaces comments outside strings with spaces (keeping newlines, so the parser's line
/// and column numbers stay right). Valid JSON is returned unchanged: none of the comment
/// starters can appear outside a string in valid JSON.
fn strip_comments(text: &str) -> String {
    #[derive(Clone, Copy, PartialEq)]
    enum St {
        Code,
        Str,
        StrEscape,
        Line,
        Block,
        BlockStar,
    }
    let mut out = String::with_capacity(text.len());
    let mut st = St::Code;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        st = match (st, c) {
            (St::Code, '"') => {
                out.push(c);
                St::Str
            }
            (St::Code, '#') => {
                out.push(' ');
                St::Line
            }
            (St::Code, '/') if chars.peek() == Some(&'/') => {
                chars.next();
                out.push_str("  ");
                St::Line
            }
            (St::Code, '/') if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str("  ");
                St::Block
            }
            (St::Code, _) => {
                out.push(c);
                St::Code
            }
            (St::Str, '\\') => {
                out.push(c);
                St::StrEscape
            }
            (St::Str, '"') => {
                out.push(c);
                St::Code
            }
            (St::Str | St::StrEscape, _) => {
                out.push(c);
                St::Str
            }
            (St::Line, '\n') => {
                out.push('\n');
                St::Code
            }
            (St::Line, _) => {
                out.push(' ');
                St::Line
            }
            (St::Block | St::BlockStar, '*') => {
                out.push(' ');
                St::BlockStar
            }
            (St::BlockStar, '/') => {
                out.push(' ');
                St::Code
            }
            (St::Block | St::BlockStar, _) => {
                out.push(if c == '\n' { '\n' } else { ' ' });
                St::Block
            }
        };
    }
    out
}

/// Case-insensitive key comparison in the manner of Go's `encoding/json` (Unicode simple
/// case folding, approximated by comparing lower- and upper-case forms per character).
fn key_matches(key: &str, name: &str) -> bool {
    if key.len() == name.len() && key.eq_ignore_ascii_case(name) {
        return true;
    }
    let mut a = key.chars();
    let mut b = name.chars();
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) => {
                let same = x == y
                    || x.to_lowercase().eq(y.to_lowercase())
                    || x.to_uppercase().eq(y.to_uppercase());
                if !same {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// A short description of a JSON value for error messages.
fn describe(value: &Value) -> String {
    const MAX: usize = 60;
    let text = value.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let short: String = text.chars().take(MAX).collect();
    format!("{short}...")
}

fn invalid_type(field: &str, expected: &'static str, found: &Value) -> ConfigError {
    ConfigError::InvalidType {
        field: field.to_string(),
        expected,
        found: describe(found),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON object read with Go's rules, remembering its path for error messages.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    /// `null` is `None` (Go leaves the field unset); anything but an object is an error.
    fn new(value: &'a Value, path: &str) -> Result<Option<Obj<'a>>, ConfigError> {
        match value {
            Value::Object(map) => Ok(Some(Obj {
                map,
                path: path.to_string(),
            })),
            Value::Null => Ok(None),
            other => Err(invalid_type(
                if path.is_empty() { "(top level)" } else { path },
                "a JSON object",
                other,
            )),
        }
    }

    fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value of `key` matched case-insensitively, `null` included.
    fn get_raw(&self, key: &str) -> Result<Option<&'a Value>, ConfigError> {
        let mut found: Option<(&'a String, &'a Value)> = None;
        for (k, v) in self.map {
            if !key_matches(k, key) {
                continue;
            }
            if let Some((first, _)) = found {
                return Err(ConfigError::AmbiguousKey {
                    field: self.field(key),
                    keys: format!("{first:?} and {k:?}"),
                });
            }
            found = Some((k, v));
        }
        Ok(found.map(|(_, v)| v))
    }

    /// The value of `key`, with `null` treated as absent.
    fn get(&self, key: &str) -> Result<Option<&'a Value>, ConfigError> {
        Ok(self.get_raw(key)?.filter(|v| !v.is_null()))
    }

    /// An unsigned integer field, returned as u64 so that range errors can show it.
    fn get_uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid_type(&self.field(key), "a non-negative integer", v)),
        }
    }

    fn get_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| invalid_type(&self.field(key), "true or false", v)),
        }
    }

    fn get_str(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| invalid_type(&self.field(key), "a string", v)),
        }
    }
}

fn in_range(
    field: &'static str,
    value: u64,
    lo: u32,
    hi: u32,
    allowed: &'static str,
) -> Result<u32, ConfigError> {
    u32::try_from(value)
        .ok()
        .filter(|v| (lo..=hi).contains(v))
        .ok_or(ConfigError::OutOfRange {
            field,
            value,
            allowed,
        })
}

/// A `readBufferSize`/`writeBufferSize` in MiB to bytes (0 means 512 KiB).
fn buffer_bytes(field: &'static str, mib: u64) -> Result<u32, ConfigError> {
    let mib = in_range(field, mib, 0, MAX_MIB, BUFFER_ALLOWED)?;
    Ok(if mib == 0 {
        ZERO_BUFFER_BYTES
    } else {
        mib * MIB
    })
}

/// A parsed `kcpSettings` plus which of the keys Xray >= 26.1.31 rejects were given.
struct KcpSettings {
    config: Config,
    has_header: bool,
    has_seed: bool,
}

fn read_kcp_settings(value: &Value) -> Result<KcpSettings, ConfigError> {
    let mut config = Config::default();
    let Some(obj) = Obj::new(value, "")? else {
        return Ok(KcpSettings {
            config,
            has_header: false,
            has_seed: false,
        });
    };
    if let Some(mtu) = obj.get_uint("mtu")? {
        config.mtu = in_range("mtu", mtu, 576, 1460, "576 to 1460")?;
    }
    if let Some(tti) = obj.get_uint("tti")? {
        config.tti = in_range("tti", tti, 10, 100, "10 to 100 (ms)")?;
    }
    if let Some(up) = obj.get_uint("uplinkCapacity")? {
        config.uplink_capacity = in_range("uplinkCapacity", up, 0, MAX_MIB, CAPACITY_ALLOWED)?;
    }
    if let Some(down) = obj.get_uint("downlinkCapacity")? {
        config.downlink_capacity =
            in_range("downlinkCapacity", down, 0, MAX_MIB, CAPACITY_ALLOWED)?;
    }
    if let Some(congestion) = obj.get_bool("congestion")? {
        config.congestion = congestion;
    }
    if let Some(mib) = obj.get_uint("readBufferSize")? {
        config.read_buffer_size = buffer_bytes("readBufferSize", mib)?;
    }
    if let Some(mib) = obj.get_uint("writeBufferSize")? {
        config.write_buffer_size = buffer_bytes("writeBufferSize", mib)?;
    }
    // V2Ray keeps `header` as raw JSON: even `null` is handed to its header loader (and
    // fails there for lack of a type).
    let header = obj.get_raw("header")?;
    if let Some(header) = header {
        config.header = read_kcp_header(header)?;
    }
    // `seed` is a pointer in V2Ray: present (even "") selects AES-GCM, null/absent legacy.
    let seed = obj.get_str("seed")?;
    if let Some(seed) = seed {
        config.security = Security::AesGcm {
            seed: seed.to_string(),
        };
    }
    Ok(KcpSettings {
        config,
        has_header: header.is_some(),
        has_seed: seed.is_some(),
    })
}

/// `kcpSettings.header`: `{"type": T}` with T matched case-insensitively; Xray's `dns`
/// takes an optional `domain`. Other keys are ignored.
fn read_kcp_header(value: &Value) -> Result<HeaderKind, ConfigError> {
    let map = match value {
        Value::Object(map) => map,
        Value::Null => return Err(ConfigError::HeaderTypeMissing),
        other => {
            return Err(invalid_type(
                "header",
                "an object such as {\"type\": \"srtp\"}",
                other,
            ))
        }
    };
    // V2Ray's header loader looks `type` up exactly (it is not a Go struct field), and a
    // `null` type reads as the empty name.
    let name = match map.get("type") {
        None => return Err(ConfigError::HeaderTypeMissing),
        Some(Value::Null) => "",
        Some(Value::String(name)) => name.as_str(),
        Some(other) => return Err(invalid_type("header.type", "a string", other)),
    };
    let kind = HeaderKind::from_name(name)?;
    if let HeaderKind::Dns { .. } = kind {
        let obj = Obj {
            map,
            path: "header".to_string(),
        };
        let domain = obj.get_str("domain")?.unwrap_or("");
        return Ok(HeaderKind::dns(domain)?);
    }
    Ok(kind)
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
    match stream_obj.get_str("network")? {
        Some(network) if is_mkcp_network(network) => Ok(Some(stream)),
        _ => Ok(None),
    }
}

fn is_mkcp_network(network: &str) -> bool {
    network.eq_ignore_ascii_case("kcp") || network.eq_ignore_ascii_case("mkcp")
}

/// Reads a `streamSettings` object found at `location` ("" when it is the whole input);
/// `global_kcp` is the `transport.kcpSettings` used when the stream has no `kcpSettings` of
/// its own. Returns whether the global ones were used.
fn read_stream_settings(
    value: &Value,
    global_kcp: Option<&Value>,
    location: &str,
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
    let network = stream.get_str("network").map_err(wrap)?.unwrap_or("tcp");
    if !is_mkcp_network(network) {
        return Err(not_mkcp(network));
    }
    let own_kcp = stream.get("kcpSettings").map_err(wrap)?;
    let (kcp, used_global) = match (own_kcp, global_kcp) {
        (Some(own), _) => (
            read_kcp_settings(own).map_err(|e| wrap(e.at("kcpSettings")))?,
            false,
        ),
        (None, Some(global)) => {
            let user = if location.is_empty() {
                "this streamSettings"
            } else {
                location
            };
            let global = read_kcp_settings(global)
                .map_err(|e| e.at(&format!("transport.kcpSettings (used by {user})")))?;
            (global, true)
        }
        (None, None) => (read_kcp_settings(&Value::Null)?, false),
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
        let (header, security) = read_finalmask(finalmask).map_err(wrap)?;
        config.header = header;
        config.security = security;
    }
    config.validate().map_err(wrap)?;
    Ok((config, used_global))
}

/// One mask of `finalmask.udp` that mKCP understands.
enum Mask {
    Envelope(Security),
    Header(HeaderKind),
}

/// Reads `finalmask` (spec §8.3): at most one envelope mask and at most one header mask,
/// the envelope first (innermost). No envelope mask means the raw envelope.
fn read_finalmask(value: &Value) -> Result<(HeaderKind, Security), ConfigError> {
    let Some(finalmask) = Obj::new(value, "finalmask")? else {
        return Ok((HeaderKind::None, Security::Raw));
    };
    let masks: &[Value] = match finalmask.get("udp")? {
        None => &[],
        Some(Value::Array(masks)) => masks,
        Some(other) => return Err(invalid_type("finalmask.udp", "an array of masks", other)),
    };
    let mut envelope: Option<(Security, usize)> = None;
    let mut header: Option<(HeaderKind, usize)> = None;
    for (i, mask) in masks.iter().enumerate() {
        let path = format!("finalmask.udp[{i}]");
        match read_mask(mask, &path)? {
            Mask::Envelope(security) => {
                if let Some((_, first)) = &envelope {
                    return Err(ConfigError::Unsupported {
                        field: path,
                        reason: format!(
                            "a second envelope mask (finalmask.udp[{first}] is one already); \
                             mKCP takes one of legacy, AES-128-GCM or none"
                        ),
                    });
                }
                if let Some((_, h)) = &header {
                    return Err(ConfigError::Unsupported {
                        field: path,
                        reason: format!(
                            "envelope mask after the header mask finalmask.udp[{h}] would put \
                             the header inside the envelope; list the envelope mask first \
                             (innermost), then the header"
                        ),
                    });
                }
                envelope = Some((security, i));
            }
            Mask::Header(kind) => {
                if let Some((_, first)) = &header {
                    return Err(ConfigError::Unsupported {
                        field: path,
                        reason: format!(
                            "a second header mask (finalmask.udp[{first}] is one already); \
                             mKCP takes at most one header"
                        ),
                    });
                }
                header = Some((kind, i));
            }
        }
    }
    Ok((
        header.map_or(HeaderKind::None, |(h, _)| h),
        envelope.map_or(Security::Raw, |(s, _)| s),
    ))
}

const SUPPORTED_MASKS: &str = "mkcp-legacy, mkcp-original, mkcp-aes128gcm, header-dns, \
     header-dtls, header-srtp, header-utp, header-wechat, header-wireguard";

fn read_mask(value: &Value, path: &str) -> Result<Mask, ConfigError> {
    let Some(mask) = Obj::new(value, path)? else {
        return Err(invalid_type(path, "a mask object {\"type\": ...}", value));
    };
    let Some(kind) = mask.get_str("type")? else {
        return Err(ConfigError::InvalidType {
            field: mask.field("type"),
            expected: "a mask type name",
            found: "nothing".to_string(),
        });
    };
    let settings_path = mask.field("settings");
    let settings = match mask.get("settings")? {
        Some(s) => Obj::new(s, &settings_path)?,
        None => None,
    };
    let setting = |key: &str| -> Result<&str, ConfigError> {
        match &settings {
            Some(s) => Ok(s.get_str(key)?.unwrap_or("")),
            None => Ok(""),
        }
    };
    let header_error =
        |e: crate::wire::header::HeaderError| ConfigError::Header(e).at(&settings_path);
    let lower = kind.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "mkcp-legacy" => {
            let header = setting("header")?;
            let value = setting("value")?;
            if header.is_empty() {
                if value.is_empty() {
                    Mask::Envelope(Security::Legacy)
                } else {
                    Mask::Envelope(Security::AesGcm {
                        seed: value.to_string(),
                    })
                }
            } else {
                match HeaderKind::from_finalmask_name(header).map_err(header_error)? {
                    HeaderKind::Dns { .. } => {
                        Mask::Header(HeaderKind::dns(value).map_err(header_error)?)
                    }
                    other => Mask::Header(other),
                }
            }
        }
        "mkcp-original" => Mask::Envelope(Security::Legacy),
        "mkcp-aes128gcm" => Mask::Envelope(Security::AesGcm {
            seed: setting("password")?.to_string(),
        }),
        "header-dns" => Mask::Header(HeaderKind::dns(setting("domain")?).map_err(header_error)?),
        "header-dtls" | "header-srtp" | "header-utp" | "header-wechat" | "header-wireguard" => {
            Mask::Header(
                HeaderKind::from_finalmask_name(&lower["header-".len()..]).map_err(header_error)?,
            )
        }
        _ => {
            return Err(ConfigError::Unsupported {
                field: mask.field("type"),
                reason: format!(
                    "mask {kind:?} is outside mKCP's compatibility scope (supported: \
                     {SUPPORTED_MASKS})"
                ),
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::header::HeaderError;

    fn kcp(json: &str) -> Result<Config, ConfigError> {
        Config::from_kcp_settings_json(json)
    }

    fn out_of_range(json: &str) -> (&'static str, u64) {
        match kcp(json) {
            Err(ConfigError::OutOfRange { field, value, .. }) => (field, value),
            other => panic!("{json}: expected OutOfRange, got {other:?}"),
        }
    }

    fn invalid_type_field(result: Result<Config, ConfigError>) -> String {
        match result.map_err(|e| e.innermost().clone()) {
            Err(ConfigError::InvalidType { field, .. }) => field,
            other => panic!("expected InvalidType, got {other:?}"),
        }
    }

    #[test]
    fn empty_object_gives_v2ray_defaults() {
        let c = kcp("{}").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(
            (c.mtu, c.tti, c.uplink_capacity, c.downlink_capacity),
            (1350, 50, 5, 20)
        );
        assert_eq!(
            (c.read_buffer_size, c.write_buffer_size),
            (2 * MIB, 2 * MIB)
        );
        assert_eq!(c.security, Security::Legacy);
        assert_eq!(c.header, HeaderKind::None);
        assert!(!c.congestion);
    }

    #[test]
    fn null_values_mean_default() {
        let c =
            kcp(r#"{"mtu":null,"tti":null,"congestion":null,"seed":null,"writeBufferSize":null}"#)
                .unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(kcp("null").unwrap(), Config::default());
    }

    #[test]
    fn mtu_range_is_576_to_1460_inclusive() {
        assert_eq!(kcp(r#"{"mtu":576}"#).unwrap().mtu, 576);
        assert_eq!(kcp(r#"{"mtu":1460}"#).unwrap().mtu, 1460);
        assert_eq!(out_of_range(r#"{"mtu":575}"#), ("mtu", 575));
        assert_eq!(out_of_range(r#"{"mtu":1461}"#), ("mtu", 1461));
        assert_eq!(out_of_range(r#"{"mtu":0}"#), ("mtu", 0));
        assert_eq!(
            out_of_range(r#"{"mtu":4294967296}"#),
            ("mtu", 4_294_967_296)
        );
    }

    #[test]
    fn tti_range_is_10_to_100_inclusive() {
        assert_eq!(kcp(r#"{"tti":10}"#).unwrap().tti, 10);
        assert_eq!(kcp(r#"{"tti":100}"#).unwrap().tti, 100);
        assert_eq!(out_of_range(r#"{"tti":9}"#), ("tti", 9));
        assert_eq!(out_of_range(r#"{"tti":101}"#), ("tti", 101));
    }

    #[test]
    fn capacities_allow_zero_and_reject_overflowing_values() {
        let c = kcp(r#"{"uplinkCapacity":0,"downlinkCapacity":4095}"#).unwrap();
        assert_eq!((c.uplink_capacity, c.downlink_capacity), (0, 4095));
        assert_eq!(c.sending_window(), 8);
        assert_eq!(
            out_of_range(r#"{"uplinkCapacity":4096}"#),
            ("uplinkCapacity", 4096)
        );
        assert_eq!(
            out_of_range(r#"{"downlinkCapacity":4096}"#),
            ("downlinkCapacity", 4096)
        );
        let msg = kcp(r#"{"uplinkCapacity":4096}"#).unwrap_err().to_string();
        assert!(
            msg.contains("uplinkCapacity") && msg.contains("4096") && msg.contains("0 to 4095"),
            "{msg}"
        );
    }

    #[test]
    fn buffer_sizes_are_mib_and_zero_means_512_kib() {
        let c = kcp(r#"{"readBufferSize":0,"writeBufferSize":3}"#).unwrap();
        assert_eq!(c.read_buffer_size, 512 * 1024);
        assert_eq!(c.write_buffer_size, 3 * MIB);
        let c = kcp(r#"{"readBufferSize":4095,"writeBufferSize":0}"#).unwrap();
        assert_eq!(c.read_buffer_size, 4095 * MIB);
        assert_eq!(c.write_buffer_size, 512 * 1024);
        assert_eq!(
            out_of_range(r#"{"readBufferSize":4096}"#),
            ("readBufferSize", 4096)
        );
        assert_eq!(
            out_of_range(r#"{"writeBufferSize":10000}"#),
            ("writeBufferSize", 10000)
        );
    }

    #[test]
    fn congestion_is_a_bool() {
        assert!(kcp(r#"{"congestion":true}"#).unwrap().congestion);
        assert_eq!(invalid_type_field(kcp(r#"{"congestion":1}"#)), "congestion");
    }

    #[test]
    fn wrong_json_types_and_negatives_are_errors_naming_the_field() {
        assert_eq!(invalid_type_field(kcp(r#"{"mtu":"1350"}"#)), "mtu");
        assert_eq!(invalid_type_field(kcp(r#"{"mtu":-1}"#)), "mtu");
        assert_eq!(invalid_type_field(kcp(r#"{"tti":50.5}"#)), "tti");
        assert_eq!(invalid_type_field(kcp(r#"{"tti":1e2}"#)), "tti");
        assert_eq!(
            invalid_type_field(kcp(r#"{"uplinkCapacity":-5}"#)),
            "uplinkCapacity"
        );
        assert_eq!(
            invalid_type_field(kcp(r#"{"readBufferSize":[]}"#)),
            "readBufferSize"
        );
        assert_eq!(invalid_type_field(kcp(r#"{"seed":5}"#)), "seed");
        assert_eq!(invalid_type_field(kcp(r#"[]"#)), "(top level)");
        let msg = kcp(r#"{"mtu":-1}"#).unwrap_err().to_string();
        assert!(
            msg.contains("mtu") && msg.contains("-1") && msg.contains("non-negative"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_json_is_a_json_error() {
        assert!(matches!(kcp("{"), Err(ConfigError::Json { .. })));
        assert!(matches!(kcp(""), Err(ConfigError::Json { .. })));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let c = kcp(r#"{"mtu":1400,"cwndMultiplier":4,"whatever":{"x":1}}"#).unwrap();
        assert_eq!(c.mtu, 1400);
    }

    #[test]
    fn keys_match_case_insensitively_like_go() {
        let c = kcp(r#"{"MTU":1400,"Tti":20,"UPLINKCAPACITY":1,"Seed":"x"}"#).unwrap();
        assert_eq!((c.mtu, c.tti, c.uplink_capacity), (1400, 20, 1));
        assert_eq!(c.security, Security::AesGcm { seed: "x".into() });
        // U+212A KELVIN SIGN folds to 'k' in Go's matching.
        let c = Config::from_stream_settings_json(
            "{\"network\":\"kcp\",\"\u{212A}cpSettings\":{\"mtu\":600}}",
        )
        .unwrap();
        assert_eq!(c.mtu, 600);
    }

    #[test]
    fn a_key_given_twice_with_different_case_is_ambiguous() {
        match kcp(r#"{"mtu":1400,"MTU":1300}"#) {
            Err(ConfigError::AmbiguousKey { field, .. }) => assert_eq!(field, "mtu"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn seed_presence_selects_aes_gcm_even_when_empty() {
        assert_eq!(kcp(r#"{}"#).unwrap().security, Security::Legacy);
        assert_eq!(
            kcp(r#"{"seed":""}"#).unwrap().security,
            Security::AesGcm {
                seed: String::new()
            }
        );
        assert_eq!(
            kcp(r#"{"seed":"密码"}"#).unwrap().security,
            Security::AesGcm {
                seed: "密码".into()
            }
        );
    }

    #[test]
    fn header_types_are_case_insensitive() {
        for (name, kind) in [
            ("none", HeaderKind::None),
            ("SRTP", HeaderKind::Srtp),
            ("uTP", HeaderKind::Utp),
            ("WeChat-Video", HeaderKind::WechatVideo),
            ("DTLS", HeaderKind::Dtls),
            ("wireguard", HeaderKind::Wireguard),
        ] {
            let c = kcp(&format!(r#"{{"header":{{"type":"{name}"}}}}"#)).unwrap();
            assert_eq!(c.header, kind, "{name}");
        }
    }

    #[test]
    fn header_extra_keys_are_ignored() {
        let c = kcp(r#"{"header":{"type":"srtp","request":{"a":1},"domain":5}}"#).unwrap();
        assert_eq!(c.header, HeaderKind::Srtp);
    }

    #[test]
    fn header_without_type_or_with_unknown_type_is_an_error() {
        assert_eq!(kcp(r#"{"header":{}}"#), Err(ConfigError::HeaderTypeMissing));
        assert_eq!(
            kcp(r#"{"header":null}"#),
            Err(ConfigError::HeaderTypeMissing)
        );
        // V2Ray's header loader looks `type` up exactly.
        assert_eq!(
            kcp(r#"{"header":{"Type":"srtp"}}"#),
            Err(ConfigError::HeaderTypeMissing)
        );
        for name in ["http", "", "wechat", "wechat_video"] {
            match kcp(&format!(r#"{{"header":{{"type":"{name}"}}}}"#)) {
                Err(ConfigError::Header(HeaderError::UnknownType { name: n, .. })) => {
                    assert_eq!(n, name)
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        assert_eq!(
            invalid_type_field(kcp(r#"{"header":{"type":3}}"#)),
            "header.type"
        );
        assert_eq!(invalid_type_field(kcp(r#"{"header":"srtp"}"#)), "header");
        let msg = kcp(r#"{"header":{"type":"http"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("header") && msg.contains("http") && msg.contains("wechat-video"),
            "{msg}"
        );
    }

    #[test]
    fn xray_dns_header_in_kcp_settings() {
        let c = kcp(r#"{"header":{"type":"dns"}}"#).unwrap();
        assert_eq!(
            c.header,
            HeaderKind::Dns {
                domain: "www.baidu.com".into()
            }
        );
        assert_eq!(c.header_size(), 31);
        let c = kcp(r#"{"header":{"type":"DNS","domain":"example.org"}}"#).unwrap();
        assert_eq!(
            c.header,
            HeaderKind::Dns {
                domain: "example.org".into()
            }
        );
        assert_eq!(c.header_size(), 29);
        let long = "a".repeat(64);
        assert!(matches!(
            kcp(&format!(
                r#"{{"header":{{"type":"dns","domain":"{long}.com"}}}}"#
            )),
            Err(ConfigError::Header(HeaderError::LabelTooLong {
                len: 64,
                ..
            }))
        ));
        assert!(matches!(
            kcp(r#"{"header":{"type":"dns","domain":"a..b"}}"#),
            Err(ConfigError::Header(HeaderError::BadDomain { .. }))
        ));
        assert_eq!(
            invalid_type_field(kcp(r#"{"header":{"type":"dns","domain":1}}"#)),
            "header.domain"
        );
    }

    #[test]
    fn comments_are_allowed() {
        let c = kcp("{ // line\n \"mtu\": 1400, /* block */ \"tti\": 20 # hash\n , \"seed\": \"a//b#c/*d*/\" }")
            .unwrap();
        assert_eq!((c.mtu, c.tti), (1400, 20));
        assert_eq!(
            c.security,
            Security::AesGcm {
                seed: "a//b#c/*d*/".into()
            }
        );
        assert_eq!(strip_comments(r#"{"a":"x\"//y"}"#), r#"{"a":"x\"//y"}"#);
    }

    #[test]
    fn stream_settings_take_kcp_settings_or_defaults() {
        let c =
            Config::from_stream_settings_json(r#"{"network":"mkcp","kcpSettings":{"mtu":1200}}"#)
                .unwrap();
        assert_eq!(c.mtu, 1200);
        let c = Config::from_stream_settings_json(r#"{"network":"KCP"}"#).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn stream_settings_with_another_network_are_rejected() {
        match Config::from_stream_settings_json(r#"{"network":"ws","kcpSettings":{}}"#) {
            Err(ConfigError::NotMkcp { network, .. }) => assert_eq!(network, "ws"),
            other => panic!("{other:?}"),
        }
        match Config::from_stream_settings_json(r#"{"kcpSettings":{}}"#) {
            Err(ConfigError::NotMkcp { network, .. }) => assert_eq!(network, "tcp"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stream_settings_errors_say_where() {
        let e = Config::from_stream_settings_json(r#"{"network":"kcp","kcpSettings":{"mtu":1}}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "kcpSettings: mtu = 1 is out of range: allowed 576 to 1460"
        );
        assert!(matches!(
            e.innermost(),
            ConfigError::OutOfRange {
                field: "mtu",
                value: 1,
                ..
            }
        ));
    }

    fn stream(finalmask: &str) -> Result<Config, ConfigError> {
        Config::from_stream_settings_json(&format!(
            r#"{{"network":"kcp","kcpSettings":{{}},"finalmask":{finalmask}}}"#
        ))
    }

    #[test]
    fn finalmask_without_envelope_mask_is_raw() {
        for fm in [r#"{}"#, r#"{"udp":[]}"#, r#"{"udp":null}"#] {
            let c = stream(fm).unwrap();
            assert_eq!(
                (c.header, c.security),
                (HeaderKind::None, Security::Raw),
                "{fm}"
            );
        }
        let c =
            stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"header":"wechat"}}]}"#).unwrap();
        assert_eq!(
            (c.header, c.security),
            (HeaderKind::WechatVideo, Security::Raw)
        );
    }

    #[test]
    fn finalmask_mkcp_legacy_envelopes() {
        let c = stream(r#"{"udp":[{"type":"mkcp-legacy"}]}"#).unwrap();
        assert_eq!(c.security, Security::Legacy);
        let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{}}]}"#).unwrap();
        assert_eq!(c.security, Security::Legacy);
        // An empty value is the legacy envelope, unlike V2Ray's "seed": "".
        let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":"","header":""}}]}"#)
            .unwrap();
        assert_eq!(c.security, Security::Legacy);
        let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":"pw"}}]}"#).unwrap();
        assert_eq!(c.security, Security::AesGcm { seed: "pw".into() });
    }

    #[test]
    fn finalmask_envelope_then_header_is_the_v2ray_layout() {
        let c = stream(
            r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":"pw"}},
                       {"type":"mkcp-legacy","settings":{"header":"DTLS","value":"ignored"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            (c.header, c.security),
            (HeaderKind::Dtls, Security::AesGcm { seed: "pw".into() })
        );
        let c = stream(
            r#"{"udp":[{"type":"mkcp-legacy"},{"type":"mkcp-legacy","settings":{"header":"dns","value":"example.org"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            c.header,
            HeaderKind::Dns {
                domain: "example.org".into()
            }
        );
        let c = stream(r#"{"udp":[{"type":"mkcp-legacy","settings":{"header":"dns"}}]}"#).unwrap();
        assert_eq!(
            c.header,
            HeaderKind::Dns {
                domain: "www.baidu.com".into()
            }
        );
    }

    #[test]
    fn finalmask_older_mask_names() {
        let c = stream(r#"{"udp":[{"type":"mkcp-original"},{"type":"header-wechat"}]}"#).unwrap();
        assert_eq!(
            (c.header, c.security),
            (HeaderKind::WechatVideo, Security::Legacy)
        );
        let c = stream(
            r#"{"udp":[{"type":"mkcp-aes128gcm","settings":{"password":"pw"}},{"type":"header-dns","settings":{"domain":"a.b"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            (c.header, c.security),
            (
                HeaderKind::Dns {
                    domain: "a.b".into()
                },
                Security::AesGcm { seed: "pw".into() }
            )
        );
        for (t, kind) in [
            ("header-srtp", HeaderKind::Srtp),
            ("header-utp", HeaderKind::Utp),
            ("header-dtls", HeaderKind::Dtls),
            ("header-wireguard", HeaderKind::Wireguard),
            (
                "header-dns",
                HeaderKind::Dns {
                    domain: "www.baidu.com".into(),
                },
            ),
        ] {
            let c = stream(&format!(r#"{{"udp":[{{"type":"{t}"}}]}}"#)).unwrap();
            assert_eq!(c.header, kind, "{t}");
        }
    }

    #[test]
    fn finalmask_rejects_other_masks_and_bad_headers() {
        for t in [
            "salamander",
            "noise",
            "xdns",
            "xicmp",
            "realm",
            "sudoku",
            "header-custom",
            "header-none",
        ] {
            match stream(&format!(r#"{{"udp":[{{"type":"{t}"}}]}}"#)) {
                Err(ConfigError::Unsupported { field, reason }) => {
                    assert_eq!(field, "finalmask.udp[0].type");
                    assert!(reason.contains(t), "{reason}");
                }
                other => panic!("{t}: {other:?}"),
            }
        }
        for h in ["wechat-video", "none", "http"] {
            let e = stream(&format!(
                r#"{{"udp":[{{"type":"mkcp-legacy","settings":{{"header":"{h}"}}}}]}}"#
            ))
            .unwrap_err();
            assert!(
                matches!(
                    e.innermost(),
                    ConfigError::Header(HeaderError::UnknownType { .. })
                ),
                "{h}: {e:?}"
            );
            assert!(e.to_string().contains("finalmask.udp[0].settings"), "{e}");
        }
        assert_eq!(
            invalid_type_field(stream(
                r#"{"udp":[{"type":"mkcp-legacy","settings":{"value":1}}]}"#
            )),
            "finalmask.udp[0].settings.value"
        );
        assert_eq!(invalid_type_field(stream(r#"{"udp":{}}"#)), "finalmask.udp");
        assert_eq!(
            invalid_type_field(stream(r#"{"udp":[{}]}"#)),
            "finalmask.udp[0].type"
        );
    }

    #[test]
    fn finalmask_layouts_mkcp_cannot_represent_are_rejected() {
        let two_envelopes =
            r#"{"udp":[{"type":"mkcp-original"},{"type":"mkcp-legacy","settings":{"value":"x"}}]}"#;
        let two_headers = r#"{"udp":[{"type":"header-srtp"},{"type":"header-utp"}]}"#;
        let header_inside = r#"{"udp":[{"type":"header-srtp"},{"type":"mkcp-original"}]}"#;
        for fm in [two_envelopes, two_headers, header_inside] {
            match stream(fm) {
                Err(ConfigError::Unsupported { field, .. }) => {
                    assert_eq!(field, "finalmask.udp[1]")
                }
                other => panic!("{fm}: {other:?}"),
            }
        }
    }

    #[test]
    fn finalmask_conflicts_with_kcp_header_or_seed() {
        for kcp in [r#"{"seed":"x"}"#, r#"{"header":{"type":"srtp"}}"#] {
            let json =
                format!(r#"{{"network":"kcp","kcpSettings":{kcp},"finalmask":{{"udp":[]}}}}"#);
            assert!(
                matches!(
                    Config::from_stream_settings_json(&json),
                    Err(ConfigError::Unsupported { .. })
                ),
                "{kcp}"
            );
        }
    }

    #[test]
    fn whole_config_finds_first_mkcp_inbound_or_outbound() {
        let json = r#"{
            "inbounds": [
                {"protocol": "socks", "port": 1080},
                {"protocol": "vmess", "streamSettings": {"network": "ws"}},
                {"protocol": "vmess", "streamSettings": {"network": "mkcp", "kcpSettings": {"mtu": 1000}}}
            ],
            "outbounds": [{"protocol": "vmess", "streamSettings": {"network": "kcp", "kcpSettings": {"mtu": 900}}}]
        }"#;
        let (c, used) = Config::from_v2ray_config_json(json).unwrap();
        assert_eq!((c.mtu, used.as_str()), (1000, "inbounds[2].streamSettings"));

        let json = r#"{"inbounds": [{"port": 1}], "outbounds": [{"protocol": "freedom"},
            {"streamSettings": {"network": "kcp", "kcpSettings": {"header": {"type": "utp"}}}}]}"#;
        let (c, used) = Config::from_v2ray_config_json(json).unwrap();
        assert_eq!(
            (c.header, used.as_str()),
            (HeaderKind::Utp, "outbounds[1].streamSettings")
        );
    }

    #[test]
    fn whole_config_uses_global_transport_settings() {
        let json = r#"{"transport": {"kcpSettings": {"tti": 20}},
            "outbounds": [{"streamSettings": {"network": "kcp"}}]}"#;
        let (c, used) = Config::from_v2ray_config_json(json).unwrap();
        assert_eq!(c.tti, 20);
        assert_eq!(
            used,
            "outbounds[0].streamSettings (kcpSettings from transport.kcpSettings)"
        );

        let json = r#"{"transport": {"kcpSettings": {"tti": 20}}, "outbounds": [{"protocol": "freedom"}]}"#;
        let (c, used) = Config::from_v2ray_config_json(json).unwrap();
        assert_eq!((c.tti, used.as_str()), (20, "transport.kcpSettings"));

        let json = r#"{"transport": {"kcpSettings": {"tti": 20}},
            "inbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {"tti": 30}}}]}"#;
        let (c, used) = Config::from_v2ray_config_json(json).unwrap();
        assert_eq!((c.tti, used.as_str()), (30, "inbounds[0].streamSettings"));
    }

    #[test]
    fn whole_config_reads_v3_style_keys_and_comments() {
        let json = "// v2ray 3 style\n{\"inbound\": {\"streamSettings\": {\"network\": \"kcp\", \"kcpSettings\": {\"seed\": \"\"}}}}";
        let (c, used) = Config::from_v2ray_config_json(json).unwrap();
        assert_eq!(
            (c.security, used.as_str()),
            (
                Security::AesGcm {
                    seed: String::new()
                },
                "inbound.streamSettings"
            )
        );
    }

    #[test]
    fn whole_config_errors_say_where() {
        let json = r#"{"inbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {"mtu": 9000}}}]}"#;
        let e = Config::from_v2ray_config_json(json).unwrap_err();
        assert_eq!(
            e.to_string(),
            "inbounds[0].streamSettings.kcpSettings: mtu = 9000 is out of range: allowed 576 to 1460"
        );
        let json = r#"{"transport": {"kcpSettings": {"tti": 1}}}"#;
        let e = Config::from_v2ray_config_json(json).unwrap_err();
        assert!(
            e.to_string().starts_with("transport.kcpSettings: tti = 1"),
            "{e}"
        );
        let json = r#"{"transport": {"kcpSettings": {"tti": 1}}, "inbounds":[{"streamSettings":{"network":"kcp"}}]}"#;
        let e = Config::from_v2ray_config_json(json).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("transport.kcpSettings (used by inbounds[0].streamSettings): tti = 1"),
            "{e}"
        );
    }

    #[test]
    fn whole_config_without_mkcp_is_an_error() {
        for json in [
            r#"{}"#,
            r#"{"inbounds":[{"streamSettings":{"network":"tcp"}}]}"#,
            "null",
        ] {
            assert_eq!(
                Config::from_v2ray_config_json(json),
                Err(ConfigError::NoMkcpSettings),
                "{json}"
            );
        }
        assert!(matches!(
            Config::from_v2ray_config_json(r#"{"inbounds":{}}"#),
            Err(ConfigError::InvalidType { .. })
        ));
    }

    #[test]
    fn whole_config_with_xray_finalmask() {
        let json = r#"{"outbounds": [{"protocol": "vless", "streamSettings": {"network": "kcp",
            "finalmask": {"udp": [{"type": "mkcp-legacy", "settings": {"value": "pw"}},
                                  {"type": "mkcp-legacy", "settings": {"header": "srtp"}}]}}}]}"#;
        let (c, _) = Config::from_v2ray_config_json(json).unwrap();
        assert_eq!(
            (c.header, c.security),
            (HeaderKind::Srtp, Security::AesGcm { seed: "pw".into() })
        );
    }

    #[test]
    fn every_imported_config_validates() {
        for json in [
            r#"{}"#,
            r#"{"mtu":576,"tti":10,"header":{"type":"wechat-video"},"seed":""}"#,
        ] {
            kcp(json).unwrap().validate().unwrap();
        }
    }
}
