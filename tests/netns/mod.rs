//! Test helpers for browsers that need a real network interface (used by
//! tests/firefox.rs): a throwaway network namespace with one veth address and
//! a default route that leads nowhere, and the server binary running in it.
//! Both are torn down on drop, also when a test fails.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// The namespace's one address: the server's media address and the browsers'.
pub const ADDR: &str = "10.203.0.1";

/// Fails (with what to do) unless this process may create namespaces and
/// `ip` and `nft` are installed.
pub fn check_tools() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned));
    assert_eq!(
        euid.as_deref(),
        Some("0"),
        "network namespace tests need root: run them with tools/test as root"
    );
    for (tool, arg, package) in [("ip", "-V", "iproute2"), ("nft", "--version", "nftables")] {
        let ok = Command::new(tool)
            .arg(arg)
            .output()
            .map(|o| o.status.success());
        assert!(
            matches!(ok, Ok(true)),
            "`{tool}` not found: run the tests with tools/test, which installs {package}"
        );
    }
}

fn run(args: &[&str], stdin: Option<&str>) {
    let mut cmd = Command::new(args[0]);
    cmd.args(&args[1..])
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace: lo up, veth `v0` with 10.203.0.1/24 and a default
/// route via 10.203.0.2 (so browsers gather a host candidate), its peer `v1`
/// without an address, and nftables dropping everything sent out of `v0`.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create() -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "sbtest{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run(&["ip", "netns", "add", &name], None);
        let ns = Netns { name };
        let n = ns.name.as_str();
        run(
            &["ip", "netns", "exec", n, "ip", "link", "set", "lo", "up"],
            None,
        );
        run(
            &[
                "ip", "link", "add", "v0", "netns", n, "type", "veth", "peer", "name", "v1",
                "netns", n,
            ],
            None,
        );
        run(
            &[
                "ip",
                "-n",
                n,
                "addr",
                "add",
                &format!("{ADDR}/24"),
                "dev",
                "v0",
            ],
            None,
        );
        run(&["ip", "-n", n, "link", "set", "v0", "up"], None);
        run(&["ip", "-n", n, "link", "set", "v1", "up"], None);
        run(
            &[
                "ip",
                "-n",
                n,
                "route",
                "add",
                "default",
                "via",
                "10.203.0.2",
                "dev",
                "v0",
            ],
            None,
        );
        let rules = "table inet sbtest {\n chain out {\n  type filter hook output priority 0; policy accept;\n  oifname \"v0\" drop\n }\n}\n";
        run(&["ip", "netns", "exec", n, "nft", "-f", "-"], Some(rules));
        ns
    }

    /// Drops `percent` % of the UDP datagrams the namespace sends from
    /// and to `port`, at random (nftables `numgen`): loss on both
    /// directions of the server's media port.
    #[allow(dead_code)] // not every test binary that uses the module drops
    pub fn drop_percent(&self, port: u16, percent: u32) {
        for dir in ["sport", "dport"] {
            let rule = format!(
                "add rule inet sbtest out udp {dir} {port} numgen random mod 100 < {percent} drop\n"
            );
            run(
                &["ip", "netns", "exec", &self.name, "nft", "-f", "-"],
                Some(&rule),
            );
        }
    }

    /// `program` to be run inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Whatever is still running in it (a browser left behind) goes first.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A pipe's text, collected on a thread.
struct Collected {
    text: Arc<Mutex<String>>,
    done: mpsc::Receiver<()>,
}

impl Collected {
    /// Collects `pipe`; `lines` gets each line as it comes.
    fn new(pipe: impl Read + Send + 'static, lines: Option<mpsc::Sender<String>>) -> Collected {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        let (done_tx, done) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                {
                    let mut all = sink.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
                if let Some(tx) = &lines {
                    let _ = tx.send(line);
                }
            }
            let _ = done_tx.send(());
        });
        Collected { text, done }
    }

    fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// The whole text, once the pipe closed (or after `wait`).
    fn finish(self, wait: Duration) -> String {
        let _ = self.done.recv_timeout(wait);
        self.text()
    }
}

/// The switchboard binary serving in a namespace: HTTP and the demo page on
/// the namespace's 127.0.0.1 (a secure context, so pages may use the camera),
/// media on 10.203.0.1. Killed on drop.
pub struct NsServer {
    child: Child,
    pub url: String,
    /// The dev app's id and secret.
    pub app: String,
    pub secret: String,
    stdout: Collected,
    stderr: Collected,
}

impl NsServer {
    pub fn start(ns: &Netns, binary: &str) -> NsServer {
        Self::start_with(ns, binary, &[])
    }

