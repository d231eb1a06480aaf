//! The forwarding path without sockets, on a virtual clock: a publisher's
//! burst of packets reaches subscribers on its own worker and, by one shared
//! hand-off, on other workers. Every subscriber's datagrams are checked by
//! an independent SRTP implementation (rtc-srtp) with that subscriber's
//! keys: its SSRC, consecutive sequence numbers, the original payload.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::engine::Transmit;
use switchboard::engine::counters::DropReason;
use switchboard::engine::fixture::{self, Fixture, PAYLOAD, PUBLISHER_SSRC};
use switchboard::engine::messages::{EngineEvent, WorkerCommand};
use switchboard::ids::{SessionKey, TrackKey, WorkerId};
use switchboard::wire::rtcp;
use switchboard::wire::rtp::RtpHeader;

/// Feeds `packets` (plaintext) to worker 0 as one batch, delivers its
/// hand-offs, and returns every transmit by destination.
fn forward_burst(
    f: &mut Fixture,
    packets: &[Vec<u8>],
    t0: Instant,
) -> HashMap<SocketAddr, Vec<Transmit>> {
    for (i, p) in packets.iter().enumerate() {
        let mut protected = f.publisher_srtp.protect_rtp(p).expect("protect").to_vec();
        let now = t0 + Duration::from_micros(10 * i as u64);
        f.engines[0].handle_datagram(now, f.publisher, &mut protected);
    }
    let mut handoffs = Vec::new();
    while let Some(h) = f.engines[0].poll_handoff() {
        handoffs.push(h);
    }
    // At most one run, shared by every other worker with subscribers.
    assert!(handoffs.len() < f.engines.len());
    assert!(handoffs.iter().all(|(_, h)| Arc::ptr_eq(h, &handoffs[0].1)));
    for (to, h) in &handoffs {
        f.engines[to.0].handle_handoff(h);
    }
    let mut by_destination: HashMap<SocketAddr, Vec<Transmit>> = HashMap::new();
    for engine in &mut f.engines {
        while let Some(t) = engine.poll_transmit() {
            by_destination.entry(t.to).or_default().push(t);
        }
        while engine.poll_event().is_some() {}
    }
    by_destination
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Decrypts what one subscriber got and checks it against `packets`.
fn check_subscriber(sub: &mut fixture::Subscriber, got: &[Transmit], packets: &[Vec<u8>]) {
    let datagrams: Vec<&[u8]> = got.iter().flat_map(|t| t.datagrams()).collect();
    assert_eq!(datagrams.len(), packets.len(), "subscriber {}", sub.addr);
    let mut last_seq = None::<u16>;
    let mut numbers = Vec::new();
    for (d, original) in datagrams.iter().zip(packets) {
        let plain = sub
            .srtp
            .unprotect_rtp(d)
            .expect("the subscriber's keys open it");
        let header = RtpHeader::new_checked(&plain).expect("RTP");
        assert_eq!(header.ssrc(), sub.ssrc);
        if let Some(prev) = last_seq {
            assert_eq!(header.sequence_number(), prev.wrapping_add(1));
        }
        last_seq = Some(header.sequence_number());
        let offset = RtpHeader::new_checked(original).unwrap().payload_offset();
        assert_eq!(&plain[header.payload_offset()..], &original[offset..]);
        // The transport-wide number is the subscriber's own, one per packet.
        let ours = header
            .extension(fixture::SUBSCRIBER_TWCC)
            .expect("numbered");
        numbers.push(u16::from_be_bytes([ours[0], ours[1]]));
    }
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{numbers:?}"
    );
}

#[test]
fn a_burst_reaches_subscribers_on_every_worker_in_one_gso_send_each() {
    let mut f = fixture::fan_out_across(3, 9);
    let packets: Vec<Vec<u8>> = (1..=5u16)
        .map(|seq| fixture::rtp_packet(seq, PUBLISHER_SSRC))
        .collect();
    let mut got = forward_burst(&mut f, &packets, Instant::now());
    assert_eq!(got.len(), 9);
    for sub in &mut f.subscribers {
        let transmits = got.remove(&sub.addr).expect("the subscriber got the burst");
        // Five datagrams of one size: one transmit, split by the kernel.
        assert_eq!(transmits.len(), 1, "subscriber on worker {}", sub.worker);
        assert_eq!(transmits[0].segment_size, Some(12 + 8 + PAYLOAD + 16));
        assert_eq!(transmits[0].count(), 5);
        check_subscriber(sub, &transmits, &packets);
    }
}

