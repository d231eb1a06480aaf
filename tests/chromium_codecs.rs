//! Every codec Chromium can send, through the server and back into a second
//! Chromium peer connection: VP8, VP9, H.264 (Constrained Baseline 42e01f,
//! Main 4d001f, and High when the browser can encode it), AV1, Opus with
//! munged fmtp parameters (minptime, useinbandfec, usedtx, stereo: the
//! server's offer to the subscriber must carry them), PCMU and PCMA. Each
//! video case forces its codec with setCodecPreferences and must decode
//! more than 60 frames with it at the subscriber; audio cases must keep
//! receiving packets and play samples. The page drives the Calls API itself
//! (tests/browser/codecs.mjs, one headless Chromium for all cases).
//!
//! Run with `tools/test`, or `cargo test --test chromium_codecs` once
//! Chromium (`CHROMIUM`, default /usr/bin/chromium) and
//! tests/browser/node_modules are installed; without them this test fails,
//! it does not skip.

mod common;

use common::browser::run_api_script;

#[test]
fn chromium_sends_and_receives_every_codec_through_the_server() {
    let server = common::server(2);
    let (result, log) = run_api_script("codecs.mjs", &server, &[]);
    let pretty = serde_json::to_string_pretty(&result).unwrap_or_default();
    let cases = result["scenarios"].as_array().cloned().unwrap_or_default();
    let failed: Vec<String> = cases
        .iter()
        .filter(|c| c["ok"] != true)
        .map(|c| format!("{}: {}", c["name"], c["reason"]))
        .collect();
    assert!(
        result["ok"] == true && failed.is_empty(),
        "failed cases: {failed:#?}\n{}\n--- result ---\n{pretty}\n--- page log ---\n{log}",
        result["reason"]
    );
    let case = |name: &str| {
        cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("case {name} missing: {pretty}"))
    };
    for name in [
        "vp8",
        "vp9",
        "h264-constrained-baseline",
        "h264-main",
        "av1",
    ] {
        let frames = case(name)["subscriber"]["framesDecoded"]
            .as_u64()
            .unwrap_or(0);
        assert!(frames > 60, "{name}: {frames} frames decoded: {pretty}");
    }
    // High profile: decoded like the others, or shown not to be encodable.
    let high = case("h264-high");
    if high["encodable"] == false {
        let caps = high["senderH264"].as_array().expect("senderH264");
        assert!(
            caps.iter()
                .all(|c| !c.as_str().unwrap_or("").contains("profile-level-id=64")),
            "{pretty}"
        );
    } else {
        assert!(
            high["subscriber"]["framesDecoded"].as_u64().unwrap_or(0) > 60,
            "{pretty}"
        );
    }
    eprintln!("{pretty}");
    let opus = case("opus-fmtp")["subscriberOfferFmtp"]
        .as_str()
        .unwrap_or("");
    for param in ["minptime=10", "useinbandfec=1", "usedtx=1", "stereo=1"] {
        assert!(opus.contains(param), "opus fmtp {opus:?} lacks {param}");
    }
}