    /// The same, with `extra` flags.
    pub fn start_with(ns: &Netns, binary: &str, extra: &[String]) -> NsServer {
        let mut child = ns
            .command(binary)
            .args(["--http-bind", "127.0.0.1:8080", "--media-bind"])
            .arg(format!("{ADDR}:40000"))
            .args(["--announce-ip", ADDR, "--workers", "2", "--no-pin"])
            .args(extra)
            // The default log filter, as an operator runs it.
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("server binary starts");
        let (tx, rx) = mpsc::channel();
        let stdout = Collected::new(child.stdout.take().unwrap(), Some(tx));
        let stderr = Collected::new(child.stderr.take().unwrap(), None);
        let mut server = NsServer {
            child,
            url: String::new(),
            app: String::new(),
            secret: String::new(),
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while server.url.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(app) = line.trim().strip_prefix("dev app id") {
                        server.app = app.trim().to_owned();
                    }
                    if let Some(secret) = line.trim().strip_prefix("dev secret") {
                        server.secret = secret.trim().to_owned();
                    }
                    if let Some(url) = line.trim().strip_prefix("demo page") {
                        server.url = url.trim().to_owned();
                    }
                }
                Err(_) => panic!(
                    "server did not print its demo page URL within 15 s:\n{}",
                    server.logs()
                ),
            }
        }
        server
    }

    /// The server's consent counters (RFC 7675) from its /metrics, read
    /// inside `ns`: checks sent, answered, and sessions that lost consent.
    pub fn consent(&self, ns: &Netns) -> serde_json::Value {
        let mut curl = ns.command("curl");
        curl.args(["-s", "--max-time", "5", "http://127.0.0.1:8080/metrics"]);
        let (_, text, _) = output_within(curl, 10);
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        };
        serde_json::json!({
            "checks": value("switchboard_consent_checks_total "),
            "answers": value("switchboard_consent_answers_total "),
            "lost": value("switchboard_consent_lost_total "),
        })
    }

    /// Everything the server printed so far.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout.text(), self.stderr.text())
    }
}

impl Drop for NsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cmd` to completion, killing it after `secs`; returns its status,
/// stdout and stderr.
pub fn output_within(mut cmd: Command, secs: u64) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (install Node.js, or use tools/test)"));
    let stdout = Collected::new(child.stdout.take().unwrap(), None);
    let stderr = Collected::new(child.stderr.take().unwrap(), None);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // A process it left behind may hold the pipes open: wait a little only.
    let out = stdout.finish(Duration::from_secs(2));
    let err = stderr.finish(Duration::from_secs(2));
    (status, out, err)
}

/// Runs the Chromium script `script` (tests/browser) with `args` after the
/// demo URL, in a fresh namespace (prepared by `prepare`) with the server
/// binary `CARGO_BIN_EXE_switchboard` of the calling test; returns its JSON
/// result (with the server's consent counters) and the server's log, or
/// why it failed.
pub fn run_chromium_script(
    script: &str,
    args: &[&str],
    prepare: &impl Fn(&Netns),
) -> Result<(serde_json::Value, String), String> {
    run_in_namespace(script, prepare, &[], |server| {
        let mut all = vec![server.url.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    })
}

/// Runs the scripted Calls API test `script` (tests/browser, driven by
/// lib.mjs: `<http-addr> <app-id> <app-secret> [args]`) the same way,
/// against the server binary started with `extra` flags.
pub fn run_api_script(
    script: &str,
    args: &[&str],
    prepare: &impl Fn(&Netns),
    extra: &[String],
) -> Result<(serde_json::Value, String), String> {
    run_in_namespace(script, prepare, extra, |server| {
        let mut all = vec![
            "127.0.0.1:8080".to_string(),
            server.app.clone(),
            server.secret.clone(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    })
}

/// A fresh namespace, `prepare`d; the server in it (with `extra` flags);
/// node running `script` with the arguments `args` gives for that server.
fn run_in_namespace(
    script: &str,
    prepare: &impl Fn(&Netns),
    extra: &[String],
    args: impl FnOnce(&NsServer) -> Vec<String>,
) -> Result<(serde_json::Value, String), String> {
    use crate::common::browser;
    browser::chromium();
    browser::require_node_module("playwright-core");
    check_tools();
    let ns = Netns::create();
    prepare(&ns);
    let server = NsServer::start_with(&ns, env!("CARGO_BIN_EXE_switchboard"), extra);
    let mut node = ns.command("node");
    node.arg(browser::script(script)).args(args(&server));
    let (status, stdout, stderr) = output_within(node, 240);
    let logs = server.logs();
    let mut result: serde_json::Value = serde_json::from_str(stdout.trim()).map_err(|e| {
        format!("{script}: no JSON result ({e}, {status}): {stdout}\n--- browser ---\n{stderr}\n--- server ---\n{logs}")
    })?;
    if !(status.success() && result["ok"] == true) {
        return Err(format!(
            "{script} failed: {stdout}\n--- browser ---\n{stderr}\n--- server ---\n{logs}"
        ));
    }
    result["consent"] = server.consent(&ns);
    Ok((result, logs))
}
