//! RTCP as the workers read it after SRTCP: every packet type we look at
//! (SR, RR, PLI, FIR, generic NACK, transport-cc feedback, XR DLRR) inside
//! compound packets, and transport-cc feedback into the bandwidth
//! estimator. Two round trips check our writers against our readers: a
//! transport-cc feedback built from arrivals, and a NACK built from lost
//! sequence numbers.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard::bwe::BandwidthEstimator;
use switchboard::bwe::feedback::{self, Status};
use switchboard::streams::twcc::TwccReceiver;
use switchboard::wire::rtcp;

fn read_compound(data: &[u8]) {
    let now = Instant::now();
    let mut estimator = BandwidthEstimator::new(now);
    for seq in 0..64u16 {
        estimator.sent(seq, 1200, now + Duration::from_millis(u64::from(seq)), None);
    }
    let mut statuses = Vec::new();
    for p in rtcp::packets(data) {
        assert!(p.bytes.len() <= data.len());
        let _ = (p.sender_ssrc(), p.keyframe_request_ssrc(), p.sender_info());
        if let Some((_, lost)) = p.nack() {
            assert!(lost.count() <= 17 * data.len() / 4);
        }
        assert!(p.dlrr().count() <= data.len() / 12);
        assert!(rtcp::report_blocks(&p).count() <= 31);
        if feedback::is_feedback(p.count, p.packet_type) {
            let at = now + Duration::from_millis(100);
            estimator.on_feedback(p.bytes, at, Duration::from_millis(20), &mut statuses);
        }
    }
    let _ = estimator.estimate();
}

/// Arrivals (seq, gap in ms) → our feedback packets → our reader: every
/// number reported received was recorded.
fn twcc_round_trip(data: &[u8]) {
    let epoch = Instant::now();
    let mut receiver = TwccReceiver::new(epoch);
    let mut at = epoch;
    let mut recorded = std::collections::HashSet::new();
    for c in data.chunks_exact(3) {
        let seq = u16::from_be_bytes([c[0], c[1]]);
        at += Duration::from_millis(u64::from(c[2]));
        receiver.record(seq, at);
        recorded.insert(seq);
    }
    let mut out = Vec::new();
    let mut statuses: Vec<Status> = Vec::new();
    let mut packets = 0;
    while receiver.poll_feedback(1, 2, &mut out) {
        packets += 1;
        // Each arrival ends a gap of at most 8 packets' worth of numbers
        // (longer ones are skipped, not reported).
        assert!(packets <= 9 * (data.len() / 3) + 1, "feedback ends");
        let p = rtcp::packets(&out)
            .next()
            .expect("our feedback is one RTCP packet");
        assert!(feedback::is_feedback(p.count, p.packet_type));
        assert!(
            feedback::read(p.bytes, &mut statuses, usize::from(u16::MAX)),
            "our feedback reads back"
        );
        for s in &statuses {
            if s.arrival_us.is_some() {
                assert!(
                    recorded.contains(&s.seq),
                    "reported {} never arrived",
                    s.seq
                );
            }
        }
        out.clear();
    }
}

/// Lost numbers → our NACK → our reader: the same numbers.
fn nack_round_trip(data: &[u8]) {
    let mut lost: Vec<u16> = data
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    lost.sort_unstable();
    lost.dedup();
    let mut out = Vec::new();
    rtcp::write_nack(&mut out, 1, 2, &lost);
    let p = rtcp::packets(&out)
        .next()
        .expect("our NACK is one RTCP packet");
    let (ssrc, read) = p.nack().expect("our NACK reads back");
    assert_eq!(ssrc, 2);
    let mut read: Vec<u16> = read.collect();
    read.sort_unstable();
    assert_eq!(read, lost);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => read_compound(rest),
        1 => twcc_round_trip(rest),
        _ => nack_round_trip(rest),
    }
});
