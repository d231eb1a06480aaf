//! The HTTP API's contract (calls-api.md) over real HTTP: every status and
//! error code that applies is produced by the request that should produce
//! it; CORS, paths with and without /v1, query strings and content types.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::{Api, Peer, server};
use serde_json::json;
use str0m::media::{Direction, MediaKind};

/// A session that pushes one audio track named "mic" (negotiated, not connected).
fn publisher(api: &Api) -> String {
    let mut peer = Peer::new("publisher");
    let mut mid = None;
    let (offer, _) = peer.offer(|a| {
        mid = Some(a.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None))
    });
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": offer},
               "tracks": [{"location": "local", "mid": mid.unwrap().to_string(), "trackName": "mic"}]}),
    );
    assert_eq!(status, 200, "{body}");
    session
}

fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn auth_errors() {
    let server = server(1);
    let api = Api::new(&server);
    let url = format!("{}/sessions/new", api.base);
    let (status, body) = api.call_with("POST", &url, Some("wrong"), None);
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, body) = api.call_with("POST", &url, None, None);
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (401, Some("unauthorized"))
    );
    let other = format!(
        "http://{}/v1/apps/{}/sessions/new",
        server.http_addr,
        "0".repeat(32)
    );
    let (status, body) = api.call_with("POST", &other, Some(&api.secret), None);
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (404, Some("not_found"))
    );
}

#[test]
fn session_and_body_errors() {
    let server = server(1);
    let api = Api::new(&server);
    let (status, body) = api.call("GET", &format!("/sessions/{}", "ab".repeat(16)), None);
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (410, Some("session_error"))
    );
    let session = api.new_session();
    let (status, body) = api.call(
        "POST",
        &format!("/sessions/{session}/tracks/new"),
        Some("{not json"),
    );
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("decoding_error"))
    );
    let (status, body) = api.call(
        "POST",
        &format!("/sessions/{session}/tracks/new"),
        Some(r#"{"tracks": 5}"#),
    );
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("decoding_error"))
    );
    let big = format!(r#"{{"tracks": [], "pad": "{}"}}"#, "x".repeat(2 << 20));
    let (status, body) = api.call(
        "POST",
        &format!("/sessions/{session}/tracks/new"),
        Some(&big),
    );
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (413, Some("payload_too_large"))
    );
    let items: Vec<_> = (0..65)
        .map(|i| json!({"location": "remote", "sessionId": session, "trackName": format!("t{i}")}))
        .collect();
    let (status, body) = api.tracks_new(&session, json!({ "tracks": items }));
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_params"))
    );
    let (status, body) = api.tracks_new(&session, json!({"tracks": [{"location": "local", "trackName": "a", "kind": "audio", "bidirectionalMediaStream": true}, {"location": "remote", "sessionId": session, "trackName": "b"}]}));
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_params"))
    );
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{session}/renegotiate"),
        Some(&json!({"sessionDescription": {"type": "answer", "sdp": "v=0\r\n"}}).to_string()),
    );
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_session_description"))
    );
}

