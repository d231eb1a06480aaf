//! A recording through a lossy network: Chromium publishes VP8 and Opus in
//! a network namespace that drops 5 % of the datagrams from and to the
//! media port (nftables, see tests/netns), and the server records them
//! (tests/browser/recording.mjs, case `vp8`). The engine asks the
//! publisher to resend what it lost (NACK) and the recorder waits for the
//! repairs: the file decodes without an error (ffmpeg) and fewer than 1 %
//! of its frames are missing (gaps in the video timestamps).
//!
//! Needs root, nftables, Chromium, ffmpeg and tests/browser/node_modules:
//! tools/test installs them. Without them the test fails, it does not skip.

mod common;
mod netns;

use common::media::{decode_errors, video_packets};

use std::path::PathBuf;

const MEDIA_PORT: u16 = 40000;

#[test]
fn a_recording_through_five_percent_loss_each_way_decodes_with_under_one_percent_missing() {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-recording-lossy-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let flags = [
        "--recordings-dir".to_string(),
        dir.to_string_lossy().to_string(),
    ];
    let (result, logs) = netns::run_api_script(
        "recording.mjs",
        &["vp8"],
        &|ns: &netns::Netns| ns.drop_percent(MEDIA_PORT, 5),
        &flags,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let r = &result["scenarios"][0];
    let file = &r["closed"]["files"][0];
    let path: PathBuf = dir.join(
        file["path"]
            .as_str()
            .unwrap_or_else(|| panic!("{result}\n{logs}")),
    );
    let errors = decode_errors(&path);
    assert!(errors.is_empty(), "decoding {}: {errors}", path.display());
    let times: Vec<f64> = video_packets(&path).into_iter().map(|(t, _)| t).collect();
    assert!(times.len() > 100, "{} frames: {r}", times.len());
    let mut gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let typical = gaps[gaps.len() / 2];
    // A gap of n typical intervals is n - 1 frames missing.
    let missing: f64 = times
        .windows(2)
        .map(|w| ((w[1] - w[0]) / typical).round() - 1.0)
        .filter(|m| *m > 0.0)
        .sum();
    let dropped = &r["closed"]["dropped"];
    eprintln!(
        "{} frames, {} missing (typical interval {typical} s); dropped {dropped}; encoded {}",
        times.len(),
        missing as u64,
        r["framesEncoded"]
    );
    assert!(
        missing < 0.01 * times.len() as f64,
        "{missing} of {} frames missing; dropped {dropped}\n{logs}",
        times.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}
