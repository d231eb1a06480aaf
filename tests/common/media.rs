//! Independent readers of what the recorder writes: Debian's `ffprobe`
//! (format, streams, packets) and `ffmpeg` (decoding every frame).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `ffprobe`'s JSON for a file: format and streams (with `count`, the
/// frames read, per stream: `nb_read_frames`).
pub fn ffprobe(path: &Path, count: bool) -> Value {
    let mut cmd = Command::new("ffprobe");
    cmd.args([
        "-v",
        "error",
        "-show_format",
        "-show_streams",
        "-of",
        "json",
    ]);
    if count {
        cmd.arg("-count_frames");
    }
    let out = cmd
        .arg(path)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe JSON")
}

/// What `ffmpeg` says when it decodes every frame of every stream of a
/// file: nothing when all is well.
pub fn decode_errors(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs (apt-get install ffmpeg)");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// The first video stream's packets: time (s) and whether a keyframe.
pub fn video_packets(path: &Path) -> Vec<(f64, bool)> {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs (apt-get install ffmpeg)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut fields = l.split(',');
            let time = fields.next()?.trim().parse().ok()?;
            Some((time, fields.next().is_some_and(|f| f.starts_with('K'))))
        })
        .collect()
}

/// A number ffprobe gives as a string.
pub fn seconds(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}
