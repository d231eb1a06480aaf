//! A short flash crowd against an in-process switchboard: 20 subscribers
//! joining at 20 per second all get media, and the report carries the join
//! and API latencies and what the joins cost each side.

use switchboard::config::Config;
use switchboard::server::Server;
use switchboard_loadgen::scenario::{self, Scenario};

#[test]
fn a_flash_crowd_gets_media_and_reports_its_latencies() {
    let server = Server::start(Config::loopback(1)).expect("server");
    let (app, secret) = server.app();
    let s = Scenario {
        subscribers: 20,
        seed: 11,
        join_rate: Some(20.0),
        ..Scenario::local(format!("http://{}", server.http_addr), app, secret)
    };
    let report = scenario::run(&s).expect("run");
    eprintln!("{}", report.summary());
    let storm = report.storm.as_ref().expect("a storm in the report");
    assert_eq!(storm.joins, 20);
    assert_eq!(storm.joins_with_media, 20, "{storm:?}");
    assert_eq!((storm.api_failures, storm.connect_failures), (0, 0));
    // Three calls a join: sessions/new, tracks/new, renegotiate.
    assert_eq!(storm.api_calls, 60, "{storm:?}");
    assert!(storm.api_latency_us.p50 > 0.0 && storm.api_latency_us.p99 >= storm.api_latency_us.p50);
    assert!(
        storm.join_latency_ms.p50 > 0.0 && storm.join_latency_ms.p99 < 5_000.0,
        "{storm:?}"
    );
    // Connected before the first packet could arrive.
    assert!(
        storm.connect_latency_ms.p50 > 0.0
            && storm.connect_latency_ms.p50 <= storm.join_latency_ms.p50,
        "{storm:?}"
    );
    // Paced: 20 joins at 20/s take about a second, not less.
    assert!(
        storm.achieved_rate > 5.0 && storm.achieved_rate < 25.0,
        "{storm:?}"
    );
    assert!(
        storm.completed_rate > 5.0 && storm.completed_rate < 25.0,
        "{storm:?}"
    );
    assert!(storm.storm_s > 0.9, "{storm:?}");
    assert!(storm.loadgen_dtls_us_per_join > 0.0 && storm.loadgen_api_us_per_join > 0.0);
    assert!(storm.loadgen_cpu_us_per_join > 0.0);
    assert!(storm.loadgen_join_capacity.is_some_and(|c| c > 0.0));
    assert!(storm.server_busy.is_some_and(|b| b > 0.0));
    assert!(storm.loadgen_busy.is_some());
    assert!(["none", "server", "loadgen"].contains(&storm.limited_by.as_str()));
    // After the storm the window measures forwarding to all of them.
    assert_eq!(report.expected_packets, report.sent_packets * 20);
    assert!(report.received_packets > 0);
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "join_rate",
        "achieved_rate",
        "completed_rate",
        "joins_with_media",
        "join_latency_ms",
        "connect_latency_ms",
        "api_latency_us",
        "loadgen_join_capacity",
        "server_busy",
        "loadgen_busy",
        "limited_by",
    ] {
        assert!(json["storm"].get(field).is_some(), "missing storm.{field}");
    }
}
