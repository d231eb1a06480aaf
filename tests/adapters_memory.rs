//! A thousand WebSocket adapters opened and closed give their memory
//! back: the process's resident set after them is within 16 MiB of what it
//! was after a first hundred, every adapter's session ended, none is left
//! open. In a test binary of its own: the resident set is the process's.

mod common;

use std::time::Duration;

use common::Api;
use common::ws_endpoint::{Behaviour, Endpoint};
use serde_json::{Value, json};
use switchboard::config::Config;
use switchboard::server::Server;

fn metric(server: &Server, line_start: &str) -> f64 {
    common::metric_at(
        &format!("http://{}", server.http_addr),
        line_start.trim_end(),
    )
    .unwrap_or(0.0)
}

#[test]
fn a_thousand_adapters_opened_and_closed_give_their_memory_back() {
    let mut config = Config::loopback(1);
    config.adapters.per_app = 64;
    let server = Server::start(config).expect("server starts");
    let api = Api::new(&server);
    let (_publisher, session, _, _) = common::push_audio(&api, "mic".into(), false);
    let endpoint = Endpoint::start(Behaviour::Collect, None);
    let item = json!({"location": "remote", "sessionId": session, "trackName": "mic",
                      "endpoint": endpoint.url(), "outputCodec": "pcm"});
    let round = |n: usize| {
        for _ in 0..n / 4 {
            let (status, body) = api.call(
                "POST",
                "/adapters/websocket/new",
                Some(&json!({"tracks": [item, item, item, item]}).to_string()),
            );
            assert_eq!(status, 200, "{body}");
            let ids: Vec<&str> = body["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["adapterId"].as_str().unwrap())
                .collect();
            let close: Vec<Value> = ids.iter().map(|id| json!({ "adapterId": id })).collect();
            let (status, body) = api.call(
                "POST",
                "/adapters/websocket/close",
                Some(&json!({ "tracks": close }).to_string()),
            );
            assert_eq!(status, 200, "{body}");
        }
    };
    round(100);
    std::thread::sleep(Duration::from_millis(500));
    let baseline = rss_kb();
    round(1000);
    std::thread::sleep(Duration::from_millis(500));
    let after = rss_kb();
    assert_eq!(
        metric(
            &server,
            "switchboard_adapters_opened_total{kind=\"pcm_egress\"} "
        ),
        1100.0
    );
    assert_eq!(
        metric(&server, "switchboard_adapters{kind=\"pcm_egress\"} "),
        0.0
    );
    assert_eq!(
        metric(&server, "switchboard_sessions "),
        1.0,
        "every adapter session ended"
    );
    assert!(
        after < baseline + 16 * 1024,
        "RSS {baseline} kB before, {after} kB after"
    );
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}
