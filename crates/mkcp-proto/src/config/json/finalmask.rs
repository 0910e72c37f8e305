//! Xray's `finalmask.udp` masks (PROTOCOL.md §8.3): the envelope and header masks mKCP
//! understands, read in the order of the Xray version assumed ([`MaskOrder`]).

use serde_json::Value;

use super::obj::{invalid_type, join, Obj, Reader};
use crate::config::ConfigError;
use crate::wire::{HeaderKind, Security};

/// Which end of a `finalmask.udp` list is outermost on the wire: it changed between Xray
/// versions, so the same JSON gives other bytes with another peer version (PROTOCOL.md §8.3).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MaskOrder {
    /// Xray v26.6.22 and later (the default): the last mask is outermost, the first is
    /// next to the segments; `[envelope, header]` is V2Ray's layout.
    #[default]
    LastOutermost,
    /// Xray v26.1.31 to v26.6.1: the first mask is outermost; `[header, envelope]` is
    /// V2Ray's layout.
    FirstOutermost,
}

impl MaskOrder {
    /// The assumption in words, for logs, e.g. `Xray >= v26.6.22 (last mask outermost)`.
    pub fn describe(self) -> &'static str {
        match self {
            MaskOrder::LastOutermost => "Xray >= v26.6.22 (last mask outermost)",
            MaskOrder::FirstOutermost => "Xray v26.1.31 to v26.6.1 (first mask outermost)",
        }
    }
}

/// One mask of `finalmask.udp` that mKCP understands.
enum Mask {
    Envelope(Security),
    Header(HeaderKind),
}

/// Reads `finalmask` (PROTOCOL.md §8.3): at most one envelope mask and at most one header mask,
/// the envelope innermost (which end of the list that is depends on `rd`'s
/// [`MaskOrder`]). No envelope mask means the raw envelope. Errors name fields from
/// `finalmask` on; warnings use `base`, the path of the streamSettings.
pub(super) fn read_finalmask<'a>(
    value: &'a Value,
    base: &str,
    rd: &mut Reader<'a>,
) -> Result<(HeaderKind, Security), ConfigError> {
    let Some(finalmask) = Obj::new(value, "finalmask")? else {
        return Ok((HeaderKind::None, Security::Raw));
    };
    rd.applied(value);
    rd.check_keys(
        &finalmask,
        &join(base, "finalmask"),
        "finalmask",
        &["udp", "tcp", "quicParams"],
        &["udp"],
    )?;
    let masks: &[Value] = match finalmask.get("udp")? {
        None => &[],
        Some(Value::Array(masks)) => masks,
        Some(other) => return Err(invalid_type("finalmask.udp", "an array of masks", other)),
    };
    let order = rd.mask_order;
    rd.finalmask_read = true;
    // Innermost first.
    let mut inside_out: Vec<(usize, &Value)> = masks.iter().enumerate().collect();
    if order == MaskOrder::FirstOutermost {
        inside_out.reverse();
    }
    let (inner, outer) = match order {
        MaskOrder::LastOutermost => ("first", "last"),
        MaskOrder::FirstOutermost => ("last", "first"),
    };
    let mut envelope: Option<(Security, usize)> = None;
    let mut header: Option<(HeaderKind, usize)> = None;
    for (i, mask) in inside_out {
        let path = format!("finalmask.udp[{i}]");
        match read_mask(mask, &path, &join(base, &path), rd)? {
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
                            "this envelope mask is outside the header mask finalmask.udp[{h}] \
                             ({}), which would put the header inside the envelope; list the \
                             envelope mask {inner} (innermost) and the header {outer}",
                            order.describe()
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

/// The settings keys of a mask type.
fn settings_keys(lower: &str) -> &'static [&'static str] {
    match lower {
        "mkcp-legacy" => &["header", "value"],
        "mkcp-aes128gcm" => &["password"],
        "header-dns" => &["domain"],
        _ => &[],
    }
}

fn read_mask(
    value: &Value,
    path: &str,
    full: &str,
    rd: &mut Reader<'_>,
) -> Result<Mask, ConfigError> {
    let Some(mask) = Obj::new(value, path)? else {
        return Err(invalid_type(path, "a mask object {\"type\": ...}", value));
    };
    rd.check_keys(
        &mask,
        full,
        "a mask",
        &["type", "settings"],
        &["type", "settings"],
    )?;
    let Some(kind) = mask.get_str("type")? else {
        return Err(ConfigError::InvalidType {
            field: mask.field("type"),
            expected: "a mask type name",
            found: "nothing".to_string(),
        });
    };
    let lower = kind.to_ascii_lowercase();
    let settings_path = mask.field("settings");
    let settings = match mask.get("settings")? {
        Some(s) => Obj::new(s, &settings_path)?,
        None => None,
    };
    let supported = SUPPORTED_MASKS.split(", ").any(|m| m.trim() == lower);
    if let (Some(s), true) = (&settings, supported) {
        let keys = settings_keys(&lower);
        rd.check_keys(s, &join(full, "settings"), "mask settings", keys, keys)?;
    }
    let setting = |key: &str| -> Result<&str, ConfigError> {
        match &settings {
            Some(s) => Ok(s.get_str(key)?.unwrap_or("")),
            None => Ok(""),
        }
    };
    let header_error =
        |e: crate::wire::header::HeaderError| ConfigError::Header(e).at(&settings_path);
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
