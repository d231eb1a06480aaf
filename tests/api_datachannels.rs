//! The data-channel routes' JSON, status and item error codes
//! (calls-api.md, "Data channels"), without any transport: ids, repeated
//! names, unknown publishers, policies, update and close errors, limits, the
//! lowercase alias, and GET statuses before anything connects.

mod common;

use common::{Api, server};
use serde_json::{Value, json};

fn call(api: &Api, session: &str, op: &str, body: Value) -> (u16, Value) {
    let method = if op == "new" || op == "establish" {
        "POST"
    } else {
        "PUT"
    };
    api.call(
        method,
        &format!("/sessions/{session}/datachannels/{op}"),
        Some(&body.to_string()),
    )
}

#[test]
fn items_get_ids_and_the_documented_errors() {
    let server = server(1);
    let api = Api::new(&server);
    let publisher = api.new_session();
    let subscriber = api.new_session();

    let (status, body) = call(
        &api,
        &publisher,
        "new",
        json!({"dataChannels": [
            {"location": "local", "dataChannelName": "chat"},
            {"location": "local", "dataChannelName": "chat"},
            {"location": "local", "dataChannelName": "game", "ordered": false, "maxRetransmits": 0},
            {"location": "local", "dataChannelName": "both", "maxRetransmits": 1, "maxPacketLifeTime": 1},
            {"location": "local"},
            {"dataChannelName": "nowhere"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    let items = body["dataChannels"].as_array().expect("items");
    assert_eq!(items[0]["dataChannelName"], "chat");
    assert_eq!(items[0]["id"], 1, "the server's side of the split: odd");
    assert_eq!(items[1]["errorCode"], "repeated_local_track_error");
    assert_eq!(items[2]["id"], 3);
    assert_eq!(items[3]["errorCode"], "invalid_params");
    assert_eq!(items[4]["errorCode"], "empty_track_error");
    assert_eq!(items[5]["errorCode"], "invalid_params");

    // Subscribe (the lowercase alias of the field is accepted).
    let (status, body) = call(
        &api,
        &subscriber,
        "new",
        json!({"datachannels": [
            {"location": "remote", "sessionId": publisher, "dataChannelName": "chat"},
            {"location": "remote", "sessionId": publisher, "dataChannelName": "missing"},
            {"location": "remote", "sessionId": "0123456789abcdef0123456789abcdef", "dataChannelName": "chat"},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    let items = body["dataChannels"].as_array().expect("items");
    assert_eq!(items[0]["id"], 1);
    assert_eq!(items[0]["sessionId"], publisher);
    assert_eq!(items[1]["errorCode"], "not_found_track_error");
    assert_eq!(items[2]["errorCode"], "not_found_track_error");

    // update names the subscription by the publisher's session and name.
    let (status, body) = call(
        &api,
        &subscriber,
        "update",
        json!({"dataChannels": [
            {"location": "remote", "sessionId": publisher, "dataChannelName": "chat", "canReply": true},
            {"location": "remote", "sessionId": publisher, "dataChannelName": "game", "canReply": true},
        ]}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dataChannels"][0]["id"], 1);
    assert_eq!(body["dataChannels"][0]["canReply"], true);
    assert_eq!(body["dataChannels"][1]["errorCode"], "update_track_error");

    // GET before any transport: initializing.
    let get = api.get_session(&subscriber);
    assert_eq!(
        get["dataChannels"],
        json!([{"location": "remote", "sessionId": publisher, "dataChannelName": "chat",
                "id": 1, "status": "initializing"}])
    );

    // Closing the publisher's channel closes the subscription too.
    let (status, body) = call(
        &api,
        &publisher,
        "close",
        json!({"dataChannels": [{"id": 1}, {"id": 99}]}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["dataChannels"][0]["errorCode"].is_null(), "{body}");
    assert_eq!(body["dataChannels"][1]["errorCode"], "close_track_error");
    let get = api.get_session(&subscriber);
    assert_eq!(get["dataChannels"][0]["status"], "inactive");
    let get = api.get_session(&publisher);
    let statuses: Vec<(&str, &str)> = get["dataChannels"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (
                c["dataChannelName"].as_str().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        vec![("chat", "inactive"), ("game", "initializing")]
    );
    // A closed name may be published again, and gets the freed id.
    let (_, body) = call(
        &api,
        &publisher,
        "new",
        json!({"dataChannels": [{"location": "local", "dataChannelName": "chat"}]}),
    );
    assert_eq!(body["dataChannels"][0]["id"], 1, "{body}");
}

#[test]
fn bad_requests_get_their_status() {
    let server = server(1);
    let api = Api::new(&server);
    let session = api.new_session();
    let (status, body) = call(&api, &session, "new", json!({"dataChannels": "nope"}));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["errorCode"], "decoding_error");
    let (status, body) = call(
        &api,
        &session,
        "establish",
        json!({"dataChannel": {"location": "remote", "dataChannelName": "other"}}),
    );
    assert_eq!(status, 406, "{body}");
    assert_eq!(body["errorCode"], "invalid_params");
    let (status, body) = call(
        &api,
        "0123456789abcdef0123456789abcdef",
        "new",
        json!({"dataChannels": []}),
    );
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["errorCode"], "session_error");
    let (status, _) = api.call(
        "POST",
        &format!("/sessions/{session}/datachannels/bogus"),
        Some("{}"),
    );
    assert_eq!(status, 404);
    // At most 256 channels per session: four calls of 64 fill it.
    for round in 0..5 {
        let items: Vec<Value> = (0..64)
            .map(|i| json!({"location": "local", "dataChannelName": format!("c{round}-{i}")}))
            .collect();
        let (status, body) = call(&api, &session, "new", json!({ "dataChannels": items }));
        if round < 4 {
            assert_eq!(status, 200, "{body}");
            assert!(body["dataChannels"][63]["errorCode"].is_null(), "{body}");
        } else {
            assert_eq!(status, 406, "{body}");
            assert_eq!(body["errorCode"], "invalid_params");
        }
    }
}
