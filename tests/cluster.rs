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

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Api, Peer, drive, payload_type, received, write_frame};
use serde_json::{Value, json};
use str0m::media::{KeyframeRequestKind, MediaTime, Mid};
use str0m::{Event, format::Codec};

const APP: &str = "c1a55e7700000000000000000000c1a5";
const APP_SECRET: &str = "cluster-test-app-secret";
const CLUSTER_SECRET: &str = "cluster-test-node-secret";

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-cluster-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// A child process, killed when dropped.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The directory's password (docs/cluster.md: Redis always runs with one).
const REDIS_PASSWORD: &str = "a-redis-password-for-the-cluster-test";

fn start_redis(port: u16) -> Process {
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--requirepass", REDIS_PASSWORD])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server runs (Debian package redis-server; tools/test installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server listens");
        std::thread::sleep(Duration::from_millis(50));
    }
    Process(child)
}

struct Node {
    process: Process,
    http: String,
    api: Api,
}

fn start_node(name: &str, redis_port: u16) -> Node {
    let (http_port, media_port) = (free_tcp_port(), free_udp_port());
    let log = std::fs::File::create(log_dir().join(format!("{name}.log"))).expect("log file");
    let child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["--http-bind", &format!("127.0.0.1:{http_port}")])
        .args(["--media-bind", &format!("127.0.0.1:{media_port}")])
        .args([
            "--announce-ip",
            "127.0.0.1",
            "--workers",
            "1",
            "--no-pin",
            "--no-demo",
        ])
        .args(["--dev-app-id", APP, "--dev-app-secret", APP_SECRET])
        .args(["--drain-seconds", "0"])
        .args([
            "--cluster-redis",
            &format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{redis_port}"),
        ])
        .args([
            "--cluster-secret",
            CLUSTER_SECRET,
            "--cluster-node-id",
            name,
        ])
        .env("RUST_LOG", "switchboard=debug")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("switchboard starts");
    let http = format!("http://127.0.0.1:{http_port}");
    let node = Node {
        process: Process(child),
        api: Api::at(&http, APP, APP_SECRET),
        http,
    };
    assert!(
        metric_reaches(
            &node,
            "switchboard_cluster_directory_up",
            1.0,
            Duration::from_secs(20)
        ),
        "node {name} joins the cluster"
    );
    node
}

/// One metric's value (the first series of that name).
fn metric(node: &Node, name: &str) -> Option<f64> {
    let text = ureq::get(&format!("{}/metrics", node.http))
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// A Redis key's value, read with redis-cli (empty when absent).
fn redis_get(port: u16, key: &str) -> String {
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "--no-auth-warning",
            "-a",
            REDIS_PASSWORD,
        ])
        .args(["--raw", "GET", key])
        .output()
        .expect("redis-cli runs (Debian package redis-tools, with redis-server)");
    assert!(out.status.success(), "redis-cli GET {key} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether a metric of `node` shows `value` within `limit`.
fn metric_reaches(node: &Node, name: &str, value: f64, limit: Duration) -> bool {
    wait_until(limit, || metric(node, name) == Some(value))
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// A publisher of "mic" (Opus) and "cam" (VP8) through `api`, connected.
fn publish(api: &Api) -> (Peer, String, Mid, Mid) {
    let mut p = common::push_mic_cam(api);
    common::connect_publisher(&mut p.peer, p.pending, &p.body);
    (p.peer, p.session, p.audio, p.video)
}

/// A subscriber through `api` of `tracks` of `publisher_session`; connected.
fn subscribe(
    api: &Api,
    publisher_session: &str,
    tracks: &[&str],
    others: &mut [&mut Peer],
) -> (Peer, String, Vec<Mid>) {
    let items: Vec<Value> = tracks
        .iter()
        .map(|t| json!({"location": "remote", "sessionId": publisher_session, "trackName": t}))
        .collect();
    let (peer, session, pulled) = common::pull(api, Value::Array(items), others);
    let mids = pulled
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| {
            assert!(t.get("errorCode").is_none(), "{t}");
            t["mid"].as_str().expect("mid").into()
        })
        .collect();
    (peer, session, mids)
}

/// Sends Opus frames tagged `tag` (and a VP8 frame every fifth) until every
/// subscriber got `count` of them on its audio mid, within `limit`.
fn stream_until(
    publisher: &mut Peer,
    (audio, video): (Mid, Mid),
    subscribers: &mut [(&mut Peer, Mid)],
    tag: &[u8],
    count: usize,
    limit: Duration,
) -> bool {
    let opus = payload_type(publisher, audio, Codec::Opus);
    let vp8 = payload_type(publisher, video, Codec::Vp8);
    let deadline = Instant::now() + limit;
    let mut i: u64 = 0;
    while Instant::now() < deadline {
        let t = MediaTime::from_micros(i * 20_000);
        write_frame(publisher, audio, opus, t, [tag, &i.to_be_bytes()].concat());
        if i.is_multiple_of(5) {
            let frame = common::vp8_frame(i, i.is_multiple_of(50), b"cam", 400);
            write_frame(
                publisher,
                video,
                vp8,
                MediaTime::from_micros(i * 20_000),
                frame,
            );
        }
        i += 1;
        let next = Instant::now() + Duration::from_millis(20);
        while Instant::now() < next {
            let mut busy = publisher.step();
            for (s, _) in subscribers.iter_mut() {
                busy |= s.step();
            }
            if !busy {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        if subscribers
            .iter()
            .all(|(s, mid)| received(s, *mid, tag) >= count)
        {
            return true;
        }
    }
    for (s, mid) in subscribers.iter() {
        eprintln!(
            "{}: {} frames tagged {:?}",
            s.name,
            received(s, *mid, tag),
            String::from_utf8_lossy(tag)
        );
    }
    false
}

fn track_statuses(session: &Value) -> Vec<String> {
    session["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["status"].as_str().unwrap_or("").to_owned())
        .collect()
}

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
        redis_get(redis_port, &key("session", &publisher_session)),
        "node-a"
    );
    assert_eq!(
        redis_get(redis_port, &key("tracks", &publisher_session)),
        r#"["mic","cam"]"#
    );
    assert_eq!(
        redis_get(redis_port, &key("session", &b1_session)),
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
    let (status, body) = c.api.tracks_new(&late, pull_second);
    assert_eq!(status, 200, "{body}");
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
