//! Loop threads: each runs a mio loop over its share of the simulated
//! clients (one UDP socket each), sends publishers' frames on time, feeds
//! received datagrams to the endpoints and measures what subscribers get.
//! Clients reach the threads in turn through a [`HandOff`].

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use switchboard::engine::nack::generator::Arrival;
use switchboard::wire::{PacketKind, classify};

use crate::endpoint::{Endpoint, Phase};
use crate::media::{self, SendTime};
use crate::repair::{Loss, Receiving, Sent};
use crate::stats::Stats;

/// Run phases, in order.
pub mod phase {
    /// Clients are being set up; publishers already send.
    pub const SETUP: u8 = 0;
    /// Everyone is connected; not measured yet.
    pub const WARMUP: u8 = 1;
    /// The measured window.
    pub const MEASURE: u8 = 2;
    /// Window closed; in-flight packets still counted.
    pub const DRAIN: u8 = 3;
    /// Threads stop.
    pub const STOP: u8 = 4;
}

/// One stream's measured window, by its sequence numbers.
#[derive(Debug)]
pub struct Window {
    /// First sequence in the window.
    pub start: AtomicU64,
    /// First sequence after the window.
    pub end: AtomicU64,
    /// Packets sent in the window.
    pub sent: AtomicU64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
            sent: AtomicU64::new(0),
        }
    }
}

/// State shared by the orchestrator and the loop threads.
pub struct Shared {
    /// The run phase (see [`phase`]).
    pub phase: AtomicU8,
    /// Per stream, by stream index.
    pub windows: Vec<Window>,
    /// Clients whose SRTP is ready.
    pub connected: AtomicUsize,
    /// Clients whose connection failed.
    pub failed: AtomicUsize,
    /// Time zero of send timestamps.
    pub epoch: Instant,
    /// Loop threads never sleep (see `Scenario::busy_poll`).
    pub busy_poll: bool,
    /// Percent of SRTP/SRTCP datagrams clients lose each way (`--loss`).
    pub loss: u32,
    /// Seed of the loss.
    pub seed: u64,
}

impl Shared {
    /// State for `streams` streams, clients losing `loss` % (seeded).
    pub fn new(streams: usize, busy_poll: bool, loss: u32, seed: u64) -> Arc<Self> {
        Arc::new(Shared {
            phase: AtomicU8::new(phase::SETUP),
            windows: (0..streams).map(|_| Window::default()).collect(),
            connected: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            epoch: Instant::now(),
            busy_poll,
            loss,
            seed,
        })
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_micros() as u64
    }
}

/// One stream a publisher sends.
pub struct StreamTx {
    /// Its index in the run (and in `Shared::windows`).
    pub index: u32,
    /// Payload type.
    pub pt: u8,
    /// SSRC.
    pub ssrc: u32,
    /// Time between frames.
    pub interval: Duration,
    /// Packets per frame.
    pub packets_per_frame: usize,
    /// Payload bytes per packet.
    pub payload_len: usize,
    /// RTP timestamp step per frame.
    pub ts_step: u32,
    /// The simulcast layer it is (its rid): its packets carry the rid and
    /// a VP8 descriptor, and a PLI on its SSRC makes its next frame a
    /// keyframe.
    pub rid: Option<&'static str>,
    /// Its next frame is a keyframe.
    keyframe_due: bool,
    rtp_seq: u16,
    timestamp: u32,
    seq: u32,
    next_frame: Option<Instant>,
    started: bool,
    ended: bool,
}

impl StreamTx {
    /// A stream that sends `packets_per_frame` packets every `interval`.
    pub fn new(
        index: u32,
        pt: u8,
        ssrc: u32,
        interval: Duration,
        packets_per_frame: usize,
        payload_len: usize,
        ts_step: u32,
    ) -> Self {
        StreamTx {
            index,
            pt,
            ssrc,
            interval,
            packets_per_frame,
            payload_len,
            ts_step,
            rid: None,
            keyframe_due: true,
            rtp_seq: (ssrc >> 16) as u16,
            timestamp: ssrc,
            seq: 0,
            next_frame: None,
            started: false,
            ended: false,
        }
    }
}

/// What a client does.
pub enum Role {
    /// Sends its streams.
    Publisher(Vec<StreamTx>),
    /// Receives and measures.
    Subscriber {
        /// The send-time extension's id in this subscriber's session; without
        /// it every packet is decrypted to read the send time.
        send_time_id: Option<u8>,
        /// When its first API call was made.
        created: Instant,
        /// Whether it has received media yet.
        got_media: bool,
        /// With simulcast: (streams per publisher, video layers among
        /// them): a layer's payload starts with a VP8 descriptor.
        layout: Option<(u32, u32)>,
    },
}

