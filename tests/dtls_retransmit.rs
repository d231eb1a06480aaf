//! DTLS: when one of the server's flights is lost, the session still
//! connects. A lost last flight (ChangeCipherSpec + Finished): the client
//! repeats its own last flight and the server sends its flight again. A lost
//! first flight (ServerHello … ServerHelloDone): the server's retransmission
//! timer or the client's repeated ClientHello brings it again. The client is
//! str0m (the DTLS client here, since the server answers `a=setup:passive`).

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{Api, Peer, drive, server};
use serde_json::json;
use str0m::media::{Direction, MediaKind};

/// Whether a datagram belongs to the server's final flight: a
/// ChangeCipherSpec record, or a handshake record in epoch 1 (Finished).
fn final_flight(d: &[u8]) -> bool {
    d.first() == Some(&20) || (d.first() == Some(&22) && d.get(3..5) == Some(&[0, 1]))
}

/// Whether a datagram belongs to the server's first flight after the
/// cookie exchange (ServerHello through ServerHelloDone): a handshake record
/// in epoch 0 whose first message is not a HelloVerifyRequest (type 3).
fn server_hello_flight(d: &[u8]) -> bool {
    d.first() == Some(&22) && d.get(3..5) == Some(&[0, 0]) && d.get(13) != Some(&3)
}

#[test]
fn a_lost_final_flight_is_sent_again() {
    // The first copy only: its datagrams arrive together, well inside 200 ms.
    lost_flight_is_sent_again(final_flight, Duration::from_millis(200));
}

#[test]
fn a_lost_server_hello_flight_is_sent_again() {
    // The first copy and the server's own retransmission at 1 s, so that the
    // client's repeated ClientHello (also at about 1 s) has to bring it.
    lost_flight_is_sent_again(server_hello_flight, Duration::from_millis(1500));
}

/// Drops the copies of the server flight that `flight` picks for `lost`
/// from the first one, and lets those sent later through; the session must
/// connect.
fn lost_flight_is_sent_again(flight: fn(&[u8]) -> bool, lost: Duration) {
    let server = server(1);
    let api = Api::new(&server);
    let mut peer = Peer::new("client");
    let mut mid = None;
    let (offer, pending) = peer.offer(|s| {
        mid = Some(s.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None))
    });
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({
            "sessionDescription": {"type": "offer", "sdp": offer},
            "tracks": [{"location": "local", "mid": mid.unwrap().to_string(), "trackName": "mic"}],
        }),
    );
    assert_eq!(status, 200, "{body}");
    let answer = body["sessionDescription"]["sdp"].as_str().unwrap();
    assert!(answer.contains("a=setup:passive"));

    let seen = Rc::new(RefCell::new((None::<Instant>, 0u32, 0u32))); // (first, dropped, passed)
    let s = seen.clone();
    peer.drop_incoming = Some(Box::new(move |d| {
        if !flight(d) {
            return false;
        }
        let mut s = s.borrow_mut();
        let first = *s.0.get_or_insert_with(Instant::now);
        if first.elapsed() < lost {
            s.1 += 1;
            true
        } else {
            s.2 += 1;
            false
        }
    }));
    peer.accept_answer(pending, answer);
    assert!(
        drive(&mut [&mut peer], Duration::from_secs(15), |p| p[0]
            .connected),
        "connects after the loss"
    );
    let (_, dropped, passed) = *seen.borrow();
    assert!(dropped >= 1, "the flight was dropped");
    assert!(passed >= 1, "the server sent its flight again");
}
