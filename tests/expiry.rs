//! Timers, driven by the control plane's clock input rather than by
//! waiting: a track with no media for 30 s becomes inactive; a session with
//! no ICE check for 30 s stops getting media and is gone (410) 30 s later; a
//! session that never connects expires after 60 s.

mod common;

use std::time::{Duration, Instant};

use common::{Api, push_audio, server};
use serde_json::json;

#[test]
fn idle_tracks_and_silent_sessions_expire() {
    let server = server(1);
    let api = Api::new(&server);
    let (_peer, session, _mid, _) = push_audio(&api, json!("mic"), false);
    let never = api.new_session();
    let t0 = Instant::now();

    server.control.handle_tick(t0 + Duration::from_secs(10));
    assert_eq!(api.get_session(&session)["tracks"][0]["status"], "active");

    server.control.handle_tick(t0 + Duration::from_secs(35));
    assert_eq!(
        api.get_session(&session)["tracks"][0]["status"],
        "inactive",
        "no media for 30 s"
    );
    assert_eq!(
        server.control.session_transport(&session),
        None,
        "consent lost after 30 s without checks"
    );

    server.control.handle_tick(t0 + Duration::from_secs(65));
    let (status, body) = api.call("GET", &format!("/sessions/{session}"), None);
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (410, Some("session_error"))
    );
    let (status, _) = api.call("GET", &format!("/sessions/{never}"), None);
    assert_eq!(
        status, 410,
        "a session that never connected expires after 60 s"
    );
}
