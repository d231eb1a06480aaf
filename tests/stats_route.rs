//! The per-session stats route (our extension): what the server counted
//! for a str0m publisher and a str0m subscriber equals what str0m itself
//! counted (its egress and ingress stats), the round trip is measured, and
//! the route answers like the rest of the API for a session that never
//! connected, an unknown one, and a wrong secret.

mod common;

use std::time::Duration;

use common::{Api, AudioPair, Peer, audio_pair, drive, push_one, received, send_opus};
use serde_json::Value;
use str0m::Event;
use str0m::media::MediaKind;

/// The latest of a peer's stats events that `pick` reads a count from.
fn latest(peer: &Peer, pick: impl Fn(&Event) -> Option<u64>) -> u64 {
    peer.events
        .iter()
        .rev()
        .find_map(pick)
        .expect("a stats event")
}

#[test]
fn stats_count_what_the_peers_counted() {
    let server = common::server(1);
    let api = Api::new(&server);
    let AudioPair {
        publisher: mut a,
        publisher_session: publisher,
        mid,
        subscriber: mut c,
        subscriber_session: subscriber,
        sub_mid: c_mid,
    } = audio_pair(&api);
    send_opus(&mut a, mid, b"stats", 250, &mut [&mut c]);
    // 5 s of media: str0m's sender and receiver reports come seconds
    // apart, and the round trip needs one of each. Then quiet: the last
    // packets land, both sides report once more.
    drive(&mut [&mut a, &mut c], Duration::from_millis(1500), |_| {
        false
    });
    assert!(received(&c, c_mid, b"stats") >= 240, "media flowed");

    let sent = latest(&a, |e| match e {
        Event::MediaEgressStats(s) if s.mid == mid => Some(s.packets),
        _ => None,
    });
    let got = latest(&c, |e| match e {
        Event::MediaIngressStats(s) if s.mid == c_mid => Some(s.packets),
        _ => None,
    });

    let (status, p) = api.call("GET", &format!("/sessions/{publisher}/stats"), None);
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["sessionId"], publisher.as_str());
    assert_eq!(p["connected"], true);
    let local = &p["tracks"][0];
    assert_eq!(local["location"], "local");
    assert_eq!(local["trackName"], "mic");
    assert_eq!(local["status"], "active");
    assert_eq!(
        local["packetsReceived"], sent,
        "server vs str0m's egress: {p}"
    );
    assert_eq!(local["packetsLost"], 0);
    assert_eq!(local["streams"].as_array().map(Vec::len), Some(1), "{p}");

    let (status, s) = api.call("GET", &format!("/sessions/{subscriber}/stats"), None);
    assert_eq!(status, 200, "{s}");
    let remote = &s["tracks"][0];
    assert_eq!(remote["location"], "remote");
    assert_eq!(remote["sessionId"], publisher.as_str());
    assert_eq!(remote["trackName"], "mic");
    assert_eq!(remote["mid"], c_mid.to_string());
    assert_eq!(remote["packetsSent"], got, "server vs str0m's ingress: {s}");
    assert!(remote["bytesSent"].as_u64().unwrap() > got * 10, "{s}");
    let rtt = s["rttMs"]
        .as_f64()
        .expect("the subscriber's round trip is measured");
    assert!((0.0..100.0).contains(&rtt), "loopback round trip {rtt} ms");
}

#[test]
fn stats_answer_like_the_api() {
    let server = common::server(1);
    let mut api = Api::new(&server);
    let mut a = Peer::new("publisher");
    // Pushed but never connected: listed, with no media figures.
    let (publisher, _, _) = push_one(&api, &mut a, MediaKind::Audio, "mic", |o| o);
    let (status, body) = api.call("GET", &format!("/sessions/{publisher}/stats"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], false);
    assert_eq!(body["rttMs"], Value::Null);
    assert_eq!(body["tracks"][0]["trackName"], "mic");
    assert_eq!(body["tracks"][0]["packetsReceived"], 0);

    // An unknown session: the answer GET session gives.
    let unknown = "/sessions/0123456789abcdef0123456789abcdef";
    let (status, body) = api.call("GET", &format!("{unknown}/stats"), None);
    assert_eq!((status, body), api.call("GET", unknown, None));

    api.secret = "wrong".into();
    let (status, body) = api.call("GET", &format!("/sessions/{publisher}/stats"), None);
    assert_eq!(status, 401, "{body}");
}
