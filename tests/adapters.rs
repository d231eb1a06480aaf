//! WebSocket adapters end to end, with an independent WebRTC stack (str0m)
//! as publisher and subscriber and a WebSocket endpoint of the test's own
//! (tests/common/ws_endpoint.rs): PCM egress of real Opus (a tone, with
//! loss and FEC), PCM ingest played out at real-time pace to a subscriber,
//! every documented error and limit, closing (twice), reconnecting within
//! 15 s, a stuck endpoint, an endpoint that sends garbage, a publisher
//! that leaves (tests/adapters_memory.rs: a thousand adapters opened and
//! closed).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ws_endpoint::{self, Behaviour, Endpoint};
use common::{Api, Peer, drive};
use serde_json::{Value, json};
use str0m::Event;
use switchboard::config::Config;
use switchboard::server::Server;

fn server(allow_local: bool) -> Server {
    let mut config = Config::loopback(1);
    config.adapters.allow_local = Some(allow_local);
    config.adapters.per_app = 8;
    Server::start(config).expect("server starts")
}

fn new_adapters(api: &Api, tracks: Value) -> (u16, Value) {
    api.call(
        "POST",
        "/adapters/websocket/new",
        Some(&json!({ "tracks": tracks }).to_string()),
    )
}

fn close_adapters(api: &Api, ids: &[&str]) -> (u16, Value) {
    let tracks: Vec<Value> = ids.iter().map(|id| json!({ "adapterId": id })).collect();
    api.call(
        "POST",
        "/adapters/websocket/close",
        Some(&json!({ "tracks": tracks }).to_string()),
    )
}

fn metric(server: &Server, line_start: &str) -> f64 {
    common::metric_at(
        &format!("http://{}", server.http_addr),
        line_start.trim_end(),
    )
    .unwrap_or(0.0)
}

/// A str0m publisher of a 440 Hz tone as Opus ("mic") and its session.
struct TonePublisher {
    peer: Peer,
    session: String,
    mid: str0m::media::Mid,
    encoder: opus::Encoder,
    sent: u64,
}

