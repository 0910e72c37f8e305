//! Parsers for netem-style option values: `30ms`, `2%`, `100mbit`, `64kb`.
//!
//! They follow `tc netem`'s spellings where those are unambiguous, so that
//! `mkcp netem --delay 30ms --loss 2% --rate 100mbit --queue 64kb` reads like the `tc`
//! command it replaces. Units are case-insensitive; numbers may have a decimal fraction
//! (`1.5ms`, `0.5%`, `2.5gbit`). Every error says what was wrong and gives an example of
//! what works.
//!
//! ```
//! use std::time::Duration;
//! use mkcp_netem::parse::{parse_duration, parse_percent, parse_rate, parse_size};
//!
//! assert_eq!(parse_duration("30ms").unwrap(), Duration::from_millis(30));
//! assert_eq!(parse_percent("2%").unwrap(), 0.02);
//! assert_eq!(parse_rate("100mbit").unwrap(), 100_000_000);
//! assert_eq!(parse_size("64kib").unwrap(), 65_536);
//! assert!(parse_duration("30").unwrap_err().to_string().contains("missing unit"));
//! ```

use std::time::Duration;

/// A value that could not be parsed; its message names the value, the input and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct ParseError {
    what: &'static str,
    input: String,
    reason: String,
}

impl ParseError {
    fn new(what: &'static str, input: &str, reason: impl Into<String>) -> Self {
        Self {
            what,
            input: input.to_owned(),
            reason: reason.into(),
        }
    }

    /// What kind of value was being parsed (`"duration"`, `"percentage"`, `"rate"`,
    /// `"size"`).
    pub fn what(&self) -> &'static str {
        self.what
    }

    /// The text that failed to parse.
    pub fn input(&self) -> &str {
        &self.input
    }
}

/// A decimal number split from its unit: `"1.5ms"` -> (1, "5", "ms").
struct Number<'a> {
    int: &'a str,
    frac: &'a str,
    unit: &'a str,
}

fn split_number<'a>(
    what: &'static str,
    input: &'a str,
    example: &str,
) -> Result<Number<'a>, ParseError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ParseError::new(
            what,
            input,
            format!("empty; expected e.g. {example:?}"),
        ));
    }
    if s.starts_with('-') {
        return Err(ParseError::new(what, input, "must not be negative"));
    }
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(end);
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return Err(ParseError::new(
            what,
            input,
            format!("expected a number followed by a unit, e.g. {example:?}"),
        ));
    }
    Ok(Number {
        int,
        frac,
        unit: unit.trim(),
    })
}

/// `int.frac * scale`, exactly, truncating below 1; `None` on overflow.
fn scale(n: &Number<'_>, scale: u128) -> Option<u128> {
    let int: u128 = if n.int.is_empty() {
        0
    } else {
        n.int.parse().ok()?
    };
    let mut value = int.checked_mul(scale)?;
    // Digits beyond 1e-30 cannot matter for any unit here.
    let frac = &n.frac[..n.frac.len().min(30)];
    if !frac.is_empty() {
        let digits: u128 = frac.parse().ok()?;
        let denom = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        value = value.checked_add(digits.checked_mul(scale)? / denom)?;
    }
    Some(value)
}

/// Parses a duration with a unit: `ns`, `us` (or `µs`), `ms`, `s`. A bare `0` is allowed.
///
/// ```
/// use std::time::Duration;
/// use mkcp_netem::parse::parse_duration;
///
/// assert_eq!(parse_duration("250us").unwrap(), Duration::from_micros(250));
/// assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
/// assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
/// ```
pub fn parse_duration(input: &str) -> Result<Duration, ParseError> {
    const WHAT: &str = "duration";
    let n = split_number(WHAT, input, "30ms")?;
    let unit_ns: u128 = match n.unit.to_ascii_lowercase().as_str() {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        "" if n.int.trim_start_matches('0').is_empty() && n.frac.trim_matches('0').is_empty() => 1,
        "" => {
            return Err(ParseError::new(
                WHAT,
                input,
                "missing unit; write e.g. \"30ms\" (units: ns, us, ms, s)",
            ))
        }
        other => {
            return Err(ParseError::new(
                WHAT,
                input,
                format!("unknown unit {other:?}; use ns, us, ms or s, e.g. \"30ms\""),
            ))
        }
    };
    let ns = scale(&n, unit_ns).ok_or_else(|| ParseError::new(WHAT, input, "too large"))?;
    let ns = u64::try_from(ns).map_err(|_| ParseError::new(WHAT, input, "too large"))?;
    Ok(Duration::from_nanos(ns))
}

