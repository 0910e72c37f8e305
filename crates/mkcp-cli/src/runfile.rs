//! mkcp's own tunnels file (`mkcp run FILE`): several `mkcp server` / `mkcp client`
//! tunnels in one process.
//!
//! The file is JSON (no new dependency, and V2Ray users already write it):
//!
//! ```json
//! {"tunnels": [
//!   {"name": "ssh", "command": "server", "listen": "0.0.0.0:4000",
//!    "target": "127.0.0.1:22", "header": "wechat-video", "seed-file": "/etc/mkcp/seed",
//!    "stats": 10, "metrics": "127.0.0.1:9100"}
//! ]}
//! ```
//!
//! Each tunnel's keys are the long flags of its command, without the dashes, with the
//! flag's value (string, number or boolean): the tunnel becomes exactly the command line
//! `mkcp COMMAND --KEY VALUE ...`, parsed and checked by the same code, so the file holds
//! everything the flags hold and nothing else. Flags given after the file on the command
//! line are appended to every tunnel's, so they override the file.

use std::path::{Path, PathBuf};

use clap::Parser;
use serde_json::Value;

use crate::cli::{Cli, ClientArgs, Command, ServerArgs};
use crate::config::UsageError;

/// One tunnel of the file, as parsed command-line arguments.
#[derive(Debug)]
pub enum Spec {
    /// `mkcp server`.
    Server(ServerArgs),
    /// `mkcp client`.
    Client(ClientArgs),
}

/// A tunnel of the file with its name (`name`, or `tunnels[N]`).
#[derive(Debug)]
pub struct Named {
    /// For the log and `--stats` lines.
    pub name: String,
    /// The arguments.
    pub spec: Spec,
}

/// Reads `path` and turns each tunnel into its command's arguments, `flags` appended.
pub fn load(path: &Path, flags: &[String]) -> Result<Vec<Named>, UsageError> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| UsageError(format!("tunnels file {shown}: cannot read the file: {e}")))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("tunnels file {shown}: not JSON: {e}")))?;
    parse(&value, flags, path).map_err(|e| UsageError(format!("tunnels file {shown}: {e}")))
}

fn parse(value: &Value, flags: &[String], path: &Path) -> Result<Vec<Named>, String> {
    let top = value
        .as_object()
        .ok_or("expected an object {\"tunnels\": [...]}")?;
    if let Some(k) = top.keys().find(|k| *k != "tunnels") {
        return Err(format!("unknown key {k:?} (expected only \"tunnels\")"));
    }
    let tunnels = top
        .get("tunnels")
        .and_then(Value::as_array)
        .ok_or("expected \"tunnels\": a list of tunnels")?;
    if tunnels.is_empty() {
        return Err("\"tunnels\" is empty".into());
    }
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = Vec::new();
    for (i, t) in tunnels.iter().enumerate() {
        let at = format!("tunnels[{i}]");
        let named = tunnel(t, &at, flags, &base).map_err(|e| format!("{at}: {e}"))?;
        if out.iter().any(|o: &Named| o.name == named.name) {
            return Err(format!("{at}: a second tunnel named {:?}", named.name));
        }
        out.push(named);
    }
    Ok(out)
}

