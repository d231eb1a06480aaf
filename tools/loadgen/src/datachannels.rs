//! Data-channel load: one publisher and N subscribers, each a simulated
//! client with its own UDP socket, ICE, DTLS and SCTP (switchboard's own
//! SCTP association, as a client), wired through the Calls API
//! (`datachannels/establish` with a client offer, `datachannels/new`).
//! The publisher sends fixed-size messages at a given rate, each carrying
//! its send time; subscribers count what arrives and its latency through
//! the server. The server's CPU time over the measured window gives its CPU
//! per delivered message.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use switchboard::datachannel::policy::DeliveryPolicy;
use switchboard::datachannel::sctp::{SctpEvent, SctpTransport};
use switchboard::dtls::DtlsIdentity;
use switchboard::ice::IceCredentials;

use crate::endpoint::{Endpoint, Phase};
use crate::procstat::cpu_time;
use crate::sdp::{Local, data_channel_offer, remote_of};
use crate::target::Switchboard;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Subscribers of the one publisher.
    pub subscribers: usize,
    /// Messages the publisher sends per second.
    pub rate: u32,
    /// Bytes per message.
    pub size: usize,
    /// Measured time.
    pub duration: Duration,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// The server's process, for its CPU time.
    pub server_pid: Option<u32>,
}

/// One simulated client.
struct Client {
    socket: UdpSocket,
    endpoint: Endpoint,
    server: SocketAddr,
    sctp: SctpTransport,
    session: String,
    /// The channel's stream id on this session.
    channel: u16,
    /// Messages received on it, and their latency.
    received: u64,
}

impl Client {
    /// A client whose session's SCTP transport came up from its offer.
    fn establish(api: &Switchboard, identity: &Arc<DtlsIdentity>) -> anyhow::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        let addr = socket.local_addr()?;
        let ice = IceCredentials::random();
        let local = Local {
            ufrag: &ice.ufrag,
            pwd: &ice.pwd,
            fingerprint: &identity.fingerprint,
            addr,
        };
        let offer = data_channel_offer(&local);
        let session = api.new_session()?;
        let reply = api.call(
            "POST",
            &format!("/sessions/{session}/datachannels/establish"),
            &json!({
                "dataChannel": {"location": "remote", "dataChannelName": "server-events"},
                "sessionDescription": {"type": "offer", "sdp": offer},
            }),
        )?;
        let answer = reply["sessionDescription"]["sdp"]
            .as_str()
            .context("an answer")?;
        let (remote, server) = remote_of(answer)?;
        let role = remote.dtls_role;
        let now = Instant::now();
        let endpoint = Endpoint::new(identity.clone(), ice, remote, now);
        Ok(Client {
            socket,
            endpoint,
            server,
            sctp: SctpTransport::new(role, Some(switchboard::datachannel::sctp::MAX_MESSAGE_SIZE)),
            session,
            channel: 0,
            received: 0,
        })
    }

    /// Reads what arrived and runs timers; SCTP events go to `on_event`.
    fn step(&mut self, now: Instant, buf: &mut [u8], mut on_event: impl FnMut(SctpEvent)) {
        while let Ok((n, from)) = self.socket.recv_from(buf) {
            self.endpoint.handle_datagram(now, from, &buf[..n]);
            while let Some(packet) = self.endpoint.poll_application_data() {
                self.sctp.handle_packet(now, &packet);
            }
        }
        self.endpoint.handle_timeout(now);
        if self.endpoint.phase() == Phase::Connected {
            self.sctp.start(now);
        }
        if self.sctp.poll_timeout().is_some_and(|t| t <= now) {
            self.sctp.handle_timeout(now);
        }
        while let Some(e) = self.sctp.poll_event() {
            on_event(e);
        }
        self.flush(now);
    }

    fn flush(&mut self, now: Instant) {
        while let Some(packet) = self.sctp.poll_transmit() {
            self.endpoint.send_application_data(now, &packet);
        }
        while let Some(d) = self.endpoint.poll_transmit() {
            let _ = self.socket.send_to(&d, self.server);
        }
    }
}

