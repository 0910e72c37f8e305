//! Turns `--config FILE` and the kcpSettings flags into one validated
//! [`mkcp_proto::Config`].
//!
//! Order of precedence: flags, then the file, then V2Ray's defaults. The seed may also
//! come from `--seed-file` (like `--seed`) or, below the file, from the [`SEED_ENV`]
//! environment variable. The file is read by
//! [`Config::from_json_any`], which takes every shape of V2Ray/Xray file, says where it
//! found the settings (the caller logs it), warns about keys it does not apply, and
//! refuses a file whose seed or header it would not apply.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use mkcp_proto::config::json::{MAX_MIB, ZERO_BUFFER_BYTES};
use mkcp_proto::config::{MaskOrder, MIB};
use mkcp_proto::{Config, ConfigError, HeaderKind, Security};

use crate::cli::KcpArgs;

/// A bad command line or configuration: printed as one line, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The environment variable holding the seed when neither `--seed`, `--seed-file` nor
/// the `--config` file gives one (an empty value counts as unset).
pub const SEED_ENV: &str = "MKCP_SEED";

/// Largest seed file read (a seed is a short string; this bounds a wrong path).
const MAX_SEED_FILE: u64 = 64 * 1024;

/// The settings to run with, and where they came from (for the startup log).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated settings.
    pub config: Config,
    /// `None` when no file was given, else e.g. `inbounds[0].streamSettings of cfg.json`.
    pub source: Option<String>,
    /// One line per key of the file that is not applied, e.g.
    /// `config cfg.json: unknown key mtuu is ignored (did you mean "mtu"?)`.
    pub warnings: Vec<String>,
    /// The Xray version assumed for the file's `finalmask.udp` order, if it had one.
    pub finalmask_order: Option<MaskOrder>,
    /// Where the seed came from when not from `--seed` or the file: `--seed-file PATH`
    /// or `MKCP_SEED`.
    pub seed_source: Option<String>,
    /// `--max-rate-total`: bytes per second all sessions of the process send together.
    /// (`--max-rate` is in `config.tuning.max_send_rate`.)
    pub max_rate_total: Option<u64>,
}

/// Reads `--config` (if any), applies the flags and validates.
pub fn load(args: &KcpArgs) -> Result<Loaded, UsageError> {
    load_with_env(args, std::env::var(SEED_ENV).ok())
}

/// [`load`] with the value of [`SEED_ENV`] given.
pub fn load_with_env(args: &KcpArgs, env_seed: Option<String>) -> Result<Loaded, UsageError> {
    let mut loaded = match &args.config {
        Some(path) => load_file(path, args.finalmask_order.unwrap_or_default())?,
        None => Loaded {
            config: Config::default(),
            source: None,
            warnings: Vec::new(),
            finalmask_order: None,
            seed_source: None,
            max_rate_total: None,
        },
    };
    if let Some(path) = &args.seed_file {
        let seed = read_seed_file(path)?;
        loaded.config.security = Security::AesGcm { seed };
        loaded.seed_source = Some(format!("--seed-file {}", path.display()));
    } else if args.seed.is_none() {
        if let Some(seed) = env_seed.filter(|s| !s.is_empty()) {
            match &loaded.config.security {
                Security::AesGcm { seed: file_seed } if *file_seed != seed => {
                    loaded.warnings.push(format!(
                        "{SEED_ENV} is set but ignored: the seed of --config applies"
                    ));
                }
                Security::AesGcm { .. } => {}
                Security::Legacy => {
                    loaded.config.security = Security::AesGcm { seed };
                    loaded.seed_source = Some(SEED_ENV.to_string());
                }
                // Another envelope chosen by the file: it stays.
                _ => loaded.warnings.push(format!(
                    "{SEED_ENV} is set but ignored: --config chooses the envelope"
                )),
            }
        }
    }
    apply_flags(&mut loaded.config, args)?;
    loaded.max_rate_total = args.max_rate_total;
    Ok(loaded)
}

