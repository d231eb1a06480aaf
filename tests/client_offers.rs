//! Offers as real clients write them, through the API: Firefox with
//! `bundlePolicy: "max-bundle"` (bundle-only m-lines), Chromium with
//! simulcast and every codec, an offer listing three fingerprints; closing
//! with an offer as Cloudflare's client library does; pushes with and
//! without SDP. Each answer is checked line by line and parsed by
//! webrtc-sdp (an independent parser).

mod common;

use common::sdp_text::{check_transport, fixture, lines, push, section};
use common::{Api, server};
use serde_json::json;

/// A session pushing the m-line `mid` of Chrome's captured offer as `name`.
fn chrome_publisher(api: &Api, mid: &str, name: &str) -> String {
    let tracks = json!([{"location": "local", "mid": mid, "trackName": name}]);
    push(api, &fixture("chrome-offer.sdp"), tracks).0
}

fn sdp_of(body: &serde_json::Value) -> &str {
    body["sessionDescription"]["sdp"].as_str().expect("an SDP")
}

#[test]
fn firefox_max_bundle_offer_is_bundled_not_rejected() {
    let server = server(1);
    let api = Api::new(&server);
    let offer = fixture("firefox-max-bundle-offer.sdp");
    assert!(
        offer.contains("m=video 0 UDP/TLS/RTP/SAVPF"),
        "the fixture is max-bundle"
    );
    assert!(offer.contains("a=bundle-only"));
    let (_, body) = push(
        &api,
        &offer,
        json!([
            {"location": "local", "mid": "0", "trackName": "mic"},
            {"location": "local", "mid": "1", "trackName": "cam"},
        ]),
    );
    assert!(body["tracks"][1]["errorCode"].is_null(), "{body}");
    assert_eq!(body["tracks"][1]["kind"], "video");
    let sdp = sdp_of(&body);
    check_transport(sdp, server.media_addr.port(), "passive");
    // Every m-line bundled, answered with port 9 (RFC 8843 answerer).
    assert!(lines(sdp).contains(&"a=group:BUNDLE 0 1 2"), "{sdp}");
    let video = section(sdp, "1");
    assert!(
        video[0].starts_with("m=video 9 UDP/TLS/RTP/SAVPF 120"),
        "{video:?}"
    );
    assert!(video.contains(&"a=recvonly"));
    assert!(video.contains(&"a=rtpmap:120 VP8/90000"));
    assert!(!video.contains(&"a=bundle-only"), "never in an answer");
    assert!(section(sdp, "0").contains(&"a=recvonly"));
    // The data channels' m-line is accepted (SCTP over DTLS, RFC 8841).
    let application = section(sdp, "2");
    assert!(
        application[0].starts_with("m=application 9 UDP/DTLS/SCTP webrtc-datachannel"),
        "{application:?}"
    );
    assert!(application.contains(&"a=sctp-port:5000"));
}

#[test]
fn bundle_only_outside_the_bundle_group_stays_rejected() {
    let server = server(1);
    let api = Api::new(&server);
    let offer = fixture("firefox-max-bundle-offer.sdp")
        .replace("a=group:BUNDLE 0 1 2", "a=group:BUNDLE 0 2");
    let (_, body) = push(
        &api,
        &offer,
        json!([{"location": "local", "mid": "1", "trackName": "cam"}]),
    );
    assert_eq!(
        body["tracks"][0]["errorCode"], "not_found_track_error",
        "{body}"
    );
    let sdp = sdp_of(&body);
    assert!(section(sdp, "1")[0].starts_with("m=video 0 "), "{sdp}");
    // The data channels' m-line stays (it is inside the offer's group).
    assert!(lines(sdp).contains(&"a=group:BUNDLE 0 2"), "{sdp}");
}

