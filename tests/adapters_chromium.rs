//! WebSocket adapters with real Chromium (tests/browser/adapters.mjs, one
//! headless Chromium; the script is the application and runs the WebSocket
//! server): a published tone arrives as PCM at 50 frames a second with its
//! frequency; the fake camera arrives as JPEG pictures at the asked rate
//! that Chromium itself decodes at the camera's size; PCM streamed faster
//! than real time is played to a Chromium subscriber at real-time pace,
//! with under 2 % concealment, at its frequency.
//!
//! Run with `tools/test`, or `cargo test --test adapters_chromium` once
//! Chromium and tests/browser/node_modules are installed; without them
//! this test fails, it does not skip.

mod common;

use std::sync::Mutex;

use common::browser::api_scenario;

/// A browser takes both cores: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenario(name: &str) -> serde_json::Value {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    api_scenario("adapters.mjs", name)
}

#[test]
fn a_published_tone_arrives_as_pcm() {
    let r = scenario("pcm-egress");
    assert!(r["rate"].as_f64().unwrap_or(0.0) >= 45.0, "{r}");
}

#[test]
fn the_camera_arrives_as_jpeg_pictures() {
    let r = scenario("jpeg-egress");
    assert!(r["pictures"].as_u64().unwrap_or(0) >= 16, "{r}");
}

#[test]
fn pcm_streamed_at_once_is_played_at_real_time_pace() {
    let r = scenario("pcm-ingest");
    assert!(r["concealed"].as_f64().unwrap_or(1.0) < 0.02, "{r}");
}
