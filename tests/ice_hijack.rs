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

/// A server whose sessions lose consent after 3 s without an answer to
/// our checks (30 s in production), so that the tests below run in seconds.
fn quick_consent_server() -> switchboard::server::Server {
    let mut config = switchboard::config::Config::loopback(1);
    config.limits.consent_timeout = Duration::from_secs(3);
    switchboard::server::Server::start(config).expect("server starts")
}

/// What one socket got from the server over `span`, split at `tail`
/// before its end: (our Binding requests, media before, media in the tail).
/// The socket's owner answers nothing; `forge` runs every 200 ms.
fn watch(
    socket: &UdpSocket,
    span: Duration,
    tail: Duration,
    mut forge: impl FnMut(u8),
    a: &mut Peer,
    mid: str0m::media::Mid,
) -> (usize, usize, usize) {
    let start = std::time::Instant::now();
    let (mut checks, mut media, mut media_tail) = (0, 0, 0);
    let mut round = 0u8;
    while start.elapsed() < span {
        forge(round);
        round = round.wrapping_add(1);
        send_opus(a, mid, b"watched", 10, &mut []);
        let mut buf = [0u8; 1500];
        while let Ok((n, _)) = socket.recv_from(&mut buf) {
            match buf[..n].first() {
                Some(0x00) if buf[1] == 0x01 => checks += 1,
                Some(128..=191) if start.elapsed() >= span - tail => media_tail += 1,
                Some(128..=191) => media += 1,
                _ => {}
            }
        }
    }
    (checks, media, media_tail)
}

/// Consent (RFC 7675) comes from answers to the server's checks, not from
/// the client's checks: once the subscriber stops answering (it left, and
/// its address may now be someone else's), checks forged from its address
/// with valid credentials do not keep its media flowing there. Before,
/// each forged check refreshed consent and the media went on for as long
/// as the forger liked.
#[test]
fn forged_checks_from_the_clients_address_keep_no_consent() {
    let server = quick_consent_server();
    let api = Api::new(&server);
    let Pair {
        mut a,
        mid,
        c,
        username,
        pwd,
        ..
    } = connected_pair(&api);
    let media_addr = server.media_addr;
    // The subscriber is no longer driven: it answers nothing. The forger
    // sends valid checks from its address (here: its very socket).
    let (checks, media, tail) = watch(
        &c.socket,
        Duration::from_secs(6),
        Duration::from_secs(1),
        |round| {
            let mut check = Vec::new();
            write_binding_request(&mut check, &[round; 12], &username, &pwd, false);
            c.socket.send_to(&check, media_addr).unwrap();
        },
        &mut a,
        mid,
    );
    eprintln!("the silent client got {checks} consent checks, {media} media packets, then {tail}");
    assert!(checks >= 2, "the server checked consent: {checks}");
    assert!(media > 0, "media flowed while consent was fresh");
    assert_eq!(tail, 0, "consent lost 3 s after the last answer");
}

/// The other side of the rule: an independent client (str0m) answers the
/// server's consent checks, so its media goes on past many timeouts.
#[test]
fn a_client_that_answers_our_checks_keeps_its_media() {
    let server = quick_consent_server();
    let api = Api::new(&server);
    let Pair {
        mut a,
        mid,
        mut c,
        c_mid,
        ..
    } = connected_pair(&api);
    for _ in 0..4 {
        // 4 × 2.5 s: past three timeouts.
        send_opus(&mut a, mid, b"later", 125, &mut [&mut c]);
    }
    send_opus(&mut a, mid, b"last", 50, &mut [&mut c]);
    let last = received(&c, c_mid, b"last");
    assert!(last >= 45, "media after 10 s: {last} of 50");
    let text = metrics(server.http_addr);
    assert!(!text.contains("switchboard_consent_lost_total 1"), "{text}");
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
