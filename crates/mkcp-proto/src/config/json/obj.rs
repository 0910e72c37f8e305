//! Reading JSON objects with Go's `encoding/json` rules (case-insensitive keys, `null` as
//! absent), error values that name the JSON path, and the checks on keys this importer
//! does not read: a warning with a did-you-mean for the harmless ones, an error for the
//! ones that would silently drop a seed, header or mask.

use serde_json::{Map, Value};

use super::{MaskOrder, Warning};
use crate::config::ConfigError;

/// Keys that carry mKCP security settings (or hold them): found where they are not read,
/// they make the import fail instead of silently running without them.
const SECURITY_KEYS: [&str; 4] = ["seed", "header", "finalmask", "kcpSettings"];

/// What the readers collect besides the [`crate::Config`]: warnings, and which
/// `kcpSettings`/`finalmask` objects were applied (by address, so that the final check
/// can find the ones that were not).
#[derive(Default)]
pub(super) struct Reader<'a> {
    pub(super) warnings: Vec<Warning>,
    applied: Vec<&'a Value>,
    /// How `finalmask.udp` lists are read.
    pub(super) mask_order: MaskOrder,
    /// Whether a `finalmask` was read (so the order assumption matters).
    pub(super) finalmask_read: bool,
}

impl<'a> Reader<'a> {
    /// Records that the security settings in `value` were applied.
    pub(super) fn applied(&mut self, value: &'a Value) {
        self.applied.push(value);
    }

    /// Whether `value` (by address) was applied.
    pub(super) fn was_applied(&self, value: &Value) -> bool {
        self.applied.iter().any(|v| std::ptr::eq(*v, value))
    }

    /// Checks the keys of `obj` against `known` (matched like Go does). An unknown key is
    /// a warning, with a suggestion when it is close to a known one; it is an error when
    /// it is a security key (`seed`, `header`, `finalmask`, `kcpSettings`) that is not read
    /// here, or a near miss of one of `guarded`. `what` names the object in messages,
    /// e.g. `kcpSettings`. `base` is the object's full path, for the warnings; errors
    /// name the key from `obj`'s own path on, as the other errors do.
    pub(super) fn check_keys(
        &mut self,
        obj: &Obj<'_>,
        base: &str,
        what: &str,
        known: &[&'static str],
        guarded: &[&'static str],
    ) -> Result<(), ConfigError> {
        for (key, value) in obj.map {
            if known.iter().any(|k| key_matches(key, k)) {
                continue;
            }
            let path = join(base, key);
            let suggestion = did_you_mean(key, known);
            if !value.is_null() {
                // Errors name the key from the object on; callers add the location.
                if let Some(sec) = SECURITY_KEYS.iter().find(|k| key_matches(key, k)) {
                    return Err(ConfigError::NotApplied {
                        field: obj.field(key),
                        reason: format!("{sec:?} is not read in {what}{}", hint(sec)),
                    });
                }
                if let Some(s) = suggestion.filter(|s| guarded.contains(s)) {
                    return Err(ConfigError::NotApplied {
                        field: obj.field(key),
                        reason: format!("unknown key in {what} (did you mean {s:?}?)"),
                    });
                }
            }
            self.warnings.push(Warning::UnknownKey { path, suggestion });
        }
        Ok(())
    }
}

/// Where a misplaced security key belongs.
fn hint(key: &str) -> &'static str {
    match key {
        "seed" | "header" => "; it belongs in kcpSettings",
        "finalmask" => "; it belongs in streamSettings",
        _ => "",
    }
}

/// The known key closest to `key` (letter case ignored), if it is close enough to be
/// what was meant: at most 1 edit for names up to 4 letters, else 2, or `key` is a
/// prefix of it of 4 letters or more.
pub(super) fn did_you_mean(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let key = key.to_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for k in known {
        let lower = k.to_lowercase();
        let d = if key.chars().count() >= 4 && lower.starts_with(&key) {
            1
        } else {
            edit_distance(&key, &lower)
        };
        let limit = if lower.chars().count() <= 4 { 1 } else { 2 };
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, k));
        }
    }
    best.map(|(_, k)| k)
}

/// Edit distance over characters: insertions, deletions, substitutions and swaps of
/// two neighbours (optimal string alignment), each counting 1.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Case-insensitive key comparison in the manner of Go's `encoding/json` (Unicode simple
/// case folding, approximated by comparing lower- and upper-case forms per character).
pub(super) fn key_matches(key: &str, name: &str) -> bool {
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

pub(super) fn invalid_type(field: &str, expected: &'static str, found: &Value) -> ConfigError {
    ConfigError::InvalidType {
        field: field.to_string(),
        expected,
        found: describe(found),
    }
}

/// `path.key`, or `key` at the top level.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON object read with Go's rules, remembering its path for error messages.
pub(super) struct Obj<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) path: String,
}

impl<'a> Obj<'a> {
    /// `null` is `None` (Go leaves the field unset); anything but an object is an error.
    pub(super) fn new(value: &'a Value, path: &str) -> Result<Option<Obj<'a>>, ConfigError> {
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

    pub(super) fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Whether some key matches one of `names`.
    pub(super) fn has_any(&self, names: &[&str]) -> bool {
        self.map
            .keys()
            .any(|k| names.iter().any(|n| key_matches(k, n)))
    }

    /// The value of `key` matched case-insensitively, `null` included.
    pub(super) fn get_raw(&self, key: &str) -> Result<Option<&'a Value>, ConfigError> {
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
    pub(super) fn get(&self, key: &str) -> Result<Option<&'a Value>, ConfigError> {
        Ok(self.get_raw(key)?.filter(|v| !v.is_null()))
    }

    /// An unsigned integer field, returned as u64 so that range errors can show it.
    pub(super) fn get_uint(&self, key: &str) -> Result<Option<u64>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid_type(&self.field(key), "a non-negative integer", v)),
        }
    }

    pub(super) fn get_bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v
                .as_bool()
                .map(Some)
                .ok_or_else(|| invalid_type(&self.field(key), "true or false", v)),
        }
    }

    pub(super) fn get_str(&self, key: &str) -> Result<Option<&'a str>, ConfigError> {
        match self.get(key)? {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| invalid_type(&self.field(key), "a string", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_suggested() {
        const KNOWN: [&str; 3] = ["mtu", "uplinkCapacity", "seed"];
        assert_eq!(did_you_mean("mtuu", &KNOWN), Some("mtu"));
        assert_eq!(did_you_mean("MTUU", &KNOWN), Some("mtu"));
        assert_eq!(did_you_mean("uplink", &KNOWN), Some("uplinkCapacity"));
        assert_eq!(
            did_you_mean("uplinkCapasity", &KNOWN),
            Some("uplinkCapacity")
        );
        assert_eq!(did_you_mean("sede", &KNOWN), Some("seed"));
        assert_eq!(did_you_mean("colour", &KNOWN), None);
        assert_eq!(did_you_mean("tti", &KNOWN), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("sede", "seed"), 1);
        assert_eq!(did_you_mean("tit", &["tti"]), Some("tti"));
    }
}
