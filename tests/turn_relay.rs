//! TURN through a real coturn, started by `tools/turn up`, for clients
//! whose direct UDP to the media port is blocked: in a network namespace
//! where nftables drops every datagram between the media port and anything
//! but coturn's relay ports, two Chromium pages with `iceTransportPolicy:
//! "relay"` and credentials from `generate-ice-servers` publish and pull
//! camera and microphone, over TURN/UDP and over TURN/TCP (there UDP to
//! coturn's port is dropped too); after `revoke`, coturn refuses a new
//! allocation with that username (tests/browser/turn.mjs). Over UDP the
//! demo page, opened with `?turn=relay`, runs its echo through coturn too
//! (without it, the echo cannot connect there).
//!
//! Needs root, coturn, Chromium and tests/browser/node_modules
//! (`tools/test` installs them).

mod common;
mod netns;

use std::sync::Mutex;

use common::browser;
use netns::{ADDR, Netns, NsServer};

/// Fixed ids of the namespace's server (the namespace is the test's own).
const APP: &str = "7e1a7e1a7e1a7e1a7e1a7e1a7e1a7e1a";
const SECRET: &str = "turn-relay-test-secret";
/// coturn's relay ports (tools/turn up --relay-ports).
const RELAY_PORTS: &str = "49160-49200";

/// A browser takes both cores: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn nft(ns: &Netns, rules: &str) {
    let mut cmd = ns.command("nft");
    cmd.args(["-f", "-"]).stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("nft");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(rules.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft {rules}");
}

/// The `--turn-*` flags `tools/turn up` printed to its flags file.
fn turn_flags(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("switchboard.flags"))
        .expect("tools/turn up writes switchboard.flags")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn flag<'a>(flags: &'a [String], name: &str) -> &'a str {
    let i = flags
        .iter()
        .position(|f| f == name)
        .unwrap_or_else(|| panic!("{name} in {flags:?}"));
    &flags[i + 1]
}

fn relay(transport: &str) -> serde_json::Value {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    browser::chromium();
    browser::require_node_module("playwright-core");
    netns::check_tools();
    let ns = Netns::create();
    let dir = std::env::temp_dir().join(format!("sb-turn-{}-{transport}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let tools_turn = browser::root().join("tools/turn");
    let mut up = ns.command(tools_turn.to_str().unwrap());
    up.arg("up")
        .arg("--dir")
        .arg(&dir)
        .args([
            "--listen",
            ADDR,
            "--external",
            ADDR,
            "--relay-ports",
            RELAY_PORTS,
        ])
        .args(["--media", &format!("{ADDR}:40000")]);
    let (status, out, err) = netns::output_within(up, 60);
    assert!(status.success(), "tools/turn up: {out}\n{err}");
    let down = || {
        let mut cmd = ns.command(tools_turn.to_str().unwrap());
        cmd.arg("down").arg("--dir").arg(&dir);
        netns::output_within(cmd, 30)
    };
    // Direct media is blocked: the media port talks to coturn's relay
    // ports only; over TCP, coturn's UDP port is blocked as well.
    let mut rules = format!(
        "table inet turntest {{\n chain in {{\n  type filter hook input priority 0; policy accept;\n  \
         udp dport 40000 udp sport != {RELAY_PORTS} counter drop\n  \
         udp sport 40000 udp dport != {RELAY_PORTS} counter drop\n"
    );
    if transport == "tcp" {
        rules += "  udp dport 3478 counter drop\n";
    }
    rules += " }\n}\n";
    nft(&ns, &rules);
    let flags = turn_flags(&dir);
    let mut extra = flags.clone();
    extra.extend(["--dev-app-id", APP, "--dev-app-secret", SECRET].map(String::from));
    let server = NsServer::start_with(&ns, env!("CARGO_BIN_EXE_switchboard"), &extra);
    let mut node = ns.command("node");
    node.arg(browser::script("turn.mjs")).args([
        "127.0.0.1:8080",
        APP,
        SECRET,
        flag(&flags, "--turn-key-id"),
        flag(&flags, "--turn-key-token"),
        transport,
    ]);
    let (status, stdout, stderr) = netns::output_within(node, 120);
    // The demo page's echo through the TURN server (UDP to coturn).
    let demo = (transport == "udp").then(|| {
        let mut echo = ns.command("node");
        echo.arg(browser::script("echo.mjs"))
            .arg("http://127.0.0.1:8080/?turn=relay");
        netns::output_within(echo, 60)
    });
    let logs = server.logs();
    let coturn_log = std::fs::read_to_string(dir.join("turn.log")).unwrap_or_default();
    let (_, _, down_err) = down();
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("no JSON result ({e}, {status}): {stdout}\n--- browser ---\n{stderr}\n--- server ---\n{logs}\n--- coturn ---\n{coturn_log}")
    });
    assert!(
        status.success() && result["passed"] == true,
        "{transport}: {stdout}\n--- browser ---\n{stderr}\n--- server ---\n{logs}\n--- coturn ---\n{coturn_log}\n{down_err}"
    );
    eprintln!("{transport}: {}", stdout.trim());
    if let Some((status, out, err)) = demo {
        let echo: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        assert!(
            status.success() && echo["ok"] == true && echo["framesDecoded"].as_u64() > Some(60),
            "the demo page with ?turn=relay: {out}\n--- browser ---\n{err}\n--- server ---\n{logs}"
        );
        eprintln!("demo ?turn=relay: {}", out.trim());
    }
    result
}

#[test]
fn chromium_relays_media_through_coturn_over_udp_then_revoke_refuses() {
    relay("udp");
}

#[test]
fn chromium_relays_media_through_coturn_over_tcp_then_revoke_refuses() {
    relay("tcp");
}
