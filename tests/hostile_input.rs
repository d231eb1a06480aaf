//! Hostile and malformed input never panics: seeded random bytes and
//! mutations of valid packets through every parser and through a media
//! worker's engine (sans-IO, virtual clock), and mutated browser SDP through
//! the SDP reader. Drops are counted, not fatal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::engine::Engine;
use switchboard::engine::counters::{Counters, DropReason};
use switchboard::engine::ice_directory::IceDirectory;
use switchboard::ice::{BindingRequest, write_binding_request};
use switchboard::ids::{SessionKey, WorkerId};
use switchboard::wire::{rtcp, rtp::RtpHeader, stun::StunMessage};

/// xorshift64*: deterministic, seeded.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Flips, truncates or extends a valid packet.
    fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        let mut v = valid.to_vec();
        match self.below(3) {
            0 => {
                for _ in 0..1 + self.below(4) {
                    if !v.is_empty() {
                        let i = self.below(v.len());
                        v[i] ^= 1 << self.below(8);
                    }
                }
            }
            1 => v.truncate(self.below(v.len() + 1)),
            _ => v.extend(self.bytes(16)),
        }
        v
    }
}

fn stun_request() -> Vec<u8> {
    let mut v = Vec::new();
    write_binding_request(
        &mut v,
        &[3; 12],
        "abcdefgh:client",
        "0123456789012345678901",
        true,
    );
    v
}

fn rtp_packet() -> Vec<u8> {
    vec![
        0x90, 0x60, 0x00, 0x01, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0xbe, 0xde, 0x00, 0x01, 0x40,
        b'0', 0, 0, 1, 2, 3,
    ]
}

#[test]
fn parsers_survive_random_and_mutated_input() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let stun = stun_request();
    let rtp = rtp_packet();
    let mut pli = Vec::new();
    rtcp::write_pli(&mut pli, 1, 2);
    for _ in 0..20_000 {
        let random = rng.bytes(300);
        for input in [
            random,
            rng.mutate(&stun),
            rng.mutate(&rtp),
            rng.mutate(&pli),
        ] {
            if let Ok(m) = StunMessage::new_checked(&input) {
                let _ = (
                    m.username(),
                    m.xor_mapped_address(),
                    m.fingerprint_ok(),
                    m.integrity_ok(b"k"),
                );
            }
            let _ = BindingRequest::read(&input);
            if let Ok(h) = RtpHeader::new_checked(&input) {
                let _ = (h.extension(4), h.payload_offset(), h.timestamp());
            }
            for p in rtcp::packets(&input) {
                let _ = (
                    p.keyframe_request_ssrc(),
                    p.sender_info(),
                    rtcp::report_blocks(&p).count(),
                );
            }
        }
    }
}

#[test]
fn sdp_reader_survives_mutated_browser_offers() {
    let mut rng = Rng(42);
    for name in ["chrome-offer.sdp", "firefox-offer.sdp", "safari-offer.sdp"] {
        let text =
            std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR")))
                .unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        for _ in 0..2_000 {
            let mut l = lines.clone();
            let i = rng.below(l.len());
            let mutated: String;
            match rng.below(3) {
                0 => {
                    l.remove(i);
                }
                1 => {
                    let cut = rng.below(l[i].len() + 1);
                    mutated = l[i].chars().take(cut).collect();
                    l[i] = &mutated;
                }
                _ => {
                    let j = rng.below(l.len());
                    l.swap(i, j);
                }
            }
            let _ = switchboard::sdp::parse(&l.join("\r\n"));
        }
    }
}

