//! The `switchboard` binary: `switchboard` or `switchboard serve` runs the
//! server (see `switchboard --help`).

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchboard::config::{Config, ServeArgs};
use switchboard::server::Server;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A WebRTC SFU with a Cloudflare Calls compatible HTTP API"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
}

fn main() -> anyhow::Result<()> {
    switchboard::logging::init("switchboard=info,rtc_dtls=warn,rtc_srtp=warn");
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = Config::load(&args).context("configuration")?;
    let server = Server::start(config).context("starting switchboard")?;
    let (app_id, secret) = server.app();
    let candidates: Vec<String> = server
        .config
        .announce_ip
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    println!("switchboard listening");
    println!(
        "  HTTP API     http://{}/v1/apps/{app_id}/",
        server.http_addr
    );
    println!(
        "  media (UDP)  {} with {} worker(s), announced as {}",
        server.media_addr,
        server.config.workers,
        candidates.join(", ")
    );
    if server.config.dev_app {
        println!("  dev app id   {app_id}");
        println!("  dev secret   {secret}");
    }
    if server.config.demo {
        println!("  demo page    http://{}/", server.http_addr);
    }
    server.wait();
    Ok(())
}
