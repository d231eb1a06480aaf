//! A cluster of three switchboard processes on one machine, with a real
//! redis-server as its directory, and str0m peers (an independent WebRTC
//! stack): a track pushed through node A's API is pulled through B's and
//! C's, over one relay per node; calls sent to the wrong node get the
//! owner's answer; a Redis outage stops no forwarding and fails new
//! cross-node pulls with the documented error; a killed node's tracks turn
//! inactive on the others within 5 s.
//!
//! Needs `redis-server` (Debian's package; `tools/test` installs it).

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Api;
use common::cluster::*;
use common::{Peer, drive, received};
use serde_json::{Value, json};
use str0m::Event;
use str0m::media::{KeyframeRequestKind, Mid};

#[test]
fn a_cluster_of_three_nodes_relays_tracks_and_survives_outages() {
    let redis_port = free_tcp_port();
    let mut redis = start_redis(redis_port);
    let mut a = start_node("node-a", redis_port);
    let mut b = start_node("node-b", redis_port);
    let c = start_node("node-c", redis_port);

    // A publisher on A; two subscribers on B, one on C.
    let (mut publisher, publisher_session, audio, video) = publish(&a.api);
    let (mut b1, b1_session, b1_mids) = subscribe(
        &b.api,
        &publisher_session,
        &["mic", "cam"],
        &mut [&mut publisher],
    );
    let (mut b2, b2_session, b2_mids) = subscribe(
        &b.api,
        &publisher_session,
        &["mic"],
        &mut [&mut publisher, &mut b1],
    );
    let (mut c1, c1_session, c1_mids) = subscribe(
        &c.api,
        &publisher_session,
        &["mic"],
        &mut [&mut publisher, &mut b1, &mut b2],
    );
    // Frames tagged $tag reach all three subscribers (25 each) within $limit.
    macro_rules! stream_to_all {
        ($tag:expr, $limit:expr) => {
            stream_until(
                &mut publisher,
                (audio, video),
                &mut [
                    (&mut b1, b1_mids[0]),
                    (&mut b2, b2_mids[0]),
                    (&mut c1, c1_mids[0]),
                ],
                $tag,
                25,
                $limit,
            )
        };
    }
    assert!(
        stream_to_all!(b"relayed", Duration::from_secs(15)),
        "the publisher's frames reach subscribers on B and C"
    );
    // One relay per node, however many subscribers.
    assert_eq!(metric(&b, "switchboard_cluster_relays"), Some(1.0));
    assert_eq!(
        metric(&b, "switchboard_cluster_relays_opened_total"),
        Some(1.0)
    );
    assert_eq!(metric(&c, "switchboard_cluster_relays"), Some(1.0));
    assert_eq!(metric(&a, "switchboard_cluster_relays"), Some(0.0));

    // A keyframe request of a subscriber on B reaches the publisher on A.
    let got_pli = |p: &Peer| {
        p.events
            .iter()
            .any(|e| matches!(e, Event::KeyframeRequest(r) if r.mid == video))
    };
    std::thread::sleep(Duration::from_millis(600));
    publisher.events.clear();
    let mut w = b1.rtc.writer(b1_mids[1]).expect("subscriber writer");
    w.request_keyframe(None, KeyframeRequestKind::Pli)
        .expect("PLI");
    b1.drain();
    assert!(
        drive(
            &mut [&mut publisher, &mut b1, &mut b2, &mut c1],
            Duration::from_secs(3),
            |p| got_pli(p[0])
        ),
        "B's subscriber's PLI reaches the publisher on A"
    );

    // The wrong node answers with the owner's answer.
    let on_owner = a.api.get_session(&publisher_session);
    assert_eq!(c.api.get_session(&publisher_session), on_owner);
    assert_eq!(b.api.get_session(&publisher_session), on_owner);
    assert_eq!(
        a.api.get_session(&b1_session),
        b.api.get_session(&b1_session)
    );
    assert_eq!(track_statuses(&on_owner), ["active", "active"]);
    assert!(metric(&c, "switchboard_cluster_forwarded_calls_total").is_some_and(|n| n >= 1.0));

    // The directory lists the publisher's session with its node and tracks.
    let key = |kind: &str, session: &str| format!("switchboard:{kind}:{APP}:{session}");
    assert_eq!(
        record_node(&redis_get(redis_port, &key("session", &publisher_session))),
        "node-a"
    );
    assert_eq!(
        redis_get(redis_port, &key("tracks", &publisher_session)),
        r#"["mic","cam"]"#
    );
    assert_eq!(
        record_node(&redis_get(redis_port, &key("session", &b1_session))),
        "node-b"
    );

    // A second publisher on A, not pulled anywhere yet.
    let (mut second, second_session, second_mid, _) =
        common::push_audio(&a.api, "mic2".into(), false);

    // Redis stops: what is set up keeps flowing; a new cross-node pull
    // fails with the documented error.
    let _ = redis.0.kill();
    let _ = redis.0.wait();
    assert!(
        metric_reaches(
            &b,
            "switchboard_cluster_directory_up",
            0.0,
            Duration::from_secs(5)
        ),
        "B notices the outage"
    );
    assert!(
        stream_to_all!(b"outage", Duration::from_secs(10)),
        "forwarding goes on without Redis"
    );
    let late = c.api.new_session();
    let pull_second = json!({"tracks": [{"location": "remote", "sessionId": second_session, "trackName": "mic2"}]});
    let (status, body) = c.api.tracks_new(&late, pull_second.clone());
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (503, Some("cluster_unavailable")),
        "{body}"
    );

    // Redis is back: the nodes list themselves again and the pull works.
    redis = start_redis(redis_port);
    for node in [&a, &b, &c] {
        assert!(
            metric_reaches(
                node,
                "switchboard_cluster_directory_up",
                1.0,
                Duration::from_secs(10)
            ),
            "the nodes rejoin after the outage"
        );
    }
    // Until every node wrote its sessions again the directory answers
    // "not sure" (503, which clients retry), never "gone".
    let mut answer = None;
    assert!(
        wait_until(Duration::from_secs(10), || {
            let (status, body) = c.api.tracks_new(&late, pull_second.clone());
            assert!(status == 200 || status == 503, "{status} {body}");
            answer = Some((status, body));
            status == 200
        }),
        "the pull works once the directory is written again: {answer:?}"
    );
    let (_, body) = answer.expect("an answer");
    assert!(body["tracks"][0].get("errorCode").is_none(), "{body}");
    // Both of A's publishers reach C over its one relay from A: the
    // subscriber of the second connects and gets its frames while c1 still
    // gets the first's.
    assert_eq!(metric(&c, "switchboard_cluster_relays"), Some(1.0));
    let mut c2 = Peer::new("c2");
    let answer = c2.accept_offer(body["sessionDescription"]["sdp"].as_str().expect("offer"));
    let (status, r) = c.api.renegotiate(&late, &answer);
    assert_eq!(status, 200, "{r}");
    let c2_mid: Mid = body["tracks"][0]["mid"].as_str().expect("mid").into();
    assert!(
        drive(
            &mut [&mut c2, &mut second, &mut publisher, &mut c1],
            Duration::from_secs(10),
            |p| p[0].connected
        ),
        "C's subscriber of the second publisher connects"
    );
    common::send_opus(
        &mut second,
        second_mid,
        b"second",
        60,
        &mut [&mut c2, &mut publisher, &mut c1],
    );
    let got = received(&c2, c2_mid, b"second");
    assert!(
        got >= 40,
        "C's subscriber got {got} of 60 frames of the second publisher"
    );
    assert!(
        stream_to_all!(b"both", Duration::from_secs(10)),
        "the first publisher's frames still reach everyone"
    );

    // B's subscribers leave: B closes its relay after the linger.
    for (session, mids) in [(&b1_session, &b1_mids), (&b2_session, &b2_mids)] {
        let tracks: Vec<Value> = mids.iter().map(|m| json!({"mid": m.to_string()})).collect();
        let body = json!({"tracks": tracks, "force": true}).to_string();
        let (status, r) = b.api.call(
            "PUT",
            &format!("/sessions/{session}/tracks/close"),
            Some(&body),
        );
        assert_eq!(status, 200, "{r}");
    }
    let left = Instant::now();
    assert!(
        metric_reaches(
            &b,
            "switchboard_cluster_relays",
            0.0,
            Duration::from_secs(15)
        ),
        "B's relay closes after its last subscriber left"
    );
    eprintln!(
        "B's relay closed {:?} after its last subscriber left",
        left.elapsed()
    );
    assert!(
        left.elapsed() >= Duration::from_secs(9),
        "the relay lingers"
    );
    assert_eq!(
        metric(&b, "switchboard_cluster_relays_closed_total"),
        Some(1.0)
    );

    // Node A dies: C's subscriber sees its pull inactive within 5 s.
    let _ = a.process.0.kill();
    let _ = a.process.0.wait();
    let killed = Instant::now();
    let all_inactive = |api: &Api, session: &str| {
        let s = api.get_session(session);
        let st = track_statuses(&s);
        !st.is_empty() && st.iter().all(|x| x == "inactive")
    };
    assert!(
        wait_until(Duration::from_secs(5), || all_inactive(&c.api, &c1_session)),
        "pulls of the dead node's tracks turn inactive within 5 s"
    );
    eprintln!("inactive {:?} after the kill", killed.elapsed());
    assert_eq!(metric(&c, "switchboard_cluster_relays"), Some(0.0));

    // Node B stops gracefully: it leaves the directory as it exits (its
    // entry does not wait for the heartbeat's expiry).
    let b_key = "switchboard:node:node-b";
    assert!(!redis_get(redis_port, b_key).is_empty(), "B is listed");
    common::terminate(&b.process.0);
    assert!(
        wait_until(Duration::from_secs(10), || matches!(
            b.process.0.try_wait(),
            Ok(Some(_))
        )),
        "B exits on SIGTERM"
    );
    assert_eq!(redis_get(redis_port, b_key), "", "B left the directory");
    drop(redis);
}

