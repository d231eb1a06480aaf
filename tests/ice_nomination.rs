//! ICE-lite over real UDP: checks from the client on two 5-tuples bind the
//! session first to the one that arrived first, then to the one the client
//! nominates (USE-CANDIDATE); wrong passwords and unknown ufrags get no
//! answer. The client side here is a minimal controlling agent written for
//! the test; the server's responses are checked with MESSAGE-INTEGRITY and
//! FINGERPRINT.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Api, server};
use serde_json::json;
use switchboard::ice::write_binding_request;
use switchboard::wire::stun::{StunMessage, message_type};

fn check(
    socket: &UdpSocket,
    to: std::net::SocketAddr,
    username: &str,
    pwd: &str,
    nominate: bool,
) -> Option<StunMessage<'static>> {
    let mut req = Vec::new();
    let id = switchboard::ids::random_bytes::<12>();
    write_binding_request(&mut req, &id, username, pwd, nominate);
    socket.send_to(&req, to).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = vec![0u8; 1500];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    let buf: &'static [u8] = Box::leak(buf[..n].to_vec().into_boxed_slice());
    let msg = StunMessage::new_checked(buf).ok()?;
    assert_eq!(msg.transaction_id(), id);
    Some(msg)
}

fn attribute<'a>(sdp: &'a str, name: &str) -> &'a str {
    sdp.lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap()
        .trim()
}

#[test]
fn the_nominated_pair_wins() {
    let server = server(2);
    let api = Api::new(&server);
    let offer = std::fs::read_to_string(format!(
        "{}/tests/data/chrome-offer.sdp",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({
            "sessionDescription": {"type": "offer", "sdp": offer},
            "tracks": [{"location": "local", "mid": "0", "trackName": "mic"}],
        }),
    );
    assert_eq!(status, 200, "{body}");
    let answer = body["sessionDescription"]["sdp"].as_str().unwrap();
    let ufrag = attribute(answer, "a=ice-ufrag:");
    let pwd = attribute(answer, "a=ice-pwd:");
    let username = format!("{ufrag}:kdj6");

    let first = UdpSocket::bind("127.0.0.1:0").unwrap();
    let second = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Bad credentials: no answer, no binding.
    assert!(
        check(
            &first,
            server.media_addr,
            &username,
            "not the password",
            false
        )
        .is_none()
    );
    assert!(check(&first, server.media_addr, "nobody:kdj6", pwd, false).is_none());
    assert_eq!(server.control.session_transport(&session), None);

    let resp = check(&first, server.media_addr, &username, pwd, false).expect("answered");
    assert_eq!(resp.message_type(), message_type::BINDING_SUCCESS);
    assert!(resp.integrity_ok(pwd.as_bytes()));
    assert!(resp.fingerprint_ok());
    assert_eq!(resp.xor_mapped_address(), Some(first.local_addr().unwrap()));
    let wait_for = |addr: std::net::SocketAddr| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if server.control.session_transport(&session).map(|t| t.1) == Some(addr) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    };
    assert!(
        wait_for(first.local_addr().unwrap()),
        "bound to the first pair"
    );

    // A second pair, not nominated: the first stays.
    check(&second, server.media_addr, &username, pwd, false).expect("answered");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        server.control.session_transport(&session).map(|t| t.1),
        Some(first.local_addr().unwrap())
    );

    // The client nominates the second pair: it wins, and stays.
    check(&second, server.media_addr, &username, pwd, true).expect("answered");
    assert!(
        wait_for(second.local_addr().unwrap()),
        "moved to the nominated pair"
    );
    check(&first, server.media_addr, &username, pwd, false).expect("answered");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        server.control.session_transport(&session).map(|t| t.1),
        Some(second.local_addr().unwrap())
    );
}
