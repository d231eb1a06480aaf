//! Simulcast with real headless Chromium peers that drive the Calls API from
//! the page (tests/browser/simulcast.mjs): a publisher sending three VP8
//! layers at 1280x720, 640x360 and 320x180; a subscriber switched by
//! tracks/update (f → h → q → f) sees the pulled video's width follow
//! within 2 s of each request with no stall over 500 ms; with
//! `ridNotAvailable: "asciibetical"` it falls to h when the publisher
//! disables f and returns to f when it is enabled again; with
//! `priorityOrdering: "asciibetical"` behind a bottleneck (server →
//! subscriber, in a network namespace) it moves down to a layer that fits
//! within 5 s and back to f within 20 s of the limit being lifted, while
//! another subscriber keeps f throughout.
//!
//! Run with `tools/test`, or `cargo test --test chromium_simulcast` once
//! Chromium (`CHROMIUM`, default /usr/bin/chromium) and
//! tests/browser/node_modules are installed; without them this test fails,
//! it does not skip.

mod common;
mod netns;

use std::sync::Mutex;

use common::browser::api_scenario;
use serde_json::Value;

/// Browsers take both cores: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn scenario(name: &str) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    api_scenario("simulcast.mjs", name);
}

#[test]
fn a_subscriber_switched_by_tracks_update_gets_each_layers_width_within_two_seconds() {
    scenario("switch");
}

#[test]
fn a_subscriber_falls_back_when_the_preferred_layer_stops_and_returns_when_it_resumes() {
    scenario("rid-not-available");
}

#[test]
fn a_subscriber_behind_a_bottleneck_moves_down_a_layer_and_back_up_when_it_lifts() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (clean, limited, lifted) = (8, 20, 25);
    let (result, logs) = netns::run_chromium_script(
        "simulcast-bottleneck.mjs",
        &[
            "700",
            &clean.to_string(),
            &limited.to_string(),
            &lifted.to_string(),
        ],
        &|_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let samples = result["samples"].as_array().cloned().unwrap_or_default();
    let table: Vec<String> = samples.iter().map(Value::to_string).collect();
    let table = table.join("\n");
    eprintln!("{table}");
    let phase =
        |name: &str| -> Vec<&Value> { samples.iter().filter(|s| s["phase"] == name).collect() };
    let width = |s: &Value, key: &str| s[key].as_u64().unwrap_or(0);
    let (clean_s, limited_s, lifted_s) = (phase("clean"), phase("limited"), phase("lifted"));
    // f before the limit.
    assert_eq!(
        width(clean_s[clean_s.len() - 1], "shapedWidth"),
        1280,
        "{table}\n{logs}"
    );
    // Down within 5 s, and below f to the end of the limit, still decoding.
    let down = limited_s
        .iter()
        .position(|s| width(s, "shapedWidth") < 1280);
    assert!(
        down.is_some_and(|i| i < 5),
        "not down within 5 s\n{table}\n{logs}"
    );
    let after = &limited_s[down.unwrap_or(0)..];
    assert!(
        after.iter().all(|s| width(s, "shapedWidth") < 1280),
        "back up under the limit\n{table}"
    );
    let late = &limited_s[limited_s.len() - 5..];
    let frames: u64 = late
        .iter()
        .map(|s| s["shapedFrames"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        frames >= 25,
        "{frames} frames in the limit's last 5 s\n{table}"
    );
    // No flapping: at most two width changes under the limit.
    let changes = limited_s
        .windows(2)
        .filter(|w| w[0]["shapedWidth"] != w[1]["shapedWidth"])
        .count();
    assert!(
        changes <= 2,
        "{changes} layer changes under the limit\n{table}"
    );
    // Back to f within 20 s of the lift.
    let up = lifted_s
        .iter()
        .position(|s| width(s, "shapedWidth") == 1280);
    assert!(
        up.is_some_and(|i| i < 20),
        "not back to f within 20 s\n{table}\n{logs}"
    );
    // The other subscriber kept f and its frame rate.
    assert!(
        limited_s
            .iter()
            .chain(&lifted_s)
            .all(|s| width(s, "otherWidth") == 1280),
        "the other subscriber left f\n{table}"
    );
    let rate = |s: &[&Value]| {
        s.iter()
            .map(|x| x["otherFrames"].as_u64().unwrap_or(0))
            .sum::<u64>() as f64
            / s.len() as f64
    };
    assert!(
        rate(&limited_s) >= 0.8 * rate(&clean_s[2..]),
        "the other subscriber slowed\n{table}"
    );
}
