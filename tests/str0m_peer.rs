//! End to end with an independent WebRTC stack (str0m) as both clients:
//! session A pushes Opus and VP8, session B pulls both through the API; B
//! receives exactly the payloads A sent; B's PLI reaches A; tracks/close
//! stops forwarding; GET session shows the statuses.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Api, Peer, drive, server};
use serde_json::json;
use str0m::Event;
use str0m::format::Codec;
use str0m::media::{KeyframeRequestKind, MediaTime, Mid};

fn pt_of(peer: &mut Peer, mid: Mid, codec: Codec) -> str0m::media::Pt {
    let w = peer.rtc.writer(mid).expect("writer");
    w.payload_params()
        .find(|p| p.spec().codec == codec)
        .expect("codec negotiated")
        .pt()
}

/// Publishes audio+video from a new str0m peer; returns (peer, session, audio mid, video mid).
fn publish(api: &Api) -> (Peer, String, Mid, Mid) {
    let common::MicCam {
        peer: mut a,
        session,
        audio,
        video,
        pending,
        body,
    } = common::push_mic_cam(api);
    assert_eq!(body["requiresImmediateRenegotiation"], false);
    assert_eq!(body["tracks"][0]["trackName"], "mic");
    assert_eq!(body["tracks"][0]["mid"], audio.to_string());
    assert_eq!(body["tracks"][1]["trackName"], "cam");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    assert_eq!(body["sessionDescription"]["type"], "answer");
    a.accept_answer(pending, body["sessionDescription"]["sdp"].as_str().unwrap());
    (a, session, audio, video)
}

