//! Simulcast through the engine on a virtual clock: a publisher sends three
//! layers (each with its own SSRC, sequence numbers, timestamp base and VP8
//! picture ids, as browsers do), a subscriber's preferences change, and
//! what the subscriber receives is checked packet by packet: one SSRC,
//! sequence numbers without a gap, timestamps a frame apart, picture ids
//! continuous, each switch at a keyframe of the new layer, and never a
//! slot without a frame.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc_srtp::protection_profile::ProtectionProfile;
use serde_json::json;

use super::fixture::{keys, peer};
use super::messages::{EngineEvent, WorkerCommand};
use super::{Counters, Engine, IceDirectory};
use crate::codec::{Codec, vp8};
use crate::engine::session_media::{InboundRoute, Outlet, SessionMedia, SimulcastPull};
use crate::fanout::{FanoutTable, TrackFanout};
use crate::ids::{Mid, Rid, SessionKey, TrackKey, WorkerId};
use crate::simulcast::{Layer, Preferences};
use crate::srtp::SrtpSession;
use crate::wire::rtcp::{self, SenderInfo};
use crate::wire::rtp::RtpHeader;
use crate::wire::{PacketKind, classify};

const RID_EXT: u8 = 10;
const OUT_SSRC: u32 = 0x5000;
const PUBLISHER: SessionKey = SessionKey(0);
const SUBSCRIBER: SessionKey = SessionKey(1);
/// One frame every 1/30 s: 3000 ticks of 90 kHz.
const FRAME: Duration = Duration::from_nanos(33_333_333);

/// One layer as a browser's encoder sends it.
struct SentLayer {
    rid: &'static str,
    ssrc: u32,
    seq: u16,
    ts_base: u32,
    picture_id: u16,
    tl0: u8,
    packets_per_frame: usize,
    /// A keyframe is due at the next frame (asked for, or periodic).
    keyframe_due: bool,
}

struct Call {
    engine: Engine,
    publisher: SocketAddr,
    publisher_srtp: SrtpSession,
    subscriber: SocketAddr,
    subscriber_srtp: SrtpSession,
    layers: Vec<SentLayer>,
    codec: Codec,
    fanout: Arc<TrackFanout>,
    now: Instant,
    slot: u32,
    /// What the subscriber got: (seq, ts, picture id, marker, layer tag, keyframe).
    received: Vec<Received>,
    keyframe_requests: Vec<(u32, Option<Layer>)>,
}

#[derive(Debug, Clone, Copy)]
struct Received {
    seq: u16,
    ts: u32,
    picture_id: Option<u16>,
    marker: bool,
    layer: u8,
    keyframe: bool,
    slot: u32,
}

fn rids() -> Vec<Rid> {
    ["f", "h", "q"].into_iter().map(Rid::from).collect()
}

fn outlet(track: TrackKey, preferences: serde_json::Value) -> Outlet {
    Outlet {
        track,
        video: true,
        ssrc: OUT_SSRC,
        payload_types: vec![(96, 96)],
        extensions: [0; 16],
        nack: false,
        rtx: None,
        simulcast: Some(SimulcastPull {
            rids: rids(),
            preferences: Preferences::from_api(&preferences),
        }),
    }
}

fn subscriber_media(track: TrackKey, preferences: serde_json::Value) -> Arc<SessionMedia> {
    Arc::new(SessionMedia {
        rtcp_ssrc: 2,
        outlets: vec![outlet(track, preferences)],
        ..SessionMedia::default()
    })
}

