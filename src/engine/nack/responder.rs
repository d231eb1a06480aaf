//! Answering subscribers' generic NACKs (RFC 4585 §6.2.1) on their own
//! worker: the packet is taken from the track's shared history, rewritten
//! for the subscriber exactly as it was first sent (SSRC, payload type,
//! sequence number, timestamp, extension ids), protected and sent again:
//! on the outlet's RTX stream (RFC 4588) where negotiated, else in the
//! original stream. How old a packet may be and how soon it may be resent
//! again follow the subscriber's round-trip time.
//!
//! Where it sits: histories are filled in the fan-out step for tracks
//! that have NACK-capable subscribers on this worker (counted by the
//! outlets that reference them); a subscriber's RTCP NACK is answered
//! here, within its [`ResendLimiter`].

use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use super::budget::{self, Refused, ResendLimiter};
use super::history::{self, TrackHistory};
use crate::bwe::BandwidthEstimator;
use crate::engine::session_media::{Outlet, SessionMedia};
use crate::ids::TrackKey;
use crate::srtp::SrtpSession;
use crate::srtp::gcm::GcmSender;
use crate::streams::egress::OutboundStream;
use crate::wire::rtp::{self, Rewrite, RtpHeader};

use crate::engine::Transmit;
use crate::engine::counters::{Counters, DropReason};
use crate::engine::packet_run::PacketRun;

/// The histories of the tracks that NACK-capable subscribers on this
/// worker receive, each with how many outlets use it.
#[derive(Default)]
pub struct Histories {
    tracks: HashMap<TrackKey, (usize, TrackHistory)>,
}

impl Histories {
    /// Follows a session's outlets changing from `old` to `new` (either
    /// may be empty): histories are made for tracks that gain their first
    /// NACK-capable outlet and dropped with their last.
    pub fn follow(&mut self, old: &SessionMedia, new: &SessionMedia, now: Instant) {
        for o in new.outlets.iter().filter(|o| o.nack) {
            self.tracks
                .entry(o.track)
                .or_insert_with(|| (0, TrackHistory::new(now)))
                .0 += 1;
        }
        for o in old.outlets.iter().filter(|o| o.nack) {
            if let Some((users, _)) = self.tracks.get_mut(&o.track) {
                *users -= 1;
                if *users == 0 {
                    self.tracks.remove(&o.track);
                }
            }
        }
    }

    /// Keeps the packets of a run of `track`, if anyone here may NACK them.
    pub fn store(&mut self, track: TrackKey, run: PacketRun<'_>, now: Instant) {
        if let Some((_, history)) = self.tracks.get_mut(&track) {
            for (plain, header) in run.packets() {
                history.store(header.ssrc, header.sequence_number, plain, now);
            }
        }
    }
}

/// The RTX form (RFC 4588 §4) of a packet as first sent: same header
/// (extensions included) on the RTX SSRC, payload type and sequence, and
/// the original sequence number before the payload.
fn rtx_packet(
    packet: &[u8],
    payload_offset: usize,
    original_seq: u16,
    ssrc: u32,
    payload_type: u8,
    seq: u16,
) -> BytesMut {
    let mut out = BytesMut::with_capacity(packet.len() + 2 + 16);
    out.extend_from_slice(&packet[..payload_offset]);
    out.extend_from_slice(&original_seq.to_be_bytes());
    out.extend_from_slice(&packet[payload_offset..]);
    out[1] = (out[1] & 0x80) | (payload_type & 0x7f);
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
    rtp::set_sequence_number(&mut out, seq);
    out
}

/// What a subscriber's session lends to a resend.
pub struct Subscriber<'a> {
    /// Its address.
    pub addr: SocketAddr,
    /// Its negotiated media (outlets).
    pub media: &'a SessionMedia,
    /// Its outbound streams, by our SSRC.
    pub outbound: &'a mut HashMap<u32, OutboundStream>,
    /// Its SRTP contexts.
    pub srtp: &'a mut SrtpSession,
    /// In-place GCM protect, when that is the profile.
    pub gcm: Option<&'a mut GcmSender>,
    /// Its resend allowance.
    pub limiter: &'a mut ResendLimiter,
    /// Its round-trip time.
    pub rtt: Duration,
    /// The next transport-wide sequence number of what we send it.
    pub twcc_seq: &'a mut u16,
    /// Its bandwidth estimate, told what we send it.
    pub estimate: Option<&'a mut BandwidthEstimator>,
}

