//! A cluster of switchboard processes on one machine with a real
//! redis-server as its directory (with a password), for the cluster tests.
//!
//! Needs `redis-server` (Debian's package; `tools/test` installs it).

use std::net::{TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use str0m::format::Codec;
use str0m::media::{MediaTime, Mid};

use super::{Api, Peer, payload_type, received, write_frame};

pub const APP: &str = "c1a55e7700000000000000000000c1a5";
pub const APP_SECRET: &str = "cluster-test-app-secret";
pub const CLUSTER_SECRET: &str = "cluster-test-node-secret";

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

pub fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-cluster-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// A child process, killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The directory's password (docs/cluster.md: Redis always runs with one).
pub const REDIS_PASSWORD: &str = "a-redis-password-for-the-cluster-test";

pub fn start_redis(port: u16) -> Process {
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

pub struct Node {
    pub process: Process,
    pub http: String,
    pub api: Api,
}

pub fn start_node(name: &str, redis_port: u16) -> Node {
    start_node_with(name, redis_port, free_tcp_port(), &[])
}

/// A node on HTTP port `http_port`, with `extra` flags.
pub fn start_node_with(name: &str, redis_port: u16, http_port: u16, extra: &[String]) -> Node {
    let media_port = free_udp_port();
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
        .args(extra)
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
pub fn metric(node: &Node, name: &str) -> Option<f64> {
    super::metric_at(&node.http, name)
}

/// A Redis key's value, read with redis-cli (empty when absent).
pub fn redis_get(port: u16, key: &str) -> String {
    redis(port, &["GET", key])
}

/// A Redis command's answer, through redis-cli (`--raw`, trimmed).
pub fn redis(port: u16, command: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "--no-auth-warning",
            "-a",
            REDIS_PASSWORD,
        ])
        .arg("--raw")
        .args(command)
        .output()
        .expect("redis-cli runs (Debian package redis-tools, with redis-server)");
    assert!(out.status.success(), "redis-cli {command:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The node id a session record names (records are sealed JSON).
pub fn record_node(record: &str) -> String {
    let v: Value = serde_json::from_str(record).unwrap_or(Value::Null);
    v["node"].as_str().unwrap_or("").to_owned()
}

/// Whether a metric of `node` shows `value` within `limit`.
pub fn metric_reaches(node: &Node, name: &str, value: f64, limit: Duration) -> bool {
    wait_until(limit, || metric(node, name) == Some(value))
}

pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
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
pub fn publish(api: &Api) -> (Peer, String, Mid, Mid) {
    let mut p = super::push_mic_cam(api);
    super::connect_publisher(&mut p.peer, p.pending, &p.body);
    (p.peer, p.session, p.audio, p.video)
}

/// A subscriber through `api` of `tracks` of `publisher_session`; connected.
pub fn subscribe(
    api: &Api,
    publisher_session: &str,
    tracks: &[&str],
    others: &mut [&mut Peer],
) -> (Peer, String, Vec<Mid>) {
    let items: Vec<Value> = tracks
        .iter()
        .map(|t| json!({"location": "remote", "sessionId": publisher_session, "trackName": t}))
        .collect();
    let (peer, session, pulled) = super::pull(api, Value::Array(items), others);
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
pub fn stream_until(
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
            let frame = super::vp8_frame(i, i.is_multiple_of(50), b"cam", 400);
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

pub fn track_statuses(session: &Value) -> Vec<String> {
    session["tracks"]
        .as_array()
        .expect("tracks")
        .iter()
        .map(|t| t["status"].as_str().unwrap_or("").to_owned())
        .collect()
}
