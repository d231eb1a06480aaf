//! Real headless Chromium against the demo page: publish a fake camera and
//! microphone, pull them back through the server (echo), and pull one tab's
//! tracks from a second tab. The pulled video must decode more than 60
//! frames within 15 s. Run through `tools/test`, which installs Chromium and
//! the page driver (playwright-core); without them this test fails, it does
//! not skip.

mod common;

use std::path::Path;
use std::process::Command;

fn run_page(url: &str, extra: &[&str]) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium not found at {chromium}: run the tests with tools/test, which installs it"
    );
    assert!(
        Path::new(root)
            .join("tests/browser/node_modules/playwright-core")
            .exists(),
        "tests/browser/node_modules missing: run the tests with tools/test (it runs npm ci there)"
    );
    let output = Command::new("node")
        .arg(Path::new(root).join("tests/browser/echo.mjs"))
        .arg(url)
        .args(extra)
        .env("CHROMIUM", &chromium)
        .output()
        .expect("node runs (install Node.js, or use tools/test)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "browser scenario {extra:?} failed: {stdout}\n--- page log ---\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn chromium_echo_and_second_tab_decode_video() {
    let server = common::server(2);
    let url = format!("http://{}/", server.http_addr);
    let out = run_page(&url, &[]);
    let result: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON result");
    assert_eq!(result["ok"], true);
    assert!(result["framesDecoded"].as_u64().unwrap() > 60, "{out}");
    let out = run_page(&url, &["--two-tabs"]);
    let result: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON result");
    assert_eq!(result["ok"], true);
    assert!(result["framesDecoded"].as_u64().unwrap() > 60, "{out}");
}
