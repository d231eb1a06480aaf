//! Real headless Firefox against the demo page, and mixed Firefox/Chromium
//! pairs: Firefox echo (publish a fake camera + mic and pull them back), a
//! second Firefox tab pulling the first one's tracks, Chromium → Firefox and
//! Firefox → Chromium. The pulled video must decode more than 60 frames.
//! And the demo's chat: Firefox subscribes to a Chromium publisher's data
//! channel, receives its lines in order, and replies; and the other way round.
//!
//!   tools/test --test firefox     (or, with its prerequisites: cargo test --test firefox)
//!
//! Firefox gathers no UDP candidate on a loopback-only host, so each test
//! runs the server binary and the browsers (tests/browser/firefox.mjs,
//! puppeteer-core) in a network namespace of its own with one veth address
//! and a default route; an nftables rule drops everything sent out of the
//! veth, so no packet leaves. Needs root, iproute2, nftables, Firefox ESR,
//! Chromium and tests/browser/node_modules: tools/test installs them. Without
//! them the tests fail, they do not skip.

mod common;
mod netns;

use std::sync::Mutex;

use common::browser;
use netns::{Netns, NsServer};

/// Browsers take both cores: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn check_prerequisites(need_chromium: bool) {
    browser::firefox();
    if need_chromium {
        browser::chromium();
    }
    browser::require_node_module("puppeteer-core");
    netns::check_tools();
}

/// Runs one scenario of tests/browser/firefox.mjs in a fresh namespace with
/// its own server; returns the decoded frame count.
fn scenario(name: &str) -> u64 {
    let result = run(name, |r| r["framesDecoded"].as_u64().unwrap_or(0) > 60);
    result["framesDecoded"].as_u64().unwrap_or(0)
}

/// Runs one scenario; it must succeed and `passed` hold of its result.
fn run(name: &str, passed: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    check_prerequisites(name != "echo" && name != "firefox-to-firefox");
    let ns = Netns::create();
    let server = NsServer::start(&ns, env!("CARGO_BIN_EXE_switchboard"));
    let script = browser::script("firefox.mjs");
    let mut node = ns.command("node");
    node.arg(&script).arg(&server.url).arg(name);
    let (status, stdout, stderr) = netns::output_within(node, 120);
    let logs = server.logs();
    // Firefox answers the server's consent checks (RFC 7675), which keep
    // its media flowing past 30 s.
    let consent = server.consent(&ns);
    assert!(
        consent["answers"].as_u64() >= Some(1) && consent["lost"] == 0,
        "{name}: consent {consent}"
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("{name}: no JSON result ({e}, {status}): {stdout}\n--- browsers ---\n{stderr}\n--- server ---\n{logs}")
    });
    assert!(
        status.success() && result["ok"] == true && passed(&result),
        "{name} failed: {stdout}\n--- browsers ---\n{stderr}\n--- server ---\n{logs}"
    );
    // Normal handshakes of real browsers log nothing above INFO.
    let loud: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect();
    assert!(
        loud.is_empty(),
        "{name}: the server logged above INFO:\n{}",
        loud.join("\n")
    );
    eprintln!("{name}: {}", stdout.trim());
    result
}

#[test]
fn firefox_echo_decodes_video() {
    scenario("echo");
}

#[test]
fn firefox_second_tab_pulls_first_tabs_tracks() {
    scenario("firefox-to-firefox");
}

#[test]
fn chromium_publishes_firefox_pulls() {
    scenario("chromium-to-firefox");
}

#[test]
fn firefox_publishes_chromium_pulls() {
    scenario("firefox-to-chromium");
}

#[test]
fn firefox_subscribes_to_a_chromium_data_channel() {
    run("chat", |r| r["received"] == 20);
}

#[test]
fn chromium_subscribes_to_a_firefox_data_channel() {
    run("chat-firefox-publishes", |r| r["received"] == 20);
}
