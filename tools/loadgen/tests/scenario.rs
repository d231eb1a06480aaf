//! A short load run against an in-process switchboard: a few publishers and
//! subscribers for a few seconds, with zero loss, zero payload mismatches
//! and sane latency and setup numbers.

use std::time::Duration;

use switchboard::config::Config;
use switchboard::server::Server;
use switchboard_loadgen::scenario::{self, Scenario};

#[test]
fn a_short_run_loses_nothing() {
    let server = Server::start(Config::loopback(2)).expect("server");
    let (app, secret) = server.app();
    let s = Scenario {
        publishers: 2,
        subscribers: 3,
        video_kbps: 800,
        audio: true,
        duration: Duration::from_secs(2),
        warmup: Duration::from_secs(1),
        seed: 7,
        // Bursts the server sends with GSO arrive whole and are split here.
        gro: true,
        ..Scenario::local(format!("http://{}", server.http_addr), app, secret)
    };
    let report = scenario::run(&s).expect("run");
    eprintln!("{}", report.summary());
    assert!(report.sent_packets > 100, "{report:?}");
    assert_eq!(report.expected_packets, report.sent_packets * 3);
    assert_eq!(
        report.received_packets, report.expected_packets,
        "loss: {report:?}"
    );
    assert_eq!(report.loss_ratio, 0.0);
    assert_eq!(report.payload_mismatches, 0);
    assert!(report.payload_checked > 10, "{report:?}");
    assert!(
        report.latency_us.p50 > 0 && report.latency_us.p50 < 50_000,
        "{report:?}"
    );
    assert!(
        report.setup_ms.p99 > 0 && report.setup_ms.p99 < 10_000,
        "{report:?}"
    );
    assert!(report.server_cpu_s.is_some());
    let json = serde_json::to_value(&report).unwrap();
    for field in [
        "target",
        "publishers",
        "subscribers_per_publisher",
        "duration_s",
        "sent_packets",
        "expected_packets",
        "received_packets",
        "loss_ratio",
        "forwarded_pps",
        "latency_us",
        "setup_ms",
        "server_cpu_s",
        "server_cpu_us_per_packet",
        "payload_mismatches",
        "machine",
    ] {
        assert!(json.get(field).is_some(), "missing {field}");
    }
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_us"].get(p).is_some());
    }
    // Without a join rate there is no storm in the report.
    assert!(report.storm.is_none() && json.get("storm").is_none());
}

#[test]
fn with_five_percent_loss_each_way_repairs_recover_nearly_everything() {
    let server = Server::start(Config::loopback(2)).expect("server");
    let (app, secret) = server.app();
    let s = Scenario {
        publishers: 1,
        subscribers: 4,
        video_kbps: 1000,
        audio: true,
        duration: Duration::from_secs(3),
        warmup: Duration::from_secs(1),
        seed: 11,
        loss: 5,
        ..Scenario::local(format!("http://{}", server.http_addr), app, secret)
    };
    let report = scenario::run(&s).expect("run");
    eprintln!("{}", report.summary());
    let repair = report.repair.as_ref().expect("repair figures with --loss");
    // About 10 % of what subscribers should get is lost on one of the two
    // hops; nearly all of it comes back.
    assert!(
        repair.recovered_packets * 20 > report.expected_packets,
        "{report:?}"
    );
    assert!(repair.publisher_resent > 0, "{report:?}");
    assert!(repair.unrecovered_loss_ratio <= 0.001, "{report:?}");
    assert_eq!(report.payload_mismatches, 0);
}

#[test]
fn simulcast_subscribers_get_the_layer_they_ask_for_and_nothing_else() {
    let server = Server::start(Config::loopback(2)).expect("server");
    let (app, secret) = server.app();
    for rid in ["h", "q"] {
        let s = Scenario {
            publishers: 1,
            subscribers: 3,
            video_kbps: 1000,
            audio: true,
            duration: Duration::from_secs(2),
            warmup: Duration::from_secs(1),
            seed: 5,
            simulcast: Some(rid.to_owned()),
            ..Scenario::local(format!("http://{}", server.http_addr), app, secret)
        };
        let report = scenario::run(&s).expect("run");
        eprintln!("{}", report.summary());
        let layers = &report
            .simulcast
            .as_ref()
            .expect("simulcast figures")
            .forwarded_per_layer;
        assert!(layers[rid] > 50, "{rid}: {layers:?}");
        assert!(layers["audio"] > 50, "{layers:?}");
        let others: u64 = layers
            .iter()
            .filter(|(layer, _)| *layer != rid && *layer != "audio")
            .map(|(_, n)| n)
            .sum();
        assert_eq!(others, 0, "only {rid}: {layers:?}");
        assert_eq!(
            report.received_packets, report.expected_packets,
            "{report:?}"
        );
        assert_eq!(report.payload_mismatches, 0);
    }
}
