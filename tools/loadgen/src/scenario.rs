//! One measured run against switchboard: set up P publishers and S
//! subscribers per publisher through the API, let them connect, warm up,
//! measure a window, and report. With a join rate the subscribers come as
//! a flash crowd (`crate::storm`) before the warm-up.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::ProgressBar;
use switchboard::dtls::DtlsIdentity;
use switchboard::ice::IceCredentials;
use switchboard::sdp::{self, MediaKind, extension};

use crate::endpoint::Endpoint;
use crate::janus::Janus;
use crate::media::{HEADER_LEN, SRTP_OVERHEAD};
use crate::procstat;
use crate::repair::Receiving;
use crate::run::{self, Client, HandOff, Role, Shared, StreamTx, phase};
use crate::sdp::{
    AUDIO_PT, Local, Sending, VIDEO_PT, publisher_offer, remote_of, subscriber_answer,
};
use crate::stats::{Repair, Report, Setup, SimulcastReport, Stats};
use crate::storm::{self, Joined};
use crate::target::{Sfu, Switchboard};

/// What to run.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// `switchboard` or `janus`.
    pub target: String,
    /// Server base URL.
    pub url: String,
    /// App id.
    pub app_id: String,
    /// App secret.
    pub app_secret: String,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers per publisher.
    pub subscribers: usize,
    /// Video bitrate per publisher, kbit/s.
    pub video_kbps: u32,
    /// SRTP datagram size of video packets, bytes.
    pub packet_size: usize,
    /// Also send Opus-like audio (50 pps).
    pub audio: bool,
    /// Measured window.
    pub duration: Duration,
    /// Warm-up before the window.
    pub warmup: Duration,
    /// Server process to charge CPU to.
    pub server_pid: Option<u32>,
    /// Loop threads.
    pub threads: usize,
    /// Seed of SSRCs.
    pub seed: u64,
    /// Local address the clients bind.
    pub bind: IpAddr,
    /// Show progress bars.
    pub progress: bool,
    /// Clients' sockets take UDP GRO: a GSO burst from the SFU is delivered
    /// as one (as a NIC with GRO would), so the SFU's sends do not pay for
    /// splitting it on loopback.
    pub gro: bool,
    /// Loop threads poll without sleeping: the SFU's sends do not pay for
    /// waking them (on loopback the sender pays for the receiver's wake-up).
    pub busy_poll: bool,
    /// Subscribers join at this many per second, as a flash crowd, instead
    /// of one after another before the run (switchboard only).
    pub join_rate: Option<f64>,
    /// Threads making a flash crowd's API calls (0: one per 10 joins/s,
    /// from 4 to 128).
    pub join_threads: usize,
    /// Percent of SRTP/SRTCP datagrams the clients lose each way (seeded);
    /// publishers then answer NACKs, subscribers send NACKs and
    /// transport-cc feedback (0: none of that).
    pub loss: u32,
    /// How often subscribers send transport-cc feedback (zero: never).
    pub twcc_feedback: Duration,
    /// Publishers send simulcast (layers `crate::sdp::RIDS`) and
    /// subscribers pull this rid (switchboard only).
    pub simulcast: Option<String>,
    /// At the end, publishers close their tracks through the API
    /// (tracks/close, force) before the clients go away; otherwise they
    /// vanish without a word, as a crashed browser does (switchboard only).
    pub close: bool,
    /// Subscribers join through this node's API instead of `url` (a
    /// cluster: publishers on one node, subscribers on another, so every
    /// packet crosses one relay).
    pub pull_url: Option<String>,
    /// The `pull_url` node's process, to charge its CPU to.
    pub pull_server_pid: Option<u32>,
}

