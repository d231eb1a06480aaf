//! The forwarding stage: the inbox's packets, grouped by track, fanned out
//! to each subscriber here or handed to the worker that owns it, then per
//! subscriber rewritten (SSRC, sequence, simulcast layer), protected in
//! place into the arena and coalesced into one GSO transmit; publishers'
//! sender reports follow the same path, translated.

use std::sync::Arc;
use std::time::Instant;

use super::counters::{Counters, DropReason};
use super::gso::Coalescer;
use super::messages::{EngineEvent, Handoff, HandoffPayload};
use super::packet_run::{PacketRun, RunHeader};
use super::{Engine, Transmit};
use crate::bwe::pause;
use crate::codec::Codec;
use crate::fanout::TrackFanout;
use crate::fanout::tap::Tap;
use crate::ids::{SessionKey, TrackKey, WorkerId};
use crate::simulcast::{Admit, Estimate, Layer, LayerSwitch};
use crate::srtp::gcm;
use crate::streams::egress::OutboundStream;
use crate::wire::rtcp::SenderInfo;
use crate::wire::rtp::Rewrite;
use crate::wire::{rtcp, rtp};

/// What fans out to a track's subscribers.
#[derive(Clone, Copy)]
pub(super) enum Forwarded<'a> {
    /// RTP packets of the track, unprotected.
    Rtp(PacketRun<'a>),
    /// The publisher's sender info, and the simulcast layer it is of.
    SenderReport(SenderInfo, Option<Layer>),
}

impl Engine {
    /// Fans out the received packets waiting in the inbox, a run per track.
    pub(super) fn forward_inbox(&mut self) {
        if self.inbox.is_empty() {
            return;
        }
        let mut inbox = std::mem::take(&mut self.inbox);
        inbox.drain_runs(|fanout, run| self.fan_out(fanout, Forwarded::Rtp(run)));
        self.inbox = inbox;
    }

    /// Sends a packet of a track to its subscribers on this worker, and hands
    /// one shared copy to each other worker that has subscribers.
    pub(super) fn fan_out(&mut self, fanout: &Arc<TrackFanout>, packet: Forwarded<'_>) {
        let table = fanout.load();
        let mut shared: Option<Arc<Handoff>> = None;
        for (w, subscribers) in table.per_worker.iter().enumerate() {
            if subscribers.is_empty() {
                continue;
            }
            if w == self.id.0 {
                self.deliver(subscribers, fanout.key, packet);
            } else if w < self.workers {
                let handoff = shared
                    .get_or_insert_with(|| match packet {
                        Forwarded::Rtp(run) => self.pool.rtp(fanout, run),
                        Forwarded::SenderReport(info, layer) => Arc::new(Handoff {
                            fanout: fanout.clone(),
                            payload: HandoffPayload::SenderReport(info, layer),
                        }),
                    })
                    .clone();
                self.handoffs.push_back((WorkerId(w), handoff));
            }
        }
        if let Some(taps) = fanout.taps()
            && let Some(taps) = taps.as_deref()
        {
            self.feed_taps(taps, fanout.key, packet);
        }
    }

    /// Hands a packet of a recorded track to its recorders' taps (copies
    /// into their pooled buffers; never blocks), and passes on a keyframe
    /// request a recorder raised. Out of line: untapped tracks never get
    /// here.
    #[inline(never)]
    fn feed_taps(&mut self, taps: &[Arc<Tap>], track: TrackKey, packet: Forwarded<'_>) {
        for tap in taps {
            match packet {
                Forwarded::Rtp(run) => {
                    for (plain, header) in run.packets() {
                        tap.offer_rtp(self.clock, header.layer, plain);
                    }
                }
                Forwarded::SenderReport(info, _) => tap.offer_sender_report(self.clock, info),
            }
            if tap.take_keyframe_request() {
                self.events
                    .push_back(EngineEvent::KeyframeRequest { track, layer: None });
            }
        }
    }