/// Pulls the publisher's tracks into a new str0m peer; returns (peer, session, pulled mids).
fn subscribe(api: &Api, publisher: &str) -> (Peer, String, Vec<String>) {
    let mut b = Peer::new("subscriber");
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [
            {"location": "remote", "sessionId": publisher, "trackName": "mic"},
            {"location": "remote", "sessionId": publisher, "trackName": "cam"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], true);
    assert_eq!(body["sessionDescription"]["type"], "offer");
    for t in body["tracks"].as_array().unwrap() {
        assert_eq!(t["sessionId"], publisher);
        assert!(t["errorCode"].is_null(), "{body}");
    }
    let mids = body["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["mid"].as_str().unwrap().to_owned())
        .collect();
    let answer = b.accept_offer(body["sessionDescription"]["sdp"].as_str().unwrap());
    let (status, body) = api.renegotiate(&session, &answer);
    assert_eq!(status, 200, "{body}");
    (b, session, mids)
}

#[test]
fn a_pushed_track_reaches_a_puller_byte_for_byte() {
    let server = server(1);
    let api = Api::new(&server);
    let (mut a, a_session, audio, video) = publish(&api);
    let ok = drive(&mut [&mut a], Duration::from_secs(10), |p| p[0].connected);
    if !ok {
        for w in server.control.workers() {
            use switchboard::engine::counters::{Counters, DropReason};
            eprintln!(
                "in {} out {}",
                Counters::get(&w.counters.packets_in),
                Counters::get(&w.counters.packets_out)
            );
            for r in DropReason::ALL {
                eprintln!("  {} {}", r.as_str(), w.counters.drops(r));
            }
        }
        eprintln!("events: {:?}", a.events);
    }
    assert!(ok, "publisher connects");

    let (mut b, b_session, mids) = subscribe(&api, &a_session);
    assert!(
        drive(&mut [&mut a, &mut b], Duration::from_secs(10), |p| p[1]
            .connected),
        "subscriber connects"
    );

    // The subscriber's connection made the server ask A for a keyframe.
    let got_pli = |p: &Peer| {
        p.events
            .iter()
            .any(|e| matches!(e, Event::KeyframeRequest(r) if r.mid == video))
    };
    assert!(
        drive(&mut [&mut a, &mut b], Duration::from_secs(3), |p| got_pli(
            p[0]
        )),
        "PLI on subscribe"
    );

    // A sends distinct Opus and VP8 frames; B must receive the same bytes.
    let opus = pt_of(&mut a, audio, Codec::Opus);
    let vp8 = pt_of(&mut a, video, Codec::Vp8);
    let start = Instant::now();
    let mut sent = HashSet::new();
    for i in 0..100u32 {
        let now = Instant::now();
        let t = MediaTime::from_90khz(u64::from(i) * 3000);
        let audio_frame: Vec<u8> = [b"opus".as_slice(), &i.to_be_bytes(), &[0xa5; 60]].concat();
        // A VP8 keyframe-looking frame (P bit clear) spanning two packets.
        let video_frame: Vec<u8> = [
            &[0x10u8, 0x02, 0x00][..],
            &i.to_be_bytes(),
            &vec![(i % 251) as u8; 1800],
        ]
        .concat();
        a.rtc
            .writer(audio)
            .unwrap()
            .write(
                opus,
                now,
                MediaTime::from_micros(u64::from(i) * 20_000),
                audio_frame.clone(),
            )
            .unwrap();
        a.drain();
        a.rtc
            .writer(video)
            .unwrap()
            .write(vp8, now, t, video_frame.clone())
            .unwrap();
        a.drain();
        sent.insert(audio_frame);
        sent.insert(video_frame);
        drive(&mut [&mut a, &mut b], Duration::from_millis(20), |_| false);
    }
    drive(&mut [&mut a, &mut b], Duration::from_millis(500), |_| false);
    let received: Vec<(Mid, Vec<u8>)> = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) => Some((d.mid, d.data.to_vec())),
            _ => None,
        })
        .collect();
    let audio_mid: Mid = mids[0].as_str().into();
    let video_mid: Mid = mids[1].as_str().into();
    let audio_rx = received.iter().filter(|(m, _)| *m == audio_mid).count();
    let video_rx = received.iter().filter(|(m, _)| *m == video_mid).count();
    assert!(audio_rx >= 90, "audio frames received: {audio_rx} of 100");
    assert!(video_rx >= 90, "video frames received: {video_rx} of 100");
    for (mid, data) in &received {
        assert!(
            sent.contains(data),
            "frame on {mid} differs from every frame sent ({} bytes)",
            data.len()
        );
    }
    eprintln!(
        "forwarded {audio_rx} audio and {video_rx} video frames in {:?}",
        start.elapsed()
    );

    // RTCP both ways: the server's receiver reports reach A (str0m reads
    // them into its egress stats), and the sender reports it writes for B
    // carry B's own stream counters.
    let rr_seen = a.events.iter().any(|e| {
        matches!(e, Event::MediaEgressStats(s) if s.mid == audio && s.remote.as_ref().is_some_and(|r| r.packets_lost == 0))
    });
    assert!(
        rr_seen,
        "a receiver report from the server reached the publisher"
    );
    let sr_packets = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaIngressStats(s) => s.remote.as_ref().map(|r| r.packets),
            _ => None,
        })
        .max();
    // (str0m sends sender reports for its video stream.)
    assert!(
        sr_packets.is_some_and(|p| p > 0),
        "sender report packet count: {sr_packets:?}"
    );

    // B asks for a keyframe; A hears it (past the 500 ms throttle window).
    a.events.clear();
    let mut w = b.rtc.writer(video_mid).expect("subscriber writer");
    assert!(w.is_request_keyframe_possible(KeyframeRequestKind::Pli));
    w.request_keyframe(None, KeyframeRequestKind::Pli).unwrap();
    b.drain();
    assert!(
        drive(&mut [&mut a, &mut b], Duration::from_secs(3), |p| got_pli(
            p[0]
        )),
        "B's PLI reaches A"
    );

    // GET session: both sides active.
    let got = api.get_session(&b_session);
    let statuses: Vec<_> = got["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["trackName"].clone(),
                t["status"].clone(),
                t["location"].clone(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            (json!("mic"), json!("active"), json!("remote")),
            (json!("cam"), json!("active"), json!("remote"))
        ]
    );
    let got = api.get_session(&a_session);
    assert_eq!(got["tracks"].as_array().unwrap().len(), 2);
    assert!(
        got["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "active" && t["location"] == "local")
    );

    // tracks/close (force) on B's video: forwarding of video stops.
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{b_session}/tracks/close"),
        Some(&json!({"tracks": [{"mid": mids[1]}], "force": true}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    assert!(body.get("sessionDescription").is_none());
    drive(&mut [&mut a, &mut b], Duration::from_millis(200), |_| false);
    b.events.clear();
    for i in 100..130u32 {
        let now = Instant::now();
        let frame: Vec<u8> = [&[0x10u8, 0x02, 0x00][..], &i.to_be_bytes(), &[7u8; 100]].concat();
        a.rtc
            .writer(video)
            .unwrap()
            .write(vp8, now, MediaTime::from_90khz(u64::from(i) * 3000), frame)
            .unwrap();
        a.drain();
        let af: Vec<u8> = [b"opus".as_slice(), &i.to_be_bytes()].concat();
        a.rtc
            .writer(audio)
            .unwrap()
            .write(opus, now, MediaTime::from_micros(u64::from(i) * 20_000), af)
            .unwrap();
        a.drain();
        drive(&mut [&mut a, &mut b], Duration::from_millis(20), |_| false);
    }
    drive(&mut [&mut a, &mut b], Duration::from_millis(300), |_| false);
    let after: Vec<Mid> = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) => Some(d.mid),
            _ => None,
        })
        .collect();
    assert_eq!(
        after.iter().filter(|m| **m == video_mid).count(),
        0,
        "video still forwarded after close"
    );
    assert!(
        after.iter().filter(|m| **m == audio_mid).count() >= 20,
        "audio keeps flowing"
    );

    // Closing it again is an item error; GET shows it inactive.
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{b_session}/tracks/close"),
        Some(&json!({"tracks": [{"mid": mids[1]}], "force": true}).to_string()),
    );
    assert_eq!(status, 200);
    assert_eq!(body["tracks"][0]["errorCode"], "close_track_error");
    let got = api.get_session(&b_session);
    let cam = got["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trackName"] == "cam")
        .unwrap()
        .clone();
    assert_eq!(cam["status"], "inactive");
}
