//! The README's snippets work as written: the library hello world is the example that
//! runs here, the flag table matches `--help`, and the V2Ray JSON snippets carry traffic
//! with the README's `mkcp` flags (against the real V2Ray; only the addresses and ports
//! are replaced by loopback ones).

mod common;

use std::time::Duration;

include!("../examples/hello.rs");

use common::{run, Proc};
use mkcp_v2ray::{
    free_tcp_port, free_udp_port, net, require_v2ray_or_skip, Listener, Ready, V2rayProcess,
};
use serde_json::Value;

const README: &str = include_str!("../../../README.md");
const HELLO: &str = include_str!("../examples/hello.rs");

/// The fenced code blocks of the README with the given language tag.
fn blocks(lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match &mut current {
            None if line.trim_start() == format!("```{lang}") => current = Some(String::new()),
            Some(text) if line.trim_start() == "```" => {
                out.push(std::mem::take(text));
                current = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    out
}

#[test]
fn hello_world_in_readme_is_the_example() {
    let rust = blocks("rust");
    assert!(
        rust.iter().any(|b| b == HELLO),
        "README's rust block differs from examples/hello.rs"
    );
}

#[test]
fn hello_world_runs() {
    // `main` of the example, included at the top of this file, is an ordinary function
    // in a test build.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(main().map_err(|e| e.to_string()));
    });
    let result = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("hello world finishes within 30 s");
    result.unwrap();
}

#[test]
fn flag_table_matches_help() {
    let (status, help, _) = run(&["client", "--help"], Duration::from_secs(10));
    assert!(status.success());
    for flag in [
        "--config",
        "--mtu",
        "--tti",
        "--uplink",
        "--downlink",
        "--congestion",
        "--read-buffer",
        "--write-buffer",
        "--header",
        "--seed",
        "--stats",
        "--linger",
        "--check",
        "--metrics",
        "--log-format",
        "--seed-file",
        "--max-rate",
        "--max-rate-total",
    ] {
        assert!(help.contains(flag), "{flag} not in client --help");
        assert!(
            README.contains(&format!("| `{flag}")),
            "{flag} missing from README's flag tables"
        );
    }
    let (status, help, _) = run(&["server", "--help"], Duration::from_secs(10));
    assert!(status.success());
    assert!(
        help.contains("--connect-on-open"),
        "--connect-on-open not in server --help"
    );
    assert!(
        README.contains("| `--connect-on-open`"),
        "--connect-on-open missing from README's flag tables"
    );
    let (status, help, _) = run(&["netem", "--help"], Duration::from_secs(10));
    assert!(status.success());
    for flag in [
        "--delay",
        "--jitter",
        "--loss",
        "--dup",
        "--reorder",
        "--reorder-gap",
        "--rate",
        "--queue",
        "--seed",
        "--down-delay",
        "--down-jitter",
        "--down-loss",
        "--down-dup",
        "--down-reorder",
        "--down-rate",
        "--down-queue",
    ] {
        assert!(help.contains(flag), "{flag} not in netem --help");
        assert!(
            README.contains(&format!("`{flag}")),
            "{flag} missing from README"
        );
    }
}

/// The flags of the README's `mkcp <command> ...` line, from `--header` on.
fn readme_flags(command: &str) -> Vec<String> {
    let sh = blocks("sh").join("\n").replace("\\\n", " ");
    let line = sh
        .lines()
        .find(|l| l.contains(&format!("mkcp {command} ")) && l.contains("--header"))
        .unwrap_or_else(|| panic!("no `mkcp {command}` line with --header in README"));
    let from = line.find("--header").unwrap();
    // Split like a shell would for these simple double-quoted words.
    let mut words = Vec::new();
    let mut rest = line[from..].trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap();
            words.push(r[..end].to_string());
            rest = r[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            words.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    words
}

/// The README's V2Ray JSON blocks (not the `mkcp run` tunnels file).
fn json_blocks() -> Vec<Value> {
    blocks("json")
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).expect("README JSON parses"))
        .filter(|v| v.get("tunnels").is_none())
        .collect()
}