impl Histories {
    /// Answers a NACK about our stream `media_ssrc` for `lost` sequence
    /// numbers: each one still in the history is sent again (into
    /// `transmits`); the others are counted. Returns the track to ask a
    /// keyframe of when the subscriber still lacks a video packet resent
    /// as often as allowed (its resends do not get through): the frames
    /// before it are given up at once, not after the client's own wait of
    /// seconds for a decodable frame.
    #[must_use]
    pub fn answer_nack(
        &self,
        sub: Subscriber<'_>,
        media_ssrc: u32,
        lost: impl Iterator<Item = u16>,
        now: Instant,
        transmits: &mut std::collections::VecDeque<Transmit>,
        counters: &Counters,
    ) -> Option<TrackKey> {
        let mut keyframe = None;
        let Subscriber {
            addr,
            media,
            outbound,
            srtp,
            mut gcm,
            limiter,
            rtt,
            twcc_seq,
            mut estimate,
        } = sub;
        let (max_age, repeat) = (history::max_age(rtt), budget::repeat_after(rtt));
        let outlet: Option<&Outlet> = media
            .outlets
            .iter()
            .find(|o| o.ssrc == media_ssrc && o.nack);
        for seq in lost {
            Counters::add(&counters.nacked_packets, 1);
            let stream = outlet.and_then(|o| outbound.get(&o.ssrc));
            if stream.is_some_and(|st| st.superseded(seq)) {
                counters.count_drop(DropReason::Superseded);
                continue;
            }
            let found = outlet.and_then(|o| {
                let (ssrc, source_seq) = outbound.get(&o.ssrc)?.source_of(seq)?;
                let (_, history) = self.tracks.get(&o.track)?;
                Some((o, source_seq, history.get(ssrc, source_seq, now, max_age)?))
            });
            let Some((outlet, source_seq, plain)) = found else {
                counters.count_drop(DropReason::NackUnavailable);
                continue;
            };
            match limiter.allow(seq, now, repeat) {
                Ok(()) => {}
                Err(Refused::Budget) => {
                    counters.count_drop(DropReason::ResendBudget);
                    continue;
                }
                Err(Refused::Repeat) => continue,
                Err(Refused::Exhausted) => {
                    counters.count_drop(DropReason::ResendsExhausted);
                    if outlet.video
                        && let Some(stream) = outbound.get_mut(&outlet.ssrc)
                    {
                        stream.keyframe_requested();
                        keyframe = Some(outlet.track);
                    }
                    continue;
                }
            }
            let Ok(header) = RtpHeader::new_checked(plain) else {
                continue;
            };
            let Some(pt) = outlet.map_payload_type(header.payload_type()) else {
                continue;
            };
            let Some(stream) = outbound.get_mut(&outlet.ssrc) else {
                continue;
            };
            let (out_seq, out_ts) = stream.sent_as(source_seq, header.timestamp());
            let layout = header.layout();
            let mut packet = BytesMut::with_capacity(plain.len() + 2 + 16);
            packet.extend_from_slice(plain);
            let number = *twcc_seq;
            let stamped = rtp::rewrite_in_place(
                &mut packet,
                layout,
                Rewrite {
                    ssrc: outlet.ssrc,
                    payload_type: pt,
                    extensions: &outlet.extensions,
                    transport_cc: media.twcc_extension.map(|id| (id, number)),
                },
            );
            rtp::set_sequence_number(&mut packet, out_seq);
            rtp::set_timestamp(&mut packet, out_ts);
            if let Some(sw) = stream.layers.as_deref()
                && let Some(payload) = packet.get_mut(layout.payload_offset..)
            {
                sw.vp8.resend(payload);
            }
            let rtx = outlet.rtx.as_ref().and_then(|r| {
                let (_, rtx_pt) = r.payload_types.iter().find(|(main, _)| *main == pt)?;
                Some((r.ssrc, *rtx_pt))
            });
            if let Some((rtx_ssrc, rtx_pt)) = rtx {
                packet = rtx_packet(
                    &packet,
                    layout.payload_offset,
                    out_seq,
                    rtx_ssrc,
                    rtx_pt,
                    stream.next_rtx_seq(rtx_ssrc),
                );
            }
            let protected = match gcm.as_deref_mut() {
                Some(g) => g
                    .protect(&mut packet, layout.payload_offset)
                    .ok()
                    .map(|()| packet),
                None => srtp.protect_rtp(&packet).ok(),
            };
            if let Some(bytes) = protected {
                if stamped {
                    *twcc_seq = number.wrapping_add(1);
                    if let Some(e) = estimate.as_deref_mut() {
                        e.sent(number, bytes.len(), now, None);
                    }
                }
                transmits.push_back(Transmit::single(addr, bytes));
                Counters::add(&counters.rtp_retransmitted, 1);
            }
        }
        keyframe
    }
}
