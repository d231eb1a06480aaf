//! Recordings of real Chromium publishers, checked by tools no one here
//! wrote: `ffprobe` reads each file (streams, codecs, duration, start
//! times), `ffmpeg -f null` decodes every frame, which must give no
//! error, and Chromium plays each WebM file in a `<video>` and seeks in it
//! (tests/browser/play-file.mjs). Cases (tests/browser/recording.mjs): VP8, VP9 and AV1 with Opus
//! in WebM, H.264 with Opus in Matroska, 10 s each; files of 5 s that
//! follow each other without a gap, each starting with a keyframe; a
//! simulcast publisher, recorded at its best layer; a publisher that
//! renegotiates and restarts ICE mid-recording; one whose tracks close and
//! one that vanishes, which end the recording with its file finished.
//!
//! Run with `tools/test`, or `cargo test --test recording_chromium` once
//! Chromium, ffmpeg and tests/browser/node_modules are installed; without
//! them this test fails, it does not skip.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use switchboard::config::Config;
use switchboard::server::Server;

use common::browser::{run_api_script, run_node};
use common::media::{decode_errors, ffprobe, seconds, video_packets};

/// A browser takes both cores: one case at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs case `name` against a server recording into a fresh directory;
/// returns the case's result and the directory.
fn case(name: &str) -> (Value, PathBuf) {
    case_with(name, |_| {})
}

