//! Graceful shutdown: while the server drains, new API calls get 503
//! `temporarily_unavailable_error` with `Retry-After` and media already set
//! up keeps flowing (str0m peers); the binary drains on SIGTERM for
//! `--drain-seconds` while sessions remain, less when none do, and exits 0.

mod common;

use std::time::Duration;

use common::binary::{exit_within, start_binary};
use common::{Api, pull, push_audio, received, send_opus, server, terminate};
use serde_json::{Value, json};
use str0m::media::Mid;

/// POST sessions/new straight over HTTP: status, Retry-After, body.
fn new_session(base: &str, secret: &str) -> (u16, Option<String>, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent
        .post(&format!("{base}/sessions/new"))
        .header("Authorization", &format!("Bearer {secret}"))
        .send_empty()
        .expect("an answer");
    let retry = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (
        response.status().as_u16(),
        retry,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    )
}

#[test]
fn while_draining_api_calls_get_503_and_media_keeps_flowing() {
    let server = server(1);
    let api = Api::new(&server);
    let (mut a, a_session, a_mid, _) = push_audio(&api, json!("mic"), false);
    let item = json!({"location": "remote", "sessionId": a_session, "trackName": "mic"});
    let (mut b, b_session, pulled) = pull(&api, json!([item]), &mut [&mut a]);
    let b_mid: Mid = pulled[0]["mid"].as_str().expect("mid").into();
    send_opus(&mut a, a_mid, b"before", 10, &mut [&mut b]);
    assert!(received(&b, b_mid, b"before") >= 8);

    server.begin_drain();
    let (status, retry, body) = new_session(&api.base, &api.secret);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["errorCode"], "temporarily_unavailable_error", "{body}");
    assert_eq!(
        retry.as_deref(),
        Some("10"),
        "Retry-After: the drain period"
    );
    let (status, body) = api.call("GET", &format!("/sessions/{b_session}"), None);
    assert_eq!(status, 503, "every API call: {body}");
    // Metrics still answer; media still flows.
    let metrics = ureq::get(&format!("http://{}/metrics", server.http_addr))
        .call()
        .map(|r| r.status().as_u16());
    assert_eq!(metrics.ok(), Some(200));
    send_opus(&mut a, a_mid, b"during", 25, &mut [&mut b]);
    let got = received(&b, b_mid, b"during");
    assert!(got >= 20, "{got} of 25 frames while draining");
}

#[test]
fn sigterm_drains_for_the_period_while_sessions_remain_then_exits_0() {
    let (mut child, base, secret) = start_binary(2, &[]);
    let (status, _, body) = new_session(&base, &secret);
    assert_eq!(status, 201, "{body}");
    terminate(&child);
    std::thread::sleep(Duration::from_millis(300));
    let (status, retry, body) = new_session(&base, &secret);
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("2"));
    let (code, after) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(after >= Duration::from_millis(1400), "drained {after:?}");
}

#[test]
fn sigterm_without_sessions_exits_0_at_once() {
    let (mut child, _, _) = start_binary(10, &[]);
    terminate(&child);
    let (code, after) = exit_within(&mut child, Duration::from_secs(5));
    assert_eq!(code, Some(0));
    assert!(after < Duration::from_secs(3), "took {after:?}");
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (mut child, base, secret) = start_binary(1, &["--log-format", "json"]);
    let (status, _, body) = new_session(&base, &secret);
    assert_eq!(status, 201, "{body}");
    terminate(&child);
    let (code, _) = exit_within(&mut child, Duration::from_secs(10));
    assert_eq!(code, Some(0));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr)
        .expect("stderr");
    let lines: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(line[key].is_string(), "{key} in {line}");
        }
    }
    let draining = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("draining"))
        })
        .expect("the drain is logged");
    assert_eq!(draining["level"], "INFO");
    assert_eq!(
        draining["sessions"], 1,
        "fields are JSON values: {draining}"
    );
    assert_eq!(draining["signal"], libc::SIGTERM, "{draining}");
}