/// Runs the load and returns its report.
pub fn run(api: &Switchboard, config: &Config) -> anyhow::Result<Value> {
    let identity = Arc::new(DtlsIdentity::generate().map_err(|e| anyhow::anyhow!("{e}"))?);
    let mut clients = Vec::with_capacity(config.subscribers + 1);
    for _ in 0..=config.subscribers {
        clients.push(Client::establish(api, &identity)?);
    }
    let publisher_session = clients[0].session.clone();
    let reply = api.call(
        "POST",
        &format!("/sessions/{publisher_session}/datachannels/new"),
        &json!({"dataChannels": [{"location": "local", "dataChannelName": "bench"}]}),
    )?;
    clients[0].channel = channel_id(&reply)?;
    for c in clients.iter_mut().skip(1) {
        let reply = api.call(
            "POST",
            &format!("/sessions/{}/datachannels/new", c.session),
            &json!({"dataChannels": [{"location": "remote", "sessionId": publisher_session,
                                      "dataChannelName": "bench"}]}),
        )?;
        c.channel = channel_id(&reply)?;
    }

    // Connect: ICE, DTLS, SCTP; then every client opens its channel by id.
    let mut buf = vec![0u8; 65_536];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = Instant::now();
        let mut up = 0;
        for c in &mut clients {
            c.step(now, &mut buf, |_| {});
            up += usize::from(c.sctp.is_connected());
        }
        if up == clients.len() {
            break;
        }
        if now > deadline {
            bail!("{up} of {} clients connected within 30 s", clients.len());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let now = Instant::now();
    for c in &mut clients {
        c.sctp
            .open_channel(now, c.channel, DeliveryPolicy::default(), None)
            .map_err(|e| anyhow::anyhow!("open: {e}"))?;
        c.flush(now);
    }

    let start = Instant::now();
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let interval = Duration::from_secs_f64(1.0 / f64::from(config.rate.max(1)));
    let mut next_send = start;
    let mut sent = 0u64;
    let mut sent_measured = 0u64;
    let mut latency = Histogram::<u64>::new(3)?;
    let mut cpu_from = None;
    let mut payload = vec![0u8; config.size.max(16)];
    let mut received_measured = 0u64;
    while Instant::now() < end {
        let now = Instant::now();
        if cpu_from.is_none() && now >= measure_from {
            cpu_from = Some((config.server_pid.and_then(cpu_time), now));
            for c in &mut clients {
                c.received = 0;
            }
        }
        // The publisher's sends due by now.
        while next_send <= now {
            let nanos = now.duration_since(start).as_nanos() as u64;
            payload[..8].copy_from_slice(&nanos.to_be_bytes());
            payload[8..16].copy_from_slice(&sent.to_be_bytes());
            let publisher = &mut clients[0];
            if publisher
                .sctp
                .send(now, publisher.channel, false, &payload)
                .is_ok()
            {
                sent += 1;
                if cpu_from.is_some() {
                    sent_measured += 1;
                }
            }
            next_send += interval;
        }
        clients[0].flush(now);
        let measuring = cpu_from.is_some();
        for c in clients.iter_mut().skip(1) {
            let mut got = 0u64;
            c.step(now, &mut buf, |e| {
                if let SctpEvent::Message { bytes, .. } = e
                    && bytes.len() >= 8
                {
                    got += 1;
                    if measuring {
                        let at = u64::from_be_bytes(bytes[..8].try_into().unwrap_or_default());
                        let now_ns = Instant::now().duration_since(start).as_nanos() as u64;
                        let _ = latency.record(now_ns.saturating_sub(at).max(1));
                    }
                }
            });
            c.received += got;
        }
        clients[0].step(now, &mut buf, |_| {});
    }
    let (cpu_start, t0) = cpu_from.context("no measured window")?;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_end = config.server_pid.and_then(cpu_time);
    for c in clients.iter().skip(1) {
        received_measured += c.received;
    }
    let delivered_per_s = received_measured as f64 / elapsed;
    let server_cpu = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let us_per_message = server_cpu
        .filter(|_| received_measured > 0)
        .map(|s| s * 1e6 / received_measured as f64);
    Ok(json!({
        "subscribers": config.subscribers,
        "rate": config.rate,
        "size": config.size,
        "seconds": elapsed,
        "sent": sent_measured,
        "delivered": received_measured,
        "expected": sent_measured * config.subscribers as u64,
        "delivered_per_s": delivered_per_s,
        "server_cpu_s": server_cpu,
        "server_us_per_delivered": us_per_message,
        "projected_per_core": us_per_message.map(|us| 1e6 / us),
        "latency_ms": {
            "p50": latency.value_at_quantile(0.5) as f64 / 1e6,
            "p99": latency.value_at_quantile(0.99) as f64 / 1e6,
            "max": latency.max() as f64 / 1e6,
        },
        "machine": crate::procstat::machine(),
    }))
}

fn channel_id(reply: &Value) -> anyhow::Result<u16> {
    let item = &reply["dataChannels"][0];
    if let Some(code) = item["errorCode"].as_str() {
        bail!("datachannels/new: {code}: {}", item["errorDescription"]);
    }
    item["id"]
        .as_u64()
        .and_then(|id| u16::try_from(id).ok())
        .context("a channel id")
}
