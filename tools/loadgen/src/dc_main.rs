//! `switchboard-dc-bench`: data-channel fan-out through a switchboard
//! server (see `--help`): one publisher, N subscribers, fixed-size
//! messages at a rate; prints one JSON report per subscriber count.

use std::time::Duration;

use clap::Parser;
use switchboard_loadgen::datachannels::{self, Config};
use switchboard_loadgen::target::Switchboard;

/// Data-channel messages fanned out from one publisher to N subscribers.
#[derive(Debug, Parser)]
#[command(name = "switchboard-dc-bench", version)]
struct Cli {
    /// The server's HTTP base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// App id.
    #[arg(long)]
    app_id: String,
    /// App secret.
    #[arg(long)]
    app_secret: String,
    /// Subscriber counts, one run each.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    subscribers: Vec<usize>,
    /// Messages the publisher sends per second.
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Bytes per message.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Warm-up seconds.
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// The server's process id, for its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let api = Switchboard::new(&cli.url, &cli.app_id, &cli.app_secret);
    for subscribers in cli.subscribers {
        let config = Config {
            subscribers,
            rate: cli.rate,
            size: cli.size,
            duration: Duration::from_secs(cli.duration),
            warmup: Duration::from_secs(cli.warmup),
            server_pid: cli.server_pid,
        };
        let report = datachannels::run(&api, &config)?;
        println!("{report}");
    }
    Ok(())
}
