//! Attacks on a cluster by someone who can write its Redis directory, or by
//! a client of one app, against real switchboard processes and a real
//! redis-server: what each attack achieves is bounded.
//!
//! - A Redis writer learns no secret and sends no call anywhere: records
//!   are sealed, a record that does not verify answers 503 (never 410), a
//!   genuine node's call carries a MAC and no bearer, app secret or cluster
//!   secret, a captured call is refused by any other node and the second
//!   time by its own, and `--cluster-peers` keeps a node from calling
//!   outside it.
//! - The directory losing its records (FLUSHALL) or a node stalling past
//!   its key's life answers 503, then 200 once the nodes write their
//!   records again; relays go on.
//! - A client's bursts of pulls and pulls past a relay's m-line cap fail
//!   alone: the relayed pulls already there stay active.
//!
//! Needs `redis-server` (Debian's package; `tools/test` installs it).

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::*;
use common::{Api, Peer};
use serde_json::{Value, json};
use str0m::media::Mid;

/// The tests run one at a time (each runs a cluster on a small machine).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A TCP listener that records the bytes of every connection made to it
/// and answers 503 (an address a Redis writer would like nodes to call).
struct Recorder {
    port: u16,
    got: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(300)));
                let mut bytes = Vec::new();
                let mut chunk = [0u8; 65536];
                while let Ok(n) = stream.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    bytes.extend_from_slice(&chunk[..n]);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                );
                kept.lock().unwrap().push(bytes);
            }
        });
        Recorder { port, got }
    }

    fn connections(&self) -> Vec<Vec<u8>> {
        self.got.lock().unwrap().clone()
    }
}

