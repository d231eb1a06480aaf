//! Real browsers in tests: where they are (`CHROMIUM`, `FIREFOX`, else
//! Debian's), the page drivers under tests/browser (node), and running a
//! driver script. A missing prerequisite fails the test with what to run
//! (tools/test installs them); nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The repository root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Chromium binary, which must exist.
pub fn chromium() -> String {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: run the tests with tools/test, which installs it"
    );
    chromium
}

/// The Firefox binary, which must exist.
pub fn firefox() -> String {
    let firefox = std::env::var("FIREFOX").unwrap_or_else(|_| "/usr/bin/firefox-esr".into());
    assert!(
        Path::new(&firefox).exists(),
        "Firefox not found at {firefox}: run the tests with tools/test, which installs firefox-esr"
    );
    firefox
}

/// A page driver installed under tests/browser/node_modules.
pub fn require_node_module(name: &str) {
    assert!(
        root()
            .join("tests/browser/node_modules")
            .join(name)
            .exists(),
        "tests/browser/node_modules/{name} missing: run the tests with tools/test (it runs npm ci there)"
    );
}

/// A script of tests/browser.
pub fn script(name: &str) -> PathBuf {
    root().join("tests/browser").join(name)
}

/// Runs `node <script> <args>` with Chromium; returns whether it exited 0,
/// its stdout and its stderr (the page log).
pub fn run_node(script_name: &str, args: &[&str]) -> (bool, String, String) {
    let chromium = chromium();
    require_node_module("playwright-core");
    let output = Command::new("node")
        .arg(script(script_name))
        .args(args)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs (install Node.js, or use tools/test)");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a script that drives the Calls API from a page of `server`
/// (arguments: its HTTP address, app id and secret, then `extra`); returns
/// its one-line JSON result and the page log.
pub fn run_api_script(
    script_name: &str,
    server: &switchboard::server::Server,
    extra: &[&str],
) -> (Value, String) {
    let (app, secret) = server.app();
    let addr = server.http_addr.to_string();
    let mut args = vec![addr.as_str(), app, secret];
    args.extend_from_slice(extra);
    let (_, stdout, log) = run_node(script_name, &args);
    let result = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("{script_name}: no JSON result ({e}): {stdout}\n--- page log ---\n{log}")
    });
    (result, log)
}

/// Runs scenario `name` of the API script `script` against a fresh server
/// with two workers; panics with the evidence (result and page log) unless
/// it passed; returns the scenario's result.
pub fn api_scenario(script: &str, name: &str) -> Value {
    let server = super::server(2);
    let (result, log) = run_api_script(script, &server, &[name]);
    let pretty = serde_json::to_string_pretty(&result).unwrap_or_default();
    let found = &result["scenarios"][0];
    assert!(
        result["ok"] == true && found["name"] == name && found["ok"] == true,
        "{name} failed: {}\n--- result ---\n{pretty}\n--- page log ---\n{log}",
        if found.is_null() {
            &result["reason"]
        } else {
            &found["reason"]
        }
    );
    eprintln!("{pretty}");
    found.clone()
}
