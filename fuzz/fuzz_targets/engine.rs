//! The worker's whole datagram path: an engine with a publisher and two
//! subscribers of its track (keys and routes installed through the
//! engine's own commands), fed what the records say: raw datagrams from
//! the publisher, a subscriber or a stranger; plaintext RTP or RTCP that
//! the target protects with a session's SRTP keys first, so the fuzzer's
//! bytes reach what lies behind authentication; and the passing of time.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard::engine::fixture::{self, PUBLISHER_SSRC};
use switchboard_fuzz::records;

fuzz_target!(|data: &[u8]| {
    let mut f = fixture::fan_out_across(1, 2);
    let mut engine = f.engines.pop().expect("one engine");
    let stranger = SocketAddr::from(([127, 0, 0, 1], 6666));
    let mut now = Instant::now();
    for r in records(data) {
        let mut datagram = match r.tag & 7 {
            0..=2 => r.bytes.to_vec(),
            3 => {
                let mut plain = r.bytes.to_vec();
                if r.tag & 8 != 0 && plain.len() >= 12 {
                    plain[8..12].copy_from_slice(&PUBLISHER_SSRC.to_be_bytes());
                }
                match f.publisher_srtp.protect_rtp(&plain) {
                    Ok(p) => p.to_vec(),
                    Err(_) => continue,
                }
            }
            4 => match f.publisher_srtp.protect_rtcp(r.bytes) {
                Ok(p) => p.to_vec(),
                Err(_) => continue,
            },
            5 | 6 => {
                let s = &mut f.subscribers[usize::from(r.tag & 7) - 5];
                match s.srtp.protect_rtcp(r.bytes) {
                    Ok(p) => p.to_vec(),
                    Err(_) => continue,
                }
            }
            _ => {
                now += Duration::from_millis(u64::from(r.tag >> 3) * 20);
                if engine.poll_timeout() <= now {
                    engine.handle_timeout(now);
                }
                Vec::new()
            }
        };
        let from = match r.tag & 7 {
            1 | 5 => f.subscribers[0].addr,
            6 => f.subscribers[1].addr,
            2 => stranger,
            _ => f.publisher,
        };
        if !datagram.is_empty() {
            engine.handle_datagram(now, from, &mut datagram);
        }
        while let Some(t) = engine.poll_transmit() {
            assert!(
                t.datagrams().all(|d| !d.is_empty()),
                "no empty datagram is sent"
            );
        }
        while engine.poll_event().is_some() {}
        while engine.poll_handoff().is_some() {}
        while engine.poll_data_record().is_some() {}
    }
});