/// `tools/cluster up --ip 127.0.0.2`: on an address other than 127.0.0.1,
/// a Redis without a password refuses every client (protected mode), so
/// the tool runs it with one; every node joins, Redis refuses a client
/// without the password, and a session made on node 1 is found through
/// node 2.
#[test]
fn tools_cluster_runs_on_any_address_with_an_authenticated_redis() {
    let dir = log_dir().join("tools-cluster");
    let (http, media, redis) = (free_tcp_port(), free_udp_port(), free_tcp_port());
    let tool = |args: &[&str]| {
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/cluster"))
            .args(args)
            .env("SWITCHBOARD_CLUSTER_DIR", &dir)
            .env("SWITCHBOARD_BIN", env!("CARGO_BIN_EXE_switchboard"))
            .env("CLUSTER_HTTP_PORT", http.to_string())
            .env("CLUSTER_MEDIA_PORT", media.to_string())
            .env("CLUSTER_REDIS_PORT", redis.to_string())
            .output()
            .expect("tools/cluster runs")
    };
    struct Down<F: Fn(&[&str]) -> std::process::Output>(F);
    impl<F: Fn(&[&str]) -> std::process::Output> Drop for Down<F> {
        fn drop(&mut self) {
            (self.0)(&["down"]);
        }
    }
    let up = tool(&["up", "--ip", "127.0.0.2", "--nodes", "2"]);
    let tool = Down(tool);
    let stdout = String::from_utf8_lossy(&up.stdout).into_owned();
    assert!(
        up.status.success(),
        "tools/cluster up: {stdout}\n{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let urls: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("node ")?.split(" api ").nth(1))
        .collect();
    assert_eq!(urls.len(), 2, "{stdout}");
    assert!(
        urls.iter().all(|u| u.starts_with("http://127.0.0.2:")),
        "{urls:?}"
    );
    let app_line = stdout
        .lines()
        .find(|l| l.starts_with("app "))
        .expect("app line");
    let parts: Vec<&str> = app_line.split(' ').collect();
    let (app, secret) = (parts[1], parts[3]);

    // Redis wants the password.
    let anonymous = Command::new("redis-cli")
        .args(["-h", "127.0.0.2", "-p", &redis.to_string(), "GET", "x"])
        .output()
        .expect("redis-cli runs");
    let said = String::from_utf8_lossy(&anonymous.stdout).into_owned()
        + &String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        said.contains("NOAUTH"),
        "Redis answered a client without the password: {said}"
    );
    let config = std::fs::metadata(dir.join("redis.conf")).expect("redis.conf");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        config.permissions().mode() & 0o077,
        0,
        "redis.conf is private"
    );

    // The directory works: a session of node 1 is found through node 2.
    let one = Api::at(urls[0], app, secret);
    let two = Api::at(urls[1], app, secret);
    let session = one.new_session();
    assert!(
        wait_until(Duration::from_secs(10), || {
            two.call("GET", &format!("/sessions/{session}"), None).0 == 200
        }),
        "node 2 finds node 1's session"
    );
    drop(tool);
}
