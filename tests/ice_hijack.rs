//! Attacks on a session's media path, with a real subscriber (str0m)
//! receiving a publisher's audio through the server:
//!
//! - nominating checks forged with the session's ice-pwd (as anyone who
//!   saw our SDP could) from another port, repeated for several seconds:
//!   the media stays with the real client, which keeps checking;
//! - checks whose USERNAME names another client ufrag are dropped and
//!   counted (`wrong_username`).
//!
//! Before these rules a single forged nominating check moved the
//! subscriber's media to the attacker for the rest of the call.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{Api, Peer, drive, push_one, received, send_opus, server};
use serde_json::json;
use str0m::media::MediaKind;
use switchboard::ice::write_binding_request;

fn attribute(sdp: &str, name: &str) -> String {
    sdp.split("\r\n")
        .find_map(|l| l.strip_prefix(&format!("a={name}:")))
        .unwrap_or_else(|| panic!("a={name} in {sdp}"))
        .to_owned()
}

/// A publisher (str0m) and a subscriber (str0m) of its audio, connected
/// through `server`, with what an attacker who saw the subscriber's SDPs
/// knows: our ufrag and pwd for that session and the client's ufrag.
struct Pair {
    a: Peer,
    mid: str0m::media::Mid,
    c: Peer,
    c_mid: str0m::media::Mid,
    username: String,
    pwd: String,
}

fn connected_pair(api: &Api) -> Pair {
    let mut a = Peer::new("publisher");
    let (publisher, mid, _) = push_one(api, &mut a, MediaKind::Audio, "mic", |o| o);
    assert!(drive(&mut [&mut a], Duration::from_secs(10), |p| p[0].connected));

    // The subscriber, pulling by hand to keep both SDPs.
    let mut c = Peer::new("subscriber");
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "mic"}]}),
    );
    assert_eq!(status, 200, "{body}");
    let offer = body["sessionDescription"]["sdp"]
        .as_str()
        .unwrap()
        .to_owned();
    let answer = c.accept_offer(&offer);
    assert_eq!(api.renegotiate(&session, &answer).0, 200);
    assert!(drive(&mut [&mut a, &mut c], Duration::from_secs(10), |p| p
        [1]
    .connected));
    let c_mid: str0m::media::Mid = body["tracks"][0]["mid"].as_str().unwrap().into();
    send_opus(&mut a, mid, b"before", 20, &mut [&mut c]);
    assert!(received(&c, c_mid, b"before") >= 10);
    let username = format!(
        "{}:{}",
        attribute(&offer, "ice-ufrag"),
        attribute(&answer, "ice-ufrag")
    );
    Pair {
        a,
        mid,
        c,
        c_mid,
        username,
        pwd: attribute(&offer, "ice-pwd"),
    }
}

#[test]
fn forged_checks_from_another_port_do_not_move_the_media() {
    let server = server(1);
    let api = Api::new(&server);
    let Pair {
        mut a,
        mid,
        mut c,
        c_mid,
        username,
        pwd,
    } = connected_pair(&api);

    // The attacker forges nominating checks from its own port.

    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.set_nonblocking(true).unwrap();
    let media = server.media_addr;
    let mut answered = 0;
    for round in 0..8u8 {
        let mut check = Vec::new();
        let id = [round; 12];
        write_binding_request(&mut check, &id, &username, &pwd, true);
        attacker.send_to(&check, media).unwrap();
        // The session's real client keeps sending and checking meanwhile.
        send_opus(&mut a, mid, b"during", 25, &mut [&mut c]);
        let mut buf = [0u8; 1500];
        while attacker.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
    }
    assert!(answered >= 1, "the forged checks are valid (answered)");
    let during = received(&c, c_mid, b"during");
    assert!(
        during >= 8 * 25 * 9 / 10,
        "the real client kept its media: {during} of {}",
        8 * 25
    );
    let mut buf = [0u8; 1500];
    let mut stolen = 0;
    while attacker.recv_from(&mut buf).is_ok() {
        stolen += 1;
    }
    assert_eq!(stolen, 0, "no media went to the attacker");

    // A check naming another client ufrag is dropped, not answered.
    let mut check = Vec::new();
    write_binding_request(
        &mut check,
        &[99; 12],
        &format!("{}:someone-else", username.split(':').next().unwrap()),
        &pwd,
        true,
    );
    attacker.send_to(&check, media).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(attacker.recv_from(&mut buf).is_err(), "not answered");
    let text = metrics(server.http_addr);
    assert!(
        text.contains("reason=\"wrong_username\"} 1"),
        "counted: {text}"
    );
}

/// The subscriber falls silent (its network is gone) and an attacker who
/// can forge its source address nominates another address with valid
/// checks, past the 8 s of silence after which a path may move: the
/// server asks the new address first (a Binding request of its own) and
/// moves nothing, since the address never answers. Before, the media went
/// there: a reflection of a session's media at any address.
#[test]
fn a_new_address_gets_no_media_before_it_answers_our_check() {
    let server = server(1);
    let api = Api::new(&server);
    let Pair {
        mut a,
        mid,
        username,
        pwd,
        ..
    } = connected_pair(&api);
    let victim = UdpSocket::bind("127.0.0.1:0").unwrap();
    victim.set_nonblocking(true).unwrap();
    let (mut probes, mut media, mut other) = (0, 0, 0);
    for round in 0..12u8 {
        let mut check = Vec::new();
        write_binding_request(&mut check, &[round + 100; 12], &username, &pwd, true);
        victim.send_to(&check, server.media_addr).unwrap();
        // The publisher goes on; the subscriber is not driven (silent).
        send_opus(&mut a, mid, b"silent", 50, &mut []);
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = victim.recv_from(&mut buf) {
            match buf[..n].first() {
                Some(0x00) if buf[1] == 0x01 => probes += 1, // Binding request
                Some(0x01) => other += 1,                    // responses to its checks
                Some(128..=191) => media += 1,
                _ => other += 1,
            }
        }
    }
    eprintln!("the forged address got {probes} checks, {media} media packets, {other} others");
    assert!(
        probes >= 1,
        "the server checked the new address before moving"
    );
    assert_eq!(media, 0, "no media went to an address that never answered");
}

/// The server's /metrics text.
fn metrics(http: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(http).unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    tcp.read_to_string(&mut text).unwrap();
    text
}
