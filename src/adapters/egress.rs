//! The egress task: a pulled track to an endpoint, as PCM frames (audio)
//! or JPEG pictures (video), one protobuf `Packet` per message.
//!
//! One task per adapter on the adapter runtime. It drives the adapter's
//! WebRTC client ([`LocalClient`]), turns what arrives into messages
//! (`playout` + `pcm` for audio, `jpeg` for video), queues them in a
//! bounded [`Backlog`] and hands them one at a time to the connection
//! task that owns the WebSocket. If the endpoint goes away the task
//! reconnects for up to [`RECONNECT_WINDOW`] while the backlog keeps the
//! recent past (audio: 5 s, video: the latest picture); an endpoint that
//! takes nothing for `backlog::STUCK_AFTER` is closed.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use str0m::format::Codec;
use str0m::media::MediaData;
use str0m::{Event, IceConnectionState};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::backlog::{AUDIO_BACKLOG, Backlog, VIDEO_BACKLOG};
use super::client::LocalClient;
use super::counters::{AdapterCounters, CloseReason, Drop as Dropped};
use super::jpeg::{JpegMaker, VideoCodec};
use super::packet::Packet;
use super::pcm::PcmDecoder;
use super::playout::{FRAME_TICKS, Playout};
use super::websocket::{AddressPolicy, Endpoint, Socket, connect};

/// How long egress tries to reach its endpoint again after losing it.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(15);
/// Between reconnect attempts.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// A client that has not connected by then (or lost its connection) ends
/// the adapter.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(15);
/// How often the task checks that the pulled track's publisher is still
/// there (an adapter whose publisher left closes).
const SOURCE_CHECK_EVERY: Duration = Duration::from_secs(2);
/// At most one keyframe request per this long.
const KEYFRAME_EVERY: Duration = Duration::from_secs(1);

/// What the egress makes of the media.
pub enum Output {
    /// Audio: jitter buffer and Opus decoder.
    Pcm(Playout, Box<PcmDecoder>),
    /// Video: decoder and picture clock.
    Jpeg(Box<JpegMaker>),
}

/// An egress adapter, set up and connected, ready to run.
pub struct Egress {
    /// Asked whether the pulled track's publisher is still there.
    pub source: Box<dyn Fn() -> bool + Send>,
    /// Its WebRTC client (the pull is negotiated).
    pub client: LocalClient,
    /// Its WebSocket, open.
    pub socket: Socket,
    /// Where it reconnects to.
    pub endpoint: Endpoint,
    /// Which addresses it may reconnect to.
    pub policy: AddressPolicy,
    /// What it makes.
    pub output: Output,
}

/// One message for the endpoint: its bytes and its payload's size (what
/// `bytesProcessed` counts).
struct Outgoing {
    bytes: Vec<u8>,
    payload: u64,
}

impl Outgoing {
    fn of(packet: &Packet) -> Self {
        Outgoing {
            bytes: packet.to_bytes(),
            payload: packet.payload.len() as u64,
        }
    }
}

/// The WebSocket side: a task that writes what it is given and reads (and
/// ignores) what the endpoint sends; it ends when the connection does.
struct Connection {
    tx: mpsc::Sender<Outgoing>,
    task: JoinHandle<()>,
}

impl Connection {
    fn spawn(
        socket: Socket,
        bytes: Arc<std::sync::atomic::AtomicU64>,
        counters: Arc<AdapterCounters>,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(1);
        let task = tokio::spawn(async move {
            let mut socket = socket;
            loop {
                tokio::select! {
                    m = rx.recv() => {
                        let Some(m) = m else {
                            let _ = socket.close(None).await;
                            return;
                        };
                        let n = m.payload;
                        if socket.send(Message::Binary(m.bytes.into())).await.is_err() {
                            return;
                        }
                        bytes.fetch_add(n, Relaxed);
                        counters.messages_out.fetch_add(1, Relaxed);
                        counters.bytes_out.fetch_add(n, Relaxed);
                    }
                    incoming = socket.next() => match incoming {
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                        Some(Ok(_)) => {}
                    },
                }
            }
        });
        Connection { tx, task }
    }
}