fn case_with(name: &str, tweak: impl FnOnce(&mut Config)) -> (Value, PathBuf) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = std::env::temp_dir().join(format!(
        "switchboard-recording-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::loopback(2);
    config.recordings.dir = dir.clone();
    tweak(&mut config);
    let server = Server::start(config).expect("server starts");
    let (result, log) = run_api_script("recording.mjs", &server, &[name]);
    server.shutdown();
    let found = result["scenarios"][0].clone();
    let pretty = serde_json::to_string_pretty(&result).unwrap_or_default();
    assert!(
        result["ok"] == true && found["ok"] == true,
        "{name} failed\n--- result ---\n{pretty}\n--- page log ---\n{log}"
    );
    eprintln!("{pretty}");
    (found, dir)
}

/// Checks one file: a video stream of `video` and an Opus stream, starting
/// within 40 ms of each other; every frame decodes. Returns the duration
/// ffprobe gives, in seconds, and the video frames decoded.
fn check_file(path: &Path, video: &str, entry: &Value) -> (f64, u64) {
    let p = ffprobe(path, false);
    let streams = p["streams"].as_array().expect("streams");
    let codecs: Vec<&str> = streams
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert_eq!(codecs, [video, "opus"], "{}: {p}", path.display());
    let starts: Vec<f64> = streams.iter().map(|s| seconds(&s["start_time"])).collect();
    assert!(
        (starts[0] - starts[1]).abs() <= 0.040,
        "audio and video start {starts:?} apart: {p}"
    );
    let duration = seconds(&p["format"]["duration"]);
    let api = entry["durationMs"].as_f64().unwrap_or(f64::NAN) / 1000.0;
    assert!(
        (duration - api).abs() <= 0.2,
        "ffprobe says {duration} s, the API {api} s"
    );
    assert_eq!(
        entry["bytes"].as_u64(),
        Some(std::fs::metadata(path).unwrap().len()),
        "the API's size"
    );
    let errors = decode_errors(path);
    assert!(errors.is_empty(), "{}: decoding: {errors}", path.display());
    let packets = video_packets(path);
    assert!(
        packets.first().is_some_and(|p| p.1),
        "{}: starts at a keyframe",
        path.display()
    );
    let frames = packets.len() as u64;
    eprintln!(
        "{}: {frames} video frames, {duration} s\n{p}",
        path.display()
    );
    (duration, frames)
}

/// Every frame the publisher encoded while recording is in the files, but
/// those before the first keyframe (the request's round trip) and those
/// lost (under 1 %).
fn check_frames(frames: u64, r: &Value) {
    let encoded = r["framesEncoded"].as_u64().expect("framesEncoded");
    let missing = encoded.saturating_sub(frames);
    assert!(
        missing <= encoded / 100 + 6,
        "{frames} frames written of {encoded} encoded"
    );
}

/// Checks a case that made one file: `video` and Opus, every frame of
/// those the publisher encoded (but the first keyframe's wait), its
/// duration within 0.2 s of the time from its start (`startedAt`, the
/// first keyframe's capture) to the end of the recording. The answer is
/// `closed` or, when the recording ended itself, `ended`.
fn one_file(r: &Value, dir: &Path, video: &str) {
    let answer = if r["closed"].is_null() {
        &r["ended"]
    } else {
        &r["closed"]
    };
    assert_eq!(answer["state"], "closed", "{r}");
    let files = answer["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{r}");
    let path = dir.join(files[0]["path"].as_str().unwrap());
    let (duration, frames) = check_file(&path, video, &files[0]);
    check_frames(frames, r);
    if path.extension().is_some_and(|e| e == "webm") {
        plays_in_chromium(&path, duration);
    }
    let recorded = r["recordedMs"].as_f64().unwrap() / 1000.0;
    let covered =
        (r["endedAt"].as_f64().unwrap() - files[0]["startedAt"].as_f64().unwrap()) / 1000.0;
    assert!(
        (duration - covered).abs() <= 0.2 && recorded - covered < 0.5,
        "the file holds {duration} s of the {covered} s from its start to the end ({recorded} s recorded)"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// One file of about the 10 s recorded.
fn single(name: &str, video: &str) {
    let (r, dir) = case(name);
    one_file(&r, &dir, video);
}

/// Chromium plays a recorded WebM file in a `<video>`: its duration, its
/// picture, playing on and seeking near the end (through the Cues).
fn plays_in_chromium(path: &Path, duration: f64) {
    let file = path.to_string_lossy();
    let (ok, stdout, stderr) = run_node("play-file.mjs", &[&file]);
    let r: Value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    assert!(ok && r["ok"] == true, "{file}: {stdout}\n{stderr}");
    eprintln!("Chromium plays {file}: {r}");
    assert!(
        (r["duration"].as_f64().unwrap_or(0.0) - duration).abs() < 0.3,
        "{r}"
    );
    assert!(
        r["width"].as_u64() > Some(0) && r["framesDecoded"].as_u64() > Some(30),
        "{r}"
    );
    assert!(r["playedTo"].as_f64() > Some(1.0), "it plays: {r}");
    assert!(
        r["seekedTo"].as_f64() > Some(duration - 1.5),
        "it seeks: {r}"
    );
}

#[test]
fn vp8_and_opus_in_webm() {
    single("vp8", "vp8");
}

#[test]
fn vp9_and_opus_in_webm() {
    single("vp9", "vp9");
}

#[test]
fn av1_and_opus_in_webm() {
    single("av1", "av1");
}

#[test]
fn h264_and_opus_in_matroska() {
    single("h264", "h264");
}

#[test]
fn segments_follow_each_other_without_a_gap_each_from_a_keyframe() {
    let (r, dir) = case("segments");
    let files = r["closed"]["files"].as_array().expect("files").clone();
    assert!(files.len() >= 2, "{r}");
    let names: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "file names sort by time");
    let (mut total, mut frames) = (0.0, 0);
    for f in &files {
        let path = dir.join(f["path"].as_str().unwrap());
        let (d, n) = check_file(&path, "vp8", f);
        total += d;
        frames += n;
    }
    let recorded = r["recordedMs"].as_f64().unwrap() / 1000.0;
    // No gap: the files add up to what was recorded (each file's last
    // frame lasts into the next file's first).
    assert!(
        (total - recorded).abs() <= 0.3,
        "files hold {total} s of {recorded} s"
    );
    check_frames(frames, &r);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_publisher_that_renegotiates_and_restarts_ice_is_recorded_throughout() {
    let (r, dir) = case("renegotiate");
    assert_eq!(r["during"][0]["state"], "recording", "{r}");
    one_file(&r, &dir, "vp8");
}

fn ends_when_the_publisher_leaves(name: &str, tweak: impl FnOnce(&mut Config)) {
    let (r, dir) = case_with(name, tweak);
    one_file(&r, &dir, "vp8");
}

#[test]
fn a_publisher_whose_tracks_close_ends_the_recording_with_a_finished_file() {
    ends_when_the_publisher_leaves("tracks-closed", |_| {});
}

#[test]
fn a_publisher_that_vanishes_ends_the_recording_with_a_finished_file() {
    // Consent lost after 3 s, the session gone 30 s later.
    ends_when_the_publisher_leaves("publisher-vanishes", |c| {
        c.limits.consent_timeout = std::time::Duration::from_secs(3)
    });
}

#[test]
fn a_simulcast_track_is_recorded_at_its_best_layer() {
    let (r, dir) = case("simulcast");
    let files = r["closed"]["files"].as_array().expect("files").clone();
    let path = dir.join(files[0]["path"].as_str().unwrap());
    let p = ffprobe(&path, false);
    let s = &p["streams"][0];
    assert_eq!(
        (s["codec_name"].as_str(), s["width"].as_u64()),
        (Some("vp8"), r["encodings"]["f"]["width"].as_u64()),
        "the f layer's width: {p}\n{r}"
    );
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "{}: {errors}", path.display());
    check_frames(video_packets(&path).len() as u64, &r);
    let _ = std::fs::remove_dir_all(dir);
}
