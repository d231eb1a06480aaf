//! Data channels with real headless Chromium peers that drive the Calls API
//! from the page (tests/browser/datachannels.mjs): a publisher and two
//! subscribers, both ways of establishing (server offer, client offer),
//! 1,000 ordered messages (strings and binary, 0 to 64 KiB) at every
//! subscriber once and in order, 200 unordered once each, 1,000 replies
//! from the holder of canReply and none from the other, the grant moved by
//! datachannels/update, GET statuses active.
//!
//! Run with `tools/test`, or `cargo test --test chromium_datachannels` once
//! Chromium (`CHROMIUM`, default /usr/bin/chromium) and
//! tests/browser/node_modules are installed; without them this test fails,
//! it does not skip.

mod common;

use common::browser::api_scenario;

#[test]
fn a_publishers_channel_fans_out_to_two_chromium_subscribers_and_one_may_reply() {
    let found = api_scenario("datachannels.mjs", "fanout");
    println!("server counters: {}", found["metrics"]);
}
