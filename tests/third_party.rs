//! `sessions/new?thirdparty=true` (calls-api.md, "Third-party sessions"):
//! toward an ICE-lite peer the server is the controlling ICE agent. The
//! peer is str0m in ICE-lite mode (an independent stack that answers checks
//! and never sends one): it refuses an ordinary session's offer (two lite
//! ends never connect), and with a third-party session it connects and
//! receives the pulled track.

mod common;

use std::time::Duration;

use common::{Api, Peer, drive, push_audio, received, send_opus};
use serde_json::json;

fn lite_peer() -> Peer {
    Peer::with_codecs("ice-lite peer", |c| {
        c.enable_opus(true, false)
            .enable_vp8(true)
            .set_ice_lite(true)
    })
}

/// Our offer, for a session made with `path`, pulling "mic" of
/// `publisher_session`; with the session id and the pull's mid.
fn offer_pulling_mic(api: &Api, path: &str, publisher_session: &str) -> (String, String, String) {
    let (status, body) = api.call("POST", path, None);
    assert_eq!(status, 201, "{body}");
    let session = body["sessionId"].as_str().expect("sessionId").to_owned();
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "remote", "sessionId": publisher_session, "trackName": "mic"}]}),
    );
    assert_eq!(status, 200, "{body}");
    let offer = body["sessionDescription"]["sdp"].as_str().expect("offer");
    let mid = body["tracks"][0]["mid"].as_str().expect("mid");
    (session, offer.to_owned(), mid.to_owned())
}

#[test]
fn a_third_party_session_checks_an_ice_lite_peer_and_media_flows() {
    let server = common::server(1);
    let api = Api::new(&server);
    let (mut publisher, publisher_session, mid, _) = push_audio(&api, "mic".into(), false);

    // An ordinary session: we are ICE-lite, and so is the peer, which
    // refuses the offer.
    let (_, offer, _) = offer_pulling_mic(&api, "/sessions/new", &publisher_session);
    assert!(offer.contains("a=ice-lite\r\n"), "{offer}");
    let parsed = str0m::change::SdpOffer::from_sdp_string(&offer).expect("our SDP parses");
    assert!(
        lite_peer().rtc.sdp_api().accept_offer(parsed).is_err(),
        "an ICE-lite peer refuses an ICE-lite offer"
    );

    // A third-party session: a full agent's offer; the server checks the
    // peer's candidate, binds on its response, and the peer (DTLS client)
    // connects and receives.
    let (session, offer, lite_mid) =
        offer_pulling_mic(&api, "/sessions/new?thirdparty=true", &publisher_session);
    assert!(!offer.contains("a=ice-lite"), "{offer}");
    let mut lite = lite_peer();
    let answer = lite.accept_offer(&offer);
    assert!(
        answer.contains("a=ice-lite"),
        "the peer is ICE-lite:\n{answer}"
    );
    let (status, r) = api.renegotiate(&session, &answer);
    assert_eq!(status, 200, "{r}");
    assert!(
        drive(
            &mut [&mut lite, &mut publisher],
            Duration::from_secs(10),
            |p| p[0].connected
        ),
        "the ICE-lite peer of a third-party session connects"
    );
    send_opus(&mut publisher, mid, b"third-party", 50, &mut [&mut lite]);
    let got = received(&lite, lite_mid.as_str().into(), b"third-party");
    assert!(got >= 40, "the ICE-lite peer received {got} of 50 frames");
}
