//! Real Chromium on bad networks, each scenario in a network namespace of
//! its own with its own server (see tests/netns):
//!
//! - loss: the demo page's echo (publish, pull back) for 30 s on a clean
//!   path, then for 30 s with 5 % of the datagrams from and to the media
//!   port dropped at random (nftables): the lossy run's total freeze time
//!   is at most 1 s, it decodes at least 90 % of the clean run's frames,
//!   the echo peer sent NACKs and the server answered them
//!   (tests/browser/lossy.mjs);
//! - bottleneck: the echo peer alone behind a 400 kbit/s shaper (HTB with
//!   a short FIFO on the server → subscriber direction), another
//!   subscriber of the same tracks unshaped: the shaped subscriber's
//!   estimate settles near the limit and its video pauses; the publisher
//!   and the other subscriber go on; once the limit is lifted its video
//!   resumes within 10 s (tests/browser/bottleneck.mjs).
//!
//!   tools/test --test chromium_network   (or cargo test, with its prerequisites)
//!
//! Needs root, iproute2 (tc), nftables, Chromium and
//! tests/browser/node_modules: tools/test installs them. Without them the
//! tests fail, they do not skip.

mod common;
mod netns;

use std::sync::Mutex;

use netns::Netns;
use serde_json::Value;

/// Browsers take both cores: one scenario at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MEDIA_PORT: u16 = 40000;

/// Runs `script` with `args` after the demo URL in a fresh namespace (made
/// lossy by `prepare`); returns its JSON result and the server's log.
fn scenario(script: &str, args: &[&str], prepare: impl Fn(&Netns)) -> (Value, String) {
    netns::run_chromium_script(script, args, &prepare).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn video_holds_up_through_five_percent_loss_each_way() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (clean, _) = scenario("lossy.mjs", &["30"], |_| {});
    let (lossy, logs) = scenario("lossy.mjs", &["30"], |ns| ns.drop_percent(MEDIA_PORT, 5));
    eprintln!("clean: {clean}\nlossy: {lossy}");
    let frames = |r: &Value| r["framesDecoded"].as_f64().unwrap_or(0.0);
    assert!(
        lossy["freezeSeconds"].as_f64().unwrap_or(f64::MAX) <= 1.0,
        "frozen too long: {lossy}\n{logs}"
    );
    assert!(
        frames(&lossy) >= 0.9 * frames(&clean),
        "clean {clean}, lossy {lossy}\n{logs}"
    );
    assert!(lossy["nackCount"].as_u64().unwrap_or(0) > 0, "{lossy}");
    // A 30 s call through loss keeps consent: Chromium answers the
    // server's checks (RFC 7675), one every 5 s.
    let consent = &lossy["consent"];
    assert!(
        consent["answers"].as_u64() >= Some(4) && consent["lost"] == 0,
        "consent {consent}"
    );
    assert!(
        lossy["serverRetransmitted"].as_u64().unwrap_or(0) > 0,
        "{lossy}"
    );
}

/// Samples of one phase.
fn phase<'a>(samples: &'a [Value], name: &str) -> Vec<&'a Value> {
    samples.iter().filter(|s| s["phase"] == name).collect()
}

fn sum(samples: &[&Value], key: &str) -> u64 {
    samples.iter().map(|s| s[key].as_u64().unwrap_or(0)).sum()
}

/// Estimates the server sampled (once a second per subscriber) at or
/// below `kbit` (all of them for `None`), cumulative as of `sample`.
fn estimates(sample: &Value, kbit: Option<f64>) -> u64 {
    let buckets = sample["estimates"].as_array().cloned().unwrap_or_default();
    buckets
        .iter()
        .filter(|b| match (b[0].as_f64(), kbit) {
            (Some(le), Some(k)) => le <= k,
            (None, None) => true, // +Inf
            _ => false,
        })
        .map(|b| b[1].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0)
}

#[test]
fn a_subscriber_behind_a_bottleneck_is_paused_and_resumes_others_unaffected() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let limit = 400;
    let (result, logs) = scenario(
        "bottleneck.mjs",
        &[&limit.to_string(), "8", "25", "15"],
        |_| {},
    );
    let samples = result["samples"].as_array().cloned().unwrap_or_default();
    let table: Vec<String> = samples.iter().map(|s| s.to_string()).collect();
    let table = table.join("\n");
    eprintln!("{table}");
    let clean = phase(&samples, "clean");
    let limited = phase(&samples, "limited");
    let lifted = phase(&samples, "lifted");
    // Paused under the limit: the server says so, and the echo peer
    // decodes (almost) nothing in the limit's last 10 s.
    assert!(
        limited.iter().any(|s| s["paused"].as_u64() == Some(1)),
        "never paused\n{table}\n{logs}"
    );
    let late = &limited[limited.len() - 10..];
    assert!(sum(late, "echoFrames") <= 20, "still decoding\n{table}");
    // The estimate settled near the limit: from the limit's fifth second
    // on, the shaped subscriber's samples (one a second) lie between half
    // and twice the limit; the other subscriber's lie above.
    let (from, to) = (limited[4], limited[limited.len() - 1]);
    let near = |k: Option<f64>| estimates(to, k) - estimates(from, k);
    let k = f64::from(limit);
    let settled = near(Some(2.0 * k)) - near(Some(k / 2.0));
    assert!(
        settled + 2 >= (limited.len() - 5) as u64,
        "{settled} of {} samples near {limit} kbit/s\n{table}",
        near(None)
    );
    // The publisher and the other subscriber went on.
    let per_second = |s: &[&Value], key: &str| sum(s, key) as f64 / s.len() as f64;
    assert!(
        per_second(&limited, "pullFrames") >= 0.8 * per_second(&clean, "pullFrames"),
        "the other subscriber suffered\n{table}"
    );
    // (Against its own clean phase: Chromium's encoder may settle lower
    // when the host is busy, whatever the network does.)
    let min_publisher = limited
        .iter()
        .map(|s| s["publisherKbit"].as_u64().unwrap_or(0))
        .min()
        .unwrap_or(0);
    // (Its clean phase after the first seconds' ramp.)
    let clean_publisher = per_second(&clean[clean.len().min(3)..], "publisherKbit");
    assert!(clean_publisher > 0.0, "no publisher rate\n{table}");
    assert!(
        min_publisher as f64 >= 0.8 * clean_publisher,
        "the publisher suffered\n{table}"
    );
    // Resumed within 10 s of the limit being lifted.
    let resumed = lifted
        .iter()
        .position(|s| s["echoFrames"].as_u64().unwrap_or(0) >= 10);
    assert!(
        resumed.is_some_and(|i| i < 10),
        "not resumed within 10 s\n{table}\n{logs}"
    );
    assert_eq!(
        lifted[lifted.len() - 1]["paused"].as_u64(),
        Some(0),
        "{table}"
    );
}
