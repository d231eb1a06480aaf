//! Real headless Chromium against the demo page: publish a fake camera and
//! microphone, pull them back through the server (echo), and pull one tab's
//! tracks from a second tab. The pulled video must decode more than 60
//! frames within 15 s. Then the demo's chat: two tabs, one joins the
//! other's data channel, a line typed in each reaches the other. Run through `tools/test`, which installs Chromium and
//! the page driver (playwright-core); without them this test fails, it does
//! not skip.

mod common;

use common::browser::run_node;

fn run_page(url: &str, extra: &[&str]) -> String {
    let mut args = vec![url];
    args.extend_from_slice(extra);
    let (ok, stdout, log) = run_node("echo.mjs", &args);
    assert!(
        ok,
        "browser scenario {extra:?} failed: {stdout}\n--- page log ---\n{log}"
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

#[test]
fn chromium_demo_chat_between_two_tabs() {
    let server = common::server(2);
    let url = format!("http://{}/", server.http_addr);
    let out = run_page(&url, &["--chat"]);
    let result: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON result");
    assert_eq!(result["ok"], true, "{out}");
    assert_eq!(result["messages"]["tab2"][0], "hello from tab 1", "{out}");
    assert_eq!(result["messages"]["tab1"][0], "hello from tab 2", "{out}");
}