impl Scenario {
    /// A short run against a switchboard app from this process (tests):
    /// 1 publisher × 1 subscriber, 300 kbit/s video in 1200-byte packets,
    /// 1 s measured after 200 ms, one loop thread, on 127.0.0.1.
    pub fn local(url: String, app_id: &str, app_secret: &str) -> Self {
        Scenario {
            target: "switchboard".into(),
            url,
            app_id: app_id.to_owned(),
            app_secret: app_secret.to_owned(),
            publishers: 1,
            subscribers: 1,
            video_kbps: 300,
            packet_size: 1200,
            audio: false,
            duration: Duration::from_secs(1),
            warmup: Duration::from_millis(200),
            server_pid: Some(std::process::id()),
            threads: 1,
            seed: 1,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            progress: false,
            gro: false,
            busy_poll: false,
            join_rate: None,
            join_threads: 0,
            loss: 0,
            twcc_feedback: switchboard::streams::twcc::FEEDBACK_INTERVAL,
            pull_url: None,
            pull_server_pid: None,
            simulcast: None,
            close: false,
        }
    }
}

const FPS: u32 = 30;

/// A client's UDP socket, with GRO when the scenario asks for it.
fn client_socket(s: &Scenario) -> anyhow::Result<UdpSocket> {
    let socket = UdpSocket::bind((s.bind, 0)).context("bind")?;
    if s.gro {
        crate::udp::enable_gro(&socket).context("UDP GRO")?;
    }
    Ok(socket)
}
const AUDIO_PAYLOAD: usize = 80;