#[test]
fn a_shorter_packet_ends_a_gso_group_and_later_bursts_continue_the_sequence() {
    let mut f = fixture::fan_out_across(2, 4);
    let t0 = Instant::now();
    let mut packets: Vec<Vec<u8>> = (1..=4u16)
        .map(|seq| fixture::rtp_packet(seq, PUBLISHER_SSRC))
        .collect();
    packets[2].truncate(400);
    let first = forward_burst(&mut f, &packets, t0);
    let second_burst: Vec<Vec<u8>> = (5..=6u16)
        .map(|seq| fixture::rtp_packet(seq, PUBLISHER_SSRC))
        .collect();
    let second = forward_burst(&mut f, &second_burst, t0 + Duration::from_millis(33));
    for sub in &mut f.subscribers {
        let a = &first[&sub.addr];
        // [1200, 1200, 416] in one send, then [1200] alone.
        let shape: Vec<(usize, Option<usize>)> =
            a.iter().map(|t| (t.count(), t.segment_size)).collect();
        assert_eq!(shape, vec![(3, Some(1200)), (1, None)]);
        let all: Vec<Vec<u8>> = packets.iter().chain(&second_burst).cloned().collect();
        let transmits: Vec<Transmit> = first[&sub.addr]
            .iter()
            .chain(&second[&sub.addr])
            .map(|t| Transmit {
                to: t.to,
                bytes: t.bytes.clone(),
                segment_size: t.segment_size,
            })
            .collect();
        check_subscriber(sub, &transmits, &all);
    }
}

/// Sends the first subscriber's RTCP `plain` to worker 0 at `at`; returns
/// how many datagrams went back to it and the tracks a keyframe was asked
/// for.
fn from_subscriber(f: &mut Fixture, plain: &[u8], at: Instant) -> (usize, Vec<TrackKey>) {
    let addr = f.subscribers[0].addr;
    let mut bytes = f.subscribers[0]
        .srtp
        .protect_rtcp(plain)
        .expect("protect")
        .to_vec();
    f.engines[0].handle_datagram(at, addr, &mut bytes);
    let mut resent = 0;
    while let Some(t) = f.engines[0].poll_transmit() {
        resent += usize::from(t.to == addr);
    }
    let mut keyframes = Vec::new();
    while let Some(e) = f.engines[0].poll_event() {
        if let EngineEvent::KeyframeRequest { track, .. } = e {
            keyframes.push(track);
        }
    }
    (resent, keyframes)
}

/// One subscriber on one worker, sent packets 1 to 5.
fn one_subscriber_sent_five_packets() -> (Fixture, Instant) {
    let mut f = fixture::fan_out_across(1, 1);
    let t0 = Instant::now();
    let packets: Vec<Vec<u8>> = (1..=5u16)
        .map(|seq| fixture::rtp_packet(seq, PUBLISHER_SSRC))
        .collect();
    forward_burst(&mut f, &packets, t0);
    (f, t0)
}

#[test]
fn after_a_keyframe_request_the_frames_it_replaces_are_not_resent() {
    let (mut f, t0) = one_subscriber_sent_five_packets();
    let ssrc = f.subscribers[0].ssrc;
    // A NACK for the third packet is answered.
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 1, ssrc, &[3]);
    assert_eq!(from_subscriber(&mut f, &nack, t0 + ms(10)).0, 1);
    // After a PLI, a NACK for the fourth (a frame the keyframe replaces)
    // is not.
    let mut pli = Vec::new();
    rtcp::write_pli(&mut pli, 1, ssrc);
    let (_, asked) = from_subscriber(&mut f, &pli, t0 + ms(20));
    assert_eq!(asked, vec![TrackKey(1)]);
    nack.clear();
    rtcp::write_nack(&mut nack, 1, ssrc, &[4]);
    assert_eq!(from_subscriber(&mut f, &nack, t0 + ms(30)).0, 0);
    assert_eq!(f.engines[0].counters().drops(DropReason::Superseded), 1);
}

