//! Config files can not silently lose a seed or header (issue 14): every V2Ray/Xray shape
//! is read with its security settings, a seed or header where it would not be applied
//! stops the command (exit 2), unknown keys are WARN lines, and `mkcp check` / `--check`
//! print the effective settings with the seed redacted, binding nothing.

mod common;

use std::io::Write;
use std::net::UdpSocket;
use std::time::Duration;

use common::{run, Proc};

const SECRET: &str = "topsecret";

fn file(text: &str) -> (tempfile::NamedTempFile, String) {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    let path = f.path().to_str().unwrap().to_string();
    (f, path)
}

fn server_args<'a>(path: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "server",
        "--listen",
        "127.0.0.1:0",
        "--target",
        "127.0.0.1:9",
        "--config",
        path,
    ];
    v.extend_from_slice(extra);
    v
}

/// The shapes of issue 14 that used to run unencrypted or fail with a wrong message.
const WRAPPED: [(&str, &str); 2] = [
    (
        r#"{"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "topsecret", "header": {"type": "dtls"}}}}"#,
        "streamSettings of ",
    ),
    (
        r#"{"kcpSettings": {"seed": "topsecret", "header": {"type": "dtls"}}}"#,
        "kcpSettings of ",
    ),
];

#[test]
fn wrapped_files_start_with_their_seed_and_header() {
    for (text, found) in WRAPPED {
        let (_f, path) = file(text);
        let mut p = Proc::spawn(&server_args(&path, &[]));
        let line = p.wait_stderr("mKCP settings: ", Duration::from_secs(10));
        assert!(
            line.contains("header dtls") && line.contains("aes-128-gcm (seed)"),
            "{text}: {line}"
        );
        p.wait_stderr(
            &format!("mKCP settings from {found}"),
            Duration::from_secs(5),
        );
        p.listening_addr("udp");
        assert!(!p.stderr().contains(SECRET), "{}", p.stderr());
        p.signal(libc::SIGTERM);
        let status = p.wait_exit(Duration::from_secs(10)).expect("exits");
        assert!(status.success(), "{status:?}");
    }
}

/// Runs `args`, expecting exit 2 and one error line containing every needle.
fn refused(args: &[&str], needles: &[&str]) {
    let (status, out, err) = run(args, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{args:?}: {err}");
    assert!(out.is_empty(), "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("mkcp: error: config "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} not in {err}");
    }
    assert!(!err.contains(SECRET), "{err}");
}

#[test]
fn seed_or_header_that_would_not_be_applied_stops_the_command() {
    for (text, path) in [
        (
            r#"{"network": "kcp", "kcpSettings": {"kcpSettings": {"seed": "topsecret"}}}"#,
            "kcpSettings.kcpSettings",
        ),
        (r#"{"network": "kcp", "seed": "topsecret"}"#, "seed"),
        (r#"{"sede": "topsecret"}"#, "sede"),
        (
            r#"{"inbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {}}}],
                "transport": {"kcpSettings": {"seed": "topsecret"}}}"#,
            "transport.kcpSettings.seed",
        ),
    ] {
        let (_f, file_path) = file(text);
        for sub in ["server", "client", "check"] {
            let args: Vec<&str> = match sub {
                "server" => server_args(&file_path, &[]),
                "client" => vec![
                    "client",
                    "--listen",
                    "127.0.0.1:0",
                    "--server",
                    "127.0.0.1:9",
                    "--config",
                    &file_path,
                ],
                _ => vec!["check", "--config", &file_path],
            };
            refused(&args, &[path, "would not be applied", &file_path]);
        }
    }
    let (_f, file_path) = file(
        r#"{"outbounds": [{"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "a"}}},
                          {"streamSettings": {"network": "kcp", "kcpSettings": {"seed": "b"}}}]}"#,
    );
    refused(
        &server_args(&file_path, &[]),
        &[
            "outbounds[1].streamSettings",
            "outbounds[0].streamSettings",
            "different",
        ],
    );
}