#[test]
fn chromium_simulcast_offer_with_every_codec_is_answered() {
    let server = server(1);
    let api = Api::new(&server);
    let (_, body) = push(
        &api,
        &fixture("chromium-simulcast-offer.sdp"),
        json!([
            {"location": "local", "mid": "0", "trackName": "mic"},
            {"location": "local", "mid": "1", "trackName": "cam"},
        ]),
    );
    assert!(body["tracks"][1]["errorCode"].is_null(), "{body}");
    let sdp = sdp_of(&body);
    check_transport(sdp, server.media_addr.port(), "passive");
    assert!(lines(sdp).contains(&"a=group:BUNDLE 0 1"));
    let video = section(sdp, "1");
    assert!(video.contains(&"a=recvonly"));
    // Simulcast is accepted: each layer's rid, and the list (RFC 8853).
    for rid in [
        "a=rid:f recv",
        "a=rid:h recv",
        "a=rid:q recv",
        "a=simulcast:recv f;h;q",
    ] {
        assert!(video.contains(&rid), "{rid}: {video:?}");
    }
    assert!(
        !section(sdp, "0").iter().any(|l| l.starts_with("a=rid")),
        "audio has none"
    );
    for codec in ["VP8/90000", "VP9/90000", "H264/90000", "AV1/90000"] {
        assert!(
            video
                .iter()
                .any(|l| l.starts_with("a=rtpmap:") && l.ends_with(codec)),
            "{codec} answered: {video:?}"
        );
    }
    // Every H.264 profile Chromium offers (baseline, constrained baseline,
    // main) is kept with its packetization mode, each with its own PT.
    let h264: Vec<&&str> = video
        .iter()
        .filter(|l| l.starts_with("a=fmtp:") && l.contains("profile-level-id="))
        .collect();
    for profile in ["42001f", "42e01f", "4d001f"] {
        let fmtp = format!("packetization-mode=1;profile-level-id={profile}");
        assert!(
            h264.iter().any(|l| l.contains(&fmtp)),
            "{profile}: {h264:?}"
        );
    }
}

#[test]
fn three_fingerprints_are_accepted_and_unsupported_hashes_refused() {
    let server = server(1);
    let api = Api::new(&server);
    let offer = fixture("three-fingerprints-offer.sdp");
    assert_eq!(offer.matches("a=fingerprint:").count(), 6);
    let (_, body) = push(
        &api,
        &offer,
        json!([{"location": "local", "mid": "0", "trackName": "mic"}]),
    );
    check_transport(sdp_of(&body), server.media_addr.port(), "passive");

    // Only hash functions we cannot check: refused, with the reason.
    let md5 = fixture("chrome-offer.sdp").replace("a=fingerprint:sha-256", "a=fingerprint:md5");
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": md5}, "tracks": []}),
    );
    assert_eq!(status, 406, "{body}");
    assert_eq!(body["errorCode"], "invalid_session_description");
    assert!(
        body["errorDescription"]
            .as_str()
            .unwrap()
            .contains("sha-256")
    );
}