impl Drop for Connection {
    /// The writer sees its queue close and sends a Close frame; one that
    /// cannot (a stuck endpoint) is stopped a second later.
    fn drop(&mut self) {
        let task = self.task.abort_handle();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    task.abort();
                });
            }
            Err(_) => task.abort(),
        }
    }
}

/// A task that is stopped when its handle goes (a reconnect attempt must
/// not outlive its adapter).
struct Attempt(JoinHandle<Option<Socket>>);

impl Drop for Attempt {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs the adapter until `stop` changes or it ends by itself; returns why
/// it ended. The client's session is the caller's to end.
pub async fn run(
    egress: Egress,
    mut stop: watch::Receiver<bool>,
    bytes: Arc<std::sync::atomic::AtomicU64>,
    counters: Arc<AdapterCounters>,
) -> CloseReason {
    let Egress {
        source,
        mut client,
        socket,
        endpoint,
        policy,
        mut output,
    } = egress;
    let mut backlog = Backlog::new(
        match output {
            Output::Pcm(..) => AUDIO_BACKLOG,
            Output::Jpeg(_) => VIDEO_BACKLOG,
        },
        Instant::now(),
    );
    let mut connection = Some(Connection::spawn(socket, bytes.clone(), counters.clone()));
    let mut reconnect: Option<(Instant, Attempt)> = None;
    let started = Instant::now();
    let mut connected = false;
    let mut events = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut sequence: u32 = 0;
    let mut last_keyframe_request: Option<Instant> = None;
    let mut late_seen = 0;
    let mut overflow_seen = 0;
    let mut concealed_seen = 0;
    let mut source_checked = Instant::now();
    loop {
        let now = Instant::now();
        if !connected && now.duration_since(started) > CONNECT_WITHIN {
            return CloseReason::MediaGone;
        }
        if now.duration_since(source_checked) >= SOURCE_CHECK_EVERY {
            source_checked = now;
            if !source() {
                return CloseReason::MediaGone;
            }
        }
        if !client.poll(&mut events) {
            return CloseReason::MediaGone;
        }
        for e in events.drain(..) {
            match &e {
                Event::Connected => connected = true,
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    return CloseReason::MediaGone;
                }
                _ => {}
            }
            match (e, &mut output) {
                (Event::RtpPacket(p), Output::Pcm(playout, _)) => {
                    playout.push(now, *p.seq_no, p.header.timestamp, &p.payload);
                }
                (Event::MediaData(d), Output::Jpeg(maker)) => {
                    let started = Instant::now();
                    // Decoding may take milliseconds: let the runtime move
                    // the other adapters off this thread meanwhile.
                    match tokio::task::block_in_place(|| picture(maker, now, &d)) {
                        Ok(Some(jpeg)) => {
                            counters.picture_time(started.elapsed().as_micros() as u64);
                            let ts =
                                d.time.rebase(str0m::media::Frequency::NINETY_KHZ).numer() as u32;
                            let m = Packet {
                                sequence_number: sequence,
                                timestamp: ts,
                                payload: jpeg,
                            };
                            sequence = sequence.wrapping_add(1);
                            if backlog.push(Outgoing::of(&m), now) {
                                counters.dropped(Dropped::Backlog, 1);
                            }
                        }
                        Ok(None) => {}
                        Err(_) => counters.dropped(Dropped::Undecodable, 1),
                    }
                    if maker.awaiting_keyframe()
                        && last_keyframe_request
                            .is_none_or(|t| now.duration_since(t) >= KEYFRAME_EVERY)
                    {
                        last_keyframe_request = Some(now);
                        client.request_keyframe();
                    }
                }
                (Event::Connected, Output::Jpeg(_)) => {
                    last_keyframe_request = Some(now);
                    client.request_keyframe();
                }
                _ => {}
            }
        }
        if let Output::Pcm(playout, decoder) = &mut output {
            while let Some(frame) = playout.poll(now) {
                let pcm = decoder.frame(&frame.source);
                let m = Packet {
                    sequence_number: frame.index,
                    timestamp: frame.index.wrapping_mul(FRAME_TICKS),
                    payload: pcm,
                };
                if backlog.push(Outgoing::of(&m), now) {
                    counters.dropped(Dropped::Backlog, 1);
                }
            }
            let c = playout.counts();
            counters.dropped(Dropped::Late, c.late - late_seen);
            late_seen = c.late;
            counters.dropped(Dropped::JitterOverflow, c.overflow - overflow_seen);
            overflow_seen = c.overflow;
            counters
                .concealed_frames
                .fetch_add(c.concealed + c.fec - concealed_seen, Relaxed);
            concealed_seen = c.concealed + c.fec;
        }
        if backlog.is_stuck(now) && connection.is_some() {
            return CloseReason::Stuck;
        }
        // The endpoint went: reconnect within the window, or end.
        if connection.as_ref().is_some_and(|c| c.task.is_finished()) {
            connection = None;
            reconnect = Some((
                now,
                attempt(
                    endpoint.clone(),
                    policy.clone(),
                    Duration::ZERO,
                    now + RECONNECT_WINDOW,
                ),
            ));
        }
        if let Some((since, task)) = &mut reconnect
            && task.0.is_finished()
        {
            let since = *since;
            let socket = (&mut task.0).await.ok().flatten();
            reconnect = None;
            match socket {
                Some(socket) => {
                    counters.reconnects.fetch_add(1, Relaxed);
                    backlog.restart(now);
                    connection = Some(Connection::spawn(socket, bytes.clone(), counters.clone()));
                }
                None if now.duration_since(since) + RECONNECT_EVERY >= RECONNECT_WINDOW => {
                    return CloseReason::EndpointGone;
                }
                None => {
                    let deadline = since + RECONNECT_WINDOW;
                    reconnect = Some((
                        since,
                        attempt(endpoint.clone(), policy.clone(), RECONNECT_EVERY, deadline),
                    ));
                }
            }
        }
        let mut wake = client.next_timeout(now);
        if let Output::Pcm(playout, _) = &output
            && let Some(due) = playout.next_due()
        {
            wake = wake.min(due);
        }
        let sender = connection.as_ref().map(|c| c.tx.clone());
        tokio::select! {
            _ = stop.changed() => return CloseReason::Api,
            _ = client.receive(&mut buf) => {}
            _ = tokio::time::sleep_until(wake.into()) => client.handle_timeout(Instant::now()),
            permit = async { sender.as_ref()?.reserve().await.ok() }, if !backlog.is_empty() && sender.is_some() => {
                if let (Some(permit), Some(m)) = (permit, backlog.take(Instant::now())) {
                    permit.send(m);
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(250)), if reconnect.is_some() || connection.is_none() => {}
        }
    }
}

fn picture(
    maker: &mut JpegMaker,
    now: Instant,
    d: &MediaData,
) -> Result<Option<Vec<u8>>, super::jpeg::VideoError> {
    let codec = match d.params.spec().codec {
        Codec::Vp8 => VideoCodec::Vp8,
        Codec::Vp9 => VideoCodec::Vp9,
        Codec::H264 => VideoCodec::H264,
        Codec::H265 => VideoCodec::H265,
        Codec::Av1 => VideoCodec::Av1,
        _ => return Ok(None),
    };
    let keyframe = match d.codec_extra {
        str0m::format::CodecExtra::Vp8(e) => Some(e.is_keyframe),
        str0m::format::CodecExtra::H264(e) => Some(e.is_keyframe),
        str0m::format::CodecExtra::H265(e) => Some(e.is_keyframe),
        str0m::format::CodecExtra::Av1(e) => Some(e.is_keyframe),
        _ => None,
    };
    Ok(maker
        .frame(now, codec, &d.data, keyframe, d.contiguous)?
        .map(|p| p.jpeg))
}

/// One attempt to reach the endpoint again after `delay`, given up at
/// `deadline` (the end of the reconnect window).
fn attempt(
    endpoint: Endpoint,
    policy: AddressPolicy,
    delay: Duration,
    deadline: Instant,
) -> Attempt {
    Attempt(tokio::spawn(async move {
        tokio::time::timeout_at(deadline.into(), async {
            tokio::time::sleep(delay).await;
            connect(&endpoint, &policy).await.ok()
        })
        .await
        .ok()
        .flatten()
    }))
}
