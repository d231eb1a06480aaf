//! The pieces of `apply_offer`, each on real browser offers
//! (tests/data): where pulls land and with which formats, what pushes and
//! autoDiscover make of the sending m-lines, and how every m-line is
//! answered.

use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::control::transceiver::PushedTrack;
use crate::ids::TrackKey;
use crate::sdp::{Codec, parse};

fn offer(name: &str) -> SessionDescription {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    parse(&std::fs::read_to_string(path).expect("fixture")).expect("a browser offer parses")
}

fn session() -> Session {
    Session::new(SessionKey(7), Instant::now())
}

fn local(mid: Option<&str>, name: &str) -> TrackObject {
    TrackObject {
        location: Some("local".into()),
        mid: mid.map(str::to_owned),
        track_name: Some(name.into()),
        ..TrackObject::default()
    }
}

/// A video track whose publisher sends `codec` (with its own payload type).
fn video_track(codec: Codec) -> PushedTrack {
    PushedTrack {
        name: TrackName("cam".into()),
        mid: Mid("1".into()),
        kind: MediaKind::Video,
        fanout: Arc::new(crate::fanout::TrackFanout::new(TrackKey(1))),
        codecs: vec![codec],
        ssrcs: Vec::new(),
        extmaps: Vec::new(),
        rids: Vec::new(),
        active: true,
        idle: false,
    }
}

fn vp8(pt: u8) -> Codec {
    Codec {
        pt,
        name: "VP8".into(),
        clock_rate: 90_000,
        channels: None,
        fmtp: None,
        rtcp_fb: vec!["nack".into(), "nack pli".into()],
    }
}

#[test]
fn a_pull_sends_the_common_format_in_the_clients_payload_type_with_its_rtx() {
    let desc = offer("chrome-offer-recvonly.sdp");
    let m = &desc.media[1];
    let offered_vp8 = m
        .codecs
        .iter()
        .find(|c| c.name == "VP8")
        .expect("VP8 offered");
    let offered_rtx = m
        .codecs
        .iter()
        .find(|c| c.rtx_of() == Some(offered_vp8.pt))
        .expect("its rtx");
    // The publisher's VP8 is on a payload type the client uses for
    // something else: the pull maps it.
    let publisher_pt = 127;
    let formats =
        PullFormats::match_offer(&video_track(vp8(publisher_pt)), m).expect("VP8 is common");
    assert_eq!(formats.payload_types, vec![(publisher_pt, offered_vp8.pt)]);
    assert_eq!(formats.codecs.len(), 2);
    assert_eq!(formats.codecs[0].pt, offered_vp8.pt);
    assert_eq!(formats.codecs[0].name, "VP8");
    assert_eq!(formats.codecs[1].pt, offered_rtx.pt);
    assert!(
        formats.codecs[1].rtcp_fb.is_empty(),
        "RTX carries no feedback"
    );
}

#[test]
fn a_pull_of_a_format_the_client_does_not_receive_has_none() {
    let desc = offer("chrome-offer-recvonly.sdp");
    let mut h265 = vp8(100);
    h265.name = "H265".into();
    assert_eq!(
        PullFormats::match_offer(&video_track(h265), &desc.media[1]),
        None
    );
    // Nor does a video track on the audio m-line.
    assert_eq!(
        PullFormats::match_offer(&video_track(vp8(96)), &desc.media[0]),
        None
    );
}

#[test]
fn pulls_land_on_receiving_mlines_of_their_kind_once_each() {
    let desc = offer("chrome-offer-recvonly.sdp");
    let mut s = session();
    let mut items = vec![TrackObject::default(), TrackObject::default()];
    let pulls: Vec<Pull> = vec![
        (0, video_track(vp8(96)), "publisher".into()),
        (1, video_track(vp8(96)), "publisher".into()),
    ];
    place_pulls(&mut s, &desc, &mut items, &pulls);
    let video_mid = desc.media[1].mid.as_ref().expect("mid");
    assert_eq!(items[0].mid.as_deref(), Some(video_mid.0.as_str()));
    assert!(!items[0].failed());
    let t = s
        .transceiver(video_mid)
        .expect("a transceiver for the pull");
    assert!(t.subscription.is_some() && t.send.is_some());
    // One video m-line: the second pull finds none free.
    assert_eq!(
        items[1].error_code.as_deref(),
        Some("not_found_track_error")
    );
    assert_eq!(items[1].mid.as_deref(), Some(""));
}

#[test]
fn pushes_take_their_sending_mline_or_fail_with_the_documented_code() {
    let desc = offer("chrome-offer.sdp");
    let mut s = session();
    let mut items = vec![
        local(Some("0"), "mic"),
        local(Some("1"), "mic"),
        local(None, "cam"),
        local(Some("9"), "screen"),
    ];
    apply_pushes(&mut s, &desc, &mut items);
    assert!(!items[0].failed());
    assert_eq!(items[0].kind.as_deref(), Some("audio"));
    let mic = s.pushed_track(&TrackName("mic".into())).expect("pushed");
    assert_eq!(mic.mid, Mid("0".into()));
    let codes: Vec<_> = items[1..].iter().map(|i| i.error_code.as_deref()).collect();
    assert_eq!(
        codes,
        [
            Some("repeated_local_track_error"),
            Some("empty_track_error"),
            Some("not_found_track_error")
        ]
    );
    assert_eq!(s.pushed.len(), 1);
}

#[test]
fn auto_discover_pushes_only_new_sending_mlines() {
    let desc = offer("chrome-offer.sdp");
    let mut s = session();
    let mut items = Vec::new();
    discover_pushes(&mut s, &desc, &mut items, &[Mid("0".into())]);
    assert_eq!(items.len(), 1, "mid 0 was known before this offer");
    assert_eq!(items[0].mid.as_deref(), Some("1"));
    assert_eq!(items[0].kind.as_deref(), Some("video"));
    let name = TrackName(items[0].track_name.clone().expect("a name"));
    assert_eq!(
        s.pushed_track(&name).map(|p| p.kind),
        Some(MediaKind::Video)
    );
    // Offered again, it is not discovered twice.
    discover_pushes(&mut s, &desc, &mut items, &[]);
    assert_eq!(items.len(), 2, "only mid 0 is new now");
}

#[test]
fn every_offered_mline_is_answered_and_pushes_learn_their_ssrcs() {
    let desc = offer("firefox-offer.sdp");
    let mut s = session();
    let mut items = vec![local(Some("1"), "cam")];
    apply_pushes(&mut s, &desc, &mut items);
    answer_mlines(&mut s, &desc);
    for m in &desc.media {
        let mid = m.mid.as_ref().expect("mid");
        let t = s.transceiver(mid).expect("every m-line has a transceiver");
        assert!(!t.codecs.is_empty(), "formats to answer with on {mid:?}");
    }
    let cam = s.pushed_track(&TrackName("cam".into())).expect("pushed");
    assert_eq!(cam.ssrcs, desc.media[1].ssrcs);
    assert!(!cam.ssrcs.is_empty());
}