    /// Sends a packet of `track` to `subscribers`, all on this worker.
    pub(super) fn deliver(
        &mut self,
        subscribers: &[SessionKey],
        track: TrackKey,
        packet: Forwarded<'_>,
    ) {
        match packet {
            Forwarded::Rtp(run) => {
                self.histories.store(track, run, self.clock);
                for &sub in subscribers {
                    self.forward_run(sub, track, run);
                }
            }
            Forwarded::SenderReport(info, layer) => {
                for &sub in subscribers {
                    self.forward_sender_report(sub, track, &info, layer);
                }
            }
        }
    }

    /// Sends a run of plaintext RTP packets of `track` to subscriber `sub`
    /// on this worker: rewritten and protected back to back into the arena,
    /// queued as few GSO transmits.
    pub(super) fn forward_run(&mut self, sub: SessionKey, track: TrackKey, run: PacketRun<'_>) {
        let counters = &self.counters;
        let Some(s) = self.sessions.get_mut(&sub) else {
            counters.count_drops(DropReason::NotReady, run.len());
            return;
        };
        let Some(srtp) = s.srtp.as_mut() else {
            counters.count_drops(DropReason::NotReady, run.len());
            return;
        };
        let mut forwarded = 0;
        let clock = self.clock;
        let twcc = s.media.twcc_extension;
        // A session may pull the same track into several transceivers.
        for outlet in s.media.outlets.iter().filter(|o| o.track == track) {
            let paused = outlet.video && s.estimate.as_ref().is_some_and(|e| e.paused);
            let stream = s.outbound.entry(outlet.ssrc).or_default();
            // A simulcast pull sees every layer go by, paused or not.
            let mut layers = outlet.simulcast.as_ref().map(|pull| {
                stream.layers.take().unwrap_or_else(|| {
                    Box::new(LayerSwitch::new(pull.preferences.clone(), &pull.rids))
                })
            });
            if paused && layers.is_none() {
                continue;
            }
            // The whole run fits in one block, so its datagrams are contiguous.
            let need = run.bytes() + run.len() * gcm::TAG_LEN;
            self.arena.reserve(need);
            let estimate = layers
                .as_ref()
                .and(s.estimate.as_ref())
                .and_then(|e| e.for_layers(clock));
            let mut group = Coalescer::new(s.addr);
            for (plain, header) in run.packets() {
                if let Some(sw) = layers.as_deref_mut()
                    && !admit_layer(
                        sw,
                        stream,
                        header,
                        plain.len(),
                        clock,
                        estimate,
                        paused,
                        counters,
                    )
                {
                    continue;
                }
                let Some(pt) = outlet.map_payload_type(header.payload_type) else {
                    counters.count_drop(DropReason::UnmappedPayloadType);
                    continue;
                };
                let (seq, ts) = stream.translate(
                    header.ssrc,
                    header.sequence_number,
                    header.timestamp,
                    plain.len() - header.layout.payload_offset,
                );
                let packet = self.arena.block();
                packet.extend_from_slice(plain);
                let number = s.twcc_seq;
                let stamped = rtp::rewrite_in_place(
                    packet,
                    header.layout,
                    Rewrite {
                        ssrc: outlet.ssrc,
                        payload_type: pt,
                        extensions: &outlet.extensions,
                        transport_cc: twcc.map(|id| (id, number)),
                    },
                );
                if stamped {
                    s.twcc_seq = number.wrapping_add(1);
                }
                if let Some(e) = s.estimate.as_deref_mut() {
                    if stamped {
                        e.bwe.sent(number, plain.len() + gcm::TAG_LEN, clock, None);
                    }
                    if outlet.video {
                        e.note_video(plain.len());
                    }
                }
                rtp::set_sequence_number(packet, seq);
                rtp::set_timestamp(packet, ts);
                if let Some(sw) = layers.as_deref_mut() {
                    let vp8 = header.codec == Codec::Vp8;
                    let payload = vp8
                        .then(|| packet.get_mut(header.layout.payload_offset..))
                        .flatten();
                    sw.sent_packet(payload, header.marker);
                }
                let protected = match s.gcm.as_mut() {
                    Some(g) => g
                        .protect(packet, header.layout.payload_offset)
                        .map(|()| packet.split())
                        .ok(),
                    None => {
                        let p = srtp.protect_rtp(packet).ok();
                        packet.clear();
                        p
                    }
                };
                match protected {
                    Some(bytes) => {
                        forwarded += 1;
                        group.push(bytes, &mut self.transmits);
                    }
                    None => counters.count_drop(DropReason::SrtpFailure),
                }
            }
            group.finish(&mut self.transmits);
            if let Some(mut sw) = layers {
                sw.retarget(clock, estimate);
                if let Some(rate) = sw.poll_probe(clock, estimate)
                    && let Some(e) = s.estimate.as_deref_mut()
                {
                    e.bwe.request_probe(rate, pause::PROBE_LENGTH, clock);
                }
                if let Some(layer) = sw.poll_keyframe_request(clock) {
                    self.events.push_back(EngineEvent::KeyframeRequest {
                        track,
                        layer: Some(layer),
                    });
                }
                stream.layers = Some(sw);
            }
        }
        Counters::add(&counters.rtp_forwarded, forwarded);
        if let Some(e) = s.estimate.as_deref_mut()
            && e.can_probe
            && !e.listed
            && e.bwe.probe_at().is_some()
        {
            e.listed = true;
            self.probing.list(sub, clock);
        }
    }

