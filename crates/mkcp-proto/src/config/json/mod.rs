//! V2Ray/Xray JSON import: `kcpSettings` (PROTOCOL.md §4) and Xray finalmask (PROTOCOL.md §8.3), from
//! whatever kind of document holds them.
//!
//! The one entry point for a config file is [`Config::from_json_any`]: it recognises a
//! `kcpSettings` object, `{"kcpSettings": ...}`, a `streamSettings` object,
//! `{"streamSettings": ...}` (or a single inbound/outbound), and whole V2Ray and Xray
//! configs ([`Shape`]), and returns the settings with where they were found and
//! [`Warning`]s for keys that are not applied. It **fails closed**: a `seed`, `header` or
//! `finalmask` present somewhere it does not read (a `kcpSettings` nested at a level that
//! is ignored, a `seed` in a `streamSettings`, a misspelt `"sede"`, a second mKCP
//! inbound with another seed, ...) is an error ([`ConfigError::NotApplied`],
//! [`ConfigError::ConflictingMkcpSettings`]) rather than a silently unencrypted link.
//!
//! The shape-specific readers take a document of one shape and follow the same rules
//! (their warnings are dropped): [`Config::from_kcp_settings_json`],
//! [`Config::from_stream_settings_json`] (`network` `"kcp"` or `"mkcp"`, or Xray's alias
//! `method`) and [`Config::from_v2ray_config_json`].
//!
//! Which end of a `finalmask.udp` list is outermost changed between Xray versions
//! ([`MaskOrder`]); the default is that of current releases (v26.6.22 on: the last mask
//! outermost), [`Config::from_json_any_with`] takes the other, and
//! [`Loaded::finalmask_order`] says which was assumed.
//!
//! The rules follow what V2Ray 4.34 accepts, which is what its Go JSON decoder does:
//!
//! * Object keys match **case-insensitively** (`"MTU"` sets `mtu`), except the `type` key
//!   of a `header` object, which V2Ray looks up exactly. A key spelled twice with
//!   different case is rejected ([`ConfigError::AmbiguousKey`]) because Go keeps the last
//!   one in document order, which cannot be recovered here.
//! * `null` means "absent" (default), except for `header`, where V2Ray fails.
//! * Numbers must be non-negative integers (`1350.0` and `-1` are errors).
//! * Unknown keys are ignored, as V2Ray does, with a [`Warning`] naming each (and the
//!   known key it is probably a misspelling of).
//! * `//`, `/* */` and `#` comments are allowed outside strings, as in V2Ray's config
//!   reader.
//!
//! Deliberate differences from V2Ray (PROTOCOL.md §5 item 26): capacities and buffer sizes of
//! 4096 MiB or more, whose `× 1048576` overflows V2Ray's u32 arithmetic and silently
//! gives nonsense (a window of 8, a send buffer of 0), are rejected here.
//!
//! ```
//! use mkcp_proto::config::json::Shape;
//! use mkcp_proto::Config;
//!
//! let config = Config::from_kcp_settings_json(r#"{"mtu": 1400, "seed": "s3cret"}"#)?;
//! assert_eq!(config.mtu, 1400);
//! assert_eq!(config.security.name(), "aes-128-gcm");
//! assert!(Config::from_kcp_settings_json(r#"{"tti": 5}"#).is_err());
//!
//! let loaded = Config::from_json_any(
//!     r#"{"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "s", "mtuu": 1}}}"#,
//! )?;
//! assert_eq!(loaded.shape, Shape::StreamSettingsWrapper);
//! assert_eq!(loaded.config.security.name(), "aes-128-gcm");
//! assert_eq!(
//!     loaded.warnings[0].to_string(),
//!     "unknown key streamSettings.kcpSettings.mtuu is ignored (did you mean \"mtu\"?)"
//! );
//! // A seed where it is not read stops the import.
//! assert!(Config::from_json_any(r#"{"network": "kcp", "seed": "s"}"#).is_err());
//! # Ok::<(), mkcp_proto::ConfigError>(())
//! ```