/// Cloudflare's client library closes two pushed tracks in one call: it
/// stops the first transceiver only, and its offer still has the second.
#[test]
fn closing_with_an_offer_keeps_the_bundle_and_its_tagged_mid() {
    let server = server(1);
    let api = Api::new(&server);
    let offer = fixture("chrome-offer.sdp");
    let (session, _) = push(
        &api,
        &offer,
        json!([
            {"location": "local", "mid": "0", "trackName": "mic"},
            {"location": "local", "mid": "1", "trackName": "cam"},
        ]),
    );
    // The stopped audio m-line: port 0, out of the group.
    let stopped = offer
        .replace("m=audio 54983 ", "m=audio 0 ")
        .replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 1");
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{session}/tracks/close"),
        Some(
            &json!({
                "tracks": [{"mid": "0"}, {"mid": "1"}],
                "sessionDescription": {"type": "offer", "sdp": stopped},
                "force": false,
            })
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    assert!(body["tracks"][1]["errorCode"].is_null(), "{body}");
    let sdp = sdp_of(&body);
    webrtc_sdp::parse_sdp(sdp, false).expect("webrtc-sdp parses the answer");
    assert!(lines(sdp).contains(&"a=group:BUNDLE 1"), "{sdp}");
    assert!(section(sdp, "0")[0].starts_with("m=audio 0 "));
    let video = section(sdp, "1");
    assert!(video[0].starts_with("m=video 9 "), "{video:?}");
    assert!(video.contains(&"a=inactive"));
    assert!(video.iter().any(|l| l.starts_with("a=ice-ufrag:")));
    let get = api.get_session(&session);
    assert!(
        get["tracks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "inactive"),
        "{get}"
    );

    // Everything stopped: the group line stays, empty.
    let all = stopped
        .replace("m=video 9 ", "m=video 0 ")
        .replace("a=group:BUNDLE 1", "a=group:BUNDLE");
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{session}/tracks/close"),
        Some(
            &json!({
                "tracks": [{"mid": "1"}],
                "sessionDescription": {"type": "offer", "sdp": all},
                "force": false,
            })
            .to_string(),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracks"][0]["errorCode"], "close_track_error");
    let sdp = sdp_of(&body);
    assert!(lines(sdp).contains(&"a=group:BUNDLE"), "{sdp}");
    assert!(section(sdp, "1")[0].starts_with("m=video 0 "));
}

#[test]
fn push_with_an_offer_and_bidirectional_is_sendrecv_and_takes_a_pull() {
    let server = server(1);
    let api = Api::new(&server);
    let publisher = chrome_publisher(&api, "0", "mic");
    // Firefox's offer has a sendrecv audio m-line.
    let (session, body) = push(
        &api,
        &fixture("firefox-offer.sdp"),
        json!([{"location": "local", "mid": "0", "trackName": "mic-1",
                "bidirectionalMediaStream": true, "kind": "audio"}]),
    );
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    let audio = section(sdp_of(&body), "0");
    assert!(audio.contains(&"a=sendrecv"), "{audio:?}");
    assert!(audio.iter().any(|l| l.starts_with("a=ssrc:")));
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "remote", "sessionId": publisher,
                           "trackName": "mic", "mid": "#mic-1"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    assert_eq!(body["tracks"][0]["mid"], "0");
    assert_eq!(body["requiresImmediateRenegotiation"], false);
}

#[test]
fn push_without_sdp_offers_recvonly_or_sendrecv() {
    let server = server(1);
    let api = Api::new(&server);
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "local", "trackName": "mic-1", "kind": "audio"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], true);
    assert_eq!(body["sessionDescription"]["type"], "offer");
    let mid = body["tracks"][0]["mid"].as_str().unwrap().to_owned();
    let audio = section(sdp_of(&body), &mid);
    assert!(audio[0].starts_with("m=audio 9 "), "{audio:?}");
    assert!(audio.contains(&"a=recvonly"), "{audio:?}");
    webrtc_sdp::parse_sdp(sdp_of(&body), false).expect("webrtc-sdp parses our offer");

    let other = api.new_session();
    let (_, body) = api.tracks_new(
        &other,
        json!({"tracks": [{"location": "local", "trackName": "cam", "kind": "video",
                           "bidirectionalMediaStream": true}]}),
    );
    let mid = body["tracks"][0]["mid"].as_str().unwrap().to_owned();
    assert!(
        section(sdp_of(&body), &mid).contains(&"a=sendrecv"),
        "{body}"
    );
}

#[test]
fn auto_discover_items_carry_kind() {
    let server = server(1);
    let api = Api::new(&server);
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": fixture("chrome-offer.sdp")},
               "autoDiscover": true}),
    );
    assert_eq!(status, 200, "{body}");
    let kinds: Vec<&str> = body["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["kind"].as_str().unwrap_or("none"))
        .collect();
    assert_eq!(kinds, ["audio", "video"], "{body}");
}