#[test]
fn the_engine_counts_hostile_datagrams_and_keeps_going() {
    let directory = Arc::new(IceDirectory::default());
    directory.insert("abcdefgh", SessionKey(1), "0123456789012345678901");
    let counters = Arc::new(Counters::default());
    let t0 = Instant::now();
    let mut engine = Engine::new(WorkerId(0), 2, directory, counters.clone(), t0);
    let mut rng = Rng(7);
    let stun = stun_request();
    let rtp = rtp_packet();
    for i in 0..20_000u64 {
        let now = t0 + Duration::from_millis(i);
        let from = SocketAddr::from(([127, 0, 0, 1], 1024 + (rng.below(50) as u16)));
        let datagram = match rng.below(4) {
            0 => rng.bytes(1500),
            1 => rng.mutate(&stun),
            2 => rng.mutate(&rtp),
            _ => [&[0x80u8, 200][..], &rng.bytes(60)].concat(),
        };
        engine.handle_datagram(now, from, &mut datagram.clone());
        engine.handle_timeout(now);
        while engine.poll_transmit().is_some() {}
        while engine.poll_event().is_some() {}
        while engine.poll_handoff().is_some() {}
    }
    // The valid check still binds and is answered after all that.
    let from: SocketAddr = "127.0.0.1:999".parse().unwrap();
    let later = t0 + Duration::from_secs(21);
    engine.handle_datagram(later, from, &mut stun.clone());
    let reply = engine.poll_transmit().expect("a binding response");
    assert_eq!(reply.to, from);
    let dropped: u64 = DropReason::ALL.iter().map(|r| counters.drops(*r)).sum();
    assert!(dropped > 10_000, "drops counted: {dropped}");
    assert!(counters.drops(DropReason::UnboundAddress) > 0);
    assert!(counters.drops(DropReason::BadStun) > 0);
}

/// DTLS junk at a high rate from a bound address (finding: 9 million
/// datagrams in 20 s grew the worker → control queue and the log without
/// bound): per second, only the session's budget of events reaches the
/// control thread; the rest is counted; another session's checks still
/// bind and are answered.
#[test]
fn dtls_junk_from_a_bound_address_reaches_the_control_thread_in_bounded_amounts() {
    use switchboard::engine::control_budget::EVENTS_PER_WINDOW;
    let directory = Arc::new(IceDirectory::default());
    directory.insert("abcdefgh", SessionKey(1), "0123456789012345678901");
    let counters = Arc::new(Counters::default());
    let t0 = Instant::now();
    let mut engine = Engine::new(WorkerId(0), 1, directory.clone(), counters.clone(), t0);
    let attacker: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    engine.handle_datagram(t0, attacker, &mut stun_request());
    while engine.poll_transmit().is_some() {}
    while engine.poll_event().is_some() {}

    let mut rng = Rng(11);
    let mut events = 0u64;
    let seconds = 3u64;
    for i in 0..(seconds * 100_000) {
        let now = t0 + Duration::from_micros(i * 10);
        // A DTLS-looking record (content type 20..=63) of random bytes.
        let mut junk = [&[22u8, 0xfe, 0xfd][..], &rng.bytes(100)].concat();
        engine.handle_datagram(now, attacker, &mut junk);
        while engine.poll_event().is_some() {
            events += 1;
        }
    }
    // Per window: the budget, and one report that the session floods.
    let per_window = u64::from(EVENTS_PER_WINDOW) + 1;
    assert!(
        events <= (seconds + 1) * per_window,
        "{events} events reached the control thread"
    );
    assert!(counters.drops(DropReason::ControlBudget) >= seconds * 100_000 - events);

    // Another session is unaffected.
    directory.insert("ijklmnop", SessionKey(2), "9876543210987654321098");
    let mut other = Vec::new();
    write_binding_request(
        &mut other,
        &[4; 12],
        "ijklmnop:peer",
        "9876543210987654321098",
        true,
    );
    let from: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    engine.handle_datagram(t0 + Duration::from_secs(seconds), from, &mut other);
    assert!(engine.poll_transmit().is_some(), "its check is answered");
    assert!(engine.poll_event().is_some(), "and bound");
}

