//! WHIP and WHEP with real Chromium and a WHIP/WHEP client no one here
//! wrote (npm `whip-whep`, tests/browser/whip.mjs): one page publishes the
//! fake camera and microphone over WHIP, a second plays them over WHEP
//! (frames decoded, audio with energy), a third pulls the same tracks with
//! the Calls API; the clients' DELETEs end the stream.
//!
//! Run with `tools/test`, or `cargo test --test whip_chromium` once
//! Chromium and tests/browser/node_modules are installed; without them
//! this test fails, it does not skip.

mod common;

use common::browser::{api_scenario, require_node_module};

#[test]
fn chromium_publishes_with_whip_and_plays_with_whep() {
    require_node_module("whip-whep");
    let r = api_scenario("whip.mjs", "publish-play");
    assert_eq!(r["passed"], true, "{r}");
}
