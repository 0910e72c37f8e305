//! The systemd units in `deploy/`: `systemd-analyze verify` accepts them without a
//! warning, they carry the hardening the README promises, and their command lines (with
//! the unit's defaults and with the example environment files) are valid `mkcp`
//! command lines that get the seed from the credential. Also the seed sources of the
//! command line: `--seed-file` and `MKCP_SEED`.
//!
//! `systemd-analyze` must be installed (Debian's systemd package; scripts/test.sh
//! installs it): without it the test fails, unless MKCP_SKIP_SYSTEMD=1.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{bin, mkcp_command, run};

const UNITS: [(&str, &str); 2] = [
    ("mkcp-server.service", "mkcp-server.env"),
    ("mkcp-client.service", "mkcp-client.env"),
];

/// Where the units install the binary.
const INSTALLED: &str = "/usr/local/bin/mkcp";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(name))
        .unwrap_or_else(|e| panic!("deploy/{name}: {e}"))
}

/// `systemd-analyze`, or `None` when MKCP_SKIP_SYSTEMD=1 says to skip.
fn systemd_analyze() -> Option<PathBuf> {
    if std::env::var("MKCP_SKIP_SYSTEMD").as_deref() == Ok("1") {
        eprintln!("MKCP_SKIP_SYSTEMD=1: systemd-analyze verify skipped");
        return None;
    }
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("systemd-analyze"))
            .find(|p| p.is_file())
    });
    Some(found.unwrap_or_else(|| {
        panic!(
            "systemd-analyze not found: install Debian's systemd package (scripts/test.sh \
             does), or set MKCP_SKIP_SYSTEMD=1 to skip this test"
        )
    }))
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let Some(analyze) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (unit, _) in UNITS {
        // The binary is not installed here: point the unit at the one under test (verify
        // checks that ExecStart's program exists).
        let text = read(unit).replace(INSTALLED, bin());
        let path = dir.path().join(unit);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = Command::new(&analyze)
        .arg("verify")
        .args(&paths)
        .output()
        .expect("running systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({:?}):\n{stderr}{stdout}",
        out.status
    );
    // Unknown keys and bad values are only warnings: none is allowed.
    assert!(
        stderr.trim().is_empty() && stdout.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}{stdout}"
    );
}

#[test]
fn units_are_hardened_and_restart_on_failure() {
    for (unit, _) in UNITS {
        let text = read(unit);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for directive in [
            "DynamicUser=yes",
            "Restart=on-failure",
            "RestartPreventExitStatus=2",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "CapabilityBoundingSet=",
            "LoadCredential=seed:/etc/mkcp/seed",
        ] {
            assert!(lines.contains(&directive), "{unit} lacks {directive}");
        }
        let exec = exec_start(&text);
        assert!(exec.contains("--seed-file %d/seed"), "{unit}: {exec}");
        assert!(!exec.contains("--seed "), "{unit}: the seed is not on argv");
    }
}

/// The unit's `ExecStart=` line.
fn exec_start(unit: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart= line")
        .to_string()
}

/// `KEY=VALUE` lines (of `Environment=` in a unit, or of an environment file).
fn assignments<'a>(lines: impl Iterator<Item = &'a str>, vars: &mut HashMap<String, String>) {
    for l in lines {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = l.split_once('=') {
            vars.insert(k.to_string(), v.to_string());
        }
    }
}

/// ExecStart as systemd would run it: `${VAR}` as one word, `$VAR` split on whitespace,
/// `%d` the credentials directory.
fn command_line(exec: &str, vars: &HashMap<String, String>, credentials: &Path) -> Vec<String> {
    let mut words = Vec::new();
    for w in exec.split_whitespace() {
        let w = w.replace("%d", credentials.to_str().unwrap());
        if let Some(name) = w.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
            words.push(vars[name].clone());
        } else if let Some(name) = w.strip_prefix('$') {
            words.extend(vars[name].split_whitespace().map(String::from));
        } else {
            words.push(w);
        }
    }
    words
}

#[test]
fn unit_command_lines_are_valid_and_take_the_seed_from_the_credential() {
    let credentials = tempfile::tempdir().unwrap();
    std::fs::write(credentials.path().join("seed"), "the shared secret\n").unwrap();
    for (unit, env_file) in UNITS {
        let text = read(unit);
        let mut vars = HashMap::new();
        assignments(
            text.lines().filter_map(|l| l.strip_prefix("Environment=")),
            &mut vars,
        );
        let defaults = vars.clone();
        assignments(read(env_file).lines(), &mut vars);
        for vars in [defaults, vars] {
            let words = command_line(&exec_start(&text), &vars, credentials.path());
            assert_eq!(words[0], INSTALLED, "{unit}");
            // `mkcp server|client --check ...`: validates without binding.
            let mut args: Vec<&str> = vec![&words[1], "--check"];
            args.extend(words[2..].iter().map(String::as_str));
            let (status, out, err) = run(&args, Duration::from_secs(20));
            assert!(status.success(), "{unit}: mkcp {args:?}: {err}");
            assert!(out.contains("envelope: aes-128-gcm"), "{unit}: {out}");
            assert!(out.contains("seed: <redacted>"), "{unit}: {out}");
            assert!(!out.contains("the shared secret"), "{unit}: {out}");
        }
    }
}

#[test]
fn seed_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    std::fs::write(&seed, "s3cret\n").unwrap();
    let seed = seed.to_str().unwrap();

    let (status, out, err) = run(&["check", "--seed-file", seed], Duration::from_secs(20));
    assert!(status.success(), "{err}");
    assert!(out.contains("envelope: aes-128-gcm"), "{out}");

    let out = mkcp_command(&["check"])
        .env("MKCP_SEED", "s3cret")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("envelope: aes-128-gcm"), "{text}");

    // Unset or empty: the legacy envelope.
    let out = mkcp_command(&["check"])
        .env("MKCP_SEED", "")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("envelope: legacy"), "{text}");

    let (status, _, err) = run(
        &["check", "--seed", "a", "--seed-file", seed],
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("--seed-file"), "{err}");

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let (status, _, err) = run(
        &["check", "--seed-file", empty.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("is empty"), "{err}");
}