#[test]
fn readme_json_reads_as_mkcp_settings() {
    let json = json_blocks();
    assert_eq!(json.len(), 2);
    let (server, found) = mkcp_proto::Config::from_v2ray_config_json(&json[0].to_string())
        .expect("server JSON has mKCP settings");
    assert_eq!(found, "inbounds[0].streamSettings");
    assert_eq!(server.header.name(), "wechat-video");
    let (client, found) = mkcp_proto::Config::from_v2ray_config_json(&json[1].to_string()).unwrap();
    assert_eq!(found, "outbounds[0].streamSettings");
    assert_eq!(client.security, server.security);
}

#[test]
fn readme_check_example_prints_what_it_shows() {
    let sh = blocks("sh").join("\n");
    assert!(
        sh.contains("mkcp check --config server.json"),
        "README has the mkcp check example"
    );
    let shown = blocks("text")
        .into_iter()
        .find(|b| b.starts_with("mkcp check: "))
        .expect("README shows the output of mkcp check");
    // The README's server.json is its first JSON block.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("server.json");
    std::fs::write(&path, blocks("json")[0].as_bytes()).unwrap();
    let path = path.to_str().unwrap().to_string();
    let (status, out, err) = run(&["check", "--config", &path], Duration::from_secs(20));
    assert!(status.success(), "{err}");
    assert_eq!(out.replace(&path, "server.json") + "\n", shown);
    assert!(!out.contains("change this seed"));
}

#[test]
fn readme_quick_start_against_v2ray() {
    let Some(bin) = require_v2ray_or_skip() else {
        return;
    };
    let echo = net::EchoServer::start().unwrap();
    let json = json_blocks();

    // V2Ray server from the README (dokodemo-door over kcp), target = our echo server.
    let udp_port = free_udp_port().unwrap();
    let mut server_json = json[0].clone();
    let inbound = &mut server_json["inbounds"][0];
    inbound["listen"] = "127.0.0.1".into();
    inbound["port"] = udp_port.into();
    inbound["settings"]["port"] = echo.addr().port().into();
    bin.test_config(&server_json)
        .expect("v2ray -test accepts it");
    let udp = mkcp_v2ray::localhost(udp_port);
    let _v2ray_server = V2rayProcess::spawn_json(
        &bin,
        &server_json,
        &[Ready::Listening(Listener::Udp(udp))],
        Duration::from_secs(20),
    )
    .expect("v2ray server starts");
    let server_addr = udp.to_string();
    let mut args = vec![
        "client",
        "--listen",
        "127.0.0.1:0",
        "--server",
        &server_addr,
    ];
    let flags = readme_flags("client");
    args.extend(flags.iter().map(String::as_str));
    let mut client = Proc::spawn(&args);
    let entry = client.listening_addr("tcp");
    net::transfer_echo(entry, 1 << 20, 1, Duration::from_secs(60)).unwrap();

    // `mkcp server` with the README's flags, and the README's V2Ray client in front.
    let target = echo.addr().to_string();
    let mut args = vec!["server", "--listen", "127.0.0.1:0", "--target", &target];
    let flags = readme_flags("server");
    args.extend(flags.iter().map(String::as_str));
    let mut server = Proc::spawn(&args);
    let mkcp_udp = server.listening_addr("udp");
    let tcp_port = free_tcp_port().unwrap();
    let mut client_json = json[1].clone();
    let inbound = &mut client_json["inbounds"][0];
    inbound["port"] = tcp_port.into();
    inbound["settings"]["address"] = "127.0.0.1".into();
    inbound["settings"]["port"] = mkcp_udp.port().into();
    bin.test_config(&client_json)
        .expect("v2ray -test accepts it");
    let tcp = mkcp_v2ray::localhost(tcp_port);
    let _v2ray_client = V2rayProcess::spawn_json(
        &bin,
        &client_json,
        &[Ready::Listening(Listener::Tcp(tcp))],
        Duration::from_secs(20),
    )
    .expect("v2ray client starts");
    net::transfer_echo(tcp, 1 << 20, 2, Duration::from_secs(60)).unwrap();
}

