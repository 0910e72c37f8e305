//! V2Ray `kcpSettings` (PROTOCOL.md §4): the fields, their ranges, and the `header` object.

use serde_json::Value;

use super::obj::{invalid_type, Obj, Reader};
use super::{Warning, MAX_MIB, ZERO_BUFFER_BYTES};
use crate::config::{Config, ConfigError, MIB};
use crate::wire::{HeaderKind, Security};

const CAPACITY_ALLOWED: &str =
    "0 to 4095 (MiB/s; 4096 and more overflow V2Ray's u32 arithmetic, which then silently uses a window of 8)";
const BUFFER_ALLOWED: &str =
    "0 to 4095 (MiB; 0 means 512 KiB; 4096 and more overflow V2Ray's u32 arithmetic)";

/// The keys of `kcpSettings` that are read.
const KCP_KEYS: [&str; 9] = [
    "mtu",
    "tti",
    "uplinkCapacity",
    "downlinkCapacity",
    "congestion",
    "readBufferSize",
    "writeBufferSize",
    "header",
    "seed",
];

/// Xray's `kcpSettings` keys that mkcp accepts but does not apply.
const XRAY_ONLY_KEYS: [&str; 2] = ["cwndMultiplier", "maxSendingWindow"];

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
pub(super) struct KcpSettings {
    pub(super) config: Config,
    pub(super) has_header: bool,
    pub(super) has_seed: bool,
}

/// Reads a `kcpSettings` object (`null` = defaults). Errors name fields relative to the
/// object (the caller adds its location); warnings use `path`, the object's full path.
/// The object is recorded as applied.
pub(super) fn read_kcp_settings<'a>(
    value: &'a Value,
    path: &str,
    rd: &mut Reader<'a>,
) -> Result<KcpSettings, ConfigError> {
    let mut config = Config::default();
    let Some(obj) = Obj::new(value, "")? else {
        return Ok(KcpSettings {
            config,
            has_header: false,
            has_seed: false,
        });
    };
    rd.applied(value);
    let known: Vec<&'static str> = KCP_KEYS.iter().chain(&XRAY_ONLY_KEYS).copied().collect();
    rd.check_keys(&obj, path, "kcpSettings", &known, &["seed", "header"])?;
    for key in XRAY_ONLY_KEYS {
        if obj.get(key)?.is_some() {
            rd.warnings.push(Warning::NotApplied {
                path: super::obj::join(path, key),
                reason: "an Xray setting that mkcp does not have; its own window sizing \
                         (uplinkCapacity, downlinkCapacity) is used"
                    .to_string(),
            });
        }
    }
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
        config.header = read_kcp_header(header, &super::obj::join(path, "header"), rd)?;
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
/// takes an optional `domain`. Other keys are warned about.
fn read_kcp_header(
    value: &Value,
    path: &str,
    rd: &mut Reader<'_>,
) -> Result<HeaderKind, ConfigError> {
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
    let obj = Obj {
        map,
        path: "header".to_string(),
    };
    // `type` is looked up exactly below; a `Type` is reported as a missing type.
    rd.check_keys(&obj, path, "a header object", &["type", "domain"], &[])?;
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
        let domain = obj.get_str("domain")?.unwrap_or("");
        return Ok(HeaderKind::dns(domain)?);
    }
    Ok(kind)
}
