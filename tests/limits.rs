//! The configurable limits answer with their documented status and error
//! code, through the HTTP API of a real server: sessions per app and
//! never-connected sessions per app (503 `temporarily_unavailable_error`),
//! tracks per session (406 `invalid_params`), requests per second per
//! session and sessions/new per client address (429 `rate_limited`). What
//! is refused changes nothing, and the next allowed call succeeds.

mod common;

use common::Api;
use serde_json::{Value, json};
use switchboard::config::{Config, Limits};
use switchboard::server::Server;

fn server_with(limits: Limits) -> Server {
    let mut config = Config::loopback(1);
    config.limits = limits;
    Server::start(config).expect("server starts")
}

fn new_session(api: &Api) -> (u16, Value) {
    api.call("POST", "/sessions/new", Some("{}"))
}

fn assert_error(got: (u16, Value), status: u16, code: &str, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(got.1["errorCode"], code, "{what}: {}", got.1);
    assert!(
        got.1["errorDescription"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{what}: {}",
        got.1
    );
}

#[test]
fn sessions_per_app_and_never_connected_per_app() {
    let server = server_with(Limits {
        sessions_per_app: 5,
        never_connected_per_app: 3,
        ..Limits::default()
    });
    let api = Api::new(&server);
    for _ in 0..3 {
        assert_eq!(new_session(&api).0, 201);
    }
    // Three never connected: the fourth is refused, and nothing was made.
    assert_error(
        new_session(&api),
        503,
        "temporarily_unavailable_error",
        "never-connected cap",
    );
    assert_eq!(server.control.session_count(), 3);

    let server = server_with(Limits {
        sessions_per_app: 2,
        ..Limits::default()
    });
    let api = Api::new(&server);
    assert_eq!(new_session(&api).0, 201);
    assert_eq!(new_session(&api).0, 201);
    assert_error(
        new_session(&api),
        503,
        "temporarily_unavailable_error",
        "sessions cap",
    );
    assert_eq!(server.control.session_count(), 2);
}

#[test]
fn tracks_per_session() {
    let server = server_with(Limits {
        tracks_per_session: 2,
        ..Limits::default()
    });
    let api = Api::new(&server);
    let session = api.new_session();
    let push = |name: &str| json!({"location": "local", "trackName": name, "kind": "audio"});
    let (status, body) = api.tracks_new(
        &session,
        json!({"tracks": [push("a"), push("b"), push("c")]}),
    );
    assert_error((status, body), 406, "invalid_params", "3 m-lines of 2");
    let (status, body) = api.tracks_new(&session, json!({"tracks": [push("a"), push("b")]}));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn requests_per_second_per_session() {
    let server = server_with(Limits {
        requests_per_second: 3,
        ..Limits::default()
    });
    let api = Api::new(&server);
    let session = api.new_session();
    let statuses: Vec<u16> = (0..6)
        .map(|_| api.call("GET", &format!("/sessions/{session}"), None).0)
        .collect();
    // Six requests well within a second: three answered, then 429.
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert_eq!(statuses[5], 429, "{statuses:?}");
    let (status, body) = api.call("GET", &format!("/sessions/{session}"), None);
    assert_error((status, body), 429, "rate_limited", "4th request");
}

#[test]
fn sessions_new_per_address_only_when_configured() {
    // Not configured: one address opens many sessions in a burst.
    let server = server_with(Limits::default());
    let api = Api::new(&server);
    for _ in 0..200 {
        assert_eq!(new_session(&api).0, 201);
    }

    let server = server_with(Limits {
        new_sessions_per_address: Some(5),
        ..Limits::default()
    });
    let api = Api::new(&server);
    let statuses: Vec<u16> = (0..8).map(|_| new_session(&api).0).collect();
    assert_eq!(&statuses[..5], &[201; 5], "{statuses:?}");
    assert_error(
        new_session(&api),
        429,
        "rate_limited",
        "6th from one address",
    );
    assert_eq!(server.control.session_count(), 5);
}