fn tunnel(t: &Value, at: &str, flags: &[String], base: &Path) -> Result<Named, String> {
    let obj = t.as_object().ok_or("expected an object")?;
    let command = obj
        .get("command")
        .and_then(Value::as_str)
        .ok_or("expected \"command\": \"server\" or \"client\"")?;
    if command != "server" && command != "client" {
        return Err(format!(
            "command = {command:?} is invalid: expected \"server\" or \"client\""
        ));
    }
    let name = match obj.get("name") {
        None => at.to_string(),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => return Err("name: expected a non-empty string".into()),
    };
    let mut argv = vec!["mkcp".to_string(), command.to_string()];
    for (key, v) in obj {
        if key == "command" || key == "name" {
            continue;
        }
        if key.starts_with('-') || key == "help" || key == "version" {
            return Err(format!(
                "{key:?} is not a flag name (write it without dashes)"
            ));
        }
        let flag = format!("--{key}");
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) if key == "check" => {
                if *b {
                    argv.push(flag);
                }
                continue;
            }
            Value::Bool(b) => b.to_string(),
            _ => return Err(format!("{key}: expected a string, a number or a boolean")),
        };
        // Paths in the file are relative to the file.
        let value = if key == "config" || key == "seed-file" {
            resolve(base, &value)
        } else {
            value
        };
        argv.push(format!("{flag}={value}"));
    }
    argv.extend(flags.iter().cloned());
    // The same one-line messages as for the command line.
    let cli = Cli::try_parse_from(&argv).map_err(|e| crate::one_line(&crate::clap_message(&e)))?;
    let spec = match cli.command {
        Command::Server(a) => Spec::Server(a),
        Command::Client(a) => Spec::Client(a),
        _ => unreachable!("the command is server or client"),
    };
    Ok(Named { name, spec })
}

fn resolve(base: &Path, value: &str) -> String {
    let p = PathBuf::from(value);
    if p.is_absolute() {
        value.to_string()
    } else {
        base.join(p).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(json: &str, flags: &[&str]) -> Result<Vec<Named>, String> {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        parse(
            &serde_json::from_str(json).unwrap(),
            &flags,
            Path::new("/etc/mkcp/tunnels.json"),
        )
    }

    #[test]
    fn tunnels_become_command_lines_and_flags_override() {
        let t = parse_str(
            r#"{"tunnels": [
                {"name": "ssh", "command": "server", "listen": "0.0.0.0:4000",
                 "target": "127.0.0.1:22", "mtu": 1400, "congestion": true,
                 "seed-file": "seed", "stats": 10},
                {"command": "client", "listen": "127.0.0.1:2222", "server": "192.0.2.1:4000",
                 "header": "dtls", "check": false}
            ]}"#,
            &["--stats", "5"],
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].name, "ssh");
        let Spec::Server(s) = &t[0].spec else {
            panic!("not a server")
        };
        assert_eq!(s.kcp.mtu, Some(1400));
        assert_eq!(s.kcp.congestion, Some(true));
        assert_eq!(
            s.kcp.seed_file.as_deref(),
            Some(Path::new("/etc/mkcp/seed"))
        );
        assert_eq!(s.run.stats, 5, "the command line overrides the file");
        assert_eq!(t[1].name, "tunnels[1]");
        let Spec::Client(c) = &t[1].spec else {
            panic!("not a client")
        };
        assert_eq!(c.server, "192.0.2.1:4000");
        assert!(!c.run.check);
    }

    #[test]
    fn mistakes_name_the_tunnel_and_the_key() {
        for (json, want) in [
            (r#"{"tunels": []}"#, "unknown key \"tunels\""),
            (r#"{"tunnels": []}"#, "is empty"),
            (
                r#"{"tunnels": [{"listen": "x"}]}"#,
                "tunnels[0]: expected \"command\"",
            ),
            (
                r#"{"tunnels": [{"command": "demo"}]}"#,
                "command = \"demo\" is invalid",
            ),
            (
                r#"{"tunnels": [{"command": "server", "listen": "a:1", "target": "b:2", "mtuu": 1}]}"#,
                "unexpected argument \"--mtuu",
            ),
            (
                r#"{"tunnels": [{"command": "server", "listen": "a:1"}]}"#,
                "--target",
            ),
            (
                r#"{"tunnels": [{"name": "a", "command": "server", "listen": "a:1", "target": "b:2"},
                                {"name": "a", "command": "server", "listen": "a:1", "target": "b:2"}]}"#,
                "a second tunnel named \"a\"",
            ),
        ] {
            let e = parse_str(json, &[]).err().unwrap_or_default();
            assert!(e.contains(want), "{json}: {e:?} lacks {want:?}");
        }
    }
}
