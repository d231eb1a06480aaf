//! Requests built to make the control thread work for long: more items
//! than any route allows (tracks/new with and without autoDiscover,
//! tracks/update, tracks/close), an offer with thousands of m-lines, and
//! `simulcast` values that are not the documented object. Each gets the
//! documented 406 before anything changes, and the API keeps answering.

mod common;

use std::time::{Duration, Instant};

use common::sdp_text::{fixture, push};
use common::{Api, server};
use serde_json::{Value, json};

fn assert_406(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 406, "{what}: {body}");
    assert_eq!(body["errorCode"], "invalid_params", "{what}: {body}");
}

/// An offer with `n` sending audio m-lines: Chrome's first one (with the
/// transport attributes), then short ones under new mids.
fn offer_with_mlines(n: usize) -> String {
    let chrome = fixture("chrome-offer.sdp");
    let start = chrome.find("m=audio").unwrap();
    let end = chrome.find("m=video").unwrap();
    let mut out = chrome[..start].replace("a=group:BUNDLE 0 1\r\n", "");
    out.push_str(&chrome[start..end]);
    for i in 1..n {
        out.push_str(&format!(
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:m{i}\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n"
        ));
    }
    out
}

#[test]
fn over_cap_requests_are_refused_quickly() {
    let server = server(1);
    let api = Api::new(&server);
    let session = api.new_session();

    // 65 pulls in one tracks/new.
    let items: Vec<Value> = (0..65)
        .map(|i| json!({"location": "remote", "sessionId": session, "trackName": format!("t{i}")}))
        .collect();
    let (status, body) = api.tracks_new(&session, json!({ "tracks": items }));
    assert_406(status, &body, "65 items");

    // autoDiscover of 65 new sending m-lines.
    let offer = offer_with_mlines(65);
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": offer}, "autoDiscover": true}),
    );
    assert_406(status, &body, "autoDiscover of 65");
    assert!(
        body["errorDescription"]
            .as_str()
            .unwrap()
            .contains("autoDiscover")
    );

    // An offer with 9,500 m-lines (under the 1 MiB body limit): refused at
    // once, by the SDP reader (more than its 1,024 m-lines).
    let offer = offer_with_mlines(9500);
    assert!(
        offer.len() < 1 << 20,
        "under the body limit: {}",
        offer.len()
    );
    let t = Instant::now();
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": offer}, "autoDiscover": true}),
    );
    let elapsed = t.elapsed();
    assert_eq!(status, 406, "9,500 m-lines: {body}");
    assert_eq!(body["errorCode"], "invalid_session_description", "{body}");
    eprintln!("9,500 m-lines refused in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");

    // 300,000 empty items in tracks/update and tracks/close (0.9 MB).
    let many = format!("[{}{{}}]", "{},".repeat(299_999));
    for route in ["update", "close"] {
        let body = format!(r#"{{"tracks": {many}, "force": true}}"#);
        let t = Instant::now();
        let (status, reply) = api.call(
            "PUT",
            &format!("/sessions/{session}/tracks/{route}"),
            Some(&body),
        );
        let elapsed = t.elapsed();
        assert_406(status, &reply, route);
        eprintln!("tracks/{route} with 300,000 items refused in {elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
    let items: Vec<Value> = (0..65).map(|i| json!({"mid": i.to_string()})).collect();
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{session}/tracks/close"),
        Some(&json!({"tracks": items, "force": true}).to_string()),
    );
    assert_406(status, &body, "65 closes");

    // The session and the API are fine afterwards.
    let get = api.get_session(&session);
    assert_eq!(get["tracks"], json!([]), "{get}");
}

#[test]
fn simulcast_must_be_the_documented_object() {
    let server = server(1);
    let api = Api::new(&server);
    let (publisher, _) = push(
        &api,
        &fixture("chrome-offer.sdp"),
        json!([{"location": "local", "mid": "1", "trackName": "cam"}]),
    );
    let subscriber = api.new_session();
    for bad in [
        json!("f"),
        json!(42),
        json!({"preferredRid": {"nested": true}}),
        json!({"preferredRid": "x".repeat(10_000)}),
        json!({"priorityOrdering": "fastest"}),
        json!({"ridNotAvailable": ["asciibetical"]}),
    ] {
        let (status, body) = api.tracks_new(
            &subscriber,
            json!({"tracks": [{"location": "remote", "sessionId": publisher,
                               "trackName": "cam", "simulcast": bad}]}),
        );
        assert_406(status, &body, "simulcast");
        let (status, body) = api.call(
            "PUT",
            &format!("/sessions/{subscriber}/tracks/update"),
            Some(
                &json!({"tracks": [{"location": "remote", "mid": "0", "simulcast": bad}]})
                    .to_string(),
            ),
        );
        assert_406(status, &body, "simulcast on update");
    }
    // The documented object is accepted.
    let (status, body) = api.tracks_new(
        &subscriber,
        json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "cam",
                           "simulcast": {"preferredRid": "f", "priorityOrdering": "none",
                                         "ridNotAvailable": "asciibetical"}}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
}

/// Names an app or client sends are bounded (each is stored, listed in GET
/// session and written to a cluster's directory): a 257-byte trackName,
/// sessionId of 65 bytes, and a 257-byte dataChannelName get 406
/// `invalid_params`; a 256-byte track name is taken.
#[test]
fn names_longer_than_their_cap_are_refused() {
    let server = server(1);
    let api = Api::new(&server);
    let session = api.new_session();
    for (what, item) in [
        (
            "trackName",
            json!({"location": "remote", "sessionId": session, "trackName": "t".repeat(257)}),
        ),
        (
            "sessionId",
            json!({"location": "remote", "sessionId": "s".repeat(65), "trackName": "t"}),
        ),
    ] {
        let (status, body) = api.tracks_new(&session, json!({ "tracks": [item] }));
        assert_406(status, &body, what);
        assert!(
            body["errorDescription"].as_str().unwrap().contains(what),
            "{body}"
        );
    }
    let (status, body) = api.call(
        "POST",
        &format!("/sessions/{session}/datachannels/new"),
        Some(
            &json!({"dataChannels": [{"location": "local", "dataChannelName": "c".repeat(257)}]})
                .to_string(),
        ),
    );
    assert_406(status, &body, "dataChannelName");
    // At the cap: a pull of an unknown track, answered per item.
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "remote", "sessionId": session, "trackName": "t".repeat(256)}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["tracks"][0]["errorCode"], "not_found_track_error",
        "{body}"
    );
}
