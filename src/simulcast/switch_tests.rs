//! Layer switching on a virtual clock.

use super::*;
use serde_json::json;

const F: Layer = Layer(0);
const H: Layer = Layer(1);
const Q: Layer = Layer(2);

fn rids() -> Vec<Rid> {
    ["f", "h", "q"].into_iter().map(Rid::from).collect()
}

fn switch(preferences: serde_json::Value) -> LayerSwitch {
    LayerSwitch::new(Preferences::from_api(&preferences), &rids())
}

/// An estimate of `rate` bit/s on a path that showed congestion.
fn congested(rate: f64) -> Option<Estimate> {
    Some(Estimate {
        rate,
        congested: true,
    })
}

/// An estimate of `rate` bit/s still ramping up (no congestion seen).
fn ramping(rate: f64) -> Option<Estimate> {
    Some(Estimate {
        rate,
        congested: false,
    })
}

/// A switch with `preferences` sending f, all three layers live for 3 s
/// from `t0`; and the time then.
fn sending_f(preferences: serde_json::Value, t0: Instant) -> (LayerSwitch, Instant) {
    let mut s = switch(preferences);
    let now = flow(&mut s, t0, 3000, &[F, H, Q]);
    s.retarget(now, None);
    assert_eq!(s.admit(F, true), Admit::Switch);
    (s, now)
}

/// Every layer sends a packet every 10 ms for `ms`, at 4:2:1 sizes.
fn flow(s: &mut LayerSwitch, t0: Instant, ms: u64, live: &[Layer]) -> Instant {
    for i in 0..ms / 10 {
        let now = t0 + Duration::from_millis(i * 10);
        for &l in live {
            s.handle_packet(now, l, 1000 >> l.0);
        }
    }
    t0 + Duration::from_millis(ms)
}

#[test]
fn a_switch_waits_for_a_keyframe_of_the_target_and_asks_for_it_until_it_comes() {
    let t0 = Instant::now();
    let mut s = switch(json!({"preferredRid": "h"}));
    let now = flow(&mut s, t0, 100, &[F, H, Q]);
    s.retarget(now, None);
    assert_eq!(s.target(), Some(H));
    // Nothing is sent before the target's keyframe.
    assert_eq!(s.admit(H, false), Admit::Skip);
    assert_eq!(s.admit(F, true), Admit::Skip, "a keyframe of another layer");
    assert_eq!(s.poll_keyframe_request(now), Some(H));
    assert_eq!(
        s.poll_keyframe_request(now + Duration::from_millis(500)),
        None
    );
    let retry = flow(&mut s, now, KEYFRAME_RETRY.as_millis() as u64, &[F, H, Q]);
    assert_eq!(s.poll_keyframe_request(retry), Some(H), "asked again");
    assert_eq!(s.admit(H, true), Admit::Switch);
    assert_eq!(s.current(), Some(H));
    assert_eq!(s.admit(H, false), Admit::Forward);
    assert_eq!(s.admit(Q, true), Admit::Skip);
    assert_eq!(
        s.poll_keyframe_request(retry + KEYFRAME_RETRY),
        None,
        "reached"
    );

    // tracks/update to q: h goes on until q's keyframe.
    s.set_preferences(
        Preferences::from_api(&json!({"preferredRid": "q"})),
        &rids(),
    );
    s.retarget(retry, None);
    assert_eq!(s.target(), Some(Q));
    assert_eq!(s.admit(Q, false), Admit::Skip);
    assert_eq!(
        s.admit(H, false),
        Admit::Forward,
        "the current layer continues"
    );
    assert_eq!(s.admit(Q, true), Admit::Switch);
    assert_eq!(s.admit(H, true), Admit::Skip);
}

#[test]
fn rid_not_available_falls_back_when_the_preferred_layer_stops_and_returns_after() {
    let t0 = Instant::now();
    let mut s = switch(json!({"preferredRid": "f", "ridNotAvailable": "asciibetical"}));
    let now = flow(&mut s, t0, 200, &[F, H, Q]);
    s.retarget(now, None);
    assert_eq!(s.target(), Some(F));
    assert_eq!(s.admit(F, true), Admit::Switch);
    // f stops; after SILENT the target is h.
    let now = flow(&mut s, now, 900, &[H, Q]);
    s.retarget(now, None);
    assert_eq!(s.target(), Some(F), "not silent long enough");
    let now = flow(&mut s, now, 200, &[H, Q]);
    s.retarget(now, None);
    assert_eq!(s.target(), Some(H));
    assert_eq!(s.poll_keyframe_request(now), Some(H));
    assert_eq!(s.admit(H, true), Admit::Switch);
    // f comes back: its keyframe is asked for and switched to.
    let now = flow(&mut s, now, 100, &[F, H, Q]);
    s.retarget(now, None);
    assert_eq!(s.target(), Some(F));
    assert_eq!(s.poll_keyframe_request(now), Some(F));
    assert_eq!(s.admit(F, true), Admit::Switch);
}

