//! Transport-cc feedback to a publisher, judged by an independent stack's
//! own send-side estimator: str0m pushes video with its bandwidth
//! estimation on; our answer negotiates the transport-wide sequence number
//! and `rtcp-fb transport-cc` on its m-line only; the feedback we send
//! back is all str0m's estimator has to go on, and its estimate rises
//! from its starting value.

mod common;

use std::time::{Duration, Instant};

use common::{Api, Peer, drive, payload_type, push_one, server, vp8_frame, write_frame};
use str0m::Event;
use str0m::bwe::{Bitrate, BweKind};
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime};

const TWCC_URI: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
const START: u64 = 300_000;

fn estimates(peer: &Peer) -> Vec<u64> {
    peer.events
        .iter()
        .filter_map(|e| match e {
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => Some(estimate.as_u64()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_publishers_estimate_rises_on_our_transport_cc_feedback() {
    let server = server(1);
    let api = Api::new(&server);
    let mut publisher = Peer::with_codecs("publisher", |c| {
        c.enable_vp8(true).enable_bwe(Some(Bitrate::bps(START)))
    });
    let (_session, mid, answer) = push_one(&api, &mut publisher, MediaKind::Video, "cam", |o| o);
    assert!(
        answer.contains(TWCC_URI),
        "the extension is answered:\n{answer}"
    );
    assert!(
        answer.contains("transport-cc"),
        "rtcp-fb transport-cc is answered:\n{answer}"
    );
    assert!(
        drive(&mut [&mut publisher], Duration::from_secs(10), |p| p[0]
            .connected),
        "connected"
    );
    // About 1.2 Mbit/s of VP8 (5 KB frames at 30 fps) for 6 s.
    let pt = payload_type(&mut publisher, mid, Codec::Vp8);
    let start = Instant::now();
    let mut frame = 0u64;
    while start.elapsed() < Duration::from_secs(6) {
        let due = start + Duration::from_millis(frame * 33);
        if Instant::now() >= due {
            let data = vp8_frame(frame, frame.is_multiple_of(30), b"", 5000);
            write_frame(
                &mut publisher,
                mid,
                pt,
                MediaTime::from_90khz(frame * 3000),
                data,
            );
            frame += 1;
        }
        if !publisher.step() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let seen = estimates(&publisher);
    let highest = seen.iter().copied().max().unwrap_or(0);
    eprintln!("str0m's estimates (bit/s): {seen:?}");
    assert!(
        highest > START * 3 / 2,
        "str0m's estimate rose above {} bit/s on our feedback (estimates: {seen:?})",
        START * 3 / 2
    );
}
