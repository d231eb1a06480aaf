//! Renegotiations with real headless Chromium peers that drive the Calls API
//! from the page (tests/browser/renegotiation.mjs):
//!
//! - closing two pushed tracks with one `tracks/close` carrying the
//!   publisher's offer (`force: false`) when only the first transceiver was
//!   stopped: Chromium must accept the answer (one BUNDLE group kept), stay
//!   connected, and a subscriber of the third track keeps decoding (no
//!   stall over 1 s) while the closed one stops;
//! - the same for two pulled tracks of a subscriber session;
//! - an ICE restart of the publisher (`restartIce()`, offer sent with
//!   `tracks/new` and no tracks): new server credentials in the answer, ICE
//!   connected again on them, the subscriber keeps decoding (no stall over
//!   1 s), tracks active.
//!
//! Run with `tools/test`, or `cargo test --test chromium_renegotiation` once
//! Chromium (`CHROMIUM`, default /usr/bin/chromium) and
//! tests/browser/node_modules are installed; without them these tests fail,
//! they do not skip.

mod common;

use std::sync::Mutex;

use common::browser::api_scenario;

use serde_json::Value;

/// One browser at a time: two encoders on two cores are slow enough already.
static BROWSER: Mutex<()> = Mutex::new(());

/// Runs one scenario of renegotiation.mjs against a fresh server and panics
/// with its evidence unless it passed.
fn scenario(name: &str) -> Value {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    api_scenario("renegotiation.mjs", name)
}

#[test]
fn closing_two_pushed_tracks_with_an_offer_keeps_the_third_flowing() {
    let r = scenario("close-push");
    assert!(
        r["kept"]["end"].as_u64() > r["kept"]["start"].as_u64(),
        "{r}"
    );
}

#[test]
fn closing_two_pulled_tracks_with_an_offer_keeps_the_third_flowing() {
    let r = scenario("close-pull");
    assert!(
        r["kept"]["end"].as_u64() > r["kept"]["start"].as_u64(),
        "{r}"
    );
}

#[test]
fn ice_restart_of_the_publisher_keeps_media_flowing() {
    let r = scenario("ice-restart");
    let server = &r["ufrags"]["server"];
    assert_ne!(server[0], server[1], "{r}");
    assert!(
        r["video"]["end"].as_u64() > r["video"]["start"].as_u64(),
        "{r}"
    );
}
