//! Congestion feedback to a real Chromium publisher (tests/browser/bitrate.mjs):
//! on a clean loopback path its own send-side estimate
//! (`availableOutgoingBitrate`) reaches 1.5 Mbit/s within 10 s of
//! connecting, which it does only on the server's transport-cc feedback
//! (without it the estimate stays at its 300 kbit/s start).
//!
//! Run with `tools/test`, or `cargo test --test chromium_bitrate` once
//! Chromium and tests/browser/node_modules are installed; without them this
//! test fails, it does not skip.

mod common;

use common::browser::run_api_script;

#[test]
fn a_publishers_estimate_reaches_1_5_mbit_within_10_s() {
    let server = common::server(2);
    let (result, log) = run_api_script("bitrate.mjs", &server, &["clean-path"]);
    let pretty = serde_json::to_string_pretty(&result).unwrap_or_default();
    let found = &result["scenarios"][0];
    assert!(
        result["ok"] == true && found["ok"] == true,
        "clean-path failed\n--- result ---\n{pretty}\n--- page log ---\n{log}"
    );
    assert_eq!(found["answerHasTransportCc"], true, "{pretty}");
    eprintln!("{pretty}");
}
