//! Finding the `v2ray` binary, and the skip policy for interop tests.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::V2rayError;

/// Environment variable naming the `v2ray` binary to use (takes precedence over `PATH`).
pub const ENV_BIN: &str = "MKCP_V2RAY_BIN";
/// Environment variable that, when set to `1`, makes interop tests skip instead of fail.
pub const ENV_SKIP: &str = "MKCP_SKIP_INTEROP";
/// Where the Debian `v2ray` package installs the binary; the last place [`locate`] looks.
pub const DEFAULT_BIN: &str = "/usr/bin/v2ray";
/// How to get the binary; included in [`V2rayError::NotFound`].
pub const INSTALL_HINT: &str =
    "install it with `apt-get install -y v2ray` (Debian package, V2Ray 4.34), \
     or run scripts/test.sh which installs it, or point MKCP_V2RAY_BIN at a v2ray binary; \
     set MKCP_SKIP_INTEROP=1 to skip interop tests deliberately";

/// A located `v2ray` executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2rayBin {
    path: PathBuf,
}

impl V2rayBin {
    /// Wraps an explicit path without checking it (use [`locate`] to search).
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        V2rayBin { path: path.into() }
    }

    /// Path of the executable.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// First line of `v2ray -version`, e.g. `V2Ray 4.34.0 (user) ...`.
    pub fn version(&self) -> Result<String, V2rayError> {
        let out = Command::new(&self.path)
            .arg("-version")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| V2rayError::io(format!("running {} -version", self.path.display()), e))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.lines().next().unwrap_or_default().trim().to_string())
    }

    /// Validates a JSON config with `v2ray -test` (no sockets are opened).
    /// `Err(V2rayError::ConfigRejected)` carries V2Ray's message without the banner.
    pub fn test_config(&self, config: &serde_json::Value) -> Result<(), V2rayError> {
        let dir = tempfile::Builder::new()
            .prefix("mkcp-v2ray-test-")
            .tempdir()
            .map_err(|e| V2rayError::io("creating temp dir", e))?;
        let path = dir.path().join("config.json");
        let text = serde_json::to_string_pretty(config).expect("JSON value serialises");
        std::fs::write(&path, text).map_err(|e| V2rayError::io("writing config", e))?;
        let out = Command::new(&self.path)
            .arg("-test")
            .arg("-config")
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| V2rayError::io(format!("running {} -test", self.path.display()), e))?;
        if out.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        let message = text
            .lines()
            .filter(|l| {
                !(l.starts_with("V2Ray ")
                    || l.contains("A unified platform")
                    || l.contains("Reading config:")
                    || l.trim().is_empty())
            })
            .collect::<Vec<_>>()
            .join("\n");
        Err(V2rayError::ConfigRejected {
            status: out.status,
            message,
        })
    }
}

/// Finds `v2ray`: `$MKCP_V2RAY_BIN` if set (it must exist), else the first executable
/// `v2ray` on `PATH`, else [`DEFAULT_BIN`].
///
/// Errors with [`V2rayError::NotFound`], whose message says how to install it.
pub fn locate() -> Result<V2rayBin, V2rayError> {
    locate_from(
        std::env::var_os(ENV_BIN),
        std::env::var_os("PATH"),
        Path::new(DEFAULT_BIN),
    )
}

/// [`locate`] with the environment passed in (testable without touching the process env).
pub(crate) fn locate_from(
    env_bin: Option<OsString>,
    path_var: Option<OsString>,
    fallback: &Path,
) -> Result<V2rayBin, V2rayError> {
    if let Some(bin) = env_bin.filter(|b| !b.is_empty()) {
        let p = PathBuf::from(bin);
        return if is_executable(&p) {
            Ok(V2rayBin { path: p })
        } else {
            Err(V2rayError::NotFound {
                looked: format!("{ENV_BIN}={} (not an executable file)", p.display()),
            })
        };
    }
    let mut looked = Vec::new();
    if let Some(path_var) = path_var {
        for dir in std::env::split_paths(&path_var) {
            let candidate = dir.join("v2ray");
            if is_executable(&candidate) {
                return Ok(V2rayBin { path: candidate });
            }
        }
        looked.push("PATH".to_string());
    }
    if is_executable(fallback) {
        return Ok(V2rayBin {
            path: fallback.to_path_buf(),
        });
    }
    looked.push(fallback.display().to_string());
    Err(V2rayError::NotFound {
        looked: looked.join(", "),
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// True when `MKCP_SKIP_INTEROP=1`: interop tests should skip rather than fail.
pub fn interop_skip_requested() -> bool {
    std::env::var_os(ENV_SKIP).is_some_and(|v| v == "1")
}

/// For interop tests: `None` (after printing a skip line) only when
/// `MKCP_SKIP_INTEROP=1`; otherwise the located binary.
///
/// # Panics
///
/// Panics with the [`V2rayError::NotFound`] message (which says how to install V2Ray)
/// when the binary is missing and skipping was not requested: a missing peer must fail
/// the test run, not silently skip it.
pub fn require_v2ray_or_skip() -> Option<V2rayBin> {
    if interop_skip_requested() {
        eprintln!("SKIP: interop test skipped because {ENV_SKIP}=1");
        return None;
    }
    match locate() {
        Ok(bin) => Some(bin),
        Err(e) => panic!("{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_wins_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("v2ray");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();

        let got = locate_from(Some(fake.clone().into()), None, Path::new("/nonexistent")).unwrap();
        assert_eq!(got.path(), fake);

        let missing = dir.path().join("nope");
        let err = locate_from(Some(missing.into()), None, Path::new("/nonexistent")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("apt-get install -y v2ray"), "{msg}");
        assert!(msg.contains(ENV_BIN), "{msg}");
    }

    #[test]
    fn path_then_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("v2ray");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        // Not executable: must be skipped.
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path_var = std::env::join_paths([dir.path()]).unwrap();
        let err = locate_from(None, Some(path_var.clone()), Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(err, V2rayError::NotFound { .. }));
        assert!(err.to_string().contains("scripts/test.sh"));

        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let got = locate_from(None, Some(path_var), Path::new("/nonexistent")).unwrap();
        assert_eq!(got.path(), fake);

        let got = locate_from(None, None, &fake).unwrap();
        assert_eq!(got.path(), fake);
    }
}
