//! Bad settings: exit code 2 and exactly one line `mkcp: error: ...` that names the
//! field, the value and what is allowed. Nothing is started, so these are fast.

mod common;

use std::io::Write;
use std::time::Duration;

use common::run;

/// Runs `mkcp args...` and checks the one-line usage error mentions every `needle`.
fn usage_error(args: &[&str], needles: &[&str]) {
    let (status, out, err) = run(args, Duration::from_secs(20));
    assert_eq!(status.code(), Some(2), "mkcp {args:?}: stderr {err:?}");
    assert!(out.is_empty(), "mkcp {args:?}: stdout {out:?}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "mkcp {args:?}: want one line, got {err:?}");
    assert!(lines[0].starts_with("mkcp: error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "mkcp {args:?}: {n:?} not in {err:?}");
    }
}

const SERVER: [&str; 5] = [
    "server",
    "--listen",
    "127.0.0.1:0",
    "--target",
    "127.0.0.1:9",
];

fn server(extra: &[&str]) -> Vec<&'static str> {
    let mut v: Vec<&str> = SERVER.to_vec();
    for e in extra {
        v.push(Box::leak(e.to_string().into_boxed_str()));
    }
    v
}

#[test]
fn kcp_flags_out_of_range() {
    usage_error(&server(&["--mtu", "2000"]), &["mtu", "2000", "576 to 1460"]);
    usage_error(&server(&["--tti", "5"]), &["tti", "5", "10 to 100"]);
    usage_error(
        &server(&["--uplink", "4096"]),
        &["uplinkCapacity", "4096", "0 to 4095"],
    );
    usage_error(
        &server(&["--downlink", "99999"]),
        &["downlinkCapacity", "99999"],
    );
    usage_error(
        &server(&["--read-buffer", "5000"]),
        &["readBufferSize", "5000", "0 to 4095"],
    );
    usage_error(
        &server(&["--write-buffer", "-1"]),
        &["writeBufferSize", "-1"],
    );
    usage_error(&server(&["--mtu", "big"]), &["mtu", "big", "whole number"]);
    usage_error(
        &server(&["--header", "zip"]),
        &["header", "zip", "wechat-video"],
    );
    usage_error(
        &server(&["--congestion=maybe"]),
        &["congestion", "maybe", "true or false"],
    );
    usage_error(&server(&["--stats", "soon"]), &["stats", "soon"]);
}

#[test]
fn config_file_values() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(
        f,
        r#"{{"outbounds": [{{"protocol": "freedom",
             "streamSettings": {{"network": "kcp", "kcpSettings": {{"tti": 500}}}}}}]}}"#
    )
    .unwrap();
    let path = f.path().to_str().unwrap().to_string();
    usage_error(
        &server(&["--config", &path]),
        &[
            &path,
            "outbounds[0].streamSettings.kcpSettings",
            "tti = 500",
            "10 to 100",
        ],
    );

    let mut bad_json = tempfile::NamedTempFile::new().unwrap();
    write!(bad_json, "{{\"mtu\": 1350,").unwrap();
    let path = bad_json.path().to_str().unwrap().to_string();
    usage_error(&server(&["--config", &path]), &["invalid JSON"]);

    let mut no_kcp = tempfile::NamedTempFile::new().unwrap();
    write!(
        no_kcp,
        r#"{{"inbounds": [{{"port": 1080, "protocol": "socks"}}]}}"#
    )
    .unwrap();
    let path = no_kcp.path().to_str().unwrap().to_string();
    usage_error(&server(&["--config", &path]), &["no mKCP settings found"]);

    let mut ws = tempfile::NamedTempFile::new().unwrap();
    write!(ws, r#"{{"network": "ws", "kcpSettings": {{}}}}"#).unwrap();
    let path = ws.path().to_str().unwrap().to_string();
    usage_error(&server(&["--config", &path]), &["network", "ws", "kcp"]);

    usage_error(
        &server(&["--config", "/nonexistent/mkcp.json"]),
        &["/nonexistent/mkcp.json", "cannot read"],
    );
}

