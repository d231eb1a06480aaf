//! The transport with an independent WebRTC stack (str0m): a peer whose
//! SDP lists three fingerprints connects; a peer whose certificate matches
//! none of its fingerprints is refused while the server keeps serving the
//! others; an ICE restart onto a new socket, by a publisher and by a
//! subscriber, keeps the session, its tracks and the media flowing.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Api, Peer, drive, pull, push_one, received, send_opus, server};
use serde_json::json;
use str0m::Candidate;
use str0m::media::MediaKind;

/// Adds two fingerprint lines of another certificate (sha-512, sha-384)
/// before each of the peer's own.
fn with_extra_fingerprints(offer: &str) -> String {
    let other = |n: usize| {
        (0..n)
            .map(|i| format!("{:02X}", (i * 7 + 3) % 256))
            .collect::<Vec<_>>()
            .join(":")
    };
    let extra = format!(
        "a=fingerprint:sha-512 {}\r\na=fingerprint:sha-384 {}\r\na=fingerprint:sha-256",
        other(64),
        other(48)
    );
    offer.replace("a=fingerprint:sha-256", &extra)
}

/// The peer's sha-256 fingerprint replaced by one of another certificate.
fn with_wrong_fingerprint(offer: &str) -> String {
    offer
        .split("\r\n")
        .map(|l| match l.strip_prefix("a=fingerprint:sha-256 ") {
            Some(_) => format!("a=fingerprint:sha-256 {}", ["AB"; 32].join(":")),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// Steps a peer whose handshake is expected to fail: str0m errors are the
/// expected outcome, not a test failure. Returns whether it connected.
fn step_refused(peer: &mut Peer) -> bool {
    let mut buf = [0u8; 2000];
    while let Ok((n, from)) = peer.socket.recv_from(&mut buf) {
        let input = str0m::Input::Receive(
            Instant::now(),
            str0m::net::Receive {
                proto: str0m::net::Protocol::Udp,
                source: from,
                destination: peer.addr,
                contents: (&buf[..n]).try_into().expect("datagram"),
            },
        );
        if peer.rtc.accepts(&input) && peer.rtc.handle_input(input).is_err() {
            return false;
        }
    }
    let _ = peer.rtc.handle_input(str0m::Input::Timeout(Instant::now()));
    loop {
        match peer.rtc.poll_output() {
            Ok(str0m::Output::Transmit(t)) => {
                let _ = peer.socket.send_to(&t.contents, t.destination);
            }
            Ok(str0m::Output::Event(str0m::Event::Connected)) => return true,
            Ok(str0m::Output::Event(_)) => {}
            Ok(str0m::Output::Timeout(_)) | Err(_) => return false,
        }
    }
}

#[test]
fn three_fingerprints_connect_and_a_certificate_matching_none_is_refused() {
    let server = server(1);
    let api = Api::new(&server);

    // A: its real sha-256 listed after sha-512 and sha-384 of another certificate.
    let mut a = Peer::new("publisher");
    let (session_a, mid, _) = push_one(&api, &mut a, MediaKind::Audio, "mic", |offer| {
        let offer = with_extra_fingerprints(&offer);
        assert_eq!(offer.matches("a=fingerprint:").count(), 3, "{offer}");
        offer
    });
    assert!(
        drive(&mut [&mut a], Duration::from_secs(10), |p| p[0].connected),
        "A connects"
    );

    // B: a fingerprint that its certificate does not match.
    // (The SDP itself is fine: the push succeeds.)
    let mut b = Peer::new("impostor");
    let (session_b, _, _) = push_one(&api, &mut b, MediaKind::Audio, "mic", |offer| {
        with_wrong_fingerprint(&offer)
    });
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut b_connected = false;
    let mut refused = false;
    while Instant::now() < deadline && !b_connected {
        b_connected = step_refused(&mut b);
        a.step();
        let (status, body) = api.call("GET", &format!("/sessions/{session_b}"), None);
        if status == 410 {
            assert_eq!(body["errorCode"], "session_error");
            let why = body["errorDescription"].as_str().unwrap();
            assert!(why.contains("fingerprint"), "{why}");
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !b_connected,
        "a certificate matching no fingerprint must not connect"
    );
    assert!(refused, "the refused session reports its failure");

    // The server keeps serving A: a subscriber receives what A sends.
    let (mut c, _, pulled) = pull(
        &api,
        json!([{"location": "remote", "sessionId": session_a, "trackName": "mic"}]),
        &mut [&mut a],
    );
    send_opus(&mut a, mid, b"after-refusal", 30, &mut [&mut c]);
    drive(&mut [&mut c], Duration::from_millis(300), |_| false);
    let c_mid: str0m::media::Mid = pulled[0]["mid"].as_str().expect("mid").into();
    assert!(
        received(&c, c_mid, b"after-refusal") >= 20,
        "A's media still flows"
    );
}

/// Restarts ICE on `peer` with a new socket (a network change): new
/// credentials in an offer sent through tracks/new, the old socket closed.
/// Returns our ice-ufrag before and after.
fn restart_ice_on_new_socket(api: &Api, session: &str, peer: &mut Peer) -> (String, String) {
    let (offer, pending) = peer.offer(|s| {
        s.ice_restart(false);
    });
    let (status, body) = api.tracks_new(
        session,
        json!({"sessionDescription": {"type": "offer", "sdp": offer}, "tracks": []}),
    );
    assert_eq!(status, 200, "{body}");
    let answer = body["sessionDescription"]["sdp"].as_str().unwrap();
    // str0m restarts when it applies the answer (dropping its candidates):
    // the new socket's candidate comes after.
    peer.accept_answer(pending, answer);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket.set_nonblocking(true).expect("nonblocking");
    let addr = socket.local_addr().expect("addr");
    drop(std::mem::replace(&mut peer.socket, socket));
    peer.addr = addr;
    peer.rtc
        .add_local_candidate(Candidate::host(addr, "udp").expect("candidate"));
    peer.drain();
    (ufrag(&offer), ufrag(answer))
}

fn ufrag(sdp: &str) -> String {
    sdp.split("\r\n")
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .expect("ufrag")
        .to_owned()
}

/// A connected str0m peer pushing one audio track ("mic"); returns it, its
/// session, its mid and our answer.
fn publish_audio(api: &Api) -> (Peer, String, str0m::media::Mid, String) {
    let mut peer = Peer::new("publisher");
    let (session, mid, answer) = push_one(api, &mut peer, MediaKind::Audio, "mic", |o| o);
    assert!(drive(&mut [&mut peer], Duration::from_secs(10), |p| p[0]
        .connected));
    (peer, session, mid, answer)
}

#[test]
fn ice_restart_onto_a_new_socket_keeps_the_session_and_the_media() {
    let server = server(2);
    let api = Api::new(&server);
    let (mut a, session_a, mid, answer) = publish_audio(&api);
    let (mut c, session_c, pulled) = pull(
        &api,
        json!([{"location": "remote", "sessionId": session_a, "trackName": "mic"}]),
        &mut [&mut a],
    );
    let c_mid: str0m::media::Mid = pulled[0]["mid"].as_str().expect("mid").into();
    send_opus(&mut a, mid, b"before", 20, &mut [&mut c]);
    assert!(received(&c, c_mid, b"before") >= 10);

    // The publisher moves: new credentials, new socket.
    let (theirs, ours) = restart_ice_on_new_socket(&api, &session_a, &mut a);
    assert_ne!(
        theirs,
        ufrag(&answer),
        "sanity: the client's and ours differ"
    );
    assert_ne!(
        ours,
        ufrag(&answer),
        "the answer carries new credentials of ours"
    );
    send_opus(&mut a, mid, b"publisher-moved", 40, &mut [&mut c]);
    assert!(
        received(&c, c_mid, b"publisher-moved") >= 20,
        "media from the publisher's new 5-tuple is forwarded"
    );

    // The subscriber moves: media must follow it to its new socket.
    restart_ice_on_new_socket(&api, &session_c, &mut c);
    send_opus(&mut a, mid, b"subscriber-moved", 40, &mut [&mut c]);
    assert!(
        received(&c, c_mid, b"subscriber-moved") >= 20,
        "media reaches the subscriber's new 5-tuple"
    );
    let get = api.get_session(&session_a);
    assert_eq!(get["tracks"][0]["status"], "active", "{get}");
    let get = api.get_session(&session_c);
    assert_eq!(get["tracks"][0]["status"], "active", "{get}");
}
