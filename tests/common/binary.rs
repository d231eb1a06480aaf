//! The switchboard binary as a user runs it: started on loopback with
//! flags, its API read from what it prints, and its exit awaited.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary on loopback; its API base URL (read from what it prints).
/// `extra` flags are added; stderr is piped (a few lines: it never fills).
pub fn start_binary(drain_seconds: u64, extra: &[&str]) -> (std::process::Child, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "--http-bind",
            "127.0.0.1:0",
            "--media-bind",
            "127.0.0.1:0",
            "--announce-ip",
            "127.0.0.1",
            "--workers",
            "1",
            "--no-pin",
            "--no-demo",
            "--drain-seconds",
            &drain_seconds.to_string(),
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut base, mut secret) = (String::new(), String::new());
    for line in stdout.lines().map_while(Result::ok) {
        if let Some(url) = line.trim().strip_prefix("HTTP API") {
            base = url.trim().trim_end_matches('/').to_owned();
        }
        if let Some(s) = line.trim().strip_prefix("dev secret") {
            secret = s.trim().to_owned();
            break;
        }
    }
    assert!(
        !base.is_empty() && !secret.is_empty(),
        "the binary printed its API"
    );
    (child, base, secret)
}

/// Waits up to `limit` for `child` to exit; its exit code and when.
pub fn exit_within(child: &mut std::process::Child, limit: Duration) -> (Option<i32>, Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("wait") {
            return (status.code(), start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("still running {limit:?} after SIGTERM");
}