/// Parses a percentage with its `%` sign into a probability: `"2%"` is `0.02`.
///
/// The sign is required so that `0.02` (meant as a fraction) is not silently read as
/// 0.02 %.
///
/// ```
/// use mkcp_netem::parse::parse_percent;
///
/// assert_eq!(parse_percent("0.5%").unwrap(), 0.005);
/// assert_eq!(parse_percent("100%").unwrap(), 1.0);
/// assert!(parse_percent("0.02").is_err());
/// ```
pub fn parse_percent(input: &str) -> Result<f64, ParseError> {
    const WHAT: &str = "percentage";
    let n = split_number(WHAT, input, "2%")?;
    if n.unit != "%" {
        let reason = if n.unit.is_empty() {
            "missing \"%\"; write e.g. \"2%\" for two percent".to_owned()
        } else {
            format!(
                "unexpected {:?} after the number; write e.g. \"2%\"",
                n.unit
            )
        };
        return Err(ParseError::new(WHAT, input, reason));
    }
    let number = format!("{}.{}", if n.int.is_empty() { "0" } else { n.int }, n.frac);
    let pct: f64 = number
        .trim_end_matches('.')
        .parse()
        .map_err(|_| ParseError::new(WHAT, input, "not a number; write e.g. \"2%\""))?;
    if !(0.0..=100.0).contains(&pct) {
        return Err(ParseError::new(WHAT, input, "must be between 0% and 100%"));
    }
    Ok(pct / 100.0)
}

/// Parses a rate into bits per second, with `tc`'s units:
///
/// | unit | meaning |
/// | --- | --- |
/// | `bit` or none | bits per second |
/// | `kbit`, `mbit`, `gbit`, `tbit` | 10^3, 10^6, 10^9, 10^12 bits per second |
/// | `kibit`, `mibit`, `gibit`, `tibit` | 2^10, 2^20, 2^30, 2^40 bits per second |
/// | `bps`, `kbps`, `mbps`, `gbps`, `tbps` | **bytes** per second (times 10^3, ...), as in `tc` |
/// | `kibps`, `mibps`, `gibps`, `tibps` | bytes per second times 2^10, ... |
///
/// ```
/// use mkcp_netem::parse::parse_rate;
///
/// assert_eq!(parse_rate("100mbit").unwrap(), 100_000_000);
/// assert_eq!(parse_rate("1.5gbit").unwrap(), 1_500_000_000);
/// assert_eq!(parse_rate("1mbps").unwrap(), 8_000_000); // megabytes, like tc
/// assert!(parse_rate("0mbit").is_err());
/// ```
pub fn parse_rate(input: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "rate";
    let n = split_number(WHAT, input, "100mbit")?;
    let unit = n.unit.to_ascii_lowercase();
    let (prefix, bytes) = if let Some(p) = unit.strip_suffix("bit") {
        (p, false)
    } else if let Some(p) = unit.strip_suffix("bps") {
        (p, true)
    } else if unit.is_empty() {
        ("", false)
    } else {
        return Err(ParseError::new(
            WHAT,
            input,
            format!(
                "unknown unit {:?}; use bit, kbit, mbit, gbit (bits/s) or bps, kbps, mbps \
                 (bytes/s, as in tc), e.g. \"100mbit\"",
                n.unit
            ),
        ));
    };
    let Some(mult) = prefix_multiplier(prefix) else {
        return Err(ParseError::new(
            WHAT,
            input,
            format!(
                "unknown prefix {prefix:?}; use k, m, g, t or ki, mi, gi, ti, e.g. \"100mbit\""
            ),
        ));
    };
    let mult = if bytes { mult * 8 } else { mult };
    let bps = scale(&n, mult).ok_or_else(|| ParseError::new(WHAT, input, "too large"))?;
    let bps = u64::try_from(bps).map_err(|_| ParseError::new(WHAT, input, "too large"))?;
    if bps == 0 {
        return Err(ParseError::new(
            WHAT,
            input,
            "must be at least 1 bit/s (leave the option out for an unlimited rate)",
        ));
    }
    Ok(bps)
}