#[test]
fn with_the_defaults_a_stopped_layer_is_not_left() {
    let t0 = Instant::now();
    let mut s = switch(json!({"preferredRid": "f"}));
    let now = flow(&mut s, t0, 100, &[F, H, Q]);
    s.retarget(now, None);
    assert_eq!(s.admit(F, true), Admit::Switch);
    let now = flow(&mut s, now, 3000, &[H, Q]);
    s.retarget(now, congested(10_000.0));
    assert_eq!(s.target(), Some(F));
    assert_eq!(s.poll_keyframe_request(now), None, "reached (and silent)");
}

#[test]
fn the_estimate_moves_down_at_once_and_up_only_after_the_hold() {
    let t0 = Instant::now();
    let mut s = switch(json!({"preferredRid": "f", "priorityOrdering": "asciibetical"}));
    // Rates: f 800 kbit/s, h 400, q 200 (1000, 500, 250 bytes per 10 ms).
    let now = flow(&mut s, t0, 3000, &[F, H, Q]);
    assert!((s.rate(F) - 800_000.0).abs() < 1_000.0, "{}", s.rate(F));
    s.retarget(now, congested(2_000_000.0));
    assert_eq!(s.target(), Some(F));
    assert_eq!(s.admit(F, true), Admit::Switch);
    // The estimate drops to 500 kbit/s: down to h at once.
    s.retarget(now, congested(500_000.0));
    assert_eq!(s.target(), Some(H));
    assert_eq!(s.admit(H, true), Admit::Switch);
    // It recovers, but not for UP_HOLD.
    let later = flow(&mut s, now, 5000, &[F, H, Q]);
    s.retarget(later, congested(2_000_000.0));
    assert_eq!(s.target(), Some(H), "held");
    let later = flow(&mut s, later, 5100, &[F, H, Q]);
    s.retarget(later, congested(2_000_000.0));
    assert_eq!(s.target(), Some(F), "after the hold");
    // Up needs a margin: 1.1 × f's rate is not enough.
    let mut s = switch(json!({"preferredRid": "f", "priorityOrdering": "asciibetical"}));
    let now = flow(&mut s, t0, 3000, &[F, H, Q]);
    s.retarget(now, congested(300_000.0));
    assert_eq!(s.admit(Q, true), Admit::Switch);
    s.retarget(now, congested(880_000.0));
    assert_eq!(s.target(), Some(H), "h fits with margin, f does not");
    // Nothing fits: the lowest live layer.
    s.retarget(now, congested(10_000.0));
    assert_eq!(s.target(), Some(Q));
}

#[test]
fn without_congestion_the_layer_being_sent_is_kept_whatever_the_estimate() {
    let t0 = Instant::now();
    let by_estimate = json!({"preferredRid": "f", "priorityOrdering": "asciibetical"});
    let (mut s, now) = sending_f(by_estimate.clone(), t0);
    // An estimate still ramping up from its start value: f goes on.
    s.retarget(now, ramping(300_000.0));
    assert_eq!(s.target(), Some(F));
    // The path shows congestion: down to what the estimate carries, held.
    s.retarget(now, congested(300_000.0));
    assert_eq!(s.target(), Some(Q));
    assert_eq!(s.admit(Q, true), Admit::Switch);
    let later = flow(&mut s, now, 5000, &[F, H, Q]);
    s.retarget(later, ramping(2_000_000.0));
    assert_eq!(s.target(), Some(Q), "held");

    // Congested, but the estimate still carries f: f is kept.
    let (mut s, now) = sending_f(by_estimate.clone(), t0);
    s.retarget(now, congested(900_000.0));
    assert_eq!(s.target(), Some(F));
    // A switch down for congestion waits for its keyframe, and is not
    // undone when no congestion is signalled meanwhile.
    s.retarget(now, congested(300_000.0));
    assert_eq!(s.target(), Some(Q));
    let later = flow(&mut s, now, 2000, &[F, H, Q]);
    s.retarget(later, ramping(300_000.0));
    assert_eq!(s.target(), Some(Q), "still going down");
    assert_eq!(s.admit(F, false), Admit::Forward, "f until q's keyframe");
    assert_eq!(s.admit(Q, true), Admit::Switch);

    // The layer being sent stops: the best live layer the estimate
    // carries, congested or not.
    let (mut s, now) = sending_f(
        json!({"preferredRid": "f", "priorityOrdering": "asciibetical", "ridNotAvailable": "asciibetical"}),
        t0,
    );
    let later = flow(&mut s, now, 1500, &[H, Q]);
    s.retarget(later, ramping(500_000.0));
    assert_eq!(s.target(), Some(H));

    // A first choice on a ramping estimate fits it, and is not held.
    let mut s = switch(by_estimate);
    let now = flow(&mut s, t0, 3000, &[F, H, Q]);
    s.retarget(now, ramping(300_000.0));
    assert_eq!(s.target(), Some(Q));
    assert_eq!(s.admit(Q, true), Admit::Switch);
    let later = flow(&mut s, now, 500, &[F, H, Q]);
    assert!(s.poll_probe(later, ramping(300_000.0)).is_some());
    s.retarget(later, ramping(1_000_000.0));
    assert_eq!(s.target(), Some(F));
}

