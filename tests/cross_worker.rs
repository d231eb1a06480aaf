//! Media crosses workers: with two media workers (SO_REUSEPORT spreads
//! clients by 5-tuple), subscribers are added until one sits on the other
//! worker than the publisher; it must receive the publisher's frames, handed
//! off between the workers.

mod common;

use std::time::{Duration, Instant};

use common::{Api, Peer, drive, server};
use serde_json::json;
use str0m::Event;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, MediaTime};
use switchboard::engine::counters::Counters;

#[test]
fn a_subscriber_on_another_worker_receives_the_track() {
    let server = server(2);
    let api = Api::new(&server);

    let mut a = Peer::new("publisher");
    let mut mid = None;
    let (offer, pending) = a.offer(|s| {
        mid = Some(s.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None))
    });
    let mid = mid.unwrap();
    let publisher = api.new_session();
    let (status, body) = api.tracks_new(
        &publisher,
        json!({
            "sessionDescription": {"type": "offer", "sdp": offer},
            "tracks": [{"location": "local", "mid": mid.to_string(), "trackName": "mic"}],
        }),
    );
    assert_eq!(status, 200, "{body}");
    a.accept_answer(pending, body["sessionDescription"]["sdp"].as_str().unwrap());
    assert!(drive(&mut [&mut a], Duration::from_secs(10), |p| p[0].connected));
    let a_worker = server
        .control
        .session_transport(&publisher)
        .expect("publisher bound")
        .0;

    // Each new client socket is hashed to a worker; one of 16 lands on the
    // other worker unless the kernel is extraordinarily unlucky (2^-16).
    let mut found = None;
    for _ in 0..16 {
        let mut b = Peer::new("subscriber");
        let session = api.new_session();
        let (status, body) = api.tracks_new(
            &session,
            json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "mic"}]}),
        );
        assert_eq!(status, 200, "{body}");
        let answer = b.accept_offer(body["sessionDescription"]["sdp"].as_str().unwrap());
        assert_eq!(api.renegotiate(&session, &answer).0, 200);
        assert!(
            drive(&mut [&mut a, &mut b], Duration::from_secs(10), |p| p[1]
                .connected),
            "subscriber connects"
        );
        let w = server
            .control
            .session_transport(&session)
            .expect("subscriber bound")
            .0;
        if w != a_worker {
            found = Some(b);
            break;
        }
    }
    let mut b = found.expect("a subscriber on the other worker");

    let handoffs_before = Counters::get(&server.control.workers()[a_worker].counters.handoffs);
    let pt = a
        .rtc
        .writer(mid)
        .unwrap()
        .payload_params()
        .find(|p| p.spec().codec == Codec::Opus)
        .unwrap()
        .pt();
    for i in 0..50u64 {
        let frame = [b"cross".as_slice(), &i.to_be_bytes()].concat();
        a.rtc
            .writer(mid)
            .unwrap()
            .write(
                pt,
                Instant::now(),
                MediaTime::from_micros(i * 20_000),
                frame,
            )
            .unwrap();
        a.drain();
        drive(&mut [&mut a, &mut b], Duration::from_millis(20), |_| false);
    }
    drive(&mut [&mut a, &mut b], Duration::from_millis(300), |_| false);
    let received: Vec<Vec<u8>> = b
        .events
        .iter()
        .filter_map(|e| match e {
            Event::MediaData(d) => Some(d.data.to_vec()),
            _ => None,
        })
        .collect();
    assert!(
        received.len() >= 45,
        "received {} of 50 frames",
        received.len()
    );
    assert!(received.iter().all(|d| d.starts_with(b"cross")));
    let handoffs =
        Counters::get(&server.control.workers()[a_worker].counters.handoffs) - handoffs_before;
    assert!(
        handoffs >= 45,
        "packets handed to the other worker: {handoffs}"
    );

    // The same counters, as /metrics shows them.
    let metrics = ureq::get(&format!("http://{}/metrics", server.http_addr))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let line = format!("switchboard_handoffs_total{{worker=\"{a_worker}\"}} ");
    let shown: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&line))
        .expect("handoff series")
        .parse()
        .unwrap();
    assert!(shown >= handoffs);
    assert!(metrics.contains("switchboard_drops_total{worker=\"0\",reason=\"srtp_failure\"}"));
}