#[test]
fn flags_override_a_bad_file_value_only_if_valid() {
    // The file is fine; the flag is not.
    let mut f = tempfile::NamedTempFile::new().unwrap();
    write!(f, r#"{{"mtu": 1400}}"#).unwrap();
    let path = f.path().to_str().unwrap().to_string();
    usage_error(
        &server(&["--config", &path, "--mtu", "100"]),
        &["--mtu", "mtu = 100"],
    );
}

#[test]
fn command_line_mistakes() {
    usage_error(&["server", "--listen", "127.0.0.1:0"], &["--target"]);
    usage_error(&server(&["--bogus"]), &["--bogus"]);
    usage_error(
        &[
            "server",
            "--listen",
            "not-an-address",
            "--target",
            "127.0.0.1:9",
        ],
        &["--listen", "not-an-address"],
    );
    usage_error(
        &[
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:9",
            "--delay",
            "30",
        ],
        &["delay", "\"30\"", "missing unit"],
    );
    usage_error(
        &[
            "netem",
            "--listen",
            "127.0.0.1:0",
            "--to",
            "127.0.0.1:9",
            "--loss",
            "2",
        ],
        &["loss", "\"2\"", "%"],
    );
    usage_error(
        &["demo", "--duration", "0"],
        &["duration", "500ms to 3600s"],
    );
    usage_error(&["demo", "--rate", "fast"], &["rate", "fast"]);
}

#[test]
fn small_defects_of_issue_14() {
    // The range of the field, not of u32.
    usage_error(
        &server(&["--uplink", "-1"]),
        &["--uplink", "uplinkCapacity", "\"-1\"", "0 to 4095"],
    );
    usage_error(&server(&["--downlink", "-1"]), &["0 to 4095"]);
    usage_error(&server(&["--mtu", "-1"]), &["576 to 1460"]);
    // Says what is wrong with the value, not "unexpected argument".
    usage_error(
        &server(&["--linger", "-3"]),
        &["--linger", "\"-3\"", "0", "86400"],
    );
    usage_error(&server(&["--stats", "-1"]), &["--stats", "\"-1\"", "86400"]);
    // A rate needs a unit, as --loss needs %.
    let netem = ["netem", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9"];
    for flag in ["--rate", "--down-rate"] {
        let mut args = netem.to_vec();
        args.extend([flag, "10"]);
        usage_error(&args, &[flag, "\"10\"", "missing unit", "10mbit"]);
    }
    usage_error(&["demo", "--rate", "100"], &["missing unit"]);
    // Errors point to the subcommand's help.
    usage_error(&server(&["--bogus"]), &["(see mkcp server --help)"]);
    usage_error(
        &["client", "--listen", "127.0.0.1:0"],
        &["--server", "(see mkcp client --help)"],
    );
    usage_error(
        &[&netem[..], &["--loss", "2"]].concat(),
        &["(see mkcp netem --help)"],
    );
    usage_error(&["serve"], &["\"serve\"", "server", "(see mkcp --help)"]);
    usage_error(
        &server(&["--quiet", "-v"]),
        &["--quiet cannot be used with --verbose (see mkcp server --help)"],
    );
}

#[test]
fn help_and_version_succeed() {
    let (status, out, _) = run(&["--help"], Duration::from_secs(10));
    assert!(status.success());
    for sub in ["server", "client", "netem", "demo"] {
        assert!(out.contains(sub), "{out}");
    }
    let (status, out, _) = run(&["server", "--help"], Duration::from_secs(10));
    assert!(status.success());
    for flag in [
        "--mtu",
        "--tti",
        "--uplink",
        "--downlink",
        "--congestion",
        "--read-buffer",
        "--write-buffer",
        "--header",
        "--seed",
        "--config",
        "--stats",
    ] {
        assert!(out.contains(flag), "{flag} missing from:\n{out}");
    }
    let (status, out, _) = run(&["--version"], Duration::from_secs(10));
    assert!(status.success() && out.starts_with("mkcp "), "{out}");
}

#[test]
fn rate_limits_need_a_unit_and_one_total_per_process() {
    usage_error(
        &server(&["--max-rate", "2"]),
        &["--max-rate", "missing unit", "2MiB"],
    );
    usage_error(
        &server(&["--max-rate-total", "100b"]),
        &["--max-rate-total", "1KiB"],
    );
    usage_error(&server(&["--max-rate", "2 furlongs"]), &["--max-rate"]);
    let mut f = tempfile::Builder::new()
        .suffix(".json")
        .tempfile()
        .expect("temp file");
    write!(
        f,
        r#"{{"tunnels": [
          {{"name": "a", "command": "server", "listen": "127.0.0.1:0", "target": "127.0.0.1:9", "max-rate-total": "2MiB"}},
          {{"name": "b", "command": "server", "listen": "127.0.0.1:0", "target": "127.0.0.1:9", "max-rate-total": "4MiB"}}
        ]}}"#
    )
    .expect("write");
    let path = f.path().to_str().expect("utf-8 path");
    usage_error(
        &["run", path, "--check"],
        &[
            "--max-rate-total differs",
            "tunnel b",
            "after the tunnels file",
        ],
    );
    // Given once after the file, it holds for both.
    let (status, out, err) = run(
        &["run", path, "--check", "--max-rate-total", "8MiB"],
        Duration::from_secs(20),
    );
    assert!(status.success(), "{err}");
    assert_eq!(
        out.matches("max-rate-total: 8.00 MiB/s").count(),
        2,
        "{out}"
    );
}