/// The words of the README's `sh` line containing `needle`, after `mkcp COMMAND`.
fn readme_line_words(needle: &str) -> Vec<String> {
    let sh = blocks("sh").join("\n").replace("\\\n", " ");
    let line = sh
        .lines()
        .find(|l| l.contains(needle) && l.contains("mkcp "))
        .unwrap_or_else(|| panic!("no mkcp line with {needle} in README"));
    let from = line.find("mkcp ").unwrap() + "mkcp ".len();
    line[from..].split_whitespace().map(String::from).collect()
}

/// Replaces the value after `flag` in `words`.
fn set_flag(words: &mut [String], flag: &str, value: &str) {
    let i = words
        .iter()
        .position(|w| w == flag)
        .unwrap_or_else(|| panic!("{flag} not in {words:?}"));
    words[i + 1] = value.to_string();
}

#[test]
fn readme_metrics_example_serves_what_it_shows() {
    use std::io::{Read, Write};
    let echo = net::EchoServer::start().unwrap();
    let mut words = readme_line_words("--metrics");
    assert_eq!(words[0], "server");
    set_flag(&mut words, "--listen", "127.0.0.1:0");
    set_flag(&mut words, "--target", &echo.addr().to_string());
    set_flag(&mut words, "--metrics", "127.0.0.1:0");
    let args: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut server = Proc::spawn(&args);
    let udp = server.listening_addr("udp").to_string();
    let needle = "metrics on http://";
    let line = server.wait_stderr(needle, Duration::from_secs(10));
    // --log-format json: every log line is a JSON object.
    let v: Value = serde_json::from_str(&line).expect("a JSON log line");
    let message = v["message"].as_str().unwrap();
    let addr = &message[message.find(needle).unwrap() + needle.len()..];
    let addr: std::net::SocketAddr = addr.split('/').next().unwrap().parse().unwrap();

    let seed_at = words.iter().position(|w| w == "--seed").unwrap();
    let mut client = Proc::spawn(&[
        "client",
        "--listen",
        "127.0.0.1:0",
        "--server",
        &udp,
        "--seed",
        &words[seed_at + 1],
    ]);
    let entry = client.listening_addr("tcp");
    net::transfer_echo(entry, 1 << 20, 1, Duration::from_secs(60)).unwrap();

    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    let shown = blocks("text")
        .into_iter()
        .find(|b| b.starts_with("mkcp_sessions_live"))
        .expect("README shows a /metrics excerpt");
    for l in shown.lines() {
        let series = &l[..l.find(' ').unwrap()];
        let name = &series[..series.find('{').unwrap()];
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} not served:\n{text}"
        );
        // Same series (name and labels) as shown.
        assert!(
            text.contains(&format!("{series} ")),
            "{series} not served:\n{text}"
        );
    }
    let bytes = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("mkcp_tunnel_bytes_total{role=\"server\",direction=\"kcp_to_tcp\"} ")
        })
        .unwrap();
    assert!(
        bytes.parse::<f64>().unwrap() >= f64::from(1u32 << 20),
        "{text}"
    );
}

