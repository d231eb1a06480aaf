//! Data channels end to end with an independent WebRTC stack (str0m) as
//! publisher and subscribers: datachannels/establish with a client offer
//! (and a server offer that str0m accepts), datachannels/new (publish, subscribe), every
//! message of the publisher at every subscriber once and in order (string
//! and binary, 1 byte to 16 KiB), canReply and its move, GET statuses, and
//! close.

mod common;

use std::time::Duration;

use common::{Api, Peer, drive, server};
use serde_json::{Value, json};
use str0m::Event;
use str0m::channel::{ChannelConfig, ChannelId};

/// A session whose SCTP transport came up through datachannels/establish:
/// with `client_offer`, the peer offers its own `m=application`; else the
/// server offers and the peer answers.
fn establish(api: &Api, name: &'static str, client_offer: bool) -> (Peer, String) {
    let mut peer = Peer::new(name);
    let session = api.new_session();
    let path = format!("/sessions/{session}/datachannels/establish");
    let channel = json!({"location": "remote", "dataChannelName": "server-events"});
    if client_offer {
        let (offer, pending) = peer.offer(|api| {
            api.add_channel("server-events".into());
        });
        let body = json!({
            "dataChannel": channel,
            "sessionDescription": {"type": "offer", "sdp": offer},
        });
        let (status, reply) = api.call("POST", &path, Some(&body.to_string()));
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["requiresImmediateRenegotiation"], false);
        assert_eq!(reply["sessionDescription"]["type"], "answer");
        let sdp = reply["sessionDescription"]["sdp"].as_str().expect("sdp");
        assert!(sdp.contains("a=sctp-port:5000"), "{sdp}");
        peer.accept_answer(pending, sdp);
    } else {
        let body = json!({ "dataChannel": channel });
        let (status, reply) = api.call("POST", &path, Some(&body.to_string()));
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["requiresImmediateRenegotiation"], true);
        assert_eq!(reply["dataChannel"]["dataChannelName"], "server-events");
        assert_eq!(reply["dataChannel"]["id"], 0);
        assert_eq!(reply["sessionDescription"]["type"], "offer");
        let sdp = reply["sessionDescription"]["sdp"].as_str().expect("sdp");
        assert!(
            sdp.contains("m=application 9 UDP/DTLS/SCTP webrtc-datachannel"),
            "{sdp}"
        );
        assert!(sdp.contains("a=max-message-size:262144"), "{sdp}");
        let answer = peer.accept_offer(sdp);
        let (status, reply) = api.renegotiate(&session, &answer);
        assert_eq!(status, 200, "{reply}");
    }
    (peer, session)
}