#[test]
fn unknown_keys_are_one_warn_line_each() {
    let (_f, path) = file(r#"{"mtuu": 1400, "colour": 1, "seed": "topsecret"}"#);
    let (status, out, err) = run(&server_args(&path, &["--check"]), Duration::from_secs(20));
    assert!(status.success(), "{err}");
    let warns: Vec<&str> = err.lines().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warns.len(), 2, "{err}");
    assert!(
        warns
            .iter()
            .any(|l| l.contains("unknown key mtuu") && l.contains("did you mean \"mtu\"")),
        "{err}"
    );
    assert!(
        warns.iter().any(|l| l.contains("unknown key colour")),
        "{err}"
    );
    assert!(out.contains("warnings: 2"), "{out}");
}

#[test]
fn check_prints_the_effective_settings_with_the_seed_redacted() {
    let (_f, path) = file(
        r#"// a V2Ray server config
        {"inbounds": [{"port": 4000, "protocol": "dokodemo-door",
          "streamSettings": {"network": "kcp", "kcpSettings": {"uplinkCapacity": 20,
            "header": {"type": "wechat-video"}, "seed": "topsecret"}}}]}"#,
    );
    let (status, out, err) = run(
        &["check", "--config", &path, "--tti", "20"],
        Duration::from_secs(20),
    );
    assert!(status.success(), "{err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
    for needle in [
        "mkcp check: the settings are valid",
        &format!("settings from: inbounds[0].streamSettings of {path}"),
        "mtu: 1350",
        "tti: 20 ms",
        "uplinkCapacity: 20 MiB/s",
        "downlinkCapacity: 20 MiB/s",
        "congestion: false",
        "readBufferSize: 2 MiB",
        "writeBufferSize: 2 MiB",
        "header: wechat-video (13 bytes)",
        "seed: <redacted>",
        "envelope: aes-128-gcm",
        "warnings: 0",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
    // Bad settings: exit 2, one line, as when starting.
    let (status, _, err) = run(&["check", "--mtu", "99"], Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("mtu = 99"), "{err}");
}

#[test]
fn check_flag_binds_nothing() {
    // The address is taken: a real start would fail to bind (exit 1).
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = [
        "server",
        "--listen",
        &addr,
        "--target",
        "127.0.0.1:9",
        "--seed",
        SECRET,
        "--check",
    ];
    let (status, out, err) = run(&args, Duration::from_secs(20));
    assert!(status.success(), "{err}");
    assert!(out.contains(&format!("listen: {addr}")), "{out}");
    assert!(
        out.contains("seed: <redacted>") && !out.contains(SECRET),
        "{out}"
    );
    assert!(!err.contains("listening on"), "{err}");
    let args = [
        "client",
        "--listen",
        "127.0.0.1:0",
        "--server",
        &addr,
        "--check",
    ];
    let (status, out, err) = run(&args, Duration::from_secs(20));
    assert!(status.success(), "{err}");
    assert!(
        out.contains("seed: absent") && out.contains("envelope: legacy"),
        "{out}"
    );
    let (status, _, err) = run(
        &[
            "client", "--listen", "nowhere", "--server", &addr, "--check",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(status.code(), Some(2), "{err}");
}

#[test]
fn finalmask_order_is_stated_and_can_be_changed() {
    // [header, envelope]: V2Ray's layout only when the first mask is outermost.
    let (_f, path) = file(
        r#"{"outbounds": [{"protocol": "vless", "streamSettings": {"network": "kcp",
            "finalmask": {"udp": [{"type": "mkcp-legacy", "settings": {"header": "dtls"}},
                                  {"type": "mkcp-legacy", "settings": {"value": "topsecret"}}]}}}]}"#,
    );
    refused_plain(
        &["check", "--config", &path],
        &["finalmask.udp[1]", "v26.6.22"],
    );
    let (status, out, err) = run(
        &[
            "check",
            "--config",
            &path,
            "--finalmask-order",
            "first-outermost",
        ],
        Duration::from_secs(20),
    );
    assert!(status.success(), "{err}");
    for needle in [
        "header: dtls",
        "seed: <redacted>",
        "envelope: aes-128-gcm",
        "finalmask: Xray v26.1.31 to v26.6.1 (first mask outermost)",
    ] {
        assert!(out.contains(needle), "{needle:?} not in:\n{out}");
    }
    assert!(!out.contains(SECRET));
}

/// Exit 2 with one line containing every needle.
fn refused_plain(args: &[&str], needles: &[&str]) {
    let (status, _, err) = run(args, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for n in needles {
        assert!(err.contains(n), "{n:?} not in {err}");
    }
}
