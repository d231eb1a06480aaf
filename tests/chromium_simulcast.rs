//! Simulcast with real headless Chromium peers that drive the Calls API from
//! the page (tests/browser/simulcast.mjs): a publisher sending three VP8
//! layers at 1280x720, 640x360 and 320x180; a subscriber switched by
//! tracks/update (f → h → q → f) sees the pulled video's width follow
//! within 2 s of each request with no stall over 500 ms; with
//! `ridNotAvailable: "asciibetical"` it falls to h when the publisher
//! disables f and returns to f when it is enabled again.
//!
//! Run with `tools/test`, or `cargo test --test chromium_simulcast` once
//! Chromium (`CHROMIUM`, default /usr/bin/chromium) and
//! tests/browser/node_modules are installed; without them this test fails,
//! it does not skip.

mod common;

use common::browser::run_api_script;

fn scenario(name: &str) {
    let server = common::server(2);
    let (result, log) = run_api_script("simulcast.mjs", &server, &[name]);
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
}

#[test]
fn a_subscriber_switched_by_tracks_update_gets_each_layers_width_within_two_seconds() {
    scenario("switch");
}

#[test]
fn a_subscriber_falls_back_when_the_preferred_layer_stops_and_returns_when_it_resumes() {
    scenario("rid-not-available");
}