    /// Sends a sender report for `track` to subscriber `sub` on this worker.
    /// Of a simulcast track, each layer's report is kept (to map timestamps
    /// at a switch) and only the layer being sent is reported.
    pub(super) fn forward_sender_report(
        &mut self,
        sub: SessionKey,
        track: TrackKey,
        info: &SenderInfo,
        layer: Option<Layer>,
    ) {
        let Some(s) = self.sessions.get_mut(&sub) else {
            return;
        };
        let (Some(srtp), Some(outlet)) = (
            s.srtp.as_mut(),
            s.media.outlets.iter().find(|o| o.track == track),
        ) else {
            return;
        };
        let Some(stream) = s.outbound.get_mut(&outlet.ssrc) else {
            return;
        };
        if let Some(sw) = stream.layers.as_deref_mut() {
            let Some(layer) = layer else {
                return;
            };
            sw.handle_sender_report(layer, info.ntp, info.rtp_timestamp);
            if sw.timeline() != Some(layer) {
                return;
            }
        }
        self.scratch.clear();
        let report = stream.sender_report(outlet.ssrc, info);
        rtcp::write_sr(&mut self.scratch, &report);
        s.rtt.sent(report.ntp, self.clock);
        if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
            self.transmits.push_back(Transmit::single(s.addr, bytes));
        }
    }
}

/// Whether a packet of a simulcast track goes to this pull (`sw`), after
/// `sw` saw it go by; a switch to its layer re-bases `stream` on it. Kept
/// out of line: the forwarding loop of tracks that are not simulcast stays
/// small.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn admit_layer(
    sw: &mut LayerSwitch,
    stream: &mut OutboundStream,
    header: &RunHeader,
    len: usize,
    now: Instant,
    estimate: Option<Estimate>,
    paused: bool,
    counters: &Counters,
) -> bool {
    let Some(layer) = header.layer else {
        return false;
    };
    match sw.admit_packet(now, layer, len, header.keyframe, estimate, paused) {
        Admit::Skip => false,
        Admit::Forward => true,
        Admit::Switch => {
            let (ssrc, seq, ts) = (header.ssrc, header.sequence_number, header.timestamp);
            stream.switch_layer(sw, layer, ssrc, seq, ts);
            Counters::add(&counters.layer_switches, 1);
            true
        }
    }
}
