//! Forwards N packets from one publisher to 100 subscribers on one engine
//! (the fan-out fixture), so that an instruction counter measures the cost
//! per packet exactly, where timing on a shared VM is too noisy:
//!
//! ```text
//! cargo build --release --example fanout_count
//! for n in 200 1200; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n target/release/examples/fanout_count $n
//! done
//! # instructions per packet = (totals of cg.1200 - totals of cg.200) / 1000
//! ```
//!
//! With a second argument `tap`, a recorder's tap is on the track too (the
//! worker's cost of feeding a recording: a copy into a pooled buffer per
//! packet; the recorder thread's draining is not counted).

use std::sync::Arc;
use std::time::Instant;

use switchboard::engine::fixture::{self, PUBLISHER_SSRC};
use switchboard::fanout::tap::Tap;
use switchboard::streams::twcc::TwccReceiver;

const SUBSCRIBERS: usize = 100;

fn main() {
    let n: u16 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let tapped = std::env::args().nth(2).as_deref() == Some("tap");
    let mut f = fixture::fan_out_across(1, SUBSCRIBERS);
    // The same capacity whatever `n`: its setup cancels out of the
    // difference between two runs.
    let tap = tapped.then(|| Arc::new(Tap::new(2_048)));
    if let Some(tap) = &tap {
        f.fanout.add_tap(tap.clone());
    }
    let (engine, from) = (&mut f.engines[0], f.publisher);
    let packets: Vec<Vec<u8>> = (1..=n)
        .map(|seq| {
            f.publisher_srtp
                .protect_rtp(&fixture::rtp_packet(seq, PUBLISHER_SSRC))
                .expect("protect")
                .to_vec()
        })
        .collect();
    let mut sent = 0usize;
    for (i, mut p) in packets.into_iter().enumerate() {
        if i == 1 {
            // Each subscriber reports the first packet (transport-cc), as
            // browsers do: from then on its bandwidth estimate runs.
            for sub in &mut f.subscribers {
                let mut twcc = TwccReceiver::new(Instant::now());
                twcc.record(0, Instant::now());
                let mut feedback = Vec::new();
                twcc.poll_feedback(1, sub.ssrc, &mut feedback);
                let mut bytes = sub.srtp.protect_rtcp(&feedback).expect("protect").to_vec();
                engine.handle_datagram(Instant::now(), sub.addr, &mut bytes);
            }
        }
        engine.handle_datagram(Instant::now(), from, &mut p);
        while let Some(t) = engine.poll_transmit() {
            sent += t.count();
        }
        while engine.poll_event().is_some() {}
    }
    assert_eq!(
        sent,
        SUBSCRIBERS * usize::from(n),
        "every packet reached every subscriber"
    );
    if let Some(tap) = tap {
        assert_eq!(tap.depth(), usize::from(n), "every packet reached the tap");
    }
    println!("{sent} datagrams");
}
