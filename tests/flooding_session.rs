//! A connected client that floods the server with DTLS records from its own
//! address (finding: 9 million datagrams in 20 s grew the control queue,
//! the log and the memory without bound) is held to its budget of events,
//! then closed after five seconds of it: its API calls answer 410, while
//! another session of the app keeps working.

mod common;

use std::time::{Duration, Instant};

use common::{Api, Peer, drive, push_one, server};
use str0m::media::MediaKind;

#[test]
fn a_session_that_keeps_flooding_is_closed_and_others_are_not() {
    let server = server(1);
    let api = Api::new(&server);
    let mut calm = Peer::new("calm");
    let (calm_session, _, _) = push_one(&api, &mut calm, MediaKind::Audio, "mic", |o| o);
    let mut noisy = Peer::new("noisy");
    let (noisy_session, _, _) = push_one(&api, &mut noisy, MediaKind::Audio, "mic", |o| o);
    assert!(drive(
        &mut [&mut calm, &mut noisy],
        Duration::from_secs(10),
        |p| { p[0].connected && p[1].connected }
    ));

    // DTLS-looking junk from the noisy client's own socket, ~2,000 a second.
    let junk: Vec<u8> = [&[22u8, 0xfe, 0xfd][..], &[0x5a; 100]].concat();
    let start = Instant::now();
    let mut closed_after = None;
    while start.elapsed() < Duration::from_secs(9) && closed_after.is_none() {
        for _ in 0..20 {
            let _ = noisy.socket.send_to(&junk, server.media_addr);
        }
        calm.step();
        std::thread::sleep(Duration::from_millis(10));
        if closed_after.is_none() && start.elapsed().as_millis() % 250 < 10 {
            let (status, _) = api.call("GET", &format!("/sessions/{noisy_session}"), None);
            if status == 410 {
                closed_after = Some(start.elapsed());
            }
        }
    }
    let closed_after = closed_after.expect("the flooding session is closed");
    eprintln!("closed after {closed_after:?}");
    assert!(
        closed_after >= Duration::from_secs(4),
        "not before five windows: {closed_after:?}"
    );
    let get = api.get_session(&calm_session);
    assert_eq!(get["tracks"][0]["status"], "active", "{get}");
}
