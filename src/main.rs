//! The `switchboard` binary: `switchboard` or `switchboard serve` runs the
//! server (see `switchboard --help`). SIGTERM or SIGINT drains it: new API
//! calls get 503, media keeps flowing for the drain period (or until no
//! session is left), then the process exits 0. Under systemd
//! (`Type=notify`) it reports READY=1 once listening and STOPPING=1 when it
//! starts draining.

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
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => args,
        None => cli.serve,
    };
    let config = Config::load(&args).context("configuration")?;
    switchboard::logging::init(
        "switchboard=info,rtc_dtls=warn,rtc_srtp=warn",
        config.log_format,
    );
    // Blocked before any thread starts, so every thread inherits the mask
    // and only the wait below receives them.
    let signals = block_termination_signals();
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
    if let Some(c) = &server.config.cluster {
        // (Not the Redis URL: it may hold a password.)
        println!("  cluster      node {}", c.node_id);
    }
    if server.config.demo {
        println!("  demo page    http://{}/", server.http_addr);
        if !server.http_addr.ip().is_loopback() {
            tracing::warn!(
                http = %server.http_addr,
                "the demo page embeds the dev app's secret and is served beyond \
                 this host: anyone who reaches it can use the API (configure [[apps]] \
                 or pass --no-demo)"
            );
        }
    }
    notify_systemd("READY=1");
    let signal = wait_for(&signals);
    let period = server.config.drain;
    tracing::info!(
        signal,
        sessions = server.sessions(),
        seconds = period.as_secs(),
        "draining: new API calls get 503, media flows on"
    );
    notify_systemd("STOPPING=1");
    server.drain(period);
    tracing::info!("stopped");
    Ok(())
}

/// Blocks SIGTERM and SIGINT in this thread (and the threads it starts).
fn block_termination_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; the calls only write the set and this
    // thread's signal mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Waits for one of the blocked signals; its number.
fn wait_for(set: &libc::sigset_t) -> i32 {
    let mut signal = 0;
    // SAFETY: `set` is initialised and `signal` is a valid out-pointer.
    while unsafe { libc::sigwait(set, &mut signal) } != 0 {}
    signal
}

/// Sends `state` to systemd's notification socket when run as a
/// `Type=notify` service (`NOTIFY_SOCKET`, a path or an abstract name).
fn notify_systemd(state: &str) {
    use std::os::linux::net::SocketAddrExt as _;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let sent = UnixDatagram::unbound().and_then(|s| s.send_to_addr(state.as_bytes(), &addr?));
    if let Err(e) = sent {
        tracing::warn!(error = %e, "systemd notification {state}");
    }
}