/// The seed in `path`: its content without one trailing line break. Empty is an error
/// (a credential that was not filled in), as is a second line.
fn read_seed_file(path: &Path) -> Result<String, UsageError> {
    use std::io::Read;
    let shown = path.display();
    let err = |what: &str| UsageError(format!("--seed-file {shown}: {what}"));
    let file = std::fs::File::open(path).map_err(|e| err(&format!("cannot read the file: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_SEED_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(&format!("cannot read the file: {e}")))?;
    if bytes.len() as u64 > MAX_SEED_FILE {
        return Err(err("larger than 64 KiB: not a seed file"));
    }
    let text = String::from_utf8(bytes).map_err(|_| err("the seed is not UTF-8 text"))?;
    let seed = text
        .strip_suffix('\n')
        .map(|s| s.strip_suffix('\r').unwrap_or(s))
        .unwrap_or(&text);
    if seed.is_empty() {
        return Err(err("the file is empty (no seed)"));
    }
    if seed.contains('\n') {
        return Err(err(
            "more than one line: the seed is the whole file, without its final line break",
        ));
    }
    Ok(seed.to_string())
}

fn load_file(path: &Path, order: MaskOrder) -> Result<Loaded, UsageError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("config {shown}: cannot read the file: {e}")))?;
    let loaded = Config::from_json_any_with(&text, order)
        .map_err(|e| UsageError(format!("config {shown}: {e}")))?;
    Ok(Loaded {
        warnings: loaded
            .warnings
            .iter()
            .map(|w| format!("config {shown}: {w}"))
            .collect(),
        source: Some(format!("{} of {shown}", loaded.found)),
        finalmask_order: loaded.finalmask_order,
        config: loaded.config,
        seed_source: None,
        max_rate_total: None,
    })
}

fn flag_error(flag: &str, e: impl fmt::Display) -> UsageError {
    UsageError(format!("invalid {flag}: {e}"))
}

fn check_range(
    flag: &str,
    field: &'static str,
    value: u32,
    lo: u32,
    hi: u32,
    allowed: &'static str,
) -> Result<u32, UsageError> {
    if value < lo || value > hi {
        return Err(flag_error(
            flag,
            ConfigError::OutOfRange {
                field,
                value: u64::from(value),
                allowed,
            },
        ));
    }
    Ok(value)
}

fn buffer_bytes(flag: &str, field: &'static str, mib: u32) -> Result<u32, UsageError> {
    let mib = check_range(
        flag,
        field,
        mib,
        0,
        MAX_MIB,
        "0 to 4095 (MiB; 0 means 512 KiB)",
    )?;
    Ok(if mib == 0 {
        ZERO_BUFFER_BYTES
    } else {
        mib * MIB
    })
}

/// Applies the flags that were given, checking each against V2Ray's range, then
/// validates the whole.
pub fn apply_flags(config: &mut Config, args: &KcpArgs) -> Result<(), UsageError> {
    if let Some(v) = args.mtu {
        config.mtu = check_range("--mtu", "mtu", v, 576, 1460, "576 to 1460")?;
    }
    if let Some(v) = args.tti {
        config.tti = check_range("--tti", "tti", v, 10, 100, "10 to 100 (ms)")?;
    }
    if let Some(v) = args.uplink {
        config.uplink_capacity = check_range(
            "--uplink",
            "uplinkCapacity",
            v,
            0,
            MAX_MIB,
            "0 to 4095 (MiB/s)",
        )?;
    }
    if let Some(v) = args.downlink {
        config.downlink_capacity = check_range(
            "--downlink",
            "downlinkCapacity",
            v,
            0,
            MAX_MIB,
            "0 to 4095 (MiB/s)",
        )?;
    }
    if let Some(v) = args.congestion {
        config.congestion = v;
    }
    if let Some(v) = args.read_buffer {
        config.read_buffer_size = buffer_bytes("--read-buffer", "readBufferSize", v)?;
    }
    if let Some(v) = args.write_buffer {
        config.write_buffer_size = buffer_bytes("--write-buffer", "writeBufferSize", v)?;
    }
    if let Some(h) = &args.header {
        config.header = h.clone();
    }
    if let Some(seed) = &args.seed {
        config.security = Security::AesGcm { seed: seed.clone() };
    }
    if let Some(rate) = args.max_rate {
        config.tuning.max_send_rate = Some(rate);
    }
    config.validate().map_err(|e| {
        let flag = match e.innermost() {
            ConfigError::OutOfRange { field, .. } => match *field {
                "mtu" => "--mtu",
                "tti" => "--tti",
                "uplinkCapacity" => "--uplink",
                "downlinkCapacity" => "--downlink",
                "readBufferSize" => "--read-buffer",
                "writeBufferSize" => "--write-buffer",
                "max_send_rate" => "--max-rate",
                _ => "settings",
            },
            ConfigError::Header(_) => "--header",
            _ => "settings",
        };
        flag_error(flag, e)
    })
}

