//! The deploy kit is valid: `deploy/switchboard.service` passes
//! `systemd-analyze verify` (with the built binary in ExecStart), and
//! `deploy/switchboard.toml` is a configuration the binary accepts (it
//! starts with it, on loopback ports, and answers the API with the
//! configured app).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

const UNIT: &str = include_str!("../deploy/switchboard.service");
const CONFIG: &str = include_str!("../deploy/switchboard.toml");

/// A fresh directory of this test's own under the temporary directory.
fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn the_service_unit_passes_systemd_analyze_verify() {
    let dir = scratch("unit");
    let unit = dir.join("switchboard.service");
    let text = UNIT.replace(
        "/usr/local/bin/switchboard",
        env!("CARGO_BIN_EXE_switchboard"),
    );
    assert_ne!(text, UNIT, "ExecStart names the installed binary");
    std::fs::write(&unit, text).expect("write the unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (tools/test installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about the host's other units are not ours to judge.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("switchboard.service"))
        .collect();
    assert!(out.status.success() && ours.is_empty(), "{stderr}");
    for wanted in [
        "Type=notify",
        "DynamicUser=yes",
        "CapabilityBoundingSet=",
        "LimitNOFILE=",
    ] {
        assert!(UNIT.lines().any(|l| l.starts_with(wanted)), "{wanted}");
    }
}

#[test]
fn the_example_configuration_starts_the_server() {
    // Its addresses are the host's; here they become loopback ports.
    let config = CONFIG
        .replace("10.0.0.5:8080", "127.0.0.1:0")
        .replace("0.0.0.0:40000", "127.0.0.1:0")
        .replace("203.0.113.7", "127.0.0.1")
        .replace("workers = 14", "workers = 1")
        .replace("pin = true", "pin = false");
    let dir = scratch("config");
    let path = dir.join("switchboard.toml");
    std::fs::write(&path, config).expect("write the config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let api = stdout.lines().map_while(Result::ok).find_map(|l| {
        l.trim()
            .strip_prefix("HTTP API")
            .map(|u| u.trim().to_owned())
    });
    let _ = child.kill();
    let status = child.wait().expect("wait");
    let api = api.unwrap_or_else(|| panic!("no API line; exit {status}"));
    assert!(
        api.ends_with("/v1/apps/4f0c2a9e8d7b6a5f4e3d2c1b0a998877/"),
        "the configured app: {api}"
    );
}