impl Call {
    fn new(codec: Codec, preferences: serde_json::Value) -> Self {
        let now = Instant::now();
        let mut engine = Engine::new(
            WorkerId(0),
            1,
            Arc::new(IceDirectory::default()),
            Arc::new(Counters::default()),
            now,
        );
        let fanout = Arc::new(TrackFanout::new(TrackKey(7)));
        let publisher = SocketAddr::from(([127, 0, 0, 1], 10000));
        let subscriber = SocketAddr::from(([127, 0, 0, 1], 20000));
        let (pk, sk) = (
            keys(ProtectionProfile::AeadAes128Gcm, 1),
            keys(ProtectionProfile::AeadAes128Gcm, 9),
        );
        let route = InboundRoute {
            mid: Mid("0".into()),
            ssrcs: Vec::new(),
            payload_types: vec![96],
            clock_rate: 90_000,
            fanout: fanout.clone(),
            nack: false,
            rtx: Vec::new(),
            rids: rids(),
            formats: vec![(96, codec)],
        };
        let publisher_media = SessionMedia {
            mid_extension: None,
            twcc_extension: None,
            rid_extensions: (Some(RID_EXT), None),
            rtcp_ssrc: 1,
            inbound: vec![route],
            outlets: Vec::new(),
        };
        for (key, addr, k, media) in [
            (PUBLISHER, publisher, pk.clone(), Arc::new(publisher_media)),
            (
                SUBSCRIBER,
                subscriber,
                sk.clone(),
                subscriber_media(fanout.key, preferences),
            ),
        ] {
            engine.handle_command(WorkerCommand::Attach { key, addr });
            engine.handle_command(WorkerCommand::Keys { key, keys: k });
            engine.handle_command(WorkerCommand::Media { key, media });
        }
        fanout.store(FanoutTable {
            per_worker: vec![vec![SUBSCRIBER]],
        });
        let layer = |rid, ssrc, seq, ts_base, picture_id, packets_per_frame| SentLayer {
            rid,
            ssrc,
            seq,
            ts_base,
            picture_id,
            tl0: 0,
            packets_per_frame,
            keyframe_due: true,
        };
        Call {
            engine,
            publisher,
            publisher_srtp: peer(&pk),
            subscriber,
            subscriber_srtp: peer(&sk),
            // Unrelated numbers per layer, as libwebrtc picks them.
            layers: vec![
                layer("f", 0x100, 65_500, 4_000_000_000, 0x7ff0, 3),
                layer("h", 0x200, 10, 77, 100, 2),
                layer("q", 0x300, 30_000, 1_000_000, 20_000, 1),
            ],
            codec,
            fanout,
            now,
            slot: 0,
            received: Vec::new(),
            keyframe_requests: Vec::new(),
        }
    }

    /// The packets of layer `l`'s frame in this slot.
    fn frame(&mut self, l: usize) -> Vec<Vec<u8>> {
        let codec = self.codec;
        let slot = self.slot;
        let layer = &mut self.layers[l];
        let keyframe = std::mem::take(&mut layer.keyframe_due);
        layer.picture_id = (layer.picture_id + 1) % 0x8000;
        layer.tl0 = layer.tl0.wrapping_add(1);
        let ts = layer.ts_base.wrapping_add(slot * 3000);
        (0..layer.packets_per_frame)
            .map(|i| {
                let last = i + 1 == layer.packets_per_frame;
                let mut p = vec![0x90, 96 | if last { 0x80 } else { 0 }];
                p.extend_from_slice(&layer.seq.to_be_bytes());
                layer.seq = layer.seq.wrapping_add(1);
                p.extend_from_slice(&ts.to_be_bytes());
                p.extend_from_slice(&layer.ssrc.to_be_bytes());
                // One-byte extensions: the rid, padded to a word.
                let rid = layer.rid.as_bytes();
                let mut ext = vec![(RID_EXT << 4) | (rid.len() as u8 - 1)];
                ext.extend_from_slice(rid);
                while ext.len() % 4 != 0 {
                    ext.push(0);
                }
                p.extend_from_slice(&[0xbe, 0xde, 0, (ext.len() / 4) as u8]);
                p.extend_from_slice(&ext);
                match codec {
                    Codec::Vp8 => {
                        // X, S on the first packet; I and L; 15-bit picture id.
                        let [hi, lo] = layer.picture_id.to_be_bytes();
                        let s = if i == 0 { 0x10 } else { 0 };
                        p.extend_from_slice(&[0x80 | s, 0xc0, 0x80 | hi, lo, layer.tl0]);
                        p.push(if keyframe { 0x00 } else { 0x01 });
                    }
                    _ => match (i, keyframe) {
                        // STAP-A with SPS and PPS, then FU-A of the IDR.
                        (0, true) => p.extend_from_slice(&[0x78, 0, 2, 0x67, 0x42, 0, 1, 0x68]),
                        (0, false) => p.extend_from_slice(&[0x7c, 0x81]),
                        _ => p.extend_from_slice(&[0x7c, if keyframe { 0x05 } else { 0x01 }]),
                    },
                }
                // The layer and the slot, to tell what arrived.
                p.push(l as u8);
                p.extend_from_slice(&slot.to_be_bytes());
                p.push(u8::from(keyframe));
                p.extend(std::iter::repeat_n(0xab, 100 >> l));
                p
            })
            .collect()
    }

