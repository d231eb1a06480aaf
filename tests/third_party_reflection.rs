//! Third-party sessions are not a packet cannon. An app names the
//! candidates a third-party session's ICE checks go to; before, a session
//! whose offer named 8 candidates at a UDP listener and a 60,000-character
//! `a=ice-ufrag` sent that listener 5.65 MB in 20 s, in datagrams of
//! 60,092 bytes (every candidate every 200 ms for 60 s).
//!
//! Now: the ufrag is refused (RFC 8839 lengths); with the longest valid
//! one, checks are paced and back off per pair (RFC 8445), within a budget
//! per session, so the listener gets at most a few KB; loopback and
//! private targets are not checked at all unless the operator allows them
//! (`--third-party-private-candidates`); and an app has at most 32
//! third-party sessions that have not connected.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::Api;
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::server::Server;

const FINGERPRINT: &str = "sha-256 85:99:C2:23:6B:6A:EC:A1:8E:DE:8A:4E:36:82:34:D7:D5:18:5D:1E:7D:80:D7:4E:DC:64:AD:AA:60:06:E4:7B";

/// A third-party peer's offer naming `targets` as its candidates.
fn offer(ufrag: &str, targets: &[UdpSocket]) -> String {
    let mut sdp = format!(
        "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
         a=fingerprint:{FINGERPRINT}\r\na=ice-ufrag:{ufrag}\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
         a=setup:actpass\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n\
         a=sendonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
    );
    for (i, t) in targets.iter().enumerate() {
        let port = t.local_addr().unwrap().port();
        sdp.push_str(&format!(
            "a=candidate:{i} 1 udp 2113937151 127.0.0.1 {port} typ host\r\n"
        ));
    }
    sdp
}

fn third_party_session(api: &Api, sdp: &str) -> (u16, Value) {
    let body = json!({"sessionDescription": {"type": "offer", "sdp": sdp}});
    api.call(
        "POST",
        "/sessions/new?thirdparty=true",
        Some(&body.to_string()),
    )
}

fn listeners() -> Vec<UdpSocket> {
    (0..8)
        .map(|_| {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect()
}

/// Bytes, datagrams and the largest datagram the listeners received.
#[derive(Debug, Default)]
struct Received {
    bytes: usize,
    datagrams: usize,
    largest: usize,
}

fn drain(listeners: &[UdpSocket], into: &mut Received) {
    let mut buf = vec![0u8; 65_536];
    for l in listeners {
        while let Ok(n) = l.recv(&mut buf) {
            into.bytes += n;
            into.datagrams += 1;
            into.largest = into.largest.max(n);
        }
    }
}

#[test]
fn a_third_party_session_sends_a_bounded_trickle_of_checks() {
    // Loopback admitted (Config::loopback allows private targets, as a
    // LAN deployment would); and a server with the default policy.
    let lan = common::server(1);
    let public = Server::start(Config {
        limits: Default::default(),
        ..Config::loopback(1)
    })
    .expect("server starts");
    let (lan_api, public_api) = (Api::new(&lan), Api::new(&public));
    let (at_lan, at_public) = (listeners(), listeners());

    // The probe's offer: refused for its ufrag.
    let (status, body) = third_party_session(&lan_api, &offer(&"u".repeat(60_000), &at_lan));
    assert_eq!(status, 406, "{body}");
    assert_eq!(body["errorCode"], "invalid_session_description");

    // The longest valid ufrag.
    let ufrag = "u".repeat(256);
    let (status, body) = third_party_session(&lan_api, &offer(&ufrag, &at_lan));
    assert_eq!(status, 201, "{body}");
    let (status, body) = third_party_session(&public_api, &offer(&ufrag, &at_public));
    assert_eq!(status, 201, "{body}");

    let (mut lan_got, mut public_got) = (Received::default(), Received::default());
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        drain(&at_lan, &mut lan_got);
        drain(&at_public, &mut public_got);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("in 20 s: allowed loopback {lan_got:?}; default policy {public_got:?}");
    assert!(lan_got.datagrams > 8, "checks were sent: {lan_got:?}");
    assert!(lan_got.bytes <= 30_000, "{lan_got:?}");
    assert!(lan_got.largest <= 1_500, "{lan_got:?}");
    // Pacing and backoff: each of 8 pairs at 0, 0.5, 1.5, 3.5, 7.5, 15.5 s.
    assert!(lan_got.datagrams <= 8 * 6, "{lan_got:?}");
    assert_eq!(public_got.datagrams, 0, "loopback is no target by default");
}

#[test]
fn an_app_has_a_bounded_number_of_third_party_sessions_connecting() {
    let server = common::server(1);
    let api = Api::new(&server);
    let mut created = 0;
    let refused = loop {
        let (status, body) = api.call("POST", "/sessions/new?thirdparty=true", None);
        if status != 201 {
            break (status, body);
        }
        created += 1;
        assert!(created <= 32, "no limit");
    };
    assert_eq!(created, 32);
    assert_eq!(refused.0, 503, "{}", refused.1);
    assert_eq!(refused.1["errorCode"], "temporarily_unavailable_error");
    // Ordinary sessions are not affected.
    let (status, body) = api.call("POST", "/sessions/new", None);
    assert_eq!(status, 201, "{body}");
}