/// One line describing the settings, for the startup log.
pub fn describe(config: &Config) -> String {
    describe_parts(config).join(", ")
}

/// The parts of [`describe`]: window settings first, then buffers and the envelope.
pub fn describe_parts(config: &Config) -> [String; 2] {
    let buffer = |bytes: u32| {
        if bytes % MIB == 0 {
            format!("{} MiB", bytes / MIB)
        } else {
            format!("{} KiB", bytes / 1024)
        }
    };
    [
        format!(
            "mtu {}, tti {} ms, capacity up {} / down {} MiB/s, congestion {}",
            config.mtu,
            config.tti,
            config.uplink_capacity,
            config.downlink_capacity,
            if config.congestion { "on" } else { "off" },
        ),
        format!(
            "buffers read {} / write {}, header {}, {}",
            buffer(config.read_buffer_size),
            buffer(config.write_buffer_size),
            config.header.name(),
            match config.security {
                Security::Legacy => "legacy envelope (no seed)",
                Security::AesGcm { .. } => "aes-128-gcm (seed)",
                _ => config.security.name(),
            },
        ),
    ]
}

/// The effective settings as `name: value` lines for `mkcp check` (the seed redacted).
pub fn report(loaded: &Loaded) -> Vec<String> {
    let c = &loaded.config;
    let buffer = |bytes: u32| {
        if bytes % MIB == 0 {
            format!("{} MiB", bytes / MIB)
        } else {
            format!("{} KiB", bytes / 1024)
        }
    };
    let header = match &c.header {
        HeaderKind::Dns { domain } => format!("dns (domain {domain}, {} bytes)", c.header_size()),
        HeaderKind::None => "none".to_string(),
        h => format!("{} ({} bytes)", h.name(), c.header_size()),
    };
    let (seed, envelope) = match &c.security {
        Security::AesGcm { seed } if seed.is_empty() => ("set, empty", "aes-128-gcm"),
        Security::AesGcm { .. } => ("<redacted>", "aes-128-gcm"),
        Security::Legacy => (
            "absent",
            "legacy (checksum + xor: obfuscation, not encryption)",
        ),
        Security::Raw => ("absent", "none (raw: no checksum, no encryption)"),
        _ => ("absent", c.security.name()),
    };
    let mut lines = vec![
        format!(
            "settings from: {}",
            loaded
                .source
                .as_deref()
                .unwrap_or("flags and V2Ray's defaults")
        ),
        format!("mtu: {}", c.mtu),
        format!("tti: {} ms", c.tti),
        format!("uplinkCapacity: {} MiB/s", c.uplink_capacity),
        format!("downlinkCapacity: {} MiB/s", c.downlink_capacity),
        format!("congestion: {}", c.congestion),
        format!("readBufferSize: {}", buffer(c.read_buffer_size)),
        format!("writeBufferSize: {}", buffer(c.write_buffer_size)),
        format!("header: {header}"),
        match &loaded.seed_source {
            Some(source) => format!("seed: {seed} (from {source})"),
            None => format!("seed: {seed}"),
        },
        format!("envelope: {envelope}"),
        format!(
            "finalmask: {}",
            loaded.finalmask_order.map_or("none", |o| o.describe())
        ),
        format!(
            "max-rate: {}",
            c.tuning.max_send_rate.map_or_else(
                || "none (each session paces at the measured path rate)".to_string(),
                |r| format!("{} per session", show_rate(r))
            )
        ),
        format!(
            "max-rate-total: {}",
            loaded.max_rate_total.map_or_else(
                || "none".to_string(),
                |r| format!("{} for all sessions of the process", show_rate(r))
            )
        ),
        format!(
            "derived: payload {} bytes per segment, sending window {} segments, receiving \
             window {} segments",
            c.mss(),
            c.sending_window(),
            c.receiving_window()
        ),
    ];
    lines.push(format!("warnings: {}", loaded.warnings.len()));
    lines.extend(loaded.warnings.iter().map(|w| format!("warning: {w}")));
    lines
}