fn datachannels(api: &Api, session: &str, op: &str, items: Value) -> Value {
    let method = if op == "new" { "POST" } else { "PUT" };
    let body = json!({ "dataChannels": items });
    let (status, reply) = api.call(
        method,
        &format!("/sessions/{session}/datachannels/{op}"),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{reply}");
    reply
}

/// Opens the peer's side of negotiated channel `id` (the id the API gave).
fn open(peer: &mut Peer, label: &str, id: &Value) -> ChannelId {
    let id = id.as_u64().expect("an id") as u16;
    let cid = peer.rtc.direct_api().create_data_channel(ChannelConfig {
        label: label.into(),
        negotiated: Some(id),
        ..ChannelConfig::default()
    });
    peer.drain();
    cid
}

fn messages(peer: &Peer, cid: ChannelId) -> Vec<(bool, Vec<u8>)> {
    peer.events
        .iter()
        .filter_map(|e| match e {
            Event::ChannelData(d) if d.id == cid => Some((d.binary, d.data.clone())),
            _ => None,
        })
        .collect()
}

fn send(peer: &mut Peer, cid: ChannelId, binary: bool, bytes: &[u8]) {
    let mut channel = peer.rtc.channel(cid).expect("channel open");
    assert!(channel.write(binary, bytes).expect("write"), "written");
    peer.drain();
}

/// Message `n`: sizes from 1 byte to 16 KiB, strings and binary. (str0m
/// writes an empty message as a DATA chunk without user data, which RFC
/// 9260 §3.3.1 forbids and our SCTP stack drops; empty messages are
/// covered by the browser tests and the virtual-clock tests.)
fn message(n: usize) -> (bool, Vec<u8>) {
    let sizes = [1, 2, 100, 1200, 1201, 5000, 16_384];
    let binary = !n.is_multiple_of(3);
    let byte = if binary {
        n as u8
    } else {
        b'a' + (n % 26) as u8
    };
    (binary, vec![byte; sizes[n % sizes.len()]])
}

fn statuses(api: &Api, session: &str) -> Vec<(String, String)> {
    let body = api.get_session(session);
    body["dataChannels"]
        .as_array()
        .expect("dataChannels")
        .iter()
        .map(|c| {
            (
                c["dataChannelName"].as_str().unwrap_or("").to_owned(),
                c["status"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_publishers_messages_reach_every_subscriber_and_only_the_reply_holder_answers() {
    let server = server(2);
    let api = Api::new(&server);
    let (mut p, ps) = establish(&api, "publisher", true);
    let (mut s1, ss1) = establish(&api, "subscriber-1", true);
    let (mut s2, ss2) = establish(&api, "subscriber-2", true);
    let (mut s3, ss3) = establish(&api, "subscriber-3", true);
    assert!(
        drive(
            &mut [&mut p, &mut s1, &mut s2, &mut s3],
            Duration::from_secs(10),
            |ps| ps.iter().all(|p| p.connected)
        ),
        "every peer connects: {} {} {} {}",
        p.connected,
        s1.connected,
        s2.connected,
        s3.connected
    );

    // Publish, and subscribe twice: s1 may reply.
    let reply = datachannels(
        &api,
        &ps,
        "new",
        json!([{"location": "local", "dataChannelName": "chat"}]),
    );
    let pub_id = reply["dataChannels"][0]["id"].clone();
    assert_eq!(reply["dataChannels"][0]["dataChannelName"], "chat");
    assert!(reply["dataChannels"][0]["errorCode"].is_null(), "{reply}");
    let pc = open(&mut p, "chat", &pub_id);
    let mut subs = Vec::new();
    for (peer, session, can_reply) in [(&mut s1, &ss1, true), (&mut s2, &ss2, false)] {
        let reply = datachannels(
            &api,
            session,
            "new",
            json!([{"location": "remote", "sessionId": ps, "dataChannelName": "chat",
                    "canReply": can_reply}]),
        );
        let item = &reply["dataChannels"][0];
        assert!(item["errorCode"].is_null(), "{reply}");
        subs.push(open(peer, "chat", &item["id"]));
    }
    // The third waits for its own first message before anything reaches it.
    let reply = datachannels(
        &api,
        &ss3,
        "new",
        json!([{"location": "remote", "sessionId": ps, "dataChannelName": "chat",
                "waitForAck": true}]),
    );
    let waiting = open(&mut s3, "chat", &reply["dataChannels"][0]["id"]);
    // A subscription to nothing is an item error.
    let reply = datachannels(
        &api,
        &ss2,
        "new",
        json!([{"location": "remote", "sessionId": ps, "dataChannelName": "nope"}]),
    );
    assert_eq!(
        reply["dataChannels"][0]["errorCode"],
        "not_found_track_error"
    );
    assert!(
        drive(
            &mut [&mut p, &mut s1, &mut s2, &mut s3],
            Duration::from_secs(10),
            |ps| {
                ps[0].rtc.channel(pc).is_some()
                    && ps[1].rtc.channel(subs[0]).is_some()
                    && ps[2].rtc.channel(subs[1]).is_some()
                    && ps[3].rtc.channel(waiting).is_some()
            }
        ),
        "the channels open"
    );
    assert!(
        drive(
            &mut [&mut p, &mut s1, &mut s2],
            Duration::from_secs(5),
            |_| {
                [&ps, &ss1, &ss2, &ss3].iter().all(|s| {
                    statuses(&api, s)
                        .iter()
                        .all(|(_, status)| status == "active")
                })
            }
        ),
        "GET lists the channels active: {:?}",
        statuses(&api, &ss1)
    );

    const COUNT: usize = 300;
    for n in 0..COUNT {
        let (binary, bytes) = message(n);
        send(&mut p, pc, binary, &bytes);
        if n % 20 == 19 {
            drive(
                &mut [&mut p, &mut s1, &mut s2],
                Duration::from_millis(20),
                |_| false,
            );
        }
    }
    assert!(
        drive(
            &mut [&mut p, &mut s1, &mut s2],
            Duration::from_secs(20),
            |ps| {
                messages(ps[1], subs[0]).len() >= COUNT && messages(ps[2], subs[1]).len() >= COUNT
            }
        ),
        "every message arrives: {} and {} of {COUNT}",
        messages(&s1, subs[0]).len(),
        messages(&s2, subs[1]).len()
    );
    let expected: Vec<_> = (0..COUNT).map(message).collect();
    assert_eq!(messages(&s1, subs[0]), expected, "once each, in order");
    assert_eq!(messages(&s2, subs[1]), expected, "once each, in order");

    // waitForAck: nothing until the subscriber's first message, then all.
    drive(&mut [&mut p, &mut s3], Duration::from_millis(300), |_| {
        false
    });
    assert!(messages(&s3, waiting).is_empty(), "held until acknowledged");
    send(&mut s3, waiting, false, b"ready");
    assert!(
        drive(&mut [&mut p, &mut s3], Duration::from_secs(20), |ps| {
            messages(ps[1], waiting).len() >= COUNT
        }),
        "{} of {COUNT} after the acknowledgement",
        messages(&s3, waiting).len()
    );
    assert_eq!(
        messages(&s3, waiting),
        expected,
        "then everything, in order"
    );
    assert!(
        messages(&p, pc).is_empty(),
        "the acknowledgement is consumed"
    );

    // Only the holder of canReply reaches the publisher.
    send(&mut s1, subs[0], false, b"from one");
    send(&mut s2, subs[1], false, b"from two");
    assert!(drive(
        &mut [&mut p, &mut s1, &mut s2],
        Duration::from_secs(5),
        |ps| !messages(ps[0], pc).is_empty()
    ));
    drive(
        &mut [&mut p, &mut s1, &mut s2],
        Duration::from_millis(300),
        |_| false,
    );
    assert_eq!(messages(&p, pc), vec![(false, b"from one".to_vec())]);

    // Granting it to s2 takes it from s1.
    let reply = datachannels(
        &api,
        &ss2,
        "update",
        json!([{"location": "remote", "sessionId": ps, "dataChannelName": "chat",
                "canReply": true}]),
    );
    assert_eq!(reply["dataChannels"][0]["canReply"], true, "{reply}");
    assert!(reply["dataChannels"][0]["id"].is_u64(), "{reply}");
    send(&mut s1, subs[0], false, b"one again");
    send(&mut s2, subs[1], false, b"two now");
    assert!(drive(
        &mut [&mut p, &mut s1, &mut s2],
        Duration::from_secs(5),
        |ps| messages(ps[0], pc).len() >= 2
    ));
    drive(
        &mut [&mut p, &mut s1, &mut s2],
        Duration::from_millis(300),
        |_| false,
    );
    let got: Vec<Vec<u8>> = messages(&p, pc).into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, vec![b"from one".to_vec(), b"two now".to_vec()]);

    // The publisher closes its channel: the subscriptions go inactive.
    let reply = datachannels(&api, &ps, "close", json!([{ "id": pub_id }]));
    assert!(reply["dataChannels"][0]["errorCode"].is_null(), "{reply}");
    let reply = datachannels(&api, &ps, "close", json!([{ "id": pub_id }]));
    assert_eq!(reply["dataChannels"][0]["errorCode"], "close_track_error");
    assert!(statuses(&api, &ss1).contains(&("chat".into(), "inactive".into())));
    assert!(statuses(&api, &ps).contains(&("chat".into(), "inactive".into())));
    assert!(drive(
        &mut [&mut p, &mut s1, &mut s2],
        Duration::from_secs(5),
        |ps| ps[1]
            .events
            .iter()
            .any(|e| matches!(e, Event::ChannelClose(id) if *id == subs[0]))
    ));
}

#[test]
fn establish_without_an_offer_offers_an_m_application_the_peer_accepts() {
    let server = server(1);
    let api = Api::new(&server);
    let (_peer, session) = establish(&api, "answerer", false);
    let body = api.get_session(&session);
    assert_eq!(body["dataChannels"][0]["dataChannelName"], "server-events");
    assert_eq!(body["dataChannels"][0]["id"], 0);
    assert_eq!(body["dataChannels"][0]["status"], "initializing");
    // Only the reserved name.
    let (status, reply) = api.call(
        "POST",
        &format!("/sessions/{session}/datachannels/establish"),
        Some(r#"{"dataChannel": {"location": "remote", "dataChannelName": "chat"}}"#),
    );
    assert_eq!(status, 406, "{reply}");
    assert_eq!(reply["errorCode"], "invalid_params");
}