impl StreamTx {
    /// The same stream as simulcast layer `rid`.
    pub fn layer(mut self, rid: &'static str) -> Self {
        self.rid = Some(rid);
        self
    }
}

/// One simulated client.
pub struct Client {
    /// Its transport.
    pub endpoint: Endpoint,
    /// Its socket.
    pub socket: UdpSocket,
    /// The server's address.
    pub remote: SocketAddr,
    /// What it does.
    pub role: Role,
    /// A publisher's sent packets, kept for NACKs (with `--loss`).
    pub sent: Option<Box<Sent>>,
    /// A subscriber's gaps and arrivals: it NACKs and sends transport-cc
    /// feedback.
    pub receiving: Option<Box<Receiving>>,
    /// A publisher's next transport-wide sequence number.
    twcc_seq: u16,
    counted: bool,
}

impl Client {
    /// A client ready to be handed to a loop thread.
    pub fn new(endpoint: Endpoint, socket: UdpSocket, remote: SocketAddr, role: Role) -> Self {
        Client {
            endpoint,
            socket,
            remote,
            role,
            sent: None,
            receiving: None,
            twcc_seq: 0,
            counted: false,
        }
    }
}

/// Hands clients to the loop threads in turn; any thread that sets clients
/// up may use it.
pub struct HandOff {
    senders: Vec<Sender<Client>>,
    next: AtomicUsize,
}

impl HandOff {
    /// Hands off over `senders` (from [`spawn`]).
    pub fn new(senders: Vec<Sender<Client>>) -> Self {
        HandOff {
            senders,
            next: AtomicUsize::new(0),
        }
    }