#[test]
fn a_packet_still_missing_after_every_resend_gets_the_subscriber_a_keyframe() {
    let (mut f, t0) = one_subscriber_sent_five_packets();
    let mut nack = Vec::new();
    rtcp::write_nack(&mut nack, 1, f.subscribers[0].ssrc, &[3]);
    // The client's NACKs come a round trip apart (its default, 100 ms):
    // three resends, and none got through.
    for i in 0..3 {
        let (resent, asked) = from_subscriber(&mut f, &nack, t0 + ms(10 + 100 * i));
        assert_eq!((resent, asked), (1, Vec::new()), "NACK {i}");
    }
    // The fourth asks the publisher for a keyframe in the subscriber's
    // place, once: later NACKs of that packet are of a replaced frame.
    let (resent, asked) = from_subscriber(&mut f, &nack, t0 + ms(310));
    assert_eq!((resent, asked), (0, vec![TrackKey(1)]));
    let counters = f.engines[0].counters();
    assert_eq!(counters.drops(DropReason::ResendsExhausted), 1);
    let (resent, asked) = from_subscriber(&mut f, &nack, t0 + ms(410));
    assert_eq!((resent, asked), (0, Vec::new()));
    assert_eq!(f.engines[0].counters().drops(DropReason::Superseded), 1);
}

#[test]
fn a_subscriber_moved_to_another_worker_keeps_its_numbering_and_srtp_state() {
    use switchboard::fanout::FanoutTable;
    // The publisher on worker 0, its one subscriber on worker 1.
    let mut f = fixture::fan_out_across(2, 1);
    let t0 = Instant::now();
    // Its sequence numbers wrap before the move: the SRTP rollover counter
    // is 1 from then on.
    let before: Vec<Vec<u8>> = [65533u16, 65534, 65535, 0, 1]
        .iter()
        .map(|&seq| fixture::rtp_packet(seq, PUBLISHER_SSRC))
        .collect();
    let first = forward_burst(&mut f, &before, t0);
    let old_addr = f.subscribers[0].addr;
    assert_eq!(f.subscribers[0].worker, 1);

    // Its client moved to a 5-tuple that worker 0 receives.
    let key = SessionKey(1);
    let new_addr: SocketAddr = "127.0.0.1:30001".parse().unwrap();
    f.engines[1].handle_command(WorkerCommand::HandOver {
        key,
        to: WorkerId(0),
    });
    let moved = std::iter::from_fn(|| f.engines[1].poll_event())
        .find_map(|e| match e {
            EngineEvent::HandedOver {
                key: k,
                to,
                session,
            } if k == key => {
                assert_eq!(to, WorkerId(0));
                session
            }
            _ => None,
        })
        .expect("worker 1 hands its state over");
    assert_eq!(moved.addr(), old_addr);
    f.engines[0].handle_command(WorkerCommand::Adopt {
        key,
        addr: new_addr,
        session: moved,
    });
    f.fanout.store(FanoutTable {
        per_worker: vec![vec![key], Vec::new()],
    });
    f.subscribers[0].addr = new_addr;

    let after: Vec<Vec<u8>> = (2..=5u16)
        .map(|seq| fixture::rtp_packet(seq, PUBLISHER_SSRC))
        .collect();
    let second = forward_burst(&mut f, &after, t0 + Duration::from_millis(40));
    assert!(!second.contains_key(&old_addr), "nothing to the old path");
    // One client SRTP context opens everything, across the wrap and the
    // move; sequence and transport-wide numbers continue.
    let transmits: Vec<Transmit> = first[&old_addr]
        .iter()
        .chain(&second[&new_addr])
        .map(|t| Transmit {
            to: t.to,
            bytes: t.bytes.clone(),
            segment_size: t.segment_size,
        })
        .collect();
    let all: Vec<Vec<u8>> = before.iter().chain(&after).cloned().collect();
    check_subscriber(&mut f.subscribers[0], &transmits, &all);
}
