//! The feedback stage: RTCP from clients (NACKs answered from the
//! retransmission histories, PLI/FIR passed to publishers, transport-cc
//! feeding the subscriber's bandwidth estimate, sender and receiver reports
//! for RTT and timestamps), and the RTCP we send: keyframe requests, NACKs
//! and transport-cc feedback to publishers, receiver reports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::counters::Counters;
use super::forward::Forwarded;
use super::media_session::can_probe;
use super::messages::EngineEvent;
use super::nack::responder::Subscriber;
use super::off_path;
use super::{
    Engine, MAX_FEEDBACK_PER_DATAGRAM, REPORT_INTERVAL, REPORT_MTU, SSRC_TIMEOUT, Transmit,
};
use crate::bwe::pause::SubscriberEstimate;
use crate::fanout::TrackFanout;
use crate::ids::{SessionKey, TrackKey};
use crate::simulcast::Layer;
use crate::streams::rtt;
use crate::wire::rtcp::SenderInfo;
use crate::wire::{PacketKind, rtcp};

impl Engine {
    /// Reads at most [`MAX_FEEDBACK_PER_DATAGRAM`] transport-cc feedback
    /// packets of one compound packet (a client sends one; a datagram
    /// holds about 40 of the smallest).
    pub(super) fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        let found = Self::unprotect(
            &self.bindings,
            &mut self.sessions,
            &self.counters,
            from,
            datagram,
            PacketKind::Rtcp,
        );
        let at = (self.id, from);
        let events = &mut self.events;
        let Some((session, unprotected)) =
            off_path::settle(found, &mut self.off_path, at, datagram, now, events)
        else {
            return;
        };
        let plain = unprotected.bytes(datagram);
        let mut keyframe_tracks: Vec<(TrackKey, Option<Layer>)> = Vec::new();
        let mut reports: Vec<(Arc<TrackFanout>, SenderInfo, Option<Layer>)> = Vec::new();
        let mut feedback_left = MAX_FEEDBACK_PER_DATAGRAM;
        for packet in rtcp::packets(plain) {
            let media = &session.media;
            let echoes = rtcp::report_blocks(&packet)
                .filter(|b| media.outlets.iter().any(|o| o.ssrc == b.ssrc))
                .map(|b| (b.last_sr, b.delay_since_last_sr))
                .chain(
                    packet
                        .dlrr()
                        .filter(|d| d.ssrc == media.rtcp_ssrc)
                        .map(|d| (d.last_rr, d.delay)),
                );
            for (last, delay) in echoes {
                if let Some(sample) = session.rtt.echoed(last, delay, now) {
                    self.counters
                        .rtt
                        .observe(sample.as_micros().div_ceil(1000) as u64);
                }
            }
            if let Some((media_ssrc, lost)) = packet.nack() {
                if let Some(srtp) = session.srtp.as_mut() {
                    let sub = Subscriber {
                        addr: session.addr,
                        media: &session.media,
                        outbound: &mut session.outbound,
                        srtp,
                        gcm: session.gcm.as_mut(),
                        limiter: &mut session.resend,
                        rtt: session.rtt.get(),
                        twcc_seq: &mut session.twcc_seq,
                        estimate: session.estimate.as_deref_mut().map(|e| &mut e.bwe),
                    };
                    let unrepaired = self.histories.answer_nack(
                        sub,
                        media_ssrc,
                        lost,
                        now,
                        &mut self.transmits,
                        &self.counters,
                    );
                    keyframe_tracks.extend(unrepaired.map(|t| (t, None)));
                }
            } else if crate::bwe::feedback::is_feedback(packet.count, packet.packet_type) {
                if feedback_left == 0 {
                    continue;
                }
                feedback_left -= 1;
                if session.estimate.is_none()
                    && session.media.twcc_extension.is_some()
                    && !session.media.outlets.is_empty()
                {
                    let mut e = SubscriberEstimate::new(now);
                    e.can_probe = can_probe(&session.media);
                    session.estimate = Some(Box::new(e));
                }
                if let Some(e) = session.estimate.as_deref_mut() {
                    let rtt = session.rtt.get();
                    e.bwe
                        .on_feedback(packet.bytes, now, rtt, &mut self.statuses);
                }
            } else if let Some(media_ssrc) = packet.keyframe_request_ssrc() {
                if let Some(o) = session.media.outlets.iter().find(|o| o.ssrc == media_ssrc) {
                    // No resends of the frames the keyframe replaces.
                    let mut layer = None;
                    if let Some(stream) = session.outbound.get_mut(&media_ssrc) {
                        stream.keyframe_requested();
                        layer = stream.layers.as_ref().and_then(|l| l.current());
                    }
                    keyframe_tracks.push((o.track, layer));
                }
            } else if let Some(info) = packet.sender_info()
                && let Some(stats) = session.inbound.get_mut(&info.ssrc)
            {
                stats.handle_sender_report(now, info.ntp);
                if let Some(route) = session.media.inbound.get(stats.route) {
                    let layer = session.layers.get(&info.ssrc).copied();
                    reports.push((route.fanout.clone(), info, layer));
                }
            }
        }
        for (track, layer) in keyframe_tracks {
            self.events
                .push_back(EngineEvent::KeyframeRequest { track, layer });
        }
        for (fanout, info, layer) in reports {
            self.fan_out(&fanout, Forwarded::SenderReport(info, layer));
        }
    }

    /// Asks publisher `key` for a keyframe of `track` (of one of its
    /// simulcast layers, or of all its streams).
    pub(super) fn send_pli(&mut self, key: SessionKey, track: TrackKey, layer: Option<Layer>) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(srtp) = s.srtp.as_mut() else {
            return;
        };
        let route = s.media.inbound.iter().position(|r| r.fanout.key == track);
        let mut ssrcs: Vec<u32> = s
            .inbound
            .iter()
            .filter(|(_, st)| Some(st.route) == route)
            .map(|(ssrc, _)| *ssrc)
            .filter(|ssrc| layer.is_none() || s.layers.get(ssrc).copied() == layer)
            .collect();
        if ssrcs.is_empty()
            && layer.is_none()
            && let Some(r) = route.and_then(|i| s.media.inbound.get(i))
        {
            ssrcs.extend(r.ssrcs.iter().take(1));
        }
        for ssrc in ssrcs {
            self.scratch.clear();
            rtcp::write_pli(&mut self.scratch, s.media.rtcp_ssrc, ssrc);
            if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
                self.transmits.push_back(Transmit::single(s.addr, bytes));
            }
        }
    }

    /// The feedback due to publishers every [`FEEDBACK_INTERVAL`], in one
    /// pass over the sessions: transport-cc reports of what arrived, and
    /// NACKs for the gaps in what they push (with keyframe requests for
    /// gaps given up).
    pub(super) fn send_feedback(&mut self, now: Instant) {
        let mut changes = Vec::new();
        for (&key, s) in self.sessions.iter_mut() {
            let Some(srtp) = s.srtp.as_mut() else {
                continue;
            };
            let mut send = |bytes: &[u8]| {
                if let Ok(bytes) = srtp.protect_rtcp(bytes) {
                    self.transmits.push_back(Transmit::single(s.addr, bytes));
                }
            };
            if let Some(twcc) = s.twcc.as_mut() {
                let media_ssrc = s.inbound.keys().next().copied().unwrap_or(0);
                loop {
                    self.scratch.clear();
                    if !twcc.poll_feedback(s.media.rtcp_ssrc, media_ssrc, &mut self.scratch) {
                        break;
                    }
                    send(&self.scratch);
                }
            }
            let (nacked, given_up) =
                s.repairs
                    .poll(now, s.rtt.get(), s.media.rtcp_ssrc, &mut self.scratch);
            Counters::add(&self.counters.upstream_nacked, nacked as u64);
            Counters::add(&self.counters.upstream_unrecovered, given_up as u64);
            if !self.scratch.is_empty() {
                send(&self.scratch);
            }
            if let Some(e) = s.estimate.as_deref_mut() {
                let judged = e.judged;
                if let Some(change) = e.judge(now) {
                    changes.push((key, change));
                }
                if e.judged != judged {
                    self.counters.estimates.observe(e.bwe.estimate() / 1000);
                }
                if e.can_probe && !e.listed && e.bwe.probe_at().is_some() {
                    e.listed = true;
                    self.probing.list(key, now);
                }
            }
        }
        for (key, change) in changes {
            self.apply(key, change);
        }
    }

    /// Sends receiver reports for every inbound stream.
    pub(super) fn send_reports(&mut self, now: Instant) {
        self.next_report = now + REPORT_INTERVAL;
        for s in self.sessions.values_mut() {
            let Some(srtp) = s.srtp.as_mut() else {
                continue;
            };
            // Streams that stopped are forgotten.
            s.inbound
                .retain(|_, stats| !stats.is_silent(now, SSRC_TIMEOUT));
            if s.inbound.is_empty() {
                continue;
            }
            let blocks: Vec<_> = s
                .inbound
                .iter_mut()
                .map(|(ssrc, stats)| stats.report_block(now, *ssrc))
                .collect();
            // Up to 31 blocks per RR, RRs joined while they fit the MTU.
            self.scratch.clear();
            for chunk in blocks.chunks(31) {
                let before = self.scratch.len();
                rtcp::write_rr(&mut self.scratch, s.media.rtcp_ssrc, chunk);
                if self.scratch.len() > REPORT_MTU && before > 0 {
                    let last = self.scratch.split_off(before);
                    if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
                        self.transmits.push_back(Transmit::single(s.addr, bytes));
                    }
                    self.scratch = last;
                }
            }
            // A reference time the publisher answers (DLRR): its RTT.
            let ntp = rtt::ntp_since(self.epoch, now);
            rtcp::write_rrtr(&mut self.scratch, s.media.rtcp_ssrc, ntp);
            s.rtt.sent(ntp, now);
            if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
                self.transmits.push_back(Transmit::single(s.addr, bytes));
            }
        }
    }
}
