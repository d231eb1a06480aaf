//! The ingest task: PCM from an endpoint, published as an Opus track that
//! anyone pulls.
//!
//! One task per adapter on the adapter runtime. It reads the endpoint's
//! messages (each a protobuf `Packet`; only `payload` counts; an empty one
//! ends a segment), cuts the PCM into 20 ms frames, encodes them with
//! libopus (in-band FEC on) and queues them in the [`Pacer`], which lets
//! them out at real-time pace with silence in between, as the track of the
//! adapter's WebRTC client (str0m writes the RTP, sequence numbers and
//! sender reports). While 60 s are queued the task stops reading, so TCP
//! pushes back on the endpoint. A message that is not a `Packet`, or one
//! over 32 KB, closes the adapter. Ingest never reconnects: when the
//! endpoint closes, what is queued is played out and the adapter ends.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaTime};
use str0m::{Event, IceConnectionState};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::client::LocalClient;
use super::counters::{AdapterCounters, CloseReason, Drop as Dropped};
use super::ingest_pacer::{Pacer, PcmFramer};
use super::packet::{MAX_PAYLOAD, Packet};
use super::pcm::OpusEncoder;
use super::websocket::Socket;

/// The most frames one message makes (32 KB of PCM, plus a partial
/// frame): reading pauses unless the queue has room for them.
const FRAMES_PER_MESSAGE: usize = MAX_PAYLOAD / super::ingest_pacer::FRAME_BYTES + 2;
/// How long a client that never connects is waited for.
const CONNECT_WITHIN: Duration = Duration::from_secs(15);

/// An ingest adapter, set up and connected, ready to run.
pub struct Ingest {
    /// Its WebRTC client (the push is negotiated).
    pub client: LocalClient,
    /// Its WebSocket, open.
    pub socket: Socket,
    /// The encoder.
    pub encoder: Box<OpusEncoder>,
}

/// Runs the adapter until `stop` changes or it ends by itself; returns why
/// it ended. The client's session is the caller's to end.
pub async fn run(
    ingest: Ingest,
    mut stop: watch::Receiver<bool>,
    bytes: Arc<AtomicU64>,
    counters: Arc<AdapterCounters>,
) -> CloseReason {
    let Ingest {
        mut client,
        mut socket,
        mut encoder,
    } = ingest;
    let started = Instant::now();
    let mut framer = PcmFramer::default();
    let mut pacer: Pacer<Vec<u8>> = Pacer::default();
    let mut events = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut endpoint_open = true;
    let mut paused = false;
    let mut connected = false;
    let mut silence: Option<Vec<u8>> = None;
    loop {
        let now = Instant::now();
        if !client.poll(&mut events) {
            return CloseReason::MediaGone;
        }
        for e in events.drain(..) {
            match e {
                Event::Connected => {
                    connected = true;
                    pacer.start(now);
                }
                Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                    return CloseReason::MediaGone;
                }
                _ => {}
            }
        }
        if !connected && now.duration_since(started) > CONNECT_WITHIN {
            return CloseReason::MediaGone;
        }
        let mid = client.mid;
        let pt = client.rtc().writer(mid).and_then(|w| {
            w.payload_params()
                .find(|p| p.spec().codec == Codec::Opus)
                .map(|p| p.pt())
        });
        while let Some(due) = pacer.poll(now) {
            let data = match due.frame {
                Some(f) => f,
                None => silence
                    .get_or_insert_with(|| encoder.encode(None).unwrap_or_default())
                    .clone(),
            };
            let (Some(pt), Some(w)) = (pt, client.rtc().writer(mid)) else {
                continue;
            };
            let t = MediaTime::new(due.rtp_time, Frequency::FORTY_EIGHT_KHZ);
            let _ = w.write(pt, now, t, data);
        }
        if !endpoint_open && pacer.queued() == 0 {
            return CloseReason::EndpointGone;
        }
        if paused && pacer.room() >= FRAMES_PER_MESSAGE {
            paused = false;
        }
        let mut wake = client.next_timeout(now);
        if let Some(due) = pacer.next_due() {
            wake = wake.min(due);
        }
        let reading = endpoint_open && !paused;
        tokio::select! {
            _ = stop.changed() => return CloseReason::Api,
            _ = client.receive(&mut buf) => {}
            _ = tokio::time::sleep_until(wake.into()) => client.handle_timeout(Instant::now()),
            incoming = socket.next(), if reading => match incoming {
                Some(Ok(Message::Binary(b))) => {
                    let Some(packet) = Packet::from_bytes(&b) else {
                        let _ = socket.close(None).await;
                        return CloseReason::Garbage;
                    };
                    if packet.payload.len() > MAX_PAYLOAD {
                        let _ = socket.close(None).await;
                        return CloseReason::Garbage;
                    }
                    counters.messages_in.fetch_add(1, Relaxed);
                    counters.bytes_in.fetch_add(packet.payload.len() as u64, Relaxed);
                    bytes.fetch_add(packet.payload.len() as u64, Relaxed);
                    for frame in framer.push(&packet.payload) {
                        if let Some(opus) = encoder.encode(Some(&frame)) {
                            let _ = pacer.queue(opus);
                        }
                    }
                    if pacer.room() < FRAMES_PER_MESSAGE {
                        paused = true;
                        counters.dropped(Dropped::IngestPaused, 1);
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    for frame in framer.push(&[]) {
                        if let Some(opus) = encoder.encode(Some(&frame)) {
                            let _ = pacer.queue(opus);
                        }
                    }
                    endpoint_open = false;
                }
                // A message over the socket's limits.
                Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(_))) => {
                    return CloseReason::Garbage;
                }
                // A broken connection: play out what came.
                Some(Err(_)) => endpoint_open = false,
                // Text is not a Packet.
                Some(Ok(Message::Text(_))) => {
                    let _ = socket.close(None).await;
                    return CloseReason::Garbage;
                }
                // Ping, pong: nothing to play.
                Some(Ok(_)) => {}
            },
        }
    }
}
