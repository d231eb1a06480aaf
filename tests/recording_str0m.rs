//! Recordings of an independent WebRTC stack's publisher (str0m) sending
//! real H.264 High frames made by libx264 (tests/data), checked with
//! ffprobe and ffmpeg; the API's answers to bad requests and past its
//! limits; a recording that outlives its server's SIGTERM (the file is
//! finished and plays); a full disk and a directory removed under a
//! recording (reported, the server and the next recording go on).
//!
//! Run with `tools/test`, or `cargo test --test recording_str0m` once
//! ffmpeg is installed (and as root, for the tmpfs of the full-disk case).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::binary::{exit_within, start_binary};
use common::media::{decode_errors, ffprobe};
use common::{Api, Peer, drive, payload_type, push_one, terminate, write_frame};
use serde_json::{Value, json};
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid};
use switchboard::config::Config;
use switchboard::server::Server;

/// H.264 High, level 3.1, packetization mode 1.
const HIGH: u32 = 0x64001f;

fn high_peer(name: &'static str) -> Peer {
    Peer::with_codecs(name, |mut c| {
        c.codec_config().add_h264(100.into(), None, true, HIGH);
        c
    })
}

/// The fixture's 30 access units (Annex B), each with its NAL units.
fn access_units() -> Vec<Vec<u8>> {
    let stream = std::fs::read(format!(
        "{}/tests/data/h264-high-160x120.h264",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 4 <= stream.len() {
        if stream[i..i + 4] == [0, 0, 0, 1] || stream[i..i + 3] == [0, 0, 1] {
            let len = if stream[i + 2] == 1 { 3 } else { 4 };
            starts.push((i, len));
            i += len;
        } else {
            i += 1;
        }
    }
    let mut frames = Vec::new();
    let mut current = Vec::new();
    for (n, &(s, len)) in starts.iter().enumerate() {
        let end = starts.get(n + 1).map_or(stream.len(), |&(e, _)| e);
        let unit = &stream[s + len..end];
        current.extend_from_slice(&[0, 0, 0, 1]);
        current.extend_from_slice(unit);
        if matches!(unit[0] & 0x1f, 1 | 5) {
            frames.push(std::mem::take(&mut current));
        }
    }
    assert_eq!(frames.len(), 30);
    frames
}

/// A connected H.264 High publisher of track `cam`: peer, session, mid.
fn publisher(api: &Api) -> (Peer, String, Mid) {
    let mut a = high_peer("publisher");
    let (session, mid, _) = push_one(api, &mut a, MediaKind::Video, "cam", |o| o);
    assert!(drive(&mut [&mut a], Duration::from_secs(10), |p| p[0].connected));
    (a, session, mid)
}

/// Sends frames `from..to` of the looped fixture at 15 fps.
fn send(peer: &mut Peer, mid: Mid, frames: &[Vec<u8>], range: std::ops::Range<u64>) {
    let pt = payload_type(peer, mid, Codec::H264);
    for i in range {
        let t = MediaTime::from_micros(i * 66_667);
        write_frame(peer, mid, pt, t, frames[(i % 30) as usize].clone());
        drive(&mut [&mut *peer], Duration::from_millis(66), |_| false);
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchboard-rec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn server_into(dir: &Path, tweak: impl FnOnce(&mut Config)) -> Server {
    let mut config = Config::loopback(2);
    config.recordings.dir = dir.to_path_buf();
    tweak(&mut config);
    Server::start(config).expect("server starts")
}

fn start(api: &Api, body: Value) -> (u16, Value) {
    api.call("POST", "/recordings/new", Some(&body.to_string()))
}

/// Checks a recorded H.264 High file: one stream, High profile, 160x120,
/// at least `min_frames` frames, every one decodes.
fn check_high(path: &Path, min_frames: u64) -> Value {
    let p = ffprobe(path, true);
    let s = &p["streams"][0];
    assert_eq!(p["streams"].as_array().map(Vec::len), Some(1), "{p}");
    assert_eq!(s["codec_name"], "h264", "{p}");
    assert_eq!(s["profile"], "High", "{p}");
    assert_eq!(
        (s["width"].as_u64(), s["height"].as_u64()),
        (Some(160), Some(120)),
        "{p}"
    );
    let frames: u64 = s["nb_read_frames"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(frames >= min_frames, "{frames} frames: {p}");
    let errors = decode_errors(path);
    assert!(errors.is_empty(), "{}: {errors}", path.display());
    p
}

#[test]
fn h264_high_frames_from_str0m_are_recorded_in_matroska() {
    let dir = temp_dir("high");
    let server = server_into(&dir, |_| {});
    let api = Api::new(&server);
    let (mut a, session, mid) = publisher(&api);
    let frames = access_units();
    send(&mut a, mid, &frames, 0..10);
    let (status, r) = start(
        &api,
        json!({"tracks": [{"sessionId": session, "trackName": "cam"}], "container": "mkv"}),
    );
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "recording");
    let id = r["recordingId"].as_str().unwrap().to_owned();
    // 90 frames: the recording starts at the fixture's next IDR (frame 30).
    send(&mut a, mid, &frames, 10..100);
    let (status, closed) = api.call("POST", &format!("/recordings/{id}/close"), None);
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["state"], "closed", "{closed}");
    let file = &closed["files"][0];
    let path = dir.join(file["path"].as_str().unwrap());
    let p = check_high(&path, 65);
    let duration: f64 = p["format"]["duration"].as_str().unwrap().parse().unwrap();
    let api_ms = file["durationMs"].as_f64().unwrap();
    assert!(
        (duration * 1000.0 - api_ms).abs() <= 200.0,
        "{duration} s vs {api_ms} ms"
    );
    // GET answers the same; the list has it.
    let (status, got) = api.call("GET", &format!("/recordings/{id}"), None);
    assert_eq!((status, &got["files"]), (200, &closed["files"]), "{got}");
    let (_, list) = api.call("GET", "/recordings", None);
    assert_eq!(list["recordings"][0]["recordingId"], id.as_str(), "{list}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bad_requests_get_the_documented_errors_and_limits_hold() {
    let dir = temp_dir("errors");
    let server = server_into(&dir, |c| {
        c.recordings.max_per_app = 1;
    });
    let api = Api::new(&server);
    let (mut a, session, _mid) = publisher(&api);
    let track = json!({"sessionId": session, "trackName": "cam"});
    let cases = [
        (
            json!({"tracks": [track], "container": "avi"}),
            406,
            "invalid_params",
        ),
        (
            json!({"tracks": [], "container": "mkv"}),
            406,
            "invalid_params",
        ),
        (
            json!({"tracks": (0..17).map(|i| json!({"sessionId": session, "trackName": format!("t{i}")})).collect::<Vec<_>>(), "container": "mkv"}),
            406,
            "invalid_params",
        ),
        (
            json!({"tracks": [track], "container": "mkv", "segmentSeconds": 1}),
            406,
            "invalid_params",
        ),
        (
            json!({"tracks": [track], "container": "mkv", "segmentSeconds": 86_401}),
            406,
            "invalid_params",
        ),
        (
            json!({"tracks": [track, track], "container": "mkv"}),
            406,
            "invalid_params",
        ),
        (
            json!({"tracks": [track], "container": "mkv", "bitrate": 1}),
            400,
            "decoding_error",
        ),
        (json!({"tracks": "cam"}), 400, "decoding_error"),
        // H.264 cannot go in WebM; an unknown track is not found.
        (json!({"tracks": [track]}), 404, "not_found"),
        (
            json!({"tracks": [{"sessionId": session, "trackName": "nope"}], "container": "mkv"}),
            404,
            "not_found",
        ),
        (
            json!({"tracks": [{"sessionId": "0".repeat(32), "trackName": "cam"}], "container": "mkv"}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        let (got, r) = start(&api, body.clone());
        assert_eq!(
            (got, r["errorCode"].as_str()),
            (status, Some(code)),
            "{body} → {r}"
        );
    }
    // One item not found beside one that is: recorded, the item's error given.
    let (status, r) = start(
        &api,
        json!({"tracks": [track, {"sessionId": session, "trackName": "nope"}], "container": "mkv"}),
    );
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["tracks"][1]["errorCode"], "not_found_track_error", "{r}");
    assert!(r["tracks"][0]["errorCode"].is_null(), "{r}");
    // The app's limit (1 here): the next is refused while this one records.
    let (status, refused) = start(&api, json!({"tracks": [track], "container": "mkv"}));
    assert_eq!(
        (status, refused["errorCode"].as_str()),
        (503, Some("temporarily_unavailable_error")),
        "{refused}"
    );
    let id = r["recordingId"].as_str().unwrap();
    let (status, _) = api.call("POST", &format!("/recordings/{id}/close"), None);
    assert_eq!(status, 200);
    // Closed, it no longer counts; closing again answers the same.
    let (status, again) = api.call("POST", &format!("/recordings/{id}/close"), None);
    assert_eq!(
        (status, again["state"].as_str()),
        (200, Some("closed")),
        "{again}"
    );
    let (status, r2) = start(&api, json!({"tracks": [track], "container": "mkv"}));
    assert_eq!(status, 201, "{r2}");
    // Unknown ids and the wrong secret.
    for path in ["/recordings/nope", "/recordings/nope/close"] {
        let method = if path.ends_with("close") {
            "POST"
        } else {
            "GET"
        };
        let (status, r) = api.call(method, path, None);
        assert_eq!(
            (status, r["errorCode"].as_str()),
            (404, Some("not_found")),
            "{path} {r}"
        );
    }
    let (status, _) = api.call_with(
        "GET",
        &format!("{}/recordings", api.base),
        Some("wrong"),
        None,
    );
    assert_eq!(status, 401);
    drive(&mut [&mut a], Duration::from_millis(100), |_| false);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigterm_finishes_the_files_of_running_recordings() {
    let dir = temp_dir("sigterm");
    let dir_arg = dir.to_string_lossy().to_string();
    let (mut child, base, secret) = start_binary(1, &["--recordings-dir", &dir_arg]);
    let host = base.split("/v1/").next().unwrap().to_owned();
    let app = base.rsplit('/').next().unwrap().to_owned();
    let api = Api::at(&host, &app, &secret);
    let (mut a, session, mid) = publisher(&api);
    let frames = access_units();
    let (status, r) = start(
        &api,
        json!({"tracks": [{"sessionId": session, "trackName": "cam"}], "container": "mkv"}),
    );
    assert_eq!(status, 201, "{r}");
    send(&mut a, mid, &frames, 0..60);
    terminate(&child);
    // The publisher keeps sending while the server drains (1 s).
    let t0 = Instant::now();
    let pt = payload_type(&mut a, mid, Codec::H264);
    let mut i = 60u64;
    while t0.elapsed() < Duration::from_millis(800) {
        write_frame(
            &mut a,
            mid,
            pt,
            MediaTime::from_micros(i * 66_667),
            frames[(i % 30) as usize].clone(),
        );
        drive(&mut [&mut a], Duration::from_millis(66), |_| false);
        i += 1;
    }
    let (code, _) = exit_within(&mut child, Duration::from_secs(15));
    assert_eq!(code, Some(0));
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    // Finished: Cues written (ffprobe reads the whole file), every frame decodes.
    check_high(&files[0], 40);
    let _ = std::fs::remove_dir_all(dir);
}

/// Mounts a tmpfs of `kib` KiB at `dir` (root only).
fn mount_tmpfs(dir: &Path, kib: u32) {
    std::fs::create_dir_all(dir).unwrap();
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
        .arg(dir)
        .status()
        .expect("mount runs");
    assert!(
        status.success(),
        "mount a tmpfs at {} (this test needs root)",
        dir.display()
    );
}

fn wait_state(api: &Api, id: &str, want: &str, limit: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let (_, r) = api.call("GET", &format!("/recordings/{id}"), None);
        if r["state"] == want || t0.elapsed() > limit {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_full_disk_and_a_removed_directory_are_reported_and_the_server_goes_on() {
    let dir = temp_dir("disk");
    mount_tmpfs(&dir, 64);
    let server = server_into(&dir, |_| {});
    let api = Api::new(&server);
    let (mut a, session, mid) = publisher(&api);
    let frames = access_units();
    let track = json!({"tracks": [{"sessionId": session, "trackName": "cam"}], "container": "mkv"});
    // Leave 8 KiB: the first second of frames fills it.
    let filler = dir.join("filler");
    std::fs::write(&filler, vec![0u8; 56 * 1024]).ok();
    let (status, r) = start(&api, track.clone());
    assert_eq!(status, 201, "{r}");
    let full = r["recordingId"].as_str().unwrap().to_owned();
    send(&mut a, mid, &frames, 0..75);
    let failed = wait_state(&api, &full, "failed", Duration::from_secs(5));
    assert_eq!(failed["state"], "failed", "{failed}");
    assert!(
        failed["reason"]
            .as_str()
            .unwrap_or("")
            .contains("disk is full"),
        "{failed}"
    );
    // The metrics say so; the server goes on: space made, a new recording works.
    let metrics = ureq::get(&format!("http://{}/metrics", server.http_addr))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(
        metrics.contains("switchboard_recordings{state=\"failed\"} 1"),
        "{metrics}"
    );
    std::fs::remove_file(&filler).unwrap();
    for f in std::fs::read_dir(&dir).unwrap() {
        let _ = std::fs::remove_file(f.unwrap().path());
    }
    let (status, r) = start(&api, track.clone());
    assert_eq!(status, 201, "{r}");
    let next = r["recordingId"].as_str().unwrap().to_owned();
    send(&mut a, mid, &frames, 75..120);
    let (status, closed) = api.call("POST", &format!("/recordings/{next}/close"), None);
    assert_eq!(
        (status, closed["state"].as_str()),
        (200, Some("closed")),
        "{closed}"
    );
    check_high(&dir.join(closed["files"][0]["path"].as_str().unwrap()), 10);
    let _ = Command::new("umount").arg(&dir).status();
    let _ = std::fs::remove_dir_all(&dir);

    // A directory removed under a recording.
    let (status, r) = start(&api, track.clone());
    assert_eq!(status, 201, "{r}");
    let removed = r["recordingId"].as_str().unwrap().to_owned();
    send(&mut a, mid, &frames, 120..165);
    std::fs::remove_dir_all(&dir).unwrap();
    send(&mut a, mid, &frames, 165..195);
    let failed = wait_state(&api, &removed, "failed", Duration::from_secs(5));
    assert!(
        failed["reason"].as_str().unwrap_or("").contains("removed"),
        "{failed}"
    );
    // The next recording makes the directory again.
    let (status, r) = start(&api, track);
    assert_eq!(status, 201, "{r}");
    send(&mut a, mid, &frames, 195..240);
    let id = r["recordingId"].as_str().unwrap();
    let (_, closed) = api.call("POST", &format!("/recordings/{id}/close"), None);
    check_high(&dir.join(closed["files"][0]["path"].as_str().unwrap()), 10);
    let _ = std::fs::remove_dir_all(dir);
}
