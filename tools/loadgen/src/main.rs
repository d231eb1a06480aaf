//! `switchboard-loadgen`: see `--help`.

use std::net::IpAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use switchboard_loadgen::scenario::{self, Scenario};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    Switchboard,
    Janus,
}

/// Simulated WebRTC publishers and subscribers against an SFU.
#[derive(Debug, Parser)]
#[command(name = "switchboard-loadgen", version)]
struct Cli {
    /// The SFU under test.
    #[arg(long, value_enum, default_value = "switchboard")]
    target: Target,
    /// The SFU's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// App id (switchboard).
    #[arg(long, default_value = "")]
    app_id: String,
    /// App secret (switchboard).
    #[arg(long, default_value = "")]
    app_secret: String,
    /// Publishers.
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers per publisher (the first step with --ramp).
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Video bitrate per publisher, kbit/s.
    #[arg(long, default_value_t = 1500)]
    video_kbps: u32,
    /// Video packet size on the wire (SRTP datagram), bytes.
    #[arg(long, default_value_t = 1200)]
    packet_size: usize,
    /// Also send audio (Opus-like, 50 packets/s).
    #[arg(long)]
    audio: bool,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds before measuring.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Server process id, to report its CPU per packet.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the JSON report here (with --ramp: one report per step, in an array).
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Seed of SSRCs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Loop threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Address the clients bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Read with UDP GRO: a burst the SFU sent with GSO arrives as one read
    /// (as from a NIC with GRO), so on loopback the SFU does not pay for
    /// splitting it.
    #[arg(long)]
    gro: bool,
    /// Loop threads poll without sleeping (a whole core each), so that on
    /// loopback the SFU does not pay for waking them.
    #[arg(long)]
    busy_poll: bool,
    /// Clients drop this percent of SRTP/SRTCP datagrams each way (seeded);
    /// publishers answer NACKs, subscribers send NACKs and transport-cc
    /// feedback, and the report adds what was recovered.
    #[arg(long, default_value_t = 0)]
    loss: u32,
    /// Publishers send their video as three simulcast layers f, h and q
    /// (VP8, at 1, 0.3 and 0.1 of --video-kbps, as browsers weigh them),
    /// and subscribers pull with `simulcast: {preferredRid: RID}`; the
    /// report gives the packets received per layer, and loss against the
    /// layer asked for.
    #[arg(long, value_name = "RID", value_parser = ["f", "h", "q"])]
    simulcast: Option<String>,
    /// Subscribers send transport-cc feedback this often, ms (0: never).
    /// libwebrtc sends it every 50 to 250 ms, by its own send estimate;
    /// Chromium receiving 1.2 Mbit/s here sent it every ~62 ms.
    #[arg(long, default_value_t = 50)]
    twcc_feedback_ms: u64,
    /// Increase subscribers step by step until loss > 1 % or p99 > 10 ms.
    #[arg(long)]
    ramp: bool,
    /// Flash crowd: the subscribers join at this many per second (all
    /// publishers' together), before the warm-up; the report adds join
    /// latency (first API call to first media), the API's latency while
    /// joining, and whether the server or the load generator held the rate
    /// back (switchboard only).
    #[arg(long, value_name = "PER_SECOND")]
    join_rate: Option<f64>,
    /// Threads making the flash crowd's API calls, each with its own HTTP
    /// connection [default: one per 10 joins/s, from 4 to 128].
    #[arg(long, default_value_t = 0, hide_default_value = true)]
    join_threads: usize,
    /// At the end, publishers close their tracks (tracks/close, force)
    /// before going away, instead of vanishing without a word.
    #[arg(long)]
    close: bool,
    /// Subscribers join through this node's API (another node of the same
    /// cluster): every packet crosses one relay, and the latency includes
    /// the hop.
    #[arg(long)]
    pull_url: Option<String>,
    /// The --pull-url node's process id, to report its CPU per packet.
    #[arg(long)]
    pull_server_pid: Option<u32>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut scenario = Scenario {
        target: match cli.target {
            Target::Switchboard => "switchboard".into(),
            Target::Janus => "janus".into(),
        },
        url: cli.url.clone(),
        app_id: cli.app_id.clone(),
        app_secret: cli.app_secret.clone(),
        publishers: cli.publishers,
        subscribers: cli.subscribers,
        video_kbps: cli.video_kbps,
        packet_size: cli.packet_size,
        audio: cli.audio,
        duration: Duration::from_secs(cli.duration),
        warmup: Duration::from_secs(cli.warmup),
        server_pid: cli.server_pid,
        threads: cli.threads,
        seed: cli.seed,
        bind: cli.bind,
        progress: true,
        gro: cli.gro,
        busy_poll: cli.busy_poll,
        join_rate: cli.join_rate,
        join_threads: cli.join_threads,
        loss: cli.loss,
        twcc_feedback: Duration::from_millis(cli.twcc_feedback_ms),
        simulcast: cli.simulcast.clone(),
        close: cli.close,
        pull_url: cli.pull_url.clone(),
        pull_server_pid: cli.pull_server_pid,
    };
    if !cli.ramp {
        let report = scenario::run(&scenario)?;
        println!("{}", report.summary());
        if let Some(path) = &cli.json {
            std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        }
        return Ok(());
    }
    let mut reports = Vec::new();
    let mut held = None;
    let mut step = cli.subscribers.max(1);
    loop {
        scenario.subscribers = step;
        scenario.seed = cli.seed + step as u64;
        let report = scenario::run(&scenario)?;
        println!("--- {step} subscribers per publisher\n{}", report.summary());
        let ok = report.loss_ratio <= 0.01 && report.latency_us.p99 <= 10_000;
        reports.push(report);
        if !ok {
            break;
        }
        held = Some(step);
        step = if step < 50 { step * 2 } else { step + step / 2 };
    }
    match held {
        Some(s) => println!("largest subscriber count that held (loss <= 1 %, p99 <= 10 ms): {s}"),
        None => println!("no step held (loss <= 1 %, p99 <= 10 ms)"),
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_string_pretty(&reports)?)?;
    }
    Ok(())
}
