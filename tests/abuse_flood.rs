//! One tenant's session flood must not stop another tenant's media: app B
//! gets thousands of `sessions/new` that never connect and then expire,
//! while a publisher and a subscriber (str0m) of app A forward audio. A's
//! media never stops, its tracks stay active, and A's API keeps answering
//! quickly, during the flood and during the expiry burst.
//!
//! The finding this guards: expiry re-synced the whole app per removed
//! session (O(N²)) and stalled the control thread for 24–37 s; liveness
//! was then judged before the queued checks and media were handled, so A's
//! healthy sessions lost consent and their tracks went inactive for good.
//! Here the never-connected timeout is 2 s so that the expiry happens
//! inside the test.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Api, AudioPair, audio_pair, drive, payload_type, received, write_frame};
use str0m::media::MediaTime;
use switchboard::config::{AppConfig, Config};
use switchboard::ids::{hex, random_bytes};
use switchboard::server::Server;

#[test]
fn a_session_flood_in_one_app_does_not_stop_another_apps_media() {
    let mut config = Config::loopback(2);
    let app_b = AppConfig {
        id: hex(&random_bytes::<16>()),
        secret: hex(&random_bytes::<32>()),
    };
    config.apps.push(app_b.clone());
    config.limits.never_connected_timeout = Duration::from_secs(2);
    let server = Server::start(config).expect("server starts");
    let api = Api::new(&server);

    let AudioPair {
        publisher: mut a,
        publisher_session: publisher,
        mid,
        subscriber: mut c,
        subscriber_session: subscriber,
        sub_mid: c_mid,
    } = audio_pair(&api);

    // The flood: sessions/new into app B as fast as one client can, for 3 s.
    let created = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let mut b = Api::new(&server);
        b.base = format!("http://{}/v1/apps/{}", server.http_addr, app_b.id);
        b.secret = app_b.secret.clone();
        let (created, stop) = (created.clone(), stop.clone());
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(3);
            let mut first = None;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                let (status, body) = b.call("POST", "/sessions/new", None);
                if status == 201 {
                    created.fetch_add(1, Ordering::Relaxed);
                    first.get_or_insert(body["sessionId"].as_str().unwrap_or_default().to_owned());
                }
            }
            (b, first.unwrap_or_default())
        })
    };

    // Meanwhile A sends 20 ms audio frames for 7 s (the flood, then its
    // expiry 2 s later), and A's API is asked every 100 ms.
    let pt = payload_type(&mut a, mid, str0m::format::Codec::Opus);
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut next_call = start;
    let frames = 350u64;
    for i in 0..frames {
        let frame = [&b"flood"[..], &i.to_be_bytes()].concat();
        let t = MediaTime::from_micros(i * 20_000);
        write_frame(&mut a, mid, pt, t, frame);
        let due = start + Duration::from_millis(20 * (i + 1));
        drive(
            &mut [&mut a, &mut c],
            due.saturating_duration_since(Instant::now()),
            |_| false,
        );
        if Instant::now() >= next_call {
            next_call += Duration::from_millis(100);
            let t = Instant::now();
            let (status, _) = api.call("GET", &format!("/sessions/{subscriber}"), None);
            latencies.push(t.elapsed());
            assert_eq!(status, 200);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (b, first_flooded) = flood.join().unwrap();
    drive(&mut [&mut a, &mut c], Duration::from_millis(300), |_| false);

    let flooded = created.load(Ordering::Relaxed);
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let got = received(&c, c_mid, b"flood");
    eprintln!(
        "{flooded} sessions created in app B; app A: {got} of {frames} frames, API p99 {p99:?} (max {:?}) over {} calls",
        latencies.last().unwrap(),
        latencies.len()
    );
    assert!(flooded >= 200, "the flood ran: {flooded}");
    assert!(
        got as u64 >= frames * 95 / 100,
        "A's media kept flowing: {got} of {frames}"
    );
    assert!(p99 < Duration::from_millis(50), "A's API p99 {p99:?}");
    for session in [&publisher, &subscriber] {
        let get = api.get_session(session);
        assert_eq!(get["tracks"][0]["status"], "active", "{get}");
    }
    // B's sessions expired (2 s after their creation).
    let (status, body) = b.call("GET", &format!("/sessions/{first_flooded}"), None);
    assert_eq!(status, 410, "{body}");
}