impl TonePublisher {
    fn new(api: &Api) -> Self {
        let (peer, session, mid, _) = common::push_audio(api, "mic".into(), false);
        let mut encoder =
            opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Audio).unwrap();
        encoder.set_inband_fec(true).unwrap();
        encoder.set_packet_loss_perc(10).unwrap();
        TonePublisher {
            peer,
            session,
            mid,
            encoder,
            sent: 0,
        }
    }

    /// Sends `frames` frames of the tone, 20 ms apart.
    fn send(&mut self, frames: u64) {
        let pt = common::payload_type(&mut self.peer, self.mid, str0m::format::Codec::Opus);
        let start = Instant::now();
        for k in 0..frames {
            let i = self.sent;
            let mut pcm = [0i16; 1920];
            for s in 0..960 {
                let t = (i * 960 + s as u64) as f64 / 48_000.0;
                let v = (9000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
                pcm[2 * s] = v;
                pcm[2 * s + 1] = v;
            }
            let mut out = [0u8; 1500];
            let n = self.encoder.encode(&pcm, &mut out).unwrap();
            common::write_frame(
                &mut self.peer,
                self.mid,
                pt,
                str0m::media::MediaTime::from_micros(i * 20_000),
                out[..n].to_vec(),
            );
            self.sent += 1;
            let next = start + Duration::from_millis(20 * (k + 1));
            while Instant::now() < next {
                if !self.peer.step() {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
}

/// Checks PCM frames: size, numbering without gaps, timestamps, and the
/// tone's frequency within 2 %.
fn check_pcm(frames: &[ws_endpoint::Received], hz: f64) {
    assert!(
        frames.iter().all(|f| f.payload.len() == 3840),
        "every frame is 3,840 bytes"
    );
    for w in frames.windows(2) {
        assert_eq!(w[1].sequence_number, w[0].sequence_number + 1, "no gap");
        assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(960));
    }
    // The middle of the stream (the start is the codec's warm-up).
    let pcm: Vec<u8> = frames[frames.len() / 3..frames.len() / 3 + 50]
        .iter()
        .flat_map(|f| f.payload.clone())
        .collect();
    let found = ws_endpoint::dominant_frequency(&ws_endpoint::left_channel(&pcm), 48_000.0);
    assert!(
        (found - hz).abs() <= hz * 0.02,
        "tone at {found} Hz, want {hz}"
    );
}

#[test]
fn pcm_egress_of_an_opus_tone_with_loss_gives_fifty_frames_a_second() {
    let server = server(true);
    let api = Api::new(&server);
    let mut publisher = TonePublisher::new(&api);
    // 5 % of the publisher's packets lost on the way (RTP only).
    let mut n = 0u64;
    publisher.peer.drop_outgoing = Some(Box::new(move |d: &[u8]| {
        let rtp = d.len() > 12 && (128..192).contains(&d[0]) && !(200..=206).contains(&d[1]);
        n += u64::from(rtp);
        rtp && n % 20 == 7
    }));
    let endpoint = Endpoint::start(Behaviour::Collect, None);
    let (status, body) = new_adapters(
        &api,
        json!([{"location": "remote", "sessionId": publisher.session, "trackName": "mic",
                "endpoint": endpoint.url(), "outputCodec": "pcm"}]),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["tracks"][0]["adapterId"]
        .as_str()
        .expect("adapterId")
        .to_owned();
    assert_eq!(body["tracks"][0]["trackName"], "mic");
    assert_eq!(body["tracks"][0]["endpoint"], endpoint.url());
    publisher.send(300); // 6 s
    let frames = endpoint.received();
    let first = frames.first().expect("frames arrived").at;
    let last = frames.last().unwrap().at;
    let rate = (frames.len() - 1) as f64 / last.duration_since(first).as_secs_f64();
    assert!(frames.len() >= 250, "{} frames", frames.len());
    assert!((45.0..=55.0).contains(&rate), "{rate} frames a second");
    check_pcm(&frames, 440.0);
    assert!(metric(&server, "switchboard_adapter_concealed_frames_total ") > 0.0);
    let (status, body) = close_adapters(&api, &[&id]);
    assert_eq!(status, 200, "{body}");
    let bytes = body["tracks"][0]["bytesProcessed"]
        .as_u64()
        .expect("bytesProcessed");
    assert!(bytes >= 3840 * 250, "{bytes}");
    // Again: closed already, 200 without bytesProcessed.
    let (status, body) = close_adapters(&api, &[&id]);
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["bytesProcessed"].is_null(), "{body}");
    assert!(body["tracks"][0]["errorCode"].is_null(), "{body}");
}

#[test]
fn pcm_ingest_is_played_out_at_real_time_pace_to_a_subscriber() {
    let server = server(true);
    let api = Api::new(&server);
    // 4 s of a 440 Hz tone in 8,000-byte messages, sent at once.
    let pcm = ws_endpoint::tone_pcm(440.0, 4.0);
    let payloads: Vec<Vec<u8>> = pcm.chunks(8000).map(<[u8]>::to_vec).collect();
    let endpoint = Endpoint::start(Behaviour::Send(Arc::new(payloads)), None);
    let (status, body) = new_adapters(
        &api,
        json!([{"location": "local", "trackName": "speech", "endpoint": endpoint.url(),
                "inputCodec": "pcm", "mode": "buffer"}]),
    );
    assert_eq!(status, 200, "{body}");
    let session = body["tracks"][0]["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_owned();
    let (mut sub, _, pulled) = common::pull(
        &api,
        json!([{"location": "remote", "sessionId": session, "trackName": "speech"}]),
        &mut [],
    );
    assert!(pulled[0]["errorCode"].is_null(), "{pulled}");
    let mut decoder = opus::Decoder::new(48_000, opus::Channels::Stereo).unwrap();
    let start = Instant::now();
    drive(&mut [&mut sub], Duration::from_secs(3), |_| false);
    let elapsed = start.elapsed().as_secs_f64();
    let mut pcm_out = Vec::new();
    let mut packets = 0;
    for e in &sub.events {
        if let Event::MediaData(d) = e {
            packets += 1;
            let mut out = [0i16; 5760 * 2];
            let n = decoder.decode(&d.data, &mut out, false).unwrap();
            for v in &out[..n * 2] {
                pcm_out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }
    // Real-time pace: about 50 packets a second, not the 4 s sent at once.
    let rate = f64::from(packets) / elapsed;
    assert!(
        (40.0..=56.0).contains(&rate),
        "{packets} packets in {elapsed} s"
    );
    let left = ws_endpoint::left_channel(&pcm_out[pcm_out.len() / 2..]);
    let found = ws_endpoint::dominant_frequency(&left[..24_000.min(left.len())], 48_000.0);
    assert!((found - 440.0).abs() <= 440.0 * 0.02, "{found} Hz");
}

#[test]
fn documented_errors_and_limits() {
    let strict = server(false);
    let api = Api::new(&strict);
    let publisher = TonePublisher::new(&api);
    let local = Endpoint::start(Behaviour::Collect, None);
    // Loopback endpoint refused, by address and by name.
    for url in [
        local.url(),
        format!("ws://localhost:{}/", local.addr.port()),
    ] {
        let (status, body) = new_adapters(
            &api,
            json!([{"location": "remote", "sessionId": publisher.session, "trackName": "mic",
                    "endpoint": url, "outputCodec": "pcm"}]),
        );
        assert_eq!(status, 503, "{body}");
        assert_eq!(
            body["tracks"][0]["errorCode"], "websocket_localhost_not_allowed",
            "{body}"
        );
    }
    assert_eq!(
        metric(&strict, "switchboard_sessions "),
        1.0,
        "nothing was set up for them"
    );
    drop(api);
    let server = server(true);
    let api = Api::new(&server);
    let publisher = TonePublisher::new(&api);
    let good = Endpoint::start(Behaviour::Collect, None);
    let item = |track: &str, url: &str| {
        json!({"location": "remote", "sessionId": publisher.session, "trackName": track,
               "endpoint": url, "outputCodec": "pcm"})
    };
    // 406 for the whole request: too many items, a bad URL, a bad shape.
    let five: Vec<Value> = (0..5).map(|_| item("mic", &good.url())).collect();
    let (status, body) = new_adapters(&api, Value::Array(five));
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_params")),
        "{body}"
    );
    let (status, body) = new_adapters(&api, json!([item("mic", "http://example.com/")]));
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (406, Some("invalid_params")),
        "{body}"
    );
    // Per item: unknown track; a handshake that fails (redirect, nothing
    // listening); one that never comes; 200 because one item succeeded.
    let redirect = Endpoint::start(Behaviour::Redirect, None);
    let silent = Endpoint::start(Behaviour::Silent, None);
    let closed_port = common::cluster::free_tcp_port();
    let started = Instant::now();
    let (status, body) = new_adapters(
        &api,
        json!([
            item("nope", &good.url()),
            item("mic", &redirect.url()),
            item("mic", &silent.url()),
            item("mic", &format!("ws://127.0.0.1:{closed_port}/")),
        ]),
    );
    assert_eq!(status, 503, "{body}");
    let codes: Vec<&str> = body["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["errorCode"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        [
            "not_found_track_error",
            "websocket_handshake_failed",
            "websocket_connection_timeout",
            "websocket_handshake_failed"
        ],
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "items are set up together"
    );
    let (status, body) = new_adapters(
        &api,
        json!([item("mic", &good.url()), item("nope", &good.url())]),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["tracks"][0]["adapterId"].as_str().unwrap().to_owned();
    // A video codec for an audio track.
    let (status, body) = new_adapters(
        &api,
        json!([{"location": "remote", "sessionId": publisher.session, "trackName": "mic",
                "endpoint": good.url(), "outputCodec": "jpeg"}]),
    );
    assert_eq!(
        (status, body["tracks"][0]["errorCode"].as_str()),
        (503, Some("invalid_params")),
        "{body}"
    );
    // Close: unknown id; another app's id is unknown too; then the limit.
    let (status, body) = close_adapters(&api, &["0123"]);
    assert_eq!(
        (status, body["tracks"][0]["errorCode"].as_str()),
        (503, Some("adapter_not_found")),
        "{body}"
    );
    let (status, body) = close_adapters(&api, &[&id, "0123"]);
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["bytesProcessed"].is_u64(), "{body}");
    assert_eq!(body["tracks"][1]["errorCode"], "adapter_not_found");
    let mut ids = Vec::new();
    for _ in 0..2 {
        let items: Vec<Value> = (0..4).map(|_| item("mic", &good.url())).collect();
        let (status, body) = new_adapters(&api, Value::Array(items));
        assert_eq!(status, 200, "{body}");
        ids.extend(
            body["tracks"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["adapterId"].as_str().unwrap().to_owned()),
        );
    }
    let (status, body) = new_adapters(&api, json!([item("mic", &good.url())]));
    assert_eq!(
        (status, body["tracks"][0]["errorCode"].as_str()),
        (503, Some("temporarily_unavailable_error")),
        "{body}"
    );
    // Bearer auth per app.
    let (status, _) = api.call_with(
        "POST",
        &format!("{}/adapters/websocket/new", api.base),
        Some("wrong"),
        Some(&json!({"tracks": [item("mic", &good.url())]}).to_string()),
    );
    assert_eq!(status, 401);
    for chunk in ids.chunks(4) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        assert_eq!(close_adapters(&api, &refs).0, 200);
    }
    assert_eq!(
        metric(&server, "switchboard_adapters{kind=\"pcm_egress\"} "),
        0.0
    );
}

#[test]
fn egress_reconnects_a_stuck_endpoint_is_closed_and_garbage_ends_ingest() {
    let server = server(true);
    let api = Api::new(&server);
    let mut publisher = TonePublisher::new(&api);
    let item = |url: String| {
        json!([{"location": "remote", "sessionId": publisher.session, "trackName": "mic",
                "endpoint": url, "outputCodec": "pcm"}])
    };
    let flaky = Endpoint::start(Behaviour::CloseAfter(20), None);
    let stuck = Endpoint::start(Behaviour::Stuck, Some(4096));
    let (s1, b1) = new_adapters(&api, item(flaky.url()));
    let (s2, b2) = new_adapters(&api, item(stuck.url()));
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    let garbage = Endpoint::start(Behaviour::Garbage, None);
    let (s3, b3) = new_adapters(
        &api,
        json!([{"location": "local", "trackName": "junk", "endpoint": garbage.url(), "inputCodec": "pcm"}]),
    );
    assert_eq!(s3, 200, "{b3}");
    publisher.send(1000); // 20 s
    // The flaky endpoint's second connection got frames again.
    assert!(flaky.connections.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    assert!(flaky.received().len() > 200, "{}", flaky.received().len());
    assert!(metric(&server, "switchboard_adapter_reconnects_total ") >= 1.0);
    assert_eq!(
        metric(
            &server,
            "switchboard_adapters_closed_total{reason=\"stuck\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(
            &server,
            "switchboard_adapters_closed_total{reason=\"garbage\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(&server, "switchboard_adapters{kind=\"pcm_egress\"} "),
        1.0
    );
    // The garbage adapter's session is gone with it.
    assert_eq!(
        api.call(
            "GET",
            &format!(
                "/sessions/{}",
                b3["tracks"][0]["sessionId"].as_str().unwrap()
            ),
            None
        )
        .0,
        410
    );
}

#[test]
fn an_egress_adapter_whose_publisher_leaves_closes() {
    let server = server(true);
    let api = Api::new(&server);
    let mut publisher = TonePublisher::new(&api);
    let endpoint = Endpoint::start(Behaviour::Collect, None);
    let (status, body) = new_adapters(
        &api,
        json!([{"location": "remote", "sessionId": publisher.session, "trackName": "mic",
                "endpoint": endpoint.url(), "outputCodec": "pcm"}]),
    );
    assert_eq!(status, 200, "{body}");
    let id = body["tracks"][0]["adapterId"].as_str().unwrap().to_owned();
    publisher.send(50);
    let (status, closed) = api.call(
        "PUT",
        &format!("/sessions/{}/tracks/close", publisher.session),
        Some(&json!({"tracks": [{"mid": publisher.mid.to_string()}], "force": true}).to_string()),
    );
    assert_eq!(status, 200, "{closed}");
    publisher.send(200); // 4 s
    assert_eq!(
        metric(
            &server,
            "switchboard_adapters_closed_total{reason=\"media_gone\"} "
        ),
        1.0
    );
    assert_eq!(
        metric(&server, "switchboard_adapters{kind=\"pcm_egress\"} "),
        0.0
    );
    // Closing it now answers as for any closed adapter.
    let (status, body) = close_adapters(&api, &[&id]);
    assert_eq!(status, 200, "{body}");
    assert!(body["tracks"][0]["bytesProcessed"].is_null(), "{body}");
    assert_eq!(
        metric(&server, "switchboard_sessions "),
        1.0,
        "the adapter's session ended"
    );
}