fn ssrc(seed: u64, stream: u32) -> u32 {
    let x = (seed ^ u64::from(stream).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    ((x >> 32) as u32) | 1
}

/// Video layers per publisher: three with simulcast, else one.
fn layers(s: &Scenario) -> usize {
    if s.simulcast.is_some() {
        crate::sdp::RIDS.len()
    } else {
        1
    }
}

/// Streams per publisher: its video layers and its audio.
fn streams_per_publisher(s: &Scenario) -> usize {
    layers(s) + usize::from(s.audio)
}

/// A simulcast layer's share of the video bitrate, best first (about what
/// browsers give f, h and q).
const LAYER_SHARE: [f64; 3] = [1.0, 0.3, 0.1];

/// The m-lines publisher `i` offers, and its streams (indices `i` ×
/// [`streams_per_publisher`] on: the video layers, then audio).
fn streams(s: &Scenario, i: usize) -> (Vec<Sending>, Vec<StreamTx>) {
    let payload = s
        .packet_size
        .saturating_sub(HEADER_LEN + SRTP_OVERHEAD)
        .max(16);
    let base = (i * streams_per_publisher(s)) as u32;
    let simulcast = s.simulcast.is_some();
    let mut sending = vec![Sending {
        kind: MediaKind::Video,
        ssrc: ssrc(s.seed, base),
        simulcast,
    }];
    let mut tx: Vec<StreamTx> = (0..layers(s))
        .map(|layer| {
            let index = base + layer as u32;
            let kbps = f64::from(s.video_kbps) * if simulcast { LAYER_SHARE[layer] } else { 1.0 };
            let frame_bytes = (kbps * 1000.0 / 8.0) as usize / FPS as usize;
            let packets = frame_bytes.div_ceil(payload).max(1);
            let stream = StreamTx::new(
                index,
                VIDEO_PT,
                ssrc(s.seed, index),
                Duration::from_secs(1) / FPS,
                packets,
                payload,
                90_000 / FPS,
            );
            if simulcast {
                stream.layer(crate::sdp::RIDS[layer])
            } else {
                stream
            }
        })
        .collect();
    if s.audio {
        let index = base + layers(s) as u32;
        sending.push(Sending {
            kind: MediaKind::Audio,
            ssrc: ssrc(s.seed, index),
            simulcast: false,
        });
        tx.push(StreamTx::new(
            index,
            AUDIO_PT,
            ssrc(s.seed, index),
            Duration::from_millis(20),
            1,
            AUDIO_PAYLOAD,
            960,
        ));
    }
    (sending, tx)
}

pub(crate) fn bar(progress: bool, len: usize, message: &'static str) -> ProgressBar {
    let bar = if progress {
        ProgressBar::new(len as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_message(message);
    bar
}

fn wait_connected(
    shared: &Shared,
    want: usize,
    limit: Duration,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let connected = shared.connected.load(Ordering::Acquire);
        bar.set_position(connected as u64);
        if connected >= want {
            return Ok(());
        }
        let failed = shared.failed.load(Ordering::Acquire);
        if failed > 0 {
            bail!("{failed} client(s) failed to connect");
        }
        if Instant::now() > deadline {
            bail!("only {connected} of {want} clients connected within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One subscriber joining the tracks `names` of `publisher`: its socket,
/// the API calls (the pull, then the answer to the server's offer) and a
/// client ready for a loop thread. Its setup clock starts at the first
/// API call.
pub(crate) fn join(
    api: &mut dyn Sfu,
    s: &Scenario,
    identity: &Arc<DtlsIdentity>,
    publisher: &str,
    names: &[String],
) -> anyhow::Result<Client> {
    let socket = client_socket(s)?;
    socket.set_nonblocking(true)?;
    let ice = IceCredentials::random();
    let created = Instant::now();
    let (sub_session, offer) = api.subscribe(publisher, names)?;
    let answer = subscriber_answer(
        &offer,
        s.loss > 0,
        &Local {
            ufrag: &ice.ufrag,
            pwd: &ice.pwd,
            fingerprint: &identity.fingerprint,
            addr: socket.local_addr()?,
        },
    )?;
    api.answer(&sub_session, &answer)?;
    let (remote, addr) = remote_of(&offer)?;
    let send_time_id = extension_id(&offer, extension::SEND_TIME);
    let twcc_id = extension_id(&offer, extension::TRANSPORT_CC);
    let endpoint = Endpoint::new(identity.clone(), ice, remote, Instant::now());
    let mut client = Client::new(
        endpoint,
        socket,
        addr,
        Role::Subscriber {
            send_time_id,
            created,
            got_media: false,
            layout: s
                .simulcast
                .as_ref()
                .map(|_| (streams_per_publisher(s) as u32, layers(s) as u32)),
        },
    );
    // As a browser: NACKs for gaps, transport-cc feedback.
    let twcc = twcc_id.filter(|_| !s.twcc_feedback.is_zero());
    client.receiving = Some(Box::new(Receiving::new(
        twcc.map(|id| (id, s.twcc_feedback)),
        Instant::now(),
    )));
    Ok(client)
}

/// The id of header extension `uri` in an SDP.
fn extension_id(sdp_text: &str, uri: &str) -> Option<u8> {
    sdp::parse(sdp_text)
        .ok()?
        .media
        .iter()
        .flat_map(|m| m.extmaps.iter())
        .find(|e| e.uri == uri)
        .map(|e| e.id)
}

/// What the orchestrating part of a run measured.
struct Measured {
    window: Duration,
    server_cpu: Option<(Duration, Duration)>,
    pull_cpu: Option<(Duration, Duration)>,
    own_cpu: Option<(Duration, Duration)>,
    joined: Option<Joined>,
}

/// Runs one scenario against switchboard.
pub fn run(s: &Scenario) -> anyhow::Result<Report> {
    if s.join_rate.is_some() && s.target == "janus" {
        bail!("a join rate (flash crowd) is for switchboard only");
    }
    if s.join_rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        bail!("the join rate must be a positive number of joins per second");
    }
    let identity = Arc::new(DtlsIdentity::generate().context("DTLS certificate")?);
    let mut api: Box<dyn Sfu> = match s.target.as_str() {
        "janus" => Box::new(Janus::new(&s.url, s.publishers)?),
        _ => Box::new(
            Switchboard::new(&s.url, &s.app_id, &s.app_secret).prefer_rid(s.simulcast.clone()),
        ),
    };
    if s.simulcast.is_some() && s.target == "janus" {
        bail!("--simulcast is for switchboard only");
    }
    if s.pull_url.is_some() && (s.target == "janus" || s.join_rate.is_some()) {
        bail!("--pull-url is for switchboard, without --join-rate");
    }
    let mut pull_api: Option<Switchboard> = s
        .pull_url
        .as_ref()
        .map(|url| Switchboard::new(url, &s.app_id, &s.app_secret).prefer_rid(s.simulcast.clone()));
    let per = streams_per_publisher(s);
    let shared = Shared::new(s.publishers * per, s.busy_poll, s.loss, s.seed);
    let (senders, handles) = run::spawn(s.threads, &shared);
    let hand_off = HandOff::new(senders);
    let result = (|| -> anyhow::Result<Measured> {
        let total = s.publishers * (1 + s.subscribers);
        let setup = bar(s.progress, total, "connecting");
        let mut publishers = Vec::new();
        for i in 0..s.publishers {
            let socket = client_socket(s)?;
            socket.set_nonblocking(true)?;
            let ice = IceCredentials::random();
            let (sending, tx) = streams(s, i);
            let local = Local {
                ufrag: &ice.ufrag,
                pwd: &ice.pwd,
                fingerprint: &identity.fingerprint,
                addr: socket.local_addr()?,
            };
            let offer = publisher_offer(&sending, s.loss > 0, &local);
            let names: Vec<(String, String)> = sending
                .iter()
                .enumerate()
                .map(|(mid, st)| (mid.to_string(), st.kind.as_str().to_owned()))
                .collect();
            let (session, answer) = api.publish(&offer, &names)?;
            let (remote, addr) = remote_of(&answer)?;
            let endpoint = Endpoint::new(identity.clone(), ice, remote, Instant::now());
            let mut client = Client::new(endpoint, socket, addr, Role::Publisher(tx));
            if s.loss > 0 {
                client.sent = Some(Box::default());
            }
            hand_off.send(client);
            publishers.push((
                session,
                names.into_iter().map(|(_, n)| n).collect::<Vec<_>>(),
            ));
        }
        wait_connected(&shared, s.publishers, Duration::from_secs(30), &setup)?;
        let joined = match s.join_rate {
            Some(rate) => {
                setup.finish_and_clear();
                Some(storm::run(
                    s,
                    rate,
                    &identity,
                    &publishers,
                    &hand_off,
                    &shared,
                )?)
            }
            None => {
                for (session, names) in &publishers {
                    for _ in 0..s.subscribers {
                        let via: &mut dyn Sfu = match &mut pull_api {
                            Some(pull) => pull,
                            None => api.as_mut(),
                        };
                        hand_off.send(join(via, s, &identity, session, names)?);
                    }
                }
                let limit = Duration::from_secs(30) + Duration::from_millis(20 * total as u64);
                wait_connected(&shared, total, limit, &setup)?;
                setup.finish_and_clear();
                None
            }
        };

        shared.phase.store(phase::WARMUP, Ordering::Release);
        std::thread::sleep(s.warmup);
        let server_cpu0 = s.server_pid.and_then(procstat::cpu_time);
        let pull_cpu0 = s.pull_server_pid.and_then(procstat::cpu_time);
        let own_cpu0 = procstat::cpu_time(std::process::id());
        shared.phase.store(phase::MEASURE, Ordering::Release);
        let t0 = Instant::now();
        let run_bar = bar(s.progress, s.duration.as_secs() as usize, "measuring (s)");
        while t0.elapsed() < s.duration {
            std::thread::sleep(
                Duration::from_millis(100).min(s.duration.saturating_sub(t0.elapsed())),
            );
            run_bar.set_position(t0.elapsed().as_secs());
        }
        shared.phase.store(phase::DRAIN, Ordering::Release);
        let window = t0.elapsed();
        let server_cpu1 = s.server_pid.and_then(procstat::cpu_time);
        let pull_cpu1 = s.pull_server_pid.and_then(procstat::cpu_time);
        let own_cpu1 = procstat::cpu_time(std::process::id());
        run_bar.finish_and_clear();
        std::thread::sleep(Duration::from_millis(500));
        if s.close {
            for (session, names) in &publishers {
                let mids: Vec<String> = (0..names.len()).map(|m| m.to_string()).collect();
                api.close(session, &mids)?;
            }
        }
        Ok(Measured {
            window,
            server_cpu: server_cpu0.zip(server_cpu1),
            pull_cpu: pull_cpu0.zip(pull_cpu1),
            own_cpu: own_cpu0.zip(own_cpu1),
            joined,
        })
    })();
    shared.phase.store(phase::STOP, Ordering::Release);
    let mut stats = Stats::default();
    for h in handles {
        if let Ok(s) = h.join() {
            stats.merge(&s);
        }
    }
    let Measured {
        window,
        server_cpu,
        pull_cpu,
        own_cpu,
        joined,
    } = result?;

    let sent_of = |i: usize| shared.windows[i].sent.load(Ordering::Acquire);
    let sent: u64 = (0..shared.windows.len()).map(sent_of).sum();
    // With simulcast each subscriber gets the layer it asked for, and audio.
    let wanted = s
        .simulcast
        .as_ref()
        .and_then(|rid| crate::sdp::RIDS.iter().position(|r| r == rid));
    let subscribed = |i: usize| match wanted {
        Some(layer) => i % per == layer || i % per >= layers(s),
        None => true,
    };
    let expected = (0..shared.windows.len())
        .filter(|i| subscribed(*i))
        .map(sent_of)
        .sum::<u64>()
        * s.subscribers as u64;
    let simulcast = s.simulcast.as_ref().map(|rid| {
        let mut forwarded_per_layer = std::collections::BTreeMap::new();
        for (i, n) in stats.received_per_stream.iter().enumerate() {
            let name = crate::sdp::RIDS
                .get(i % per)
                .filter(|_| i % per < layers(s));
            *forwarded_per_layer
                .entry(name.map_or("audio".to_owned(), |r| (*r).to_owned()))
                .or_insert(0) += n;
        }
        SimulcastReport {
            preferred_rid: rid.clone(),
            forwarded_per_layer,
        }
    });
    let received = stats.received;
    let server_cpu_s = server_cpu.map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    let pull_cpu_s = pull_cpu.map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    Ok(Report {
        target: s.target.clone(),
        publishers: s.publishers,
        subscribers_per_publisher: s.subscribers,
        duration_s: window.as_secs_f64(),
        sent_packets: sent,
        expected_packets: expected,
        received_packets: received,
        loss_ratio: if expected == 0 {
            0.0
        } else {
            1.0 - received as f64 / expected as f64
        },
        forwarded_pps: received as f64 / window.as_secs_f64(),
        latency_us: Report::latency(&stats.latency_us),
        setup_ms: Setup {
            p50: stats.setup_ms.value_at_quantile(0.5),
            p99: stats.setup_ms.value_at_quantile(0.99),
        },
        server_cpu_us_per_packet: server_cpu_s
            .filter(|_| received > 0)
            .map(|c| c * 1e6 / received as f64),
        server_cpu_s,
        pull_server_cpu_s: pull_cpu_s,
        pull_server_cpu_us_per_packet: pull_cpu_s
            .filter(|_| received > 0)
            .map(|c| c * 1e6 / received as f64),
        loadgen_cpu_s: own_cpu.map_or(0.0, |(a, b)| b.saturating_sub(a).as_secs_f64()),
        payload_mismatches: stats.mismatches,
        payload_checked: stats.sampled,
        machine: procstat::machine(),
        gro: s.gro,
        busy_poll: s.busy_poll,
        storm: joined.map(|j| storm::report(s, j, &stats)),
        repair: (s.loss > 0).then(|| Repair {
            loss_percent: s.loss,
            recovered_packets: stats.recovered,
            unrecovered_loss_ratio: if expected == 0 {
                0.0
            } else {
                1.0 - received as f64 / expected as f64
            },
            retransmission_overhead: if received == 0 {
                0.0
            } else {
                (stats.recovered + stats.duplicates) as f64 / received as f64
            },
            publisher_resent: stats.publisher_resent,
        }),
        simulcast,
    })
}
