//! Feeds N rounds of transport-cc feedback from each of 100 subscribers to
//! one engine (the fan-out fixture), each reporting the 12 packets it got
//! since the last (50 ms of 1.5 Mbit/s video), so that an instruction
//! counter measures what one feedback packet costs the worker:
//!
//! ```text
//! cargo build --release --example feedback_count
//! for n in 20 120; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n target/release/examples/feedback_count $n
//! done
//! # instructions per feedback = (totals of cg.120 - totals of cg.20) / (100 × 100)
//! ```

use std::time::{Duration, Instant};

use switchboard::engine::fixture::{self, PUBLISHER_SSRC};
use switchboard::streams::twcc::TwccReceiver;

const SUBSCRIBERS: usize = 100;
const PER_FEEDBACK: u16 = 12;

fn main() {
    let rounds: u16 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let mut f = fixture::fan_out_across(1, SUBSCRIBERS);
    let t0 = Instant::now();
    let mut clients: Vec<TwccReceiver> = f
        .subscribers
        .iter()
        .map(|_| TwccReceiver::new(t0))
        .collect();
    let mut seq = 0u16;
    let mut feedback = Vec::new();
    for round in 0..rounds {
        let now = t0 + Duration::from_millis(u64::from(round) * 50);
        // What the subscribers got this round: numbered by the server.
        for _ in 0..PER_FEEDBACK {
            seq += 1;
            let mut p = f
                .publisher_srtp
                .protect_rtp(&fixture::rtp_packet(seq, PUBLISHER_SSRC))
                .expect("protect")
                .to_vec();
            f.engines[0].handle_datagram(now, f.publisher, &mut p);
            while f.engines[0].poll_transmit().is_some() {}
        }
        for (sub, client) in f.subscribers.iter_mut().zip(clients.iter_mut()) {
            let first = seq - PER_FEEDBACK;
            for (i, n) in (first..seq).enumerate() {
                client.record(n, now + Duration::from_millis(i as u64 * 4));
            }
            feedback.clear();
            while client.poll_feedback(1, sub.ssrc, &mut feedback) {
                let mut bytes = sub.srtp.protect_rtcp(&feedback).expect("protect").to_vec();
                f.engines[0].handle_datagram(now + Duration::from_millis(48), sub.addr, &mut bytes);
                feedback.clear();
            }
        }
        f.engines[0].handle_timeout(now + Duration::from_millis(49));
        while f.engines[0].poll_transmit().is_some() {}
        while f.engines[0].poll_event().is_some() {}
    }
    println!("{} rounds", rounds);
}
