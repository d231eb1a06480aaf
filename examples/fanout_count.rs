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

use std::time::Instant;

use switchboard::engine::fixture::{self, PUBLISHER_SSRC};

const SUBSCRIBERS: usize = 100;

fn main() {
    let n: u16 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let (mut engine, from, mut publisher) = fixture::fan_out(SUBSCRIBERS);
    let packets: Vec<Vec<u8>> = (1..=n)
        .map(|seq| {
            publisher
                .protect_rtp(&fixture::rtp_packet(seq, PUBLISHER_SSRC))
                .expect("protect")
                .to_vec()
        })
        .collect();
    let mut sent = 0usize;
    for mut p in packets {
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
    println!("{sent} datagrams");
}