    fn send_publisher(&mut self, plain: &[u8], rtcp: bool) {
        let protected = if rtcp {
            self.publisher_srtp.protect_rtcp(plain)
        } else {
            self.publisher_srtp.protect_rtp(plain)
        };
        let mut datagram = protected.expect("protect").to_vec();
        self.engine
            .handle_datagram(self.now, self.publisher, &mut datagram);
    }

    /// One frame slot: every live layer's frame (and sender reports once a
    /// second), then the engine's outputs.
    fn step(&mut self, live: &[usize]) {
        if self.slot.is_multiple_of(30) {
            for l in 0..self.layers.len() {
                let layer = &self.layers[l];
                let mut sr = Vec::new();
                rtcp::write_sr(
                    &mut sr,
                    &SenderInfo {
                        ssrc: layer.ssrc,
                        // 1000 s plus this slot's time, 32.32.
                        ntp: (1000u64 << 32) + u64::from(self.slot) * (1u64 << 32) / 30,
                        rtp_timestamp: layer.ts_base.wrapping_add(self.slot * 3000),
                        packet_count: 0,
                        octet_count: 0,
                    },
                );
                self.send_publisher(&sr, true);
            }
        }
        // Periodic keyframes, each layer at its own phase.
        for (l, layer) in self.layers.iter_mut().enumerate() {
            if self.slot % 90 == 30 * l as u32 + 10 {
                layer.keyframe_due = true;
            }
        }
        for &l in live {
            for packet in self.frame(l) {
                self.send_publisher(&packet, false);
            }
        }
        self.drain();
        self.now += FRAME;
        self.slot += 1;
        self.engine.handle_timeout(self.now);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.engine.poll_transmit() {
            if t.to != self.subscriber {
                continue;
            }
            for datagram in t.datagrams() {
                if classify(datagram) != PacketKind::Rtp {
                    continue;
                }
                let plain = self.subscriber_srtp.unprotect_rtp(datagram).expect("srtp");
                let h = RtpHeader::new_checked(&plain).expect("rtp");
                assert_eq!(h.ssrc(), OUT_SSRC, "one SSRC whatever the layer");
                let payload = &plain[h.payload_offset()..];
                let (picture_id, tag) = match self.codec {
                    Codec::Vp8 => {
                        let d = vp8::Descriptor::parse(payload).expect("vp8");
                        (d.read_picture_id(payload), d.payload_offset + 1)
                    }
                    _ => {
                        let header = if payload[0] & 0x1f == 24 { 8 } else { 2 };
                        (None, header)
                    }
                };
                self.received.push(Received {
                    seq: h.sequence_number(),
                    ts: h.timestamp(),
                    picture_id,
                    marker: h.marker(),
                    layer: payload[tag],
                    slot: u32::from_be_bytes(payload[tag + 1..tag + 5].try_into().expect("slot")),
                    keyframe: payload[tag + 5] == 1,
                });
            }
        }
        while let Some(event) = self.engine.poll_event() {
            if let EngineEvent::KeyframeRequest { track, layer } = event {
                assert_eq!(track, self.fanout.key);
                self.keyframe_requests.push((self.slot, layer));
                // The publisher answers with a keyframe on its next frame.
                for (l, sent) in self.layers.iter_mut().enumerate() {
                    if layer.is_none_or(|x| x.index() == l) {
                        sent.keyframe_due = true;
                    }
                }
            }
        }
    }

    fn prefer(&mut self, preferences: serde_json::Value) {
        self.engine.handle_command(WorkerCommand::Media {
            key: SUBSCRIBER,
            media: subscriber_media(self.fanout.key, preferences),
        });
    }

    /// Asserts the received stream is one continuous, decodable stream and
    /// returns, per slot, the layer seen.
    fn check_continuity(&self) -> Vec<(u32, u8)> {
        let r = &self.received;
        assert!(!r.is_empty());
        assert!(r[0].keyframe, "it starts at a keyframe");
        let mut frames = vec![(r[0].slot, r[0].layer)];
        for w in r.windows(2) {
            let (a, b) = (w[0], w[1]);
            assert_eq!(
                b.seq,
                a.seq.wrapping_add(1),
                "no gap in sequence numbers: {a:?} {b:?}"
            );
            if b.layer != a.layer {
                assert!(b.keyframe, "a switch only at a keyframe: {a:?} {b:?}");
            }
            if b.ts == a.ts {
                assert_eq!(b.slot, a.slot, "one timestamp per frame");
                assert_eq!(b.picture_id, a.picture_id, "one picture id per frame");
                continue;
            }
            assert!(a.marker, "a frame ends before the next begins: {a:?} {b:?}");
            // As far apart as their capture times, and at least a frame
            // (a new layer's keyframe of the same instant as the last frame
            // sent comes a frame later).
            let frames_apart = b.slot.saturating_sub(a.slot).max(1);
            assert_eq!(b.ts.wrapping_sub(a.ts), 3000 * frames_apart, "{a:?} {b:?}");
            if let (Some(x), Some(y)) = (a.picture_id, b.picture_id) {
                assert_eq!(y, (x + 1) % 0x8000, "picture ids continue: {a:?} {b:?}");
            }
            frames.push((b.slot, b.layer));
        }
        frames
    }
}