#[test]
fn negotiation_errors_and_item_errors() {
    let server = server(1);
    let api = Api::new(&server);
    let publisher = publisher(&api);
    let session = api.new_session();

    // Unknown track: a per-item error with an empty mid; nothing to negotiate.
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "nope"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracks"][0]["errorCode"], "not_found_track_error");
    assert_eq!(body["tracks"][0]["mid"], "");
    assert_eq!(body["tracks"][0]["trackName"], "nope");
    assert_eq!(body["requiresImmediateRenegotiation"], false);

    // A pull before any negotiation: the server offers.
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "mic"}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requiresImmediateRenegotiation"], true);
    assert_eq!(body["sessionDescription"]["type"], "offer");
    assert_eq!(body["tracks"][0]["sessionId"], publisher);
    assert_eq!(body["tracks"][0]["mid"], "0");

    // A second negotiation while that offer is pending: 406.
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [{"location": "remote", "sessionId": publisher, "trackName": "mic"}]}),
    );
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_session_description"))
    );

    // Closing a mid that does not exist: a per-item error.
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{session}/tracks/close"),
        Some(&json!({"tracks": [{"mid": "42"}], "force": true}).to_string()),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracks"][0]["errorCode"], "close_track_error");

    // tracks/update of an unknown mid: update_track_error.
    let (status, body) = api.call(
        "PUT",
        &format!("/sessions/{session}/tracks/update"),
        Some(
            &json!({"tracks": [{"mid": "9", "sessionId": publisher, "trackName": "mic"}]})
                .to_string(),
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tracks"][0]["errorCode"], "update_track_error");
    assert_eq!(body["requiresImmediateRenegotiation"], false);

    // An offer whose m-lines changed order: 406, and nothing changed.
    let offer = std::fs::read_to_string(format!(
        "{}/tests/data/chrome-offer.sdp",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let pusher = api.new_session();
    let (status, _) = api.tracks_new(&pusher, json!({"sessionDescription": {"type": "offer", "sdp": offer}, "tracks": [{"location": "local", "mid": "0", "trackName": "mic"}]}));
    assert_eq!(status, 200);
    let swapped = offer
        .replace("a=mid:0", "a=mid:X")
        .replace("a=mid:1", "a=mid:0")
        .replace("a=mid:X", "a=mid:1");
    let (status, body) = api.tracks_new(&pusher, json!({"sessionDescription": {"type": "offer", "sdp": swapped}, "tracks": [{"location": "local", "mid": "1", "trackName": "cam"}]}));
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_session_description")),
        "{body}"
    );
    assert_eq!(
        api.get_session(&pusher)["tracks"].as_array().unwrap().len(),
        1
    );

    // A track name that is not an SDP token cannot break or inject SDP.
    let hostile = api.new_session();
    let bad = "a b\r\na=inject:1";
    let (status, body) = api.tracks_new(&hostile, json!({"tracks": [{"location": "local", "trackName": bad, "kind": "audio", "bidirectionalMediaStream": true}]}));
    assert_eq!(status, 200, "{body}");
    let sdp = body["sessionDescription"]["sdp"].as_str().unwrap();
    assert!(!sdp.contains("a=inject"), "{sdp}");
    assert!(
        sdp.contains("a=msid:") && sdp.contains(" a-b--a-inject-1\r\n"),
        "{sdp}"
    );

    // An answer when none is pending (on the publisher, which offered itself): 406.
    let (status, body) = api.renegotiate(
        &publisher,
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n",
    );
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_session_description"))
    );
}

#[test]
fn rate_limit_per_session() {
    let server = server(1);
    let api = Api::new(&server);
    let session = api.new_session();
    let mut statuses = Vec::new();
    for _ in 0..300 {
        let status = api.call("GET", &format!("/sessions/{session}"), None).0;
        statuses.push(status);
        if status == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "no 429 in 300 requests");
    assert!(statuses.iter().take(40).all(|s| *s == 200), "{statuses:?}");
}

#[test]
fn paths_queries_cors() {
    let server = server(1);
    let api = Api::new(&server);
    let (app, secret) = server.app();
    // Without /v1, with extra query parameters and a bare trailing '?'.
    for path in [
        "/apps/{app}/sessions/new",
        "/v1/apps/{app}/sessions/new?correlationId=x&thirdparty=true&streamDebug",
        "/v1/apps/{app}/sessions/new?",
    ] {
        let url = format!("http://{}{}", server.http_addr, path.replace("{app}", app));
        let (status, body) = api.call_with("POST", &url, Some(secret), None);
        assert_eq!(status, 201, "{path}: {body}");
        assert_eq!(body["sessionId"].as_str().unwrap().len(), 32);
    }
    // Preflight.
    let response = raw_http(
        server.http_addr,
        &format!("OPTIONS /v1/apps/{app}/sessions/new HTTP/1.1\r\nHost: x\r\nOrigin: http://example.test\r\nAccess-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization, content-type\r\nConnection: close\r\n\r\n"),
    )
    .to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 204"), "{response}");
    assert!(response.contains("access-control-allow-origin: http://example.test"));
    assert!(
        response.contains("access-control-allow-methods: get, post, put, patch, delete, options")
    );
    assert!(response.contains("access-control-allow-headers: authorization, content-type"));
    // CORS and JSON on an error too.
    let response = raw_http(server.http_addr, &format!("GET /v1/apps/{app}/sessions/x HTTP/1.1\r\nHost: x\r\nOrigin: http://a.test\r\nConnection: close\r\n\r\n")).to_ascii_lowercase();
    assert!(response.starts_with("http/1.1 401"), "{response}");
    assert!(response.contains("access-control-allow-origin: http://a.test"));
    assert!(response.contains("vary: origin"));
    assert!(response.contains("content-type: application/json"));
}