#[test]
fn readme_seed_file_and_env_examples_give_the_same_settings() {
    let sh = blocks("sh").join("\n");
    let file_line = sh
        .lines()
        .find(|l| l.contains("mkcp check --seed-file seed"))
        .expect("README has the --seed-file example");
    let env_line = sh
        .lines()
        .find(|l| l.starts_with("MKCP_SEED="))
        .expect("README has the MKCP_SEED example");
    // `printf '%s\n' 'SECRET' > seed`: the seed file of the example.
    let secret_line = sh
        .lines()
        .find(|l| l.contains("> seed)"))
        .expect("README writes the seed file");
    let secret = secret_line.split('\'').nth(3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed");
    std::fs::write(&seed, format!("{secret}\n")).unwrap();

    let words: Vec<&str> = file_line.split_whitespace().skip(1).collect();
    let args: Vec<&str> = words
        .iter()
        .map(|w| {
            if *w == "seed" {
                seed.to_str().unwrap()
            } else {
                w
            }
        })
        .collect();
    let (status, from_file, err) = run(&args, Duration::from_secs(20));
    assert!(status.success(), "{err}");
    assert!(from_file.contains("envelope: aes-128-gcm"), "{from_file}");
    assert!(
        from_file.contains("seed: <redacted> (from --seed-file "),
        "{from_file}"
    );

    let (assignment, command) = env_line.split_once(' ').unwrap();
    let value = assignment
        .strip_prefix("MKCP_SEED=")
        .unwrap()
        .trim_matches('\'');
    assert_eq!(value, secret);
    let words: Vec<&str> = command.split_whitespace().skip(1).collect();
    let out = common::mkcp_command(&words)
        .env("MKCP_SEED", value)
        .output()
        .unwrap();
    assert!(out.status.success());
    let from_env = String::from_utf8_lossy(&out.stdout);
    assert!(
        from_env.contains("seed: <redacted> (from MKCP_SEED)\n"),
        "{from_env}"
    );
    // The same settings, but for where the seed came from.
    let shown = format!("(from --seed-file {})", seed.display());
    assert!(from_file.contains(&shown), "{from_file}");
    assert_eq!(
        from_env.trim_end(),
        from_file.replace(&shown, "(from MKCP_SEED)")
    );
}

#[test]
fn readme_tunnels_file_runs_both_ends_in_one_process() {
    let mut file: Value = blocks("json")
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .find(|v| v.get("tunnels").is_some())
        .expect("README has a tunnels file");
    let echo = net::EchoServer::start().unwrap();
    let udp = mkcp_v2ray::localhost(free_udp_port().unwrap()).to_string();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("seed"), "s3cret\n").unwrap();
    let tunnels = file["tunnels"].as_array_mut().unwrap();
    assert_eq!(tunnels.len(), 2);
    for t in tunnels.iter_mut() {
        assert_eq!(t["seed-file"], "seed", "relative to the file");
        match t["command"].as_str().unwrap() {
            "server" => {
                t["listen"] = udp.clone().into();
                t["target"] = echo.addr().to_string().into();
                t["metrics"] = "127.0.0.1:0".into();
            }
            _ => {
                t["listen"] = "127.0.0.1:0".into();
                t["server"] = udp.clone().into();
            }
        }
    }
    let path = dir.path().join("tunnels.json");
    std::fs::write(&path, file.to_string()).unwrap();
    let path = path.to_str().unwrap();

    let sh = blocks("sh").join("\n");
    assert!(sh.contains("mkcp run tunnels.json --check"));
    assert!(sh.contains("mkcp run tunnels.json --stats 10"));
    let (status, out, err) = run(&["run", path, "--check"], Duration::from_secs(20));
    assert!(status.success(), "{err}");
    assert!(out.contains("== tunnel exit (server) =="), "{out}");
    assert!(out.contains("== tunnel entry (client) =="), "{out}");
    assert_eq!(out.matches("envelope: aes-128-gcm").count(), 2, "{out}");
    assert!(out.contains("header: wechat-video"), "{out}");

    let mut p = Proc::spawn(&["run", path, "--stats", "1"]);
    let entry = p.listening_addr("tcp");
    net::transfer_echo(entry, 1 << 20, 3, Duration::from_secs(60)).unwrap();
    p.wait_stdout("[entry] ", Duration::from_secs(10));
    p.wait_stdout("[exit] ", Duration::from_secs(10));
    assert!(p
        .stderr()
        .contains("tunnel exit: mkcp server listening on udp"));
    p.signal(libc::SIGTERM);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "{}", p.stderr());
}
