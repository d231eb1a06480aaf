//! The Calls API's other negotiation shapes, end to end with str0m peers:
//! autoDiscover, tracks/update re-pointing a pull, a server-offered
//! bidirectional push and a pull into it (`mid: "#trackName"`); and, at the
//! SDP level, tracks/close with an offer and legacy sessions/new.

mod common;

use common::{Api, pull, push_audio, received, send_opus, server};
use serde_json::json;
use str0m::media::Mid;

#[test]
fn auto_discover_names_the_track_and_it_can_be_pulled() {
    let server = server(1);
    let api = Api::new(&server);
    let (mut a, a_session, a_mid, items) = push_audio(&api, json!([]), true);
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(items[0]["location"], "local");
    assert_eq!(items[0]["mid"], a_mid.to_string());
    let name = items[0]["trackName"].as_str().unwrap().to_owned();
    assert!(!name.is_empty());

    let (mut b, b_session, pulled) = pull(
        &api,
        json!([{"location": "remote", "sessionId": a_session, "trackName": name}]),
        &mut [&mut a],
    );
    let b_mid: Mid = pulled[0]["mid"].as_str().unwrap().into();
    send_opus(&mut a, a_mid, b"auto", 30, &mut [&mut b]);
    assert!(
        received(&b, b_mid, b"auto") >= 25,
        "frames received: {}",
        received(&b, b_mid, b"auto")
    );

    // The publisher closes its track: the pull becomes inactive too.
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{a_session}/tracks/close"),
        Some(&json!({"tracks": [{"mid": a_mid.to_string()}], "force": true}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracks"][0]["trackName"], name);
    let got = api.get_session(&b_session);
    assert_eq!(got["tracks"][0]["status"], "inactive", "{got}");
}

#[test]
fn one_session_can_pull_the_same_track_twice() {
    let server = server(1);
    let api = Api::new(&server);
    let (mut a, a_session, a_mid, _) = push_audio(&api, json!("mic"), false);
    let item = json!({"location": "remote", "sessionId": a_session, "trackName": "mic"});
    let (mut b, _, pulled) = pull(&api, json!([item.clone(), item]), &mut [&mut a]);
    let first: Mid = pulled[0]["mid"].as_str().unwrap().into();
    let second: Mid = pulled[1]["mid"].as_str().unwrap().into();
    assert_ne!(first, second);
    send_opus(&mut a, a_mid, b"twice", 20, &mut [&mut b]);
    assert!(
        received(&b, first, b"twice") >= 15,
        "first: {}",
        received(&b, first, b"twice")
    );
    assert!(
        received(&b, second, b"twice") >= 15,
        "second: {}",
        received(&b, second, b"twice")
    );
}

#[test]
fn tracks_update_repoints_a_pull_to_another_track() {
    let server = server(1);
    let api = Api::new(&server);
    let (mut a1, s1, m1, _) = push_audio(&api, json!("mic"), false);
    let (mut a2, s2, m2, _) = push_audio(&api, json!("mic"), false);
    let (mut b, b_session, pulled) = pull(
        &api,
        json!([{"location": "remote", "sessionId": s1, "trackName": "mic"}]),
        &mut [&mut a1, &mut a2],
    );
    let b_mid: Mid = pulled[0]["mid"].as_str().unwrap().into();
    send_opus(&mut a1, m1, b"one", 20, &mut [&mut b, &mut a2]);
    assert!(received(&b, b_mid, b"one") >= 15);

    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{b_session}/tracks/update"),
        Some(&json!({"tracks": [{"location": "remote", "mid": b_mid.to_string(), "sessionId": s2, "trackName": "mic"}]}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], false);
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    b.events.clear();
    send_opus(&mut a2, m2, b"two", 20, &mut [&mut b, &mut a1]);
    send_opus(&mut a1, m1, b"one", 10, &mut [&mut b, &mut a2]);
    assert!(
        received(&b, b_mid, b"two") >= 15,
        "re-pointed track arrives: {}",
        received(&b, b_mid, b"two")
    );
    assert_eq!(
        received(&b, b_mid, b"one"),
        0,
        "the old track no longer arrives"
    );
    let got = api.get_session(&b_session);
    assert_eq!(got["tracks"][0]["sessionId"], s2);
}

#[test]
fn bidirectional_push_without_sdp_and_pull_into_it() {
    let server = server(1);
    let api = Api::new(&server);
    let (mut a, a_session, a_mid, _) = push_audio(&api, json!("mic"), false);

    // C asks the server to offer a sendrecv audio transceiver for its track "c".
    let mut c = common::Peer::new("bidirectional");
    let c_session = api.new_session();
    let (status, body) = api.tracks_new(&c_session, json!({"tracks": [
        {"location": "local", "trackName": "c", "kind": "audio", "bidirectionalMediaStream": true}
    ]}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], true);
    let offer = body["sessionDescription"]["sdp"].as_str().unwrap();
    assert!(offer.contains("a=sendrecv"), "{offer}");
    assert!(offer.contains("a=setup:actpass"));
    let c_mid: Mid = body["tracks"][0]["mid"].as_str().unwrap().into();
    let answer = c.accept_offer(offer);
    assert_eq!(api.renegotiate(&c_session, &answer).0, 200);
    assert!(common::drive(
        &mut [&mut c, &mut a],
        std::time::Duration::from_secs(10),
        |p| p[0].connected
    ));

    // B pulls C's track.
    let (mut b, _, pulled) = pull(
        &api,
        json!([{"location": "remote", "sessionId": c_session, "trackName": "c"}]),
        &mut [&mut a, &mut c],
    );
    let b_mid: Mid = pulled[0]["mid"].as_str().unwrap().into();
    send_opus(&mut c, c_mid, b"from-c", 20, &mut [&mut b, &mut a]);
    assert!(received(&b, b_mid, b"from-c") >= 15);

    // C pulls A's track into its own sendrecv transceiver: no SDP needed.
    let (status, body) = api.tracks_new(
        &c_session,
        json!({"tracks": [
            {"location": "remote", "sessionId": a_session, "trackName": "mic", "mid": "#c"}
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], false);
    assert!(body.get("sessionDescription").is_none());
    assert_eq!(body["tracks"][0]["mid"], c_mid.to_string());
    send_opus(&mut a, a_mid, b"from-a", 20, &mut [&mut c, &mut b]);
    assert!(
        received(&c, c_mid, b"from-a") >= 15,
        "received on C: {}",
        received(&c, c_mid, b"from-a")
    );
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn close_with_an_offer_answers_the_stopped_m_line() {
    let server = server(1);
    let api = Api::new(&server);
    let offer = fixture("chrome-offer.sdp");
    let session = api.new_session();
    let (status, body) = api.tracks_new(&session, json!({
        "sessionDescription": {"type": "offer", "sdp": offer},
        "tracks": [{"location": "local", "mid": "0", "trackName": "mic"}, {"location": "local", "mid": "1", "trackName": "cam"}],
    }));
    assert_eq!(status, 200, "{body}");
    // The browser stopped the audio transceiver: its m-line now has port 0.
    let stopped = offer.replacen("m=audio 54983 ", "m=audio 0 ", 1);
    assert_ne!(stopped, offer);
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{session}/tracks/close"),
        Some(&json!({"tracks": [{"mid": "0"}], "sessionDescription": {"type": "offer", "sdp": stopped}, "force": false}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], false);
    let answer = body["sessionDescription"]["sdp"].as_str().unwrap();
    assert_eq!(body["sessionDescription"]["type"], "answer");
    assert!(answer.contains("\r\nm=audio 0 "), "{answer}");
    assert!(answer.contains("a=group:BUNDLE 1\r\n"), "{answer}");
    let got = api.get_session(&session);
    let status_of = |name: &str| {
        got["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["trackName"] == name)
            .unwrap()["status"]
            .clone()
    };
    assert_eq!(status_of("mic"), "inactive");
    assert_eq!(status_of("cam"), "active");
}

#[test]
fn legacy_sessions_new_with_an_offer_answers_it() {
    let server = server(1);
    let api = Api::new(&server);
    let mut offer = fixture("chrome-offer.sdp");
    offer = offer.replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0 1 2");
    offer.push_str("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5000\r\n");
    let (status, body) = api.call(
        "POST",
        "/sessions/new",
        Some(&json!({"sessionDescription": {"type": "offer", "sdp": offer}}).to_string()),
    );
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["sessionId"].as_str().unwrap().len(), 32);
    let answer = body["sessionDescription"]["sdp"].as_str().unwrap();
    assert_eq!(body["sessionDescription"]["type"], "answer");
    assert!(answer.contains("a=mid:0") && answer.contains("a=mid:1") && answer.contains("a=mid:2"));
    // The data channels' m=application is accepted, inside the group.
    assert!(
        answer.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel"),
        "{answer}"
    );
    assert!(answer.contains("a=group:BUNDLE 0 1 2"), "{answer}");
    assert!(answer.contains("a=sctp-port:5000\r\na=max-message-size:262144"));
    webrtc_sdp::parse_sdp(answer, false).expect("webrtc-sdp parses the answer");
}

#[test]
fn audio_level_is_forwarded_end_to_end() {
    let server = server(1);
    let api = Api::new(&server);
    let (mut a, a_session, a_mid, _) = push_audio(&api, json!("mic"), false);
    let (mut b, _, pulled) = pull(
        &api,
        json!([{"location": "remote", "sessionId": a_session, "trackName": "mic"}]),
        &mut [&mut a],
    );
    let b_mid: Mid = pulled[0]["mid"].as_str().unwrap().into();
    let pt = a
        .rtc
        .writer(a_mid)
        .unwrap()
        .payload_params()
        .find(|p| p.spec().codec == str0m::format::Codec::Opus)
        .unwrap()
        .pt();
    for i in 0..20u64 {
        let w = a
            .rtc
            .writer(a_mid)
            .unwrap()
            .audio_level(-(i as i8) - 10, true);
        w.write(
            pt,
            std::time::Instant::now(),
            str0m::media::MediaTime::from_micros(i * 20_000),
            vec![1, 2, 3],
        )
        .unwrap();
        a.drain();
        common::drive(
            &mut [&mut a, &mut b],
            std::time::Duration::from_millis(20),
            |_| false,
        );
    }
    common::drive(
        &mut [&mut a, &mut b],
        std::time::Duration::from_millis(200),
        |_| false,
    );
    let levels: Vec<i8> = b
        .events
        .iter()
        .filter_map(|e| match e {
            str0m::Event::MediaData(d) if d.mid == b_mid => d.ext_vals.audio_level,
            _ => None,
        })
        .collect();
    assert!(levels.len() >= 15, "audio levels received: {levels:?}");
    assert!(levels.iter().all(|l| (-29..=-10).contains(l)), "{levels:?}");
}