/// A publisher that sends a new random SSRC on every packet (finding: each
/// was forwarded and kept ~490 bytes of state forever): only a few learned
/// SSRCs per track are accepted, the rest are dropped and counted, and the
/// state of SSRCs that stopped is freed, so a later stream is learned again.
#[test]
fn random_ssrcs_are_bounded_per_track_and_forgotten_when_silent() {
    use switchboard::engine::fixture;
    let mut f = fixture::fan_out_learning(1);
    let t0 = Instant::now();
    let mut rng = Rng(5);
    let send = |f: &mut fixture::Fixture, now: Instant, seq: u16, ssrc: u32| -> usize {
        let plain = fixture::rtp_packet(seq, ssrc);
        let mut p = f
            .publisher_srtp
            .protect_rtp(&plain)
            .expect("protect")
            .to_vec();
        f.engines[0].handle_datagram(now, f.publisher, &mut p);
        let mut n = 0;
        while let Some(t) = f.engines[0].poll_transmit() {
            if t.to == f.subscribers[0].addr {
                n += 1;
            }
        }
        n
    };
    let mut forwarded = 0;
    for seq in 0..10_000u16 {
        let ssrc = rng.below(u32::MAX as usize) as u32 | 1;
        forwarded += send(
            &mut f,
            t0 + Duration::from_micros(u64::from(seq)),
            seq,
            ssrc,
        );
    }
    assert!(forwarded <= 8, "{forwarded} random SSRCs forwarded");
    let counters = f.engines[0].counters();
    assert!(counters.drops(DropReason::SsrcLimit) >= 10_000 - 8);

    // Ten silent seconds later their state is gone: a new stream is learned.
    let later = t0 + Duration::from_secs(11);
    f.engines[0].handle_timeout(later);
    while f.engines[0].poll_transmit().is_some() {}
    let fresh: usize = (0..20u16)
        .map(|i| {
            send(
                &mut f,
                later + Duration::from_millis(u64::from(i)),
                i,
                0x5eed,
            )
        })
        .sum();
    assert_eq!(fresh, 20, "a new stream flows");
}

/// A flood of valid checks with the attacker's own credentials from one
/// source (finding: ~630k/s starved a healthy stream on one core): past
/// the per-source rate they are dropped before any HMAC or response, and a
/// real client's checks from another source are still answered.
#[test]
fn a_valid_check_flood_from_one_source_is_cut_before_the_hmac() {
    use switchboard::engine::stun_limit::CHECKS_PER_WINDOW;
    let directory = Arc::new(IceDirectory::default());
    directory.insert("abcdefgh", SessionKey(1), "0123456789012345678901");
    directory.insert("ijklmnop", SessionKey(2), "9876543210987654321098");
    let counters = Arc::new(Counters::default());
    let t0 = Instant::now();
    let mut engine = Engine::new(WorkerId(0), 1, directory, counters.clone(), t0);
    let attacker: SocketAddr = "127.0.0.1:4000".parse().unwrap();
    let client: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    let mut real = Vec::new();
    write_binding_request(
        &mut real,
        &[4; 12],
        "ijklmnop:peer",
        "9876543210987654321098",
        true,
    );
    let (mut flood_answers, mut real_answers) = (0, 0);
    for i in 0..100_000u32 {
        let now = t0 + Duration::from_micros(u64::from(i) * 10);
        let mut check = Vec::new();
        let mut id = [0u8; 12];
        id[..4].copy_from_slice(&i.to_be_bytes());
        write_binding_request(
            &mut check,
            &id,
            "abcdefgh:me",
            "0123456789012345678901",
            true,
        );
        engine.handle_datagram(now, attacker, &mut check);
        if i % 10_000 == 0 {
            engine.handle_datagram(now, client, &mut real.clone());
        }
        while let Some(t) = engine.poll_transmit() {
            if t.to == attacker {
                flood_answers += 1;
            } else {
                real_answers += 1;
            }
        }
        while engine.poll_event().is_some() {}
    }
    assert!(
        flood_answers <= usize::from(CHECKS_PER_WINDOW),
        "{flood_answers} flood checks answered in one second"
    );
    assert_eq!(real_answers, 10, "every real check answered");
    assert!(counters.drops(DropReason::StunRate) >= 100_000 - u64::from(CHECKS_PER_WINDOW));
}
