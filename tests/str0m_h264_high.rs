//! H.264 High profile end to end, with an independent WebRTC stack: Debian's
//! Chromium cannot encode High (its sender capabilities stop at Main; see
//! tests/chromium_codecs.rs), so a str0m publisher sends real High-profile
//! frames (tests/data/h264-high-160x120.h264, made by ffmpeg/libx264) and a
//! str0m subscriber receives them through the server: the pulled m-line
//! offers exactly the publisher's format, and every access unit arrives
//! with the same NAL units it was sent with (SPS profile_idc 100 = High).

mod common;

use std::time::Duration;

use common::{Api, Peer, drive, payload_type, push_one, server, write_frame};
use serde_json::json;
use str0m::Event;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime};

/// H.264 High, level 3.1, packetization mode 1 (what Chrome offers for High).
const HIGH: u32 = 0x64001f;

fn high_peer(name: &'static str) -> Peer {
    Peer::with_codecs(name, |mut c| {
        c.codec_config().add_h264(100.into(), None, true, HIGH);
        c
    })
}

/// The NAL units of an Annex B stream (start codes removed).
fn nal_units(stream: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let end = starts.get(n + 1).map_or(stream.len(), |&e| e - 3);
            // A 4-byte start code leaves one zero byte before the next 3-byte one.
            let mut unit = &stream[s..end];
            while unit.last() == Some(&0) {
                unit = &unit[..unit.len() - 1];
            }
            unit
        })
        .collect()
}

/// Access units: the NAL units up to and including each slice (types 1, 5).
fn access_units(stream: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for unit in nal_units(stream) {
        let kind = unit[0] & 0x1f;
        current.push(unit);
        if kind == 1 || kind == 5 {
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

fn annex_b(units: &[&[u8]]) -> Vec<u8> {
    units
        .iter()
        .flat_map(|u| [&[0, 0, 0, 1][..], u].concat())
        .collect()
}

#[test]
fn h264_high_frames_arrive_unchanged() {
    let stream = std::fs::read(format!(
        "{}/tests/data/h264-high-160x120.h264",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let frames = access_units(&stream);
    assert_eq!(frames.len(), 30);
    let sps = frames[0]
        .iter()
        .find(|u| u[0] & 0x1f == 7)
        .expect("SPS first");
    assert_eq!(sps[1], 100, "profile_idc 100: High");

    let server = server(2);
    let api = Api::new(&server);
    let mut a = high_peer("publisher");
    let (session, mid, _) = push_one(&api, &mut a, MediaKind::Video, "cam", |o| o);
    assert!(drive(&mut [&mut a], Duration::from_secs(10), |p| p[0].connected));

    // The subscriber: the server's offer names exactly the High format.
    let mut b = high_peer("subscriber");
    let sub = api.new_session();
    let (status, body) = api.tracks_new(
        &sub,
        json!({"tracks": [{"location": "remote", "sessionId": session, "trackName": "cam"}]}),
    );
    assert_eq!(status, 200, "{body}");
    let offer = body["sessionDescription"]["sdp"].as_str().unwrap();
    let fmtps: Vec<&str> = offer
        .split("\r\n")
        .filter(|l| l.starts_with("a=fmtp:") && !l.contains("apt="))
        .collect();
    assert_eq!(fmtps.len(), 1, "one format besides its RTX: {offer}");
    assert!(fmtps[0].contains("profile-level-id=64001f"), "{fmtps:?}");
    assert!(fmtps[0].contains("packetization-mode=1"), "{fmtps:?}");
    let answer = b.accept_offer(offer);
    let (status, r) = api.renegotiate(&sub, &answer);
    assert_eq!(status, 200, "{r}");
    assert!(drive(&mut [&mut a, &mut b], Duration::from_secs(10), |p| p
        [1]
    .connected));
    let b_mid: str0m::media::Mid = body["tracks"][0]["mid"].as_str().unwrap().into();

    // Twice through the 30 frames at 15 fps.
    let pt = payload_type(&mut a, mid, Codec::H264);
    for i in 0..60u64 {
        let frame = annex_b(&frames[(i % 30) as usize]);
        let t = MediaTime::from_micros(i * 66_667);
        write_frame(&mut a, mid, pt, t, frame);
        drive(&mut [&mut a, &mut b], Duration::from_millis(66), |_| false);
    }
    drive(&mut [&mut a, &mut b], Duration::from_millis(300), |_| false);

    let sent: Vec<Vec<&[u8]>> = frames.clone();
    let received: Vec<Vec<u8>> = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) if d.mid == b_mid => Some(d.data.to_vec()),
            _ => None,
        })
        .collect();
    let intact = received
        .iter()
        .filter(|data| {
            let units = nal_units(data);
            sent.contains(&units)
        })
        .count();
    eprintln!("{intact} of {} received frames intact", received.len());
    assert!(
        intact >= 50,
        "{intact} of {} received frames match a sent access unit, NAL unit for NAL unit",
        received.len()
    );
    let high_sps = received.iter().any(|d| {
        nal_units(d)
            .iter()
            .any(|u| u[0] & 0x1f == 7 && u.get(1) == Some(&100))
    });
    assert!(high_sps, "the subscriber got the High-profile SPS");
}
