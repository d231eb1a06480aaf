//! Consent on a virtual clock: a client that answers our checks over a
//! link with seeded loss, delay jitter and reordering, one that stopped
//! answering while a forger sends it checks and responses, and the
//! schedule's randomisation.

use super::*;
use crate::datachannel::sctp::tests::Rng;

const SCAN: Duration = Duration::from_secs(1);

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], port))
}

/// The server's side of one session: a scan each second sends the checks
/// due; `respond` says when (if ever) the answer to a check sent at `now`
/// arrives. Returns the longest silence seen and whether consent was ever
/// lost, over `span`.
fn run(
    span: Duration,
    seed: u64,
    mut respond: impl FnMut(&mut Rng, Instant) -> Option<Instant>,
) -> (Duration, bool) {
    let t0 = Instant::now();
    let mut rng = Rng(seed | 1);
    let mut consent = Consent::new(CONSENT_TIMEOUT, t0);
    // (arrival, txid), in flight toward the server.
    let mut responses: Vec<(Instant, [u8; 12])> = Vec::new();
    let mut longest = Duration::ZERO;
    let mut lost = false;
    let mut now = t0;
    let mut n = 0u64;
    while now < t0 + span {
        now += SCAN;
        // Responses land in arrival order, whatever order they were sent.
        responses.sort_by_key(|(at, _)| *at);
        while responses.first().is_some_and(|(at, _)| *at <= now) {
            let (at, txid) = responses.remove(0);
            consent.answered(&txid, addr(1), at);
        }
        let silent = consent.silent_for(now);
        longest = longest.max(silent);
        lost |= silent > consent.timeout();
        n += 1;
        let mut txid = [0u8; 12];
        txid[..8].copy_from_slice(&n.to_be_bytes());
        let jitter = rng.next() as u16;
        if let Some(id) = consent.due(now, addr(1), txid, jitter)
            && let Some(at) = respond(&mut rng, now)
        {
            responses.push((at, id));
        }
    }
    (longest, lost)
}

#[test]
fn a_client_that_answers_over_a_lossy_jittery_link_keeps_consent() {
    for seed in 1..=20 {
        // 30 % of checks or answers lost, each answer 10 ms to 3 s late
        // (so later checks' answers overtake earlier ones).
        let (longest, lost) = run(Duration::from_secs(600), seed, |rng, now| {
            (rng.next() % 100 >= 30).then(|| now + Duration::from_millis(10 + rng.next() % 3000))
        });
        assert!(!lost, "seed {seed}: consent lost, {longest:?} silent");
    }
}

#[test]
fn a_client_that_stops_answering_loses_consent_within_the_timeout_and_a_scan() {
    let stop = Duration::from_secs(60);
    let t0 = Instant::now();
    let (longest, lost) = run(Duration::from_secs(120), 7, |_, now| {
        (now < t0 + stop).then(|| now + Duration::from_millis(50))
    });
    assert!(lost, "consent kept without answers ({longest:?} silent)");
}

#[test]
fn checks_and_answers_a_forger_can_send_refresh_nothing() {
    let t0 = Instant::now();
    let mut consent = Consent::new(CONSENT_TIMEOUT, t0);
    let mut rng = Rng(3);
    let mut ours = Vec::new();
    let mut now = t0;
    while now < t0 + Duration::from_secs(40) {
        now += SCAN;
        let txid = (rng.next() as u128).to_be_bytes()[..12].try_into().unwrap();
        if let Some(id) = consent.due(now, addr(1), txid, rng.next() as u16) {
            ours.push(id);
        }
        // A forger that does not see our checks guesses ids; one that
        // sees them answers from another address.
        let guess: [u8; 12] = (rng.next() as u128).to_be_bytes()[..12].try_into().unwrap();
        assert!(!consent.answered(&guess, addr(1), now));
        if let Some(id) = ours.last() {
            assert!(!consent.answered(id, addr(2), now), "another address");
        }
    }
    assert!(consent.silent_for(now) > consent.timeout(), "consent lost");
    // The real answer to the latest check still counts, once.
    let last = *ours.last().unwrap();
    assert!(consent.answered(&last, addr(1), now));
    assert!(!consent.answered(&last, addr(1), now), "answered once");
    assert_eq!(consent.silent_for(now), Duration::ZERO);
    // A check beyond the outstanding few is forgotten.
    let oldest = ours[ours.len() - 1 - OUTSTANDING];
    assert!(!consent.answered(&oldest, addr(1), now));
}

#[test]
fn checks_come_every_five_seconds_randomised_by_a_fifth_and_every_second_when_unanswered() {
    let t0 = Instant::now();
    let mut consent = Consent::new(CONSENT_TIMEOUT, t0);
    assert_eq!(consent.interval(), Duration::from_secs(5));
    let mut rng = Rng(11);
    let mut now = t0;
    let mut last = t0;
    let mut gaps = Vec::new();
    while now < t0 + Duration::from_secs(3600) {
        now += Duration::from_millis(10);
        if consent
            .due(now, addr(1), [0; 12], rng.next() as u16)
            .is_some()
        {
            consent.proven(now); // answered at once
            gaps.push(now - last);
            last = now;
        }
    }
    assert!(gaps[0] <= Duration::from_millis(10), "the first at once");
    let gaps = &gaps[1..];
    let (min, max) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
    assert!(*min >= Duration::from_millis(3990), "{min:?}");
    assert!(*max <= Duration::from_millis(6010), "{max:?}");
    assert!(
        max.as_millis() - min.as_millis() > 1500,
        "randomised: {min:?}..{max:?}"
    );
}
