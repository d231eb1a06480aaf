//! WHIP and WHEP with real Chromium and a WHIP/WHEP client no one here
//! wrote (npm `whip-whep`, tests/browser/whip.mjs): one page publishes the
//! fake camera and microphone over WHIP, a second plays them over WHEP
//! (frames decoded, audio with energy), a third pulls the same tracks with
//! the Calls API; the clients' DELETEs end the stream. A WHIP publisher
//! sending three simulcast layers is one track, and WHEP players choose a
//! layer with `?rid=`.
//!
//! Run with `tools/test`, or `cargo test --test whip_chromium` once
//! Chromium and tests/browser/node_modules are installed; without them
//! this test fails, it does not skip.

mod common;

use std::sync::Mutex;

use common::browser::{api_scenario, require_node_module};

/// A browser takes both cores: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenario(name: &str) -> serde_json::Value {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    require_node_module("whip-whep");
    api_scenario("whip.mjs", name)
}

#[test]
fn chromium_publishes_with_whip_and_plays_with_whep() {
    let r = scenario("publish-play");
    assert_eq!(r["passed"], true, "{r}");
}

#[test]
fn a_simulcast_whip_publisher_is_one_track_whose_layers_whep_players_choose() {
    let r = scenario("simulcast");
    assert_eq!(r["rid-q"]["frameWidth"], 320, "{r}");
    assert_eq!(r["rid-h"]["frameWidth"], 640, "{r}");
}