/// Sends raw request bytes to `port`; the status of the answer.
fn send_raw(port: u16, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(request).expect("send");
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn http_port(node: &Node) -> u16 {
    node.http.rsplit(':').next().unwrap().parse().unwrap()
}

/// The answer is 503 `cluster_unavailable` (not sure: clients retry).
fn assert_unavailable(status: u16, body: &Value) {
    assert_eq!(
        (status, error_code(body)),
        (503, Some("cluster_unavailable")),
        "{body}"
    );
}

fn error_code(body: &Value) -> Option<&str> {
    body["errorCode"].as_str()
}

fn signal(node: &Node, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid.
    let sent = unsafe { libc::kill(node.process.0.id() as libc::pid_t, signal) };
    assert_eq!(sent, 0);
}

fn session_key(session: &str) -> String {
    format!("switchboard:session:{APP}:{session}")
}

#[test]
fn a_redis_writer_learns_no_secret_and_moves_no_session() {
    let _one = serial();
    let started = Instant::now();
    let redis_port = free_tcp_port();
    let _redis = start_redis(redis_port);
    let a = start_node("node-a", redis_port);
    let b = start_node("node-b", redis_port);
    // C is a genuine node whose announced API address is the recorder:
    // what reaches an address the directory names, even a node's.
    let recorder = Recorder::start();
    let c = start_node_with(
        "node-c",
        redis_port,
        free_tcp_port(),
        &[
            "--cluster-api-url".into(),
            format!("http://127.0.0.1:{}", recorder.port),
        ],
    );
    // D calls only A's and B's addresses.
    let peers = format!("127.0.0.1:{},127.0.0.1:{}", http_port(&a), http_port(&b));
    let d = start_node_with(
        "node-d",
        redis_port,
        free_tcp_port(),
        &["--cluster-peers".into(), peers],
    );
    let on_a = a.api.new_session();
    let other_on_a = a.api.new_session();
    let on_c = c.api.new_session();
    let get =
        |node: &Node, session: &str| node.api.call("GET", &format!("/sessions/{session}"), None);
    assert_eq!(get(&b, &on_a).0, 200, "B forwards to A");
    assert_eq!(get(&d, &on_a).0, 200, "D forwards to A, within its peers");

    // A forwarded call and a relay set-up reach C's announced address:
    // they carry a MAC, and no bearer token, app secret or cluster secret.
    let (status, body) = get(&b, &on_c);
    assert_eq!(status, 503, "{body}");
    let pull = json!({"tracks": [{"location": "remote", "sessionId": on_c, "trackName": "mic"}]});
    let puller = b.api.new_session();
    let (status, body) = b.api.tracks_new(&puller, pull);
    assert_unavailable(status, &body);
    let calls = recorder.connections();
    assert_eq!(
        calls.len(),
        2,
        "a forwarded call and a relay's sessions/new"
    );
    for call in &calls {
        let text = String::from_utf8_lossy(call).to_lowercase();
        eprintln!("C's address got:\n{text}");
        assert!(text.contains("x-switchboard-node: v1 "), "{text}");
        for secret in [APP_SECRET, CLUSTER_SECRET, "authorization", "bearer"] {
            assert!(
                !text.contains(&secret.to_lowercase()),
                "{secret} sent: {text}"
            );
        }
    }
    assert!(String::from_utf8_lossy(&calls[1]).contains("sessions/new?thirdparty=true"));

    // A captured call: refused by a node it was not signed for, accepted
    // once by its own, refused the second time.
    let captured = &calls[0];
    assert_eq!(
        send_raw(http_port(&a), captured),
        401,
        "A refuses a call signed for C"
    );
    assert_eq!(send_raw(http_port(&c), captured), 200, "C serves it once");
    assert_eq!(send_raw(http_port(&c), captured), 401, "C refuses it again");
    assert_eq!(
        metric(
            &a,
            r#"switchboard_cluster_node_calls_refused_total{reason="mac"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &c,
            r#"switchboard_cluster_node_calls_refused_total{reason="replay"}"#
        ),
        Some(1.0)
    );

    // D does not call C's address: outside its peers, answered 503.
    let (status, body) = get(&d, &on_c);
    assert_unavailable(status, &body);
    assert_eq!(
        recorder.connections().len(),
        2,
        "D sent nothing to C's address"
    );
    assert!(
        metric(
            &d,
            r#"switchboard_cluster_distrusted_total{reason="peers"}"#
        )
        .is_some_and(|n| n >= 1.0)
    );

    // A session key re-pointed (a bare id, another session's genuine
    // record, a record naming C with a made-up MAC): 503, not 410, and no
    // call to C's address.
    let genuine = redis_get(redis_port, &session_key(&on_a));
    assert_eq!(record_node(&genuine), "node-a");
    let other = redis_get(redis_port, &session_key(&other_on_a));
    let forged = json!({"node": "node-c", "mac": "00".repeat(32)}).to_string();
    for (value, reason) in [
        ("node-c", "malformed"),
        (other.as_str(), "mac"),
        (forged.as_str(), "mac"),
    ] {
        redis(redis_port, &["SET", &session_key(&on_a), value]);
        let (status, body) = get(&b, &on_a);
        assert_eq!(
            (status, error_code(&body)),
            (503, Some("cluster_unavailable")),
            "{value}: {body}"
        );
        let counted = metric(
            &b,
            &format!(r#"switchboard_cluster_distrusted_total{{reason="{reason}"}}"#),
        );
        assert!(counted.is_some_and(|n| n >= 1.0), "{reason}: {counted:?}");
    }
    assert_eq!(
        recorder.connections().len(),
        2,
        "no call followed a re-pointed session"
    );
    redis(redis_port, &["SET", &session_key(&on_a), &genuine]);
    assert_eq!(
        get(&b, &on_a).0,
        200,
        "the genuine record is believed again"
    );

    // A's node record re-pointed at the recorder while A stalls (so that
    // its heartbeat does not write it back): 503, no call.
    signal(&a, libc::SIGSTOP);
    let record: Value =
        serde_json::from_str(&redis_get(redis_port, "switchboard:node:node-a")).unwrap();
    let mut repointed = record.clone();
    repointed["api"] = json!(format!("http://127.0.0.1:{}", recorder.port));
    redis(
        redis_port,
        &[
            "SET",
            "switchboard:node:node-a",
            &repointed.to_string(),
            "PX",
            "60000",
        ],
    );
    let (status, body) = get(&b, &on_a);
    signal(&a, libc::SIGCONT);
    assert_unavailable(status, &body);
    assert_eq!(
        recorder.connections().len(),
        2,
        "no call to a re-pointed node record"
    );
    assert!(
        wait_until(Duration::from_secs(5), || get(&b, &on_a).0 == 200),
        "A's heartbeat writes its record again"
    );
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn a_directory_that_lost_its_records_answers_503_then_200() {
    let _one = serial();
    let started = Instant::now();
    let redis_port = free_tcp_port();
    let _redis = start_redis(redis_port);
    let a = start_node("node-a", redis_port);
    let b = start_node("node-b", redis_port);
    let (mut publisher, publisher_session, audio, video) = publish(&a.api);
    let (mut sub, _, sub_mids) =
        subscribe(&b.api, &publisher_session, &["mic"], &mut [&mut publisher]);
    assert!(
        stream_until(
            &mut publisher,
            (audio, video),
            &mut [(&mut sub, sub_mids[0])],
            b"before",
            25,
            Duration::from_secs(15)
        ),
        "the relay carries the track"
    );

    // FLUSHALL: B answers 503 (never 410) until A wrote its records again.
    let statuses_until_200 = |what: &str| {
        let since = Instant::now();
        let mut seen = Vec::new();
        while since.elapsed() < Duration::from_secs(8) {
            let (status, body) = b
                .api
                .call("GET", &format!("/sessions/{publisher_session}"), None);
            assert_ne!(status, 410, "{what}: a live session answered gone: {body}");
            if status != 200 {
                assert_unavailable(status, &body);
            }
            seen.push(status);
            if status == 200 {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!(
            "{what}: 200 after {:?}, {} calls answered 503 before",
            since.elapsed(),
            seen.len() - 1
        );
        assert_eq!(seen.last(), Some(&200), "{what}: 200 again within 8 s");
        seen
    };
    let rewrites = metric(&a, "switchboard_cluster_session_rewrites_total").unwrap();
    redis(redis_port, &["FLUSHALL"]);
    let seen = statuses_until_200("FLUSHALL");
    assert_eq!(
        seen[0], 503,
        "right after FLUSHALL the directory is not sure"
    );
    assert!(metric(&a, "switchboard_cluster_session_rewrites_total").unwrap() > rewrites);
    assert!(
        stream_until(
            &mut publisher,
            (audio, video),
            &mut [(&mut sub, sub_mids[0])],
            b"flushed",
            25,
            Duration::from_secs(10)
        ),
        "the relay goes on"
    );
    assert_eq!(
        metric(&b, "switchboard_cluster_relays_closed_total"),
        Some(0.0)
    );

    // A stalls longer than its key lives (a late heartbeat that then
    // succeeds): B answers 503 and leaves the session's key alone; once A
    // is back it writes everything again and B answers 200.
    signal(&a, libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(3500));
    let (status, body) = b
        .api
        .call("GET", &format!("/sessions/{publisher_session}"), None);
    let key_kept = redis_get(redis_port, &session_key(&publisher_session));
    signal(&a, libc::SIGCONT);
    assert_unavailable(status, &body);
    assert_eq!(
        record_node(&key_kept),
        "node-a",
        "a reader deletes no session key"
    );
    statuses_until_200("a stall of 3.5 s");
    eprintln!("took {:?}", started.elapsed());
}

#[test]
fn a_client_cannot_tear_down_relayed_pulls() {
    let _one = serial();
    let started = Instant::now();
    let redis_port = free_tcp_port();
    let _redis = start_redis(redis_port);
    // Three m-lines per session, relays included: the cap is reached with
    // three relayed tracks.
    let cap: Vec<String> = vec!["--max-tracks-per-session".into(), "3".into()];
    let a = start_node_with("node-a", redis_port, free_tcp_port(), &cap);
    let b = start_node_with("node-b", redis_port, free_tcp_port(), &cap);
    let (mut p1, p1_session, audio, video) = publish(&a.api);
    let (mut p2, p2_session, _, _) = publish(&a.api);
    let (mut sub, sub_session, sub_mids) =
        subscribe(&b.api, &p1_session, &["mic"], &mut [&mut p1, &mut p2]);
    let flowing = |tag: &[u8], p1: &mut Peer, sub: &mut Peer, mid: Mid| {
        stream_until(
            p1,
            (audio, video),
            &mut [(sub, mid)],
            tag,
            25,
            Duration::from_secs(10),
        )
    };
    assert!(
        flowing(b"first", &mut p1, &mut sub, sub_mids[0]),
        "the relayed pull works"
    );

    // Bursts of pulls (of tracks the owner does not have) from two clients
    // at once: each client's own rate applies before any relay work, and
    // the relay's session on A is not rate limited.
    let bursts: Vec<_> = (0..2)
        .map(|_| {
            let api = Api::at(&b.http, APP, APP_SECRET);
            let p1 = p1_session.clone();
            std::thread::spawn(move || {
                let session = api.new_session();
                let since = Instant::now();
                let mut statuses = Vec::new();
                for i in 0..60 {
                    let pull = json!({"tracks": [{"location": "remote", "sessionId": p1, "trackName": format!("nope{i}")}]});
                    statuses.push(api.tracks_new(&session, pull).0);
                }
                (statuses, since.elapsed())
            })
        })
        .collect();
    for handle in bursts {
        let (statuses, took) = handle.join().unwrap();
        let ok = statuses.iter().filter(|s| **s == 200).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        eprintln!("burst of 60 pulls in {took:?}: {ok} answered 200, {limited} 429");
        assert_eq!(ok + limited, 60, "{statuses:?}");
    }
    assert_eq!(
        metric(&b, "switchboard_cluster_relays_closed_total"),
        Some(0.0)
    );
    assert_eq!(metric(&b, "switchboard_cluster_relays"), Some(1.0));

    // Relayed tracks up to the cap, then one more: that pull fails alone.
    let pull_one = |session: &str, track: &str| {
        let puller = b.api.new_session();
        let body =
            json!({"tracks": [{"location": "remote", "sessionId": session, "trackName": track}]});
        b.api.tracks_new(&puller, body)
    };
    for (session, track) in [(&p1_session, "cam"), (&p2_session, "mic")] {
        let (status, body) = pull_one(session, track);
        assert_eq!(status, 200, "{body}");
        assert!(body["tracks"][0].get("errorCode").is_none(), "{body}");
    }
    let (status, body) = pull_one(&p2_session, "cam");
    assert_unavailable(status, &body);
    assert_eq!(
        metric(&b, "switchboard_cluster_relays_closed_total"),
        Some(0.0)
    );

    // The relayed pull there before all this is still active and fed.
    let statuses = track_statuses(&b.api.get_session(&sub_session));
    assert_eq!(statuses, ["active"]);
    assert!(
        flowing(b"after", &mut p1, &mut sub, sub_mids[0]),
        "the relayed pull still works"
    );
    drop(p2);
    eprintln!("took {:?}", started.elapsed());
}
