//! Losses repaired on both hops, with an independent stack (str0m) at both
//! ends: a VP8 track pushed by one str0m peer and pulled by another, with a
//! seeded 5 % of the media datagrams dropped on the way to the subscriber,
//! on the way from the publisher, or both. The subscriber NACKs what it
//! misses and we resend it as RTX from the track's history; we NACK what
//! the publisher's stream misses and unwrap its RTX back into the stream.
//! Every frame arrives complete. Without the resends frames are lost.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{
    Api, DropFilter, Peer, drive, payload_type, pull, push_one, server, vp8_frame, write_frame,
};
use serde_json::json;
use str0m::Event;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime};

const FRAMES: u64 = 150;
/// Frames sent after the last one checked: a loss at the very end shows
/// (as a gap) only when a later packet arrives, as in any real stream.
const TAIL: u64 = 5;
/// Frames sent before the loss starts; the rest must all arrive complete
/// (a loss before the first packet a receiver gets is one it cannot know
/// of, and str0m does not deliver the very first frame even on a lossless
/// path).
const WARM_UP: u64 = 10;
const TAG: &[u8] = b"nack-frame";

/// Whether a datagram is SRTP media (not RTCP, STUN or DTLS).
fn is_media(d: &[u8]) -> bool {
    d.len() > 12 && (128..192).contains(&d[0]) && !(200..=206).contains(&d[1])
}

/// Drops a seeded 5 % of media datagrams after the first `3 * WARM_UP`.
fn seeded_loss(seed: u64) -> DropFilter {
    let mut x = seed;
    let mut media = 0u64;
    Box::new(move |d: &[u8]| {
        if !is_media(d) {
            return false;
        }
        media += 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        media > 3 * WARM_UP && x % 100 < 5
    })
}

/// Frame numbers the subscriber received complete.
fn complete_frames(peer: &Peer) -> Vec<u64> {
    let mut seen: Vec<u64> = peer
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) if d.data.len() == 3000 => {
                let at = d.data.windows(TAG.len()).position(|w| w == TAG)?;
                let n = d.data.get(at + TAG.len()..at + TAG.len() + 8)?;
                Some(u64::from_be_bytes(n.try_into().ok()?))
            }
            _ => None,
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    seen
}

/// Pushes and pulls one VP8 track with the given losses, sends FRAMES
/// frames, and returns the frames missing at the subscriber and the
/// server's counters (NACKed by subscribers, resent, NACKed upstream,
/// repaired upstream).
fn run(to_subscriber: bool, from_publisher: bool) -> (Vec<u64>, [u64; 4]) {
    let server = server(1);
    let api = Api::new(&server);
    let mut publisher = Peer::new("publisher");
    let (session, mid, answer) = push_one(&api, &mut publisher, MediaKind::Video, "cam", |o| o);
    assert!(
        answer.contains("rtx/90000"),
        "RTX is taken from the publisher:\n{answer}"
    );
    assert!(
        drive(&mut [&mut publisher], Duration::from_secs(10), |p| p[0]
            .connected),
        "publisher connects"
    );
    let (mut subscriber, _, items) = pull(
        &api,
        json!([{"location": "remote", "sessionId": session, "trackName": "cam"}]),
        &mut [&mut publisher],
    );
    assert!(items[0]["errorCode"].is_null(), "{items}");
    if to_subscriber {
        subscriber.drop_incoming = Some(seeded_loss(0x5eed_1234));
    }
    if from_publisher {
        publisher.drop_outgoing = Some(seeded_loss(0xfeed_5678));
    }
    // Frames of three packets each (3 KB), 30 per second; the first a keyframe.
    let pt = payload_type(&mut publisher, mid, Codec::Vp8);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < FRAMES + TAIL {
        if Instant::now() >= start + Duration::from_millis(sent * 33) {
            let data = vp8_frame(sent, sent == 0, TAG, 3000);
            write_frame(
                &mut publisher,
                mid,
                pt,
                MediaTime::from_90khz(sent * 3000),
                data,
            );
            sent += 1;
        }
        if !(publisher.step() | subscriber.step()) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let wanted = FRAMES - WARM_UP;
    drive(
        &mut [&mut publisher, &mut subscriber],
        Duration::from_secs(5),
        |p| {
            complete_frames(p[1])
                .iter()
                .filter(|n| (WARM_UP..FRAMES).contains(*n))
                .count() as u64
                == wanted
        },
    );
    let got = complete_frames(&subscriber);
    let missing = (WARM_UP..FRAMES).filter(|n| !got.contains(n)).collect();
    let c = &server.control.workers()[0].counters;
    let counts = [
        c.nacked_packets.load(Ordering::Relaxed),
        c.rtp_retransmitted.load(Ordering::Relaxed),
        c.upstream_nacked.load(Ordering::Relaxed),
        c.upstream_recovered.load(Ordering::Relaxed),
    ];
    (missing, counts)
}

#[test]
fn a_subscriber_that_loses_5_percent_receives_every_frame_complete() {
    let (missing, [nacked, resent, ..]) = run(true, false);
    assert!(
        missing.is_empty(),
        "missing {missing:?} (NACKed {nacked}, resent {resent})"
    );
    assert!(
        resent > 0 && nacked >= resent,
        "NACKed {nacked}, resent {resent}"
    );
}

#[test]
fn a_publisher_that_loses_5_percent_reaches_the_subscriber_complete() {
    let (missing, [_, _, upstream_nacked, recovered]) = run(false, true);
    assert!(
        missing.is_empty(),
        "missing {missing:?} (NACKed upstream {upstream_nacked}, repaired {recovered})"
    );
    assert!(
        recovered > 0 && upstream_nacked >= recovered,
        "{upstream_nacked} {recovered}"
    );
}

#[test]
fn five_percent_lost_on_both_hops_every_frame_arrives_complete() {
    let (missing, counts) = run(true, true);
    assert!(
        missing.is_empty(),
        "missing {missing:?} (counts {counts:?})"
    );
    assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
}