mod finalmask;
mod kcp;
mod obj;
mod shape;
mod stream;
#[cfg(test)]
mod tests;

use serde_json::Value;

pub use finalmask::MaskOrder;
pub use shape::{Loaded, Shape, Warning};

use super::{Config, ConfigError};

/// Largest capacity (MiB/s) or buffer size (MiB) accepted: `4096 × 1048576` overflows u32.
pub const MAX_MIB: u32 = 4095;

/// What V2Ray uses for a `readBufferSize`/`writeBufferSize` of 0: 512 KiB.
pub const ZERO_BUFFER_BYTES: u32 = 512 * 1024;

impl Config {
    /// Reads a config file of any [`Shape`] (decided from its top-level keys), with
    /// V2Ray's defaults and checks, failing closed on security settings it would not
    /// apply. See the [module docs](self).
    pub fn from_json_any(json: &str) -> Result<Loaded, ConfigError> {
        Config::from_json_any_value(&parse_json(json)?)
    }

    /// [`Config::from_json_any`] on an already parsed JSON value.
    pub fn from_json_any_value(value: &Value) -> Result<Loaded, ConfigError> {
        shape::load(value, Shape::detect(value), MaskOrder::default())
    }

    /// [`Config::from_json_any`] reading `finalmask.udp` lists in `mask_order` (the Xray
    /// version of the peer) instead of the current releases' order.
    pub fn from_json_any_with(json: &str, mask_order: MaskOrder) -> Result<Loaded, ConfigError> {
        let value = parse_json(json)?;
        shape::load(&value, Shape::detect(&value), mask_order)
    }

    /// Reads a V2Ray `kcpSettings` object (PROTOCOL.md §4) with V2Ray's defaults and checks.
    ///
    /// Errors name the field, the value and what is allowed, e.g.
    /// `mtu = 575 is out of range: allowed 576 to 1460`.
    pub fn from_kcp_settings_json(json: &str) -> Result<Config, ConfigError> {
        Config::from_kcp_settings_value(&parse_json(json)?)
    }

    /// [`Config::from_kcp_settings_json`] on an already parsed JSON value.
    pub fn from_kcp_settings_value(kcp_settings: &Value) -> Result<Config, ConfigError> {
        Ok(shape::load(kcp_settings, Shape::KcpSettings, MaskOrder::default())?.config)
    }

    /// Reads a `streamSettings` object whose `network` is `"kcp"` or `"mkcp"`: its
    /// `kcpSettings` (absent = defaults) and, if present, Xray's `finalmask.udp` masks.
    pub fn from_stream_settings_json(json: &str) -> Result<Config, ConfigError> {
        Config::from_stream_settings_value(&parse_json(json)?)
    }

    /// [`Config::from_stream_settings_json`] on an already parsed JSON value.
    pub fn from_stream_settings_value(stream_settings: &Value) -> Result<Config, ConfigError> {
        Ok(shape::load(stream_settings, Shape::StreamSettings, MaskOrder::default())?.config)
    }

    /// Reads a whole V2Ray or Xray config file and returns the mKCP settings of the first
    /// inbound, then outbound, whose `streamSettings.network` is `"kcp"`/`"mkcp"`, or else
    /// the global `transport.kcpSettings`. The string says which part was used, e.g.
    /// `inbounds[0].streamSettings` (a stream without its own `kcpSettings` takes the
    /// global ones, as in V2Ray; the string then says so). Other mKCP streams must have
    /// the same header and envelope.
    pub fn from_v2ray_config_json(json: &str) -> Result<(Config, String), ConfigError> {
        Config::from_v2ray_config_value(&parse_json(json)?)
    }

    /// [`Config::from_v2ray_config_json`] on an already parsed JSON value.
    pub fn from_v2ray_config_value(config: &Value) -> Result<(Config, String), ConfigError> {
        let loaded = shape::load(config, Shape::WholeConfig, MaskOrder::default())?;
        Ok((loaded.config, loaded.found))
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