fn run_switches(codec: Codec) {
    let mut call = Call::new(codec, json!({"preferredRid": "f"}));
    for _ in 0..90 {
        call.step(&[0, 1, 2]);
    }
    call.prefer(json!({"preferredRid": "h"}));
    for _ in 0..90 {
        call.step(&[0, 1, 2]);
    }
    call.prefer(json!({"preferredRid": "q"}));
    for _ in 0..90 {
        call.step(&[0, 1, 2]);
    }
    let mut frames = call.check_continuity();
    // Every slot has a frame: never without a decodable frame. (At a
    // switch the old layer's frame and the new layer's keyframe may be of
    // the same slot; the later one counts.)
    frames.dedup_by(|later, earlier| {
        let same = later.0 == earlier.0;
        if same {
            *earlier = *later;
        }
        same
    });
    let slots: Vec<u32> = frames.iter().map(|(s, _)| *s).collect();
    assert_eq!(slots, (0..270).collect::<Vec<_>>());
    // f, then h from the first frame after the request, then q likewise.
    let layer_at = |slot: u32| frames[slot as usize].1;
    assert_eq!(layer_at(89), 0);
    assert_eq!(layer_at(91), 1, "h within a frame of the request");
    assert_eq!(layer_at(179), 1);
    assert_eq!(layer_at(181), 2, "q within a frame of the request");
    // The requests named the target layers.
    let asked: Vec<Option<Layer>> = call.keyframe_requests.iter().map(|(_, l)| *l).collect();
    assert!(asked.contains(&Some(Layer(1))) && asked.contains(&Some(Layer(2))));
    assert!(
        !asked.contains(&Some(Layer(0))),
        "f was reached without asking"
    );
}

#[test]
fn vp8_layers_switch_at_keyframes_with_continuous_numbers_times_and_picture_ids() {
    run_switches(Codec::Vp8);
}

#[test]
fn h264_layers_switch_at_keyframes_with_continuous_numbers_and_times() {
    run_switches(Codec::H264);
}

#[test]
fn a_stopped_layer_is_replaced_by_the_next_and_resumes_when_it_returns() {
    let mut call = Call::new(
        Codec::Vp8,
        json!({"preferredRid": "f", "ridNotAvailable": "asciibetical"}),
    );
    for _ in 0..60 {
        call.step(&[0, 1, 2]);
    }
    // f stops (the publisher disabled it) for 3 s.
    for _ in 0..90 {
        call.step(&[1, 2]);
    }
    for _ in 0..90 {
        call.step(&[0, 1, 2]);
    }
    let frames = call.check_continuity();
    let layer_at = |slot: u32| frames.iter().find(|(s, _)| *s == slot).map(|(_, l)| *l);
    assert_eq!(layer_at(59), Some(0));
    // Silent for a second, then h: the gap is about a second.
    let h_from = frames
        .iter()
        .find(|(_, l)| *l == 1)
        .map(|(s, _)| *s)
        .expect("h sent");
    assert!((60..=60 + 32).contains(&h_from), "h from slot {h_from}");
    assert_eq!(layer_at(149), Some(1));
    // f returns at slot 150 and is taken back at its next frame.
    assert_eq!(layer_at(152), Some(0));
}

#[test]
fn with_the_default_preferences_the_chosen_layer_is_kept_when_it_stops() {
    let mut call = Call::new(Codec::Vp8, json!({"preferredRid": "f"}));
    for _ in 0..30 {
        call.step(&[0, 1, 2]);
    }
    for _ in 0..60 {
        call.step(&[1, 2]);
    }
    let frames = call.check_continuity();
    assert!(frames.iter().all(|(_, l)| *l == 0), "only f, then nothing");
    assert_eq!(frames.len(), 30);
}
