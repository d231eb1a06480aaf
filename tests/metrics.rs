//! The operational metrics on /metrics, after a str0m publisher and a
//! str0m subscriber exchanged media: the population gauges (sessions,
//! tracks, subscriptions), the DTLS handshake time, the API latency per
//! route, the forwarding latency and the workers' busy time, each a
//! Prometheus histogram whose buckets are cumulative and end at its count.

mod common;

use std::collections::BTreeMap;

use common::{Api, AudioPair, audio_pair, received, send_opus};

/// Samples of the exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// Checks one histogram series (`labels` as in the exposition, without
/// braces): buckets ascend, +Inf equals the count. Returns the count.
fn histogram(s: &BTreeMap<String, f64>, name: &str, labels: &str) -> f64 {
    let sep = if labels.is_empty() { "" } else { "," };
    let prefix = format!("{name}_bucket{{{labels}{sep}le=\"");
    let mut buckets: Vec<(f64, f64)> = s
        .iter()
        .filter_map(|(k, v)| {
            let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, *v))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.len() >= 2,
        "{name} {{{labels}}} has buckets: {buckets:?}"
    );
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} buckets are cumulative: {buckets:?}"
    );
    let braces = if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    };
    let count = s[&format!("{name}_count{braces}")];
    assert_eq!(
        buckets.last().unwrap().1,
        count,
        "{name}: +Inf is the count"
    );
    assert!(s[&format!("{name}_sum{braces}")] >= 0.0);
    count
}

#[test]
fn operational_metrics_follow_a_real_session() {
    let server = common::server(1);
    let api = Api::new(&server);
    let AudioPair {
        publisher: mut a,
        mid,
        subscriber: mut c,
        sub_mid,
        ..
    } = audio_pair(&api);
    send_opus(&mut a, mid, b"metrics", 50, &mut [&mut c]);
    assert!(received(&c, sub_mid, b"metrics") >= 45, "media flowed");

    // The track and subscription gauges are counted once a second.
    let read = || {
        let text = ureq::get(&format!("http://{}/metrics", server.http_addr))
            .call()
            .expect("metrics")
            .into_body()
            .read_to_string()
            .expect("text");
        samples(&text)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    let mut s = read();
    while s["switchboard_subscriptions"] != 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        s = read();
    }
    assert_eq!(s["switchboard_sessions"], 2.0);
    assert_eq!(s["switchboard_tracks"], 1.0);
    assert_eq!(s["switchboard_subscriptions"], 1.0);

    // Both sessions completed DTLS; a handshake over loopback is quick.
    let handshakes = histogram(&s, "switchboard_dtls_handshake_seconds", "");
    assert_eq!(handshakes, 2.0);
    assert!(s["switchboard_dtls_handshake_seconds_sum"] < 5.0);

    // Two sessions/new, two tracks/new (push, pull), one renegotiate.
    let route = |r: &str| format!("route=\"{r}\"");
    let calls = |r: &str| histogram(&s, "switchboard_api_request_duration_seconds", &route(r));
    assert_eq!(calls("POST sessions/new"), 2.0);
    assert_eq!(calls("POST tracks/new"), 2.0);
    assert_eq!(calls("PUT renegotiate"), 1.0);
    assert_eq!(calls("GET metrics"), 0.0, "counted when it ends");

    let w = "worker=\"0\"";
    let batches = histogram(&s, "switchboard_forwarding_latency_seconds", w);
    assert!(batches >= 50.0, "every received batch is timed: {batches}");
    // Forwarding one packet on an idle worker takes well under 50 ms.
    assert!(
        s["switchboard_forwarding_latency_seconds_bucket{worker=\"0\",le=\"0.05\"}"]
            >= batches * 0.99
    );
    let wakeups = histogram(&s, "switchboard_worker_busy_seconds", w);
    assert!(wakeups >= batches, "{wakeups} wake-ups, {batches} batches");
}

/// With `--metrics-token`, `/metrics` answers 401 without the token (or
/// with another), and the metrics with it.
#[test]
fn metrics_behind_a_token() {
    let mut config = switchboard::config::Config::loopback(1);
    config.metrics_token = Some("a-metrics-token".into());
    let server = switchboard::server::Server::start(config).expect("server starts");
    let url = format!("http://{}/metrics", server.http_addr);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |token: Option<&str>| {
        let mut r = agent.get(&url);
        if let Some(t) = token {
            r = r.header("Authorization", &format!("Bearer {t}"));
        }
        let mut response = r.call().expect("answered");
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().expect("body"))
    };
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) = get(token);
        assert_eq!(status, 401, "token {token:?}: {body}");
        assert!(body.contains("unauthorized"), "{body}");
    }
    let (status, body) = get(Some("a-metrics-token"));
    assert_eq!(status, 200);
    assert!(body.contains("switchboard_sessions "), "{body}");
}
