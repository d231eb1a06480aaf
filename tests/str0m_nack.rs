//! Generic NACK from an independent stack as the subscriber: str0m pulls a
//! VP8 track through our offer (which negotiates `nack`), drops a seeded
//! 5 % of the media datagrams that reach it, and NACKs them; our resends
//! from the track's history repair every frame. Without the resends frames
//! with a lost packet never complete.

mod common;

use std::time::{Duration, Instant};

use common::{Api, Peer, drive, payload_type, pull, push_one, server, write_frame};
use serde_json::json;
use str0m::Event;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime};

const FRAMES: u64 = 150;
/// Frames sent before the loss starts; the rest must all arrive complete.
const WARM_UP: u64 = 10;
const TAG: &[u8] = b"nack-frame";

/// Whether a datagram is SRTP media (not RTCP, STUN or DTLS).
fn is_media(d: &[u8]) -> bool {
    d.len() > 12 && (128..192).contains(&d[0]) && !(200..=206).contains(&d[1])
}

#[test]
fn a_subscriber_that_loses_5_percent_receives_every_frame_complete() {
    let server = server(1);
    let api = Api::new(&server);
    let mut publisher = Peer::new("publisher");
    let (session, mid, _) = push_one(&api, &mut publisher, MediaKind::Video, "cam", |o| o);
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
    // Seeded loss of media datagrams on the way to the subscriber, once
    // its stream has started: after the first ten frames (a loss before
    // the first packet it receives is one it cannot know of, and str0m
    // does not deliver the very first frame even on a lossless path).
    let mut x: u64 = 0x5eed_1234;
    let mut media = 0u32;
    subscriber.drop_incoming = Some(Box::new(move |d: &[u8]| {
        if !is_media(d) {
            return false;
        }
        media += 1;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        media > 3 * WARM_UP as u32 && x % 100 < 5
    }));

    // Frames of three packets each (3 KB), 30 per second; the first a keyframe.
    let pt = payload_type(&mut publisher, mid, Codec::Vp8);
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < FRAMES {
        if Instant::now() >= start + Duration::from_millis(sent * 33) {
            // A VP8 frame tag (bit 0 clear: a keyframe) and start code.
            let keyframe = sent == 0;
            let mut data = vec![u8::from(!keyframe), 0, 0, 0x9d, 0x01, 0x2a];
            data.extend_from_slice(TAG);
            data.extend_from_slice(&sent.to_be_bytes());
            data.resize(3000, (sent % 251) as u8);
            write_frame(
                &mut publisher,
                mid,
                pt,
                MediaTime::from_90khz(sent * 3000),
                data,
            );
            sent += 1;
        }
        let busy = publisher.step() | subscriber.step();
        if !busy {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let complete = |p: &mut [&mut Peer]| {
        let mut seen: Vec<u64> = p[1]
            .events
            .iter()
            .filter_map(|e| match e {
                Event::MediaData(d) => {
                    let at = d.data.windows(TAG.len()).position(|w| w == TAG)?;
                    let n = d.data.get(at + TAG.len()..at + TAG.len() + 8)?;
                    (d.data.len() == 3000)
                        .then(|| u64::from_be_bytes(n.try_into().unwrap_or_default()))
                }
                _ => None,
            })
            .collect();
        seen.retain(|n| *n >= WARM_UP);
        seen.sort_unstable();
        seen.dedup();
        seen.len() as u64 == FRAMES - WARM_UP
    };
    let all = drive(
        &mut [&mut publisher, &mut subscriber],
        Duration::from_secs(5),
        complete,
    );
    let counters = &server.control.workers()[0].counters;
    let resent = counters
        .rtp_retransmitted
        .load(std::sync::atomic::Ordering::Relaxed);
    let nacked = counters
        .nacked_packets
        .load(std::sync::atomic::Ordering::Relaxed);
    let frames: Vec<u64> = subscriber
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) => {
                let at = d.data.windows(TAG.len()).position(|w| w == TAG)?;
                let n = d.data.get(at + TAG.len()..at + TAG.len() + 8)?;
                Some(u64::from_be_bytes(n.try_into().unwrap_or_default()))
            }
            _ => None,
        })
        .collect();
    let missing: Vec<u64> = (WARM_UP..FRAMES).filter(|n| !frames.contains(n)).collect();
    assert!(
        all,
        "every frame complete at the subscriber (missing {missing:?} of {FRAMES}, NACKed {nacked}, resent {resent})"
    );
    assert!(
        resent > 0 && nacked >= resent,
        "NACKed {nacked}, resent {resent}"
    );
}