/// A rate in bytes per second for people: `2 MiB/s (2097152 bytes/s)`.
pub fn show_rate(bytes_per_sec: u64) -> String {
    let mib = bytes_per_sec as f64 / f64::from(MIB);
    if mib >= 1.0 {
        format!("{mib:.2} MiB/s ({bytes_per_sec} bytes/s)")
    } else {
        format!(
            "{:.1} KiB/s ({bytes_per_sec} bytes/s)",
            bytes_per_sec as f64 / 1024.0
        )
    }
}

/// The warning to log when the legacy envelope would carry traffic off this host, if so.
pub fn legacy_warning(config: &Config, addr: &SocketAddr) -> Option<String> {
    if !matches!(config.security, Security::Legacy) || addr.ip().is_loopback() {
        return None;
    }
    Some(format!(
        "no seed: mKCP traffic on {addr} uses V2Ray's legacy envelope, which is obfuscation \
         (checksum + xor), not encryption; anyone on the path can read and forge it. Set the \
         same --seed (or kcpSettings.seed) on both ends for AES-128-GCM"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn seed_of(l: &Loaded) -> Option<&str> {
        match &l.config.security {
            Security::AesGcm { seed } => Some(seed),
            _ => None,
        }
    }

    #[test]
    fn seed_sources_flags_then_file_then_env() {
        let env = || Some("from-env".to_string());
        // Only the environment.
        let l = load_with_env(&KcpArgs::default(), env()).unwrap();
        assert_eq!(seed_of(&l), Some("from-env"));
        assert_eq!(l.seed_source.as_deref(), Some("MKCP_SEED"));
        // Empty counts as unset.
        let l = load_with_env(&KcpArgs::default(), Some(String::new())).unwrap();
        assert_eq!(seed_of(&l), None);
        // The config file's seed beats the environment (with a warning).
        let cfg = file(r#"{"seed": "from-config"}"#);
        let l = load_with_env(&with_file(&cfg), env()).unwrap();
        assert_eq!(seed_of(&l), Some("from-config"));
        assert!(l
            .warnings
            .iter()
            .any(|w| w.contains("MKCP_SEED is set but ignored")));
        // --seed-file beats both; one trailing line break is not part of the seed.
        let sf = file("from-file\r\n");
        let args = KcpArgs {
            seed_file: Some(sf.path().to_path_buf()),
            ..with_file(&cfg)
        };
        let l = load_with_env(&args, env()).unwrap();
        assert_eq!(seed_of(&l), Some("from-file"));
        assert!(l
            .seed_source
            .as_deref()
            .unwrap()
            .starts_with("--seed-file "));
        // --seed beats the file and the environment.
        let args = KcpArgs {
            seed: Some("from-flag".into()),
            ..with_file(&cfg)
        };
        let l = load_with_env(&args, env()).unwrap();
        assert_eq!(seed_of(&l), Some("from-flag"));
        assert_eq!(l.seed_source, None);
    }

    #[test]
    fn bad_seed_files_are_usage_errors() {
        for (text, what) in [
            ("", "empty"),
            ("\n", "empty"),
            ("a\nb\n", "more than one line"),
        ] {
            let sf = file(text);
            let args = KcpArgs {
                seed_file: Some(sf.path().to_path_buf()),
                ..KcpArgs::default()
            };
            let e = load_with_env(&args, None).unwrap_err();
            assert!(e.0.contains(what) && e.0.starts_with("--seed-file "), "{e}");
        }
        let args = KcpArgs {
            seed_file: Some("/nonexistent/seed".into()),
            ..KcpArgs::default()
        };
        let e = load_with_env(&args, None).unwrap_err();
        assert!(e.0.contains("cannot read the file"), "{e}");
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn with_file(f: &tempfile::NamedTempFile) -> KcpArgs {
        KcpArgs {
            config: Some(f.path().to_path_buf()),
            ..KcpArgs::default()
        }
    }

    #[test]
    fn defaults_are_v2rays() {
        let l = load(&KcpArgs::default()).unwrap();
        assert_eq!(l.config, Config::default());
        assert!(l.source.is_none());
    }

    #[test]
    fn bare_kcp_settings() {
        let f = file(r#"{"mtu": 1400, "seed": "x"} // comment"#);
        let l = load(&with_file(&f)).unwrap();
        assert_eq!(l.config.mtu, 1400);
        assert_eq!(l.config.security.name(), "aes-128-gcm");
        assert!(l.source.unwrap().starts_with("kcpSettings object of "));
    }

    #[test]
    fn stream_settings() {
        let f =
            file(r#"{"network": "kcp", "kcpSettings": {"tti": 20, "header": {"type": "srtp"}}}"#);
        let l = load(&with_file(&f)).unwrap();
        assert_eq!(l.config.tti, 20);
        assert_eq!(l.config.header.name(), "srtp");
    }

    #[test]
    fn whole_config_names_where_found() {
        let f = file(
            r#"{
              # a comment
              "inbounds": [{"port": 1, "protocol": "socks"},
                           {"port": 2, "protocol": "dokodemo-door",
                            "streamSettings": {"network": "mkcp", "kcpSettings": {"mtu": 1200}}}]
            }"#,
        );
        let l = load(&with_file(&f)).unwrap();
        assert_eq!(l.config.mtu, 1200);
        assert!(
            l.source
                .as_deref()
                .unwrap()
                .starts_with("inbounds[1].streamSettings of "),
            "{:?}",
            l.source
        );
    }

    #[test]
    fn whole_config_without_mkcp_is_an_error() {
        let f = file(r#"{"inbounds": [{"port": 1, "protocol": "socks"}]}"#);
        let e = load(&with_file(&f)).unwrap_err();
        assert!(e.0.contains("no mKCP settings found"), "{e}");
    }

    #[test]
    fn flags_override_the_file() {
        let f = file(r#"{"mtu": 1400, "tti": 20}"#);
        let mut args = with_file(&f);
        args.mtu = Some(1300);
        args.write_buffer = Some(0);
        let l = load(&args).unwrap();
        assert_eq!((l.config.mtu, l.config.tti), (1300, 20));
        assert_eq!(l.config.write_buffer_size, 512 * 1024);
    }

    #[test]
    fn bad_flag_names_field_value_and_range() {
        let args = KcpArgs {
            tti: Some(5),
            ..KcpArgs::default()
        };
        assert_eq!(
            load(&args).unwrap_err().0,
            "invalid --tti: tti = 5 is out of range: allowed 10 to 100 (ms)"
        );
        let args = KcpArgs {
            read_buffer: Some(4096),
            ..KcpArgs::default()
        };
        let e = load(&args).unwrap_err().0;
        assert!(e.contains("readBufferSize = 4096"), "{e}");
    }

    #[test]
    fn bad_file_value_names_the_path() {
        let f = file(
            r#"{"outbounds": [{"protocol": "freedom", "streamSettings": {"network": "kcp", "kcpSettings": {"mtu": 99}}}]}"#,
        );
        let e = load(&with_file(&f)).unwrap_err().0;
        assert!(
            e.contains("outbounds[0].streamSettings.kcpSettings") && e.contains("mtu = 99"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn missing_file() {
        let args = KcpArgs {
            config: Some("/nonexistent/mkcp.json".into()),
            ..KcpArgs::default()
        };
        let e = load(&args).unwrap_err().0;
        assert!(
            e.starts_with("config /nonexistent/mkcp.json: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn wrapped_settings_keep_the_seed() {
        for text in [
            r#"{"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "topsecret", "header": {"type": "dtls"}}}}"#,
            r#"{"kcpSettings": {"seed": "topsecret", "header": {"type": "dtls"}}}"#,
        ] {
            let f = file(text);
            let l = load(&with_file(&f)).unwrap();
            assert_eq!(l.config.security.name(), "aes-128-gcm", "{text}");
            assert_eq!(l.config.header, HeaderKind::Dtls, "{text}");
        }
    }

    #[test]
    fn unknown_keys_become_warnings_naming_the_file() {
        let f = file(r#"{"mtuu": 1400}"#);
        let l = load(&with_file(&f)).unwrap();
        assert_eq!(
            l.warnings,
            [format!(
                "config {}: unknown key mtuu is ignored (did you mean \"mtu\"?)",
                f.path().display()
            )]
        );
    }

    #[test]
    fn rate_limits_parse_with_units_and_show_in_the_report() {
        let parse = crate::cli::parse_max_rate("max-rate");
        assert_eq!(parse("2MiB"), Ok(2 << 20));
        assert_eq!(parse("2MiB/s"), Ok(2 << 20));
        assert_eq!(parse("500kb"), Ok(500_000));
        assert_eq!(parse("16mbit"), Ok(2_000_000));
        assert_eq!(parse("1mbps"), Ok(1_000_000));
        for bad in ["2", "2 parsecs", "100b", "-1MiB", ""] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(parse("2").unwrap_err().contains("missing unit"));
        assert!(parse("100b").unwrap_err().contains("1KiB"));
        let args = KcpArgs {
            max_rate: Some(2 << 20),
            max_rate_total: Some(8 << 20),
            ..KcpArgs::default()
        };
        let l = load_with_env(&args, None).unwrap();
        assert_eq!(l.config.tuning.max_send_rate, Some(2 << 20));
        assert_eq!(l.max_rate_total, Some(8 << 20));
        let text = report(&l).join("\n");
        for needle in [
            "max-rate: 2.00 MiB/s (2097152 bytes/s) per session",
            "max-rate-total: 8.00 MiB/s (8388608 bytes/s) for all sessions of the process",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        // A default config has no cap, whatever uplinkCapacity says.
        let l = load_with_env(
            &KcpArgs {
                uplink: Some(1),
                ..KcpArgs::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(l.config.tuning.max_send_rate, None);
    }

    #[test]
    fn report_redacts_the_seed_and_names_every_field() {
        let f = file(r#"{"seed": "topsecret", "header": {"type": "dtls"}, "mtuu": 1}"#);
        let l = load(&with_file(&f)).unwrap();
        let text = report(&l).join("\n");
        assert!(!text.contains("topsecret"), "{text}");
        for needle in [
            "settings from: kcpSettings object of ",
            "mtu: 1350",
            "tti: 50 ms",
            "uplinkCapacity: 5 MiB/s",
            "downlinkCapacity: 20 MiB/s",
            "congestion: false",
            "readBufferSize: 2 MiB",
            "writeBufferSize: 2 MiB",
            "header: dtls (13 bytes)",
            "seed: <redacted>",
            "envelope: aes-128-gcm",
            "max-rate: none",
            "max-rate-total: none",
            "warnings: 1",
            "warning: config ",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
    }

    #[test]
    fn legacy_warning_only_off_loopback() {
        let c = Config::default();
        assert!(legacy_warning(&c, &"127.0.0.1:1".parse().unwrap()).is_none());
        assert!(legacy_warning(&c, &"0.0.0.0:1".parse().unwrap()).is_some());
        let mut s = Config::default();
        s.security = Security::AesGcm { seed: "x".into() };
        assert!(legacy_warning(&s, &"0.0.0.0:1".parse().unwrap()).is_none());
    }
}
