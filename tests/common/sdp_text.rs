//! SDP as text in tests: fixtures from tests/data, the lines of an
//! m-section, pushes of a captured offer through the API, and the transport
//! lines every answer of ours must carry (checked with webrtc-sdp too).

use serde_json::{Value, json};

use super::Api;

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

pub fn lines(sdp: &str) -> Vec<&str> {
    sdp.split("\r\n").filter(|l| !l.is_empty()).collect()
}

/// The lines of the m-section with this mid.
pub fn section<'a>(sdp: &'a str, mid: &str) -> Vec<&'a str> {
    let all = lines(sdp);
    let starts: Vec<usize> = all
        .iter()
        .enumerate()
        .filter(|(_, l)| l.starts_with("m="))
        .map(|(i, _)| i)
        .collect();
    for (n, &s) in starts.iter().enumerate() {
        let end = starts.get(n + 1).copied().unwrap_or(all.len());
        if all[s..end].contains(&format!("a=mid:{mid}").as_str()) {
            return all[s..end].to_vec();
        }
    }
    panic!("no m-section with mid {mid} in\n{sdp}");
}

pub fn push(api: &Api, offer: &str, tracks: Value) -> (String, Value) {
    let session = api.new_session();
    let (status, body) = api.tracks_new(
        &session,
        json!({"sessionDescription": {"type": "offer", "sdp": offer}, "tracks": tracks}),
    );
    assert_eq!(status, 200, "{body}");
    (session, body)
}

/// Session-level and transport lines every answer must have.
pub fn check_transport(sdp: &str, media_port: u16, setup: &str) {
    let all = lines(sdp);
    assert_eq!(all[0], "v=0");
    assert!(all.contains(&"a=ice-lite"));
    let candidate = format!("127.0.0.1 {media_port} typ host");
    let live: Vec<&str> = all
        .iter()
        .copied()
        .filter(|l| l.starts_with("m=") && l.split(' ').nth(1).is_none_or(|p| p != "0"))
        .collect();
    assert!(!live.is_empty());
    let blocks: Vec<Vec<&str>> = sdp
        .split("\r\nm=")
        .skip(1)
        .map(|b| b.split("\r\n").collect())
        .collect();
    for b in blocks
        .iter()
        .filter(|b| b[0].split(' ').nth(1) != Some("0"))
    {
        assert!(b.iter().any(|l| l.starts_with("a=ice-ufrag:")), "{b:?}");
        assert!(b.iter().any(|l| l.starts_with("a=ice-pwd:")));
        assert!(b.iter().any(|l| l.starts_with("a=fingerprint:sha-256 ")));
        assert!(b.contains(&format!("a=setup:{setup}").as_str()));
        // RTP m-lines multiplex RTCP; data channels have none (RFC 8841).
        assert!(b[0].starts_with("application ") || b.contains(&"a=rtcp-mux"));
        assert!(
            b.iter()
                .any(|l| l.starts_with("a=candidate:") && l.ends_with(&candidate)),
            "{b:?}"
        );
    }
    webrtc_sdp::parse_sdp(sdp, false).expect("webrtc-sdp parses our SDP");
}