/// A subscriber whose SDP so far receives only VP9 cannot pull a VP8
/// track: the pull item fails at once with `incompatible_codec_error`.
#[test]
fn a_pull_the_subscriber_cannot_decode_fails_with_a_clear_item_error() {
    let server = server(1);
    let api = Api::new(&server);
    let publisher = chrome_publisher(&api, "1", "cam");
    // What a client sends says nothing of what it decodes: a session that
    // only pushed VP9 may still pull VP8.
    let (sender, _) = push(
        &api,
        &vp9_only(&fixture("chrome-offer.sdp")),
        json!([{"location": "local", "mid": "1", "trackName": "vp9-cam"}]),
    );
    let (status, body) = api.tracks_new(
        &sender,
        json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "cam"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");

    // A session whose receiving video m-line offers only VP9.
    let (subscriber, _) = push(
        &api,
        &vp9_only(&fixture("chrome-offer-recvonly.sdp")),
        json!([]),
    );
    let (status, body) = api.tracks_new(
        &subscriber,
        json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "cam"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tracks"][0]["errorCode"], "incompatible_codec_error",
        "{body}"
    );
    let description = body["tracks"][0]["errorDescription"].as_str().unwrap();
    assert!(
        description.contains("VP8") && description.contains("VP9"),
        "{description}"
    );
    assert_eq!(body["requiresImmediateRenegotiation"], false);
}

/// A Chrome offer with its video m-line reduced to VP9 (profile 0).
fn vp9_only(offer: &str) -> String {
    let desc = switchboard::sdp::parse(offer).unwrap();
    let video = &desc.media[1];
    let vp9 = video
        .codecs
        .iter()
        .find(|c| c.name == "VP9")
        .expect("Chrome offers VP9")
        .pt;
    let keep = |pt: &str| pt == vp9.to_string();
    let mut out = Vec::new();
    let mut in_video = false;
    for line in offer.split("\r\n") {
        if line.starts_with("m=") {
            in_video = line.starts_with("m=video");
            if in_video {
                let head: Vec<&str> = line.split(' ').take(3).collect();
                out.push(format!("{} {vp9}", head.join(" ")));
                continue;
            }
        }
        let pt_attr = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
            .iter()
            .find_map(|p| line.strip_prefix(p))
            .and_then(|rest| rest.split(' ').next());
        if in_video && pt_attr.is_some_and(|pt| !keep(pt)) {
            continue;
        }
        out.push(line.to_owned());
    }
    out.join("\r\n")
}

/// Pull, force-close, pull again, many times: the closed m-line (which the
/// client keeps) carries the next pull under its mid, so the SDP does not
/// grow.
#[test]
fn force_closed_pulls_reuse_their_m_line() {
    let server = server(1);
    let api = Api::new(&server);
    let publisher = chrome_publisher(&api, "1", "cam");
    let mut peer = common::Peer::new("subscriber");
    let session = api.new_session();
    let mut mids = Vec::new();
    for _ in 0..3 {
        let (status, body) = api.tracks_new(
            &session,
            json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "cam"}]}),
        );
        assert_eq!(status, 200, "{body}");
        let offer = sdp_of(&body);
        assert_eq!(offer.matches("\r\nm=").count(), 1, "one m-line: {offer}");
        let answer = peer.accept_offer(offer);
        let (status, r) = api.renegotiate(&session, &answer);
        assert_eq!(status, 200, "{r}");
        let mid = body["tracks"][0]["mid"].as_str().unwrap().to_owned();
        let (status, body) = api.call(
            "PUT",
            &format!("/sessions/{session}/tracks/close"),
            Some(&json!({"tracks": [{"mid": mid}], "force": true}).to_string()),
        );
        assert_eq!(status, 200, "{body}");
        assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
        mids.push(mid);
    }
    assert!(mids.iter().all(|m| *m == mids[0]), "{mids:?}");
}

#[test]
fn simulcast_preferences_are_echoed_and_refused_for_a_track_that_is_not_simulcast() {
    let server = server(1);
    let api = Api::new(&server);
    let (publisher, _) = push(
        &api,
        &fixture("chromium-simulcast-offer.sdp"),
        json!([
            {"location": "local", "mid": "0", "trackName": "mic"},
            {"location": "local", "mid": "1", "trackName": "cam"},
        ]),
    );
    let subscriber = api.new_session();
    let (status, body) = api.tracks_new(
        &subscriber,
        json!({"tracks": [
            {"location": "remote", "sessionId": publisher, "trackName": "cam",
             "simulcast": {"preferredRid": "h"}},
            {"location": "remote", "sessionId": publisher, "trackName": "mic"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tracks"][0]["simulcast"],
        json!({"preferredRid": "h"}),
        "echoed"
    );
    let (cam, mic) = (
        body["tracks"][0]["mid"].as_str().expect("mid").to_owned(),
        body["tracks"][1]["mid"].as_str().expect("mid").to_owned(),
    );
    let update = |mid: &str, simulcast: serde_json::Value| {
        api.call(
            "PUT",
            &format!("/sessions/{subscriber}/tracks/update"),
            Some(
                &json!({"tracks": [{"location": "remote", "mid": mid, "simulcast": simulcast}]})
                    .to_string(),
            ),
        )
    };
    let wanted = json!({"preferredRid": "q", "priorityOrdering": "asciibetical"});
    let (status, body) = update(&cam, wanted.clone());
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
    assert_eq!(body["tracks"][0]["simulcast"], wanted);
    // The microphone is not simulcast.
    let (status, body) = update(&mic, json!({"preferredRid": "q"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tracks"][0]["errorCode"], "update_track_error",
        "{body}"
    );
}