    /// Gives `client` to the next loop thread.
    pub fn send(&self, client: Client) {
        if self.senders.is_empty() {
            return;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.senders.len();
        let _ = self.senders[i].send(client);
    }
}

/// Starts `threads` loop threads; clients are handed to them over the senders.
pub fn spawn(
    threads: usize,
    shared: &Arc<Shared>,
) -> (Vec<Sender<Client>>, Vec<JoinHandle<Stats>>) {
    let mut senders = Vec::new();
    let mut handles = Vec::new();
    for i in 0..threads.max(1) {
        let (tx, rx) = channel();
        let shared = shared.clone();
        senders.push(tx);
        handles.push(
            std::thread::Builder::new()
                .name(format!("loadgen-{i}"))
                .spawn(move || run_loop(rx, &shared, i as u64))
                .expect("spawn loop thread"),
        );
    }
    (senders, handles)
}

struct Live {
    client: Client,
    socket: mio::net::UdpSocket,
}

fn run_loop(rx: Receiver<Client>, shared: &Shared, thread: u64) -> Stats {
    let mut stats = Stats::default();
    let mut loss = Loss::new(shared.loss, shared.seed.wrapping_add(thread));
    let mut rtcp = Vec::new();
    let Ok(mut poll) = Poll::new() else {
        return stats;
    };
    let mut events = Events::with_capacity(1024);
    let mut clients: Vec<Live> = Vec::new();
    let mut reader = crate::udp::Reader::default();
    let mut packet = Vec::with_capacity(2048);
    let mut next_timer = Instant::now();
    loop {
        while let Ok(mut client) = rx.try_recv() {
            let Ok(std_socket) = client.socket.try_clone() else {
                continue;
            };
            let mut socket = mio::net::UdpSocket::from_std(std_socket);
            let token = Token(clients.len());
            if poll
                .registry()
                .register(&mut socket, token, Interest::READABLE)
                .is_err()
            {
                continue;
            }
            client.endpoint.handle_timeout(Instant::now());
            flush(&mut client, &socket);
            clients.push(Live { client, socket });
        }
        let phase = shared.phase.load(Ordering::Acquire);
        if phase == phase::STOP {
            return stats;
        }
        let now = Instant::now();
        let mut next_due = now + Duration::from_millis(5);
        for live in clients.iter_mut() {
            if let Some(due) = send_frames(live, shared, phase, now, &mut packet, &mut loss) {
                next_due = next_due.min(due);
            }
        }
        if now >= next_timer {
            next_timer = now + Duration::from_millis(10);
            for live in clients.iter_mut() {
                live.client.endpoint.handle_timeout(now);
                flush(&mut live.client, &live.socket);
                note_connected(&mut live.client, shared, &mut stats);
                send_feedback(live, now, &mut rtcp, &mut loss);
            }
        }
        let timeout = if shared.busy_poll {
            Duration::ZERO
        } else {
            next_due
                .min(next_timer)
                .saturating_duration_since(Instant::now())
        };
        if poll.poll(&mut events, Some(timeout)).is_err() {
            continue;
        }
        for event in events.iter() {
            let Some(live) = clients.get_mut(event.token().0) else {
                continue;
            };
            while let Ok(from) = reader.read(&live.socket) {
                for datagram in reader.datagrams() {
                    let media = matches!(classify(datagram), PacketKind::Rtp | PacketKind::Rtcp);
                    if media && loss.drops() {
                        continue;
                    }
                    receive(live, shared, from, datagram, &mut stats, &mut loss);
                }
            }
        }
    }
}

fn flush(client: &mut Client, socket: &mio::net::UdpSocket) {
    while let Some(d) = client.endpoint.poll_transmit() {
        let _ = socket.send_to(&d, client.remote);
    }
}

fn note_connected(client: &mut Client, shared: &Shared, stats: &mut Stats) {
    if client.counted {
        return;
    }
    match client.endpoint.phase() {
        Phase::Connected => {
            client.counted = true;
            shared.connected.fetch_add(1, Ordering::AcqRel);
            if let Role::Subscriber { created, .. } = client.role {
                stats.handshakes += 1;
                stats.handshake_cpu += client.endpoint.handshake_cpu;
                let at = client.endpoint.connected_at.unwrap_or_else(Instant::now);
                stats.last_connected = stats.last_connected.max(Some(at));
                let _ = stats
                    .connect_us
                    .record(at.saturating_duration_since(created).as_micros().max(1) as u64);
            }
        }
        Phase::Failed => {
            client.counted = true;
            shared.failed.fetch_add(1, Ordering::AcqRel);
        }
        _ => {}
    }
}

/// Sends a subscriber's NACKs and transport-cc feedback when due (with
/// `--loss`).
fn send_feedback(live: &mut Live, now: Instant, rtcp: &mut Vec<Vec<u8>>, loss: &mut Loss) {
    let Some(receiving) = live.client.receiving.as_mut() else {
        return;
    };
    if live.client.endpoint.phase() != Phase::Connected {
        return;
    }
    rtcp.clear();
    receiving.poll(now, rtcp);
    for plain in rtcp.iter() {
        if let Some(protected) = live.client.endpoint.protect_rtcp(plain)
            && !loss.drops()
        {
            let _ = live.socket.send_to(&protected, live.client.remote);
        }
    }
}

/// Sends a publisher's due frames; returns when the next one is due.
fn send_frames(
    live: &mut Live,
    shared: &Shared,
    phase: u8,
    now: Instant,
    packet: &mut Vec<u8>,
    loss: &mut Loss,
) -> Option<Instant> {
    let Role::Publisher(streams) = &mut live.client.role else {
        return None;
    };
    if live.client.endpoint.phase() != Phase::Connected {
        return None;
    }
    let mut next = None::<Instant>;
    for s in streams.iter_mut() {
        let due = *s.next_frame.get_or_insert(now);
        if now >= due {
            let window = &shared.windows[s.index as usize];
            if phase >= phase::MEASURE && !s.started {
                window.start.store(u64::from(s.seq), Ordering::Release);
                s.started = true;
            }
            if phase >= phase::DRAIN && !s.ended {
                window.end.store(u64::from(s.seq), Ordering::Release);
                s.ended = true;
            }
            let keyframe = std::mem::take(&mut s.keyframe_due);
            for p in 0..s.packets_per_frame {
                let layered = s.rid.map(|rid| media::Layered {
                    rid_id: crate::sdp::RID_ID,
                    rid: rid.as_bytes(),
                    first: p == 0,
                    keyframe,
                });
                let send = SendTime {
                    sent_us: shared.micros(Instant::now()),
                    stream: s.index,
                    seq: s.seq,
                };
                media::write_packet(
                    packet,
                    s.pt,
                    p + 1 == s.packets_per_frame,
                    s.rtp_seq,
                    s.timestamp,
                    s.ssrc,
                    crate::sdp::SEND_TIME_ID,
                    send,
                    Some((crate::sdp::TWCC_ID, live.client.twcc_seq)),
                    layered,
                    s.payload_len,
                );
                live.client.twcc_seq = live.client.twcc_seq.wrapping_add(1);
                if let Some(protected) = live.client.endpoint.protect(packet) {
                    if let Some(sent) = live.client.sent.as_mut() {
                        sent.keep(s.ssrc, s.rtp_seq, &protected);
                    }
                    if !loss.drops() {
                        let _ = live.socket.send_to(&protected, live.client.remote);
                    }
                }
                if s.started && !s.ended {
                    window.sent.fetch_add(1, Ordering::Relaxed);
                }
                s.rtp_seq = s.rtp_seq.wrapping_add(1);
                s.seq += 1;
            }
            s.timestamp = s.timestamp.wrapping_add(s.ts_step);
            // Keep the schedule; if far behind, do not burst to catch up.
            let mut following = due + s.interval;
            if following < now {
                following = now + s.interval;
            }
            s.next_frame = Some(following);
        }
        let n = s.next_frame.unwrap_or(now);
        next = Some(next.map_or(n, |x| x.min(n)));
    }
    next
}

fn receive(
    live: &mut Live,
    shared: &Shared,
    from: SocketAddr,
    datagram: &[u8],
    stats: &mut Stats,
    loss: &mut Loss,
) {
    let now = Instant::now();
    let client = &mut live.client;
    let Some(rtp) = client.endpoint.handle_datagram(now, from, datagram) else {
        flush(client, &live.socket);
        return;
    };
    if classify(rtp) == PacketKind::Rtcp {
        let plain = client.endpoint.unprotect_rtcp(rtp);
        // The server's keyframe requests: a layer's next frame is one.
        if let (Some(plain), Role::Publisher(streams)) = (&plain, &mut client.role) {
            for packet in switchboard::wire::rtcp::packets(plain) {
                if let Some(ssrc) = packet.keyframe_request_ssrc() {
                    for s in streams.iter_mut().filter(|s| s.ssrc == ssrc) {
                        s.keyframe_due = true;
                    }
                }
            }
        }
        // The server's NACKs, answered from what the publisher kept.
        if let (Some(sent), Some(plain)) = (client.sent.as_mut(), plain) {
            let before = sent.resent;
            sent.answer(&plain, |resend| {
                if !loss.drops() {
                    let _ = live.socket.send_to(resend, client.remote);
                }
            });
            stats.publisher_resent += sent.resent - before;
        }
        return;
    }
    let arrival = client
        .receiving
        .as_mut()
        .map_or(Arrival::New, |r| r.on_rtp(rtp, now));
    if arrival == Arrival::Duplicate {
        stats.duplicates += 1;
        return;
    }
    let Role::Subscriber {
        send_time_id,
        created,
        got_media,
        layout,
    } = &mut client.role
    else {
        return;
    };
    let mut checked = None;
    let send = match send_time_id {
        Some(id) => media::read_send_time(rtp, *id),
        None => {
            let plain = client.endpoint.unprotect(datagram);
            // (Without the extension: no simulcast, no prefix.)
            let send = plain
                .as_deref()
                .and_then(|p| media::payload_send_time(p, 0));
            checked = Some(
                plain
                    .zip(send)
                    .is_some_and(|(p, s)| media::payload_matches(&p, 0, &s)),
            );
            send
        }
    };
    let Some(send) = send else { return };
    if !*got_media {
        *got_media = true;
        let setup = now.saturating_duration_since(*created);
        let _ = stats.setup_ms.record(setup.as_millis().max(1) as u64);
        let _ = stats.join_us.record(setup.as_micros().max(1) as u64);
    }
    let Some(window) = shared.windows.get(send.stream as usize) else {
        return;
    };
    let seq = u64::from(send.seq);
    if seq < window.start.load(Ordering::Acquire) || seq >= window.end.load(Ordering::Acquire) {
        return;
    }
    stats.received += 1;
    stats.count_stream(send.stream);
    if arrival == Arrival::Repaired {
        stats.recovered += 1;
    }
    let latency = shared.micros(now).saturating_sub(send.sent_us).max(1);
    let _ = stats.latency_us.record(latency);
    let prefix = match *layout {
        Some((per, layers)) if send.stream % per < layers => media::VP8_PREFIX,
        _ => 0,
    };
    if checked.is_none() && send.seq % 64 == 0 {
        checked = Some(
            client
                .endpoint
                .unprotect(datagram)
                .is_some_and(|plain| media::payload_matches(&plain, prefix, &send)),
        );
    }
    if let Some(ok) = checked {
        stats.sampled += 1;
        if !ok {
            stats.mismatches += 1;
        }
    }
}
