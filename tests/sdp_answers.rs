//! Real browser offers (Chrome, Firefox captured; Safari captured, recvonly)
//! through the API: the answers carry every attribute a browser needs, line
//! by line, and parse with Mozilla's webrtc-sdp (an independent parser).

mod common;

use common::sdp_text::{check_transport, fixture, lines, push, section};
use common::{Api, server};
use serde_json::json;

#[test]
fn firefox_offer_is_answered_line_by_line() {
    let server = server(1);
    let api = Api::new(&server);
    let (_, body) = push(
        &api,
        &fixture("firefox-offer.sdp"),
        json!([
            {"location": "local", "mid": "0", "trackName": "mic"},
            {"location": "local", "mid": "1", "trackName": "cam"},
        ]),
    );
    let sdp = body["sessionDescription"]["sdp"].as_str().unwrap();
    check_transport(sdp, server.media_addr.port(), "passive");
    assert!(lines(sdp).contains(&"a=group:BUNDLE 0 1"));
    let audio = section(sdp, "0");
    assert!(
        audio[0].starts_with("m=audio 9 UDP/TLS/RTP/SAVPF 109"),
        "{audio:?}"
    );
    assert!(audio.contains(&"a=recvonly"));
    assert!(audio.contains(&"a=rtpmap:109 opus/48000/2"));
    let video = section(sdp, "1");
    assert!(video.contains(&"a=recvonly"));
    assert!(video.contains(&"a=rtpmap:120 VP8/90000"), "{video:?}");
    assert!(video.contains(&"a=rtcp-fb:120 nack pli"));
    // Losses on the way in are NACKed; RTX of each accepted format is
    // taken (and unwrapped); congestion feedback is sent.
    assert!(video.contains(&"a=rtcp-fb:120 nack"), "{video:?}");
    assert!(video.contains(&"a=rtcp-fb:120 transport-cc"), "{video:?}");
    assert!(video.contains(&"a=rtpmap:124 rtx/90000"), "{video:?}");
    assert!(video.contains(&"a=fmtp:124 apt=120"), "{video:?}");
    assert!(
        video
            .iter()
            .any(|l| l.starts_with("a=extmap:")
                && l.ends_with("urn:ietf:params:rtp-hdrext:sdes:mid"))
    );
    assert_eq!(body["tracks"][1]["trackName"], "cam");
    assert_eq!(body["tracks"][1]["mid"], "1");
}

#[test]
fn safari_whep_offer_pulls_chrome_tracks() {
    let server = server(1);
    let api = Api::new(&server);
    let (publisher, body) = push(
        &api,
        &fixture("chrome-offer.sdp"),
        json!([
            {"location": "local", "mid": "0", "trackName": "mic"},
            {"location": "local", "mid": "1", "trackName": "cam"},
        ]),
    );
    let chrome_answer = body["sessionDescription"]["sdp"].as_str().unwrap();
    check_transport(chrome_answer, server.media_addr.port(), "passive");
    assert!(section(chrome_answer, "0").contains(&"a=rtpmap:111 opus/48000/2"));
    assert!(section(chrome_answer, "1").contains(&"a=rtpmap:96 VP8/90000"));

    // Safari's recvonly offer: video (mid 0) first, then audio (mid 1);
    // the pulls are matched by kind and order.
    let (_, body) = push(
        &api,
        &fixture("safari-offer.sdp"),
        json!([
            {"location": "remote", "sessionId": publisher, "trackName": "mic"},
            {"location": "remote", "sessionId": publisher, "trackName": "cam"},
        ]),
    );
    assert_eq!(body["tracks"][0]["mid"], "1", "{body}");
    assert_eq!(body["tracks"][1]["mid"], "0");
    assert_eq!(body["tracks"][1]["sessionId"], publisher);
    let sdp = body["sessionDescription"]["sdp"].as_str().unwrap();
    check_transport(sdp, server.media_addr.port(), "passive");
    let video = section(sdp, "0");
    assert!(video.contains(&"a=sendonly"), "{video:?}");
    // Safari's own payload type for VP8 (104), not Chrome's (96).
    assert!(video.contains(&"a=rtpmap:104 VP8/90000"), "{video:?}");
    assert!(
        video
            .iter()
            .any(|l| l.starts_with("a=ssrc:") && l.contains(" msid:"))
    );
    assert!(
        video
            .iter()
            .any(|l| l.starts_with(&format!("a=msid:{publisher} cam")))
    );
    let audio = section(sdp, "1");
    assert!(audio.contains(&"a=sendonly"));
    assert!(audio.contains(&"a=rtpmap:111 opus/48000/2"));
}