#[test]
fn a_layer_live_for_less_than_two_seconds_is_not_switched_up_to() {
    let t0 = Instant::now();
    let mut s = switch(json!({"priorityOrdering": "asciibetical"}));
    let now = flow(&mut s, t0, 3000, &[H, Q]);
    s.retarget(now, congested(5_000_000.0));
    assert_eq!(s.target(), Some(H));
    assert_eq!(s.admit(H, true), Admit::Switch);
    let now = flow(&mut s, now, 1000, &[F, H, Q]);
    s.retarget(now, congested(5_000_000.0));
    assert_eq!(s.target(), Some(H));
    let now = flow(&mut s, now, 1100, &[F, H, Q]);
    s.retarget(now, congested(5_000_000.0));
    assert_eq!(s.target(), Some(F));
}

#[test]
fn timestamps_map_between_layers_through_their_sender_reports() {
    let mut s = switch(json!({}));
    assert_eq!(s.switch_timestamp(F, H, 1000, 90_000), None, "no reports");
    // At NTP 100.0 s, f's clock read 1_000_000 and h's 5_000.
    let ntp = 100u64 << 32;
    s.handle_sender_report(F, ntp, 1_000_000);
    s.handle_sender_report(H, ntp, 5_000);
    assert_eq!(
        s.switch_timestamp(F, H, 5_000 + 3000, 90_000),
        Some(1_003_000)
    );
    // h's report half a second later (45,000 ticks), across the wrap.
    s.handle_sender_report(H, ntp + (1 << 31), 10);
    assert_eq!(s.switch_timestamp(F, H, 10, 90_000), Some(1_045_000));
    assert_eq!(
        s.switch_timestamp(F, H, 10u32.wrapping_sub(90), 90_000),
        Some(1_044_910)
    );
}

#[test]
fn a_better_layer_that_does_not_fit_is_probed_for_every_few_seconds() {
    let t0 = Instant::now();
    let mut s = switch(json!({"preferredRid": "f", "priorityOrdering": "asciibetical"}));
    let now = flow(&mut s, t0, 3000, &[F, H, Q]);
    s.retarget(now, congested(2_000_000.0));
    assert_eq!(s.admit(F, true), Admit::Switch);
    assert_eq!(
        s.poll_probe(now, congested(2_000_000.0)),
        None,
        "the best layer"
    );
    s.retarget(now, congested(500_000.0));
    assert_eq!(s.admit(H, true), Admit::Switch);
    assert_eq!(
        s.poll_probe(now, congested(500_000.0)),
        None,
        "just switched down"
    );
    let later = flow(&mut s, now, UP_HOLD.as_millis() as u64, &[F, H, Q]);
    let probe = s
        .poll_probe(later, congested(500_000.0))
        .expect("a probe for f");
    assert!(
        (probe - 800_000.0 * UP_MARGIN * PROBE_ABOVE).abs() < 5_000.0,
        "{probe}"
    );
    assert_eq!(
        s.poll_probe(later + Duration::from_secs(1), congested(500_000.0)),
        None
    );
    let again = flow(&mut s, later, PROBE_EVERY.as_millis() as u64, &[F, H, Q]);
    assert!(s.poll_probe(again, congested(500_000.0)).is_some());
    // Once f fits, no probe; without priority ordering, never.
    let later = flow(&mut s, again, PROBE_EVERY.as_millis() as u64, &[F, H, Q]);
    assert_eq!(s.poll_probe(later, congested(5_000_000.0)), None);
    let mut plain = switch(json!({"preferredRid": "h"}));
    let now = flow(&mut plain, t0, 3000, &[F, H, Q]);
    plain.retarget(now, congested(100.0));
    assert_eq!(plain.admit(H, true), Admit::Switch);
    assert_eq!(plain.poll_probe(now + UP_HOLD, congested(100.0)), None);
}

#[test]
fn a_packet_admitted_counts_targets_and_remembers_the_timeline_it_leaves() {
    let t0 = Instant::now();
    let mut s = switch(json!({"preferredRid": "h"}));
    // A paused pull forwards nothing, but its first packet sets a target.
    assert_eq!(s.admit_packet(t0, H, 1000, true, None, true), Admit::Skip);
    assert_eq!(s.target(), Some(H));
    assert_eq!(
        s.admit_packet(t0, H, 1000, true, None, false),
        Admit::Switch
    );
    assert_eq!(s.switched_from(), None, "nothing was sent before");
    assert_eq!(
        s.admit_packet(t0, H, 1000, false, None, false),
        Admit::Forward
    );
    s.set_preferences(
        Preferences::from_api(&json!({"preferredRid": "f"})),
        &rids(),
    );
    let now = flow(&mut s, t0, 3000, &[F, H]);
    s.retarget(now, None);
    assert_eq!(
        s.admit_packet(now, F, 4000, true, None, false),
        Admit::Switch
    );
    assert_eq!(
        s.switched_from(),
        Some(H),
        "the stream followed h until now"
    );
}