/// Parses a size into bytes: none or `b` for bytes, `k`/`kb`, `m`/`mb`, `g`/`gb` for powers
/// of 1000, `kib`, `mib`, `gib` for powers of 1024.
///
/// ```
/// use mkcp_netem::parse::parse_size;
///
/// assert_eq!(parse_size("1500").unwrap(), 1500);
/// assert_eq!(parse_size("64kb").unwrap(), 64_000);
/// assert_eq!(parse_size("1MiB").unwrap(), 1_048_576);
/// ```
pub fn parse_size(input: &str) -> Result<usize, ParseError> {
    const WHAT: &str = "size";
    let n = split_number(WHAT, input, "64kb")?;
    let unit = n.unit.to_ascii_lowercase();
    let prefix = unit.strip_suffix('b').unwrap_or(&unit);
    let mult = match prefix_multiplier(prefix) {
        Some(m) if prefix != "t" && prefix != "ti" => m,
        _ => {
            return Err(ParseError::new(
                WHAT,
                input,
                format!(
                    "unknown unit {:?}; use b, kb, mb, gb or kib, mib, gib, e.g. \"64kb\"",
                    n.unit
                ),
            ))
        }
    };
    let bytes = scale(&n, mult).ok_or_else(|| ParseError::new(WHAT, input, "too large"))?;
    usize::try_from(bytes).map_err(|_| ParseError::new(WHAT, input, "too large"))
}

fn prefix_multiplier(prefix: &str) -> Option<u128> {
    Some(match prefix {
        "" => 1,
        "k" => 1_000,
        "m" => 1_000_000,
        "g" => 1_000_000_000,
        "t" => 1_000_000_000_000,
        "ki" => 1 << 10,
        "mi" => 1 << 20,
        "gi" => 1 << 30,
        "ti" => 1 << 40,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = |s: &str, d: Duration| assert_eq!(parse_duration(s), Ok(d), "{s}");
        ok("30ms", Duration::from_millis(30));
        ok(" 30 ms ", Duration::from_millis(30));
        ok("1.25ms", Duration::from_micros(1250));
        ok(".5s", Duration::from_millis(500));
        ok("5.s", Duration::from_secs(5));
        ok("7ns", Duration::from_nanos(7));
        ok("10µs", Duration::from_micros(10));
        ok("2S", Duration::from_secs(2));
        ok("0", Duration::ZERO);
        ok("0.0", Duration::ZERO);
        ok("0ms", Duration::ZERO);
        ok("1.0000000001s", Duration::from_secs(1));
        for bad in [
            "",
            "ms",
            "30",
            "-5ms",
            "3h",
            "1..2ms",
            ".ms",
            "1e3ms",
            "99999999999999999999s",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e.what(), "duration");
            assert_eq!(e.input(), bad);
        }
        assert_eq!(
            parse_duration("30").unwrap_err().to_string(),
            "invalid duration \"30\": missing unit; write e.g. \"30ms\" (units: ns, us, ms, s)"
        );
    }

    #[test]
    fn percents() {
        assert_eq!(parse_percent("2%"), Ok(0.02));
        assert_eq!(parse_percent("0%"), Ok(0.0));
        assert_eq!(parse_percent("12.5 %"), Ok(0.125));
        assert_eq!(parse_percent("100%"), Ok(1.0));
        for bad in ["2", "0.02", "101%", "-1%", "%", "2%%", "abc", "1.2.3%"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
        assert!(parse_percent("2")
            .unwrap_err()
            .to_string()
            .contains("missing \"%\""));
    }

    #[test]
    fn rates() {
        let ok = |s: &str, r: u64| assert_eq!(parse_rate(s), Ok(r), "{s}");
        ok("100mbit", 100_000_000);
        ok("100Mbit", 100_000_000);
        ok("1gbit", 1_000_000_000);
        ok("2.5kbit", 2_500);
        ok("64kibit", 65_536);
        ok("9600", 9_600);
        ok("9600bit", 9_600);
        ok("1kbps", 8_000);
        ok("1mibps", 8 * 1_048_576);
        for bad in [
            "",
            "0",
            "0mbit",
            "100mb",
            "100 megabit",
            "100xbit",
            "-1mbit",
            "1e9",
            "99999999999tbit",
        ] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert!(parse_rate("100mb")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
    }

    #[test]
    fn sizes() {
        let ok = |s: &str, n: usize| assert_eq!(parse_size(s), Ok(n), "{s}");
        ok("0", 0);
        ok("1500", 1500);
        ok("1500b", 1500);
        ok("64k", 64_000);
        ok("64KB", 64_000);
        ok("1.5mb", 1_500_000);
        ok("2kib", 2048);
        ok("1g", 1_000_000_000);
        for bad in ["", "kb", "1tb", "1x", "-3kb", "1kbit"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
