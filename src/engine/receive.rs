//! The receiving stage of a datagram's walk: a data-channel record is
//! queued for its DTLS thread; SRTP and SRTCP are matched to the session
//! whose ICE checks bound the address and unprotected ([`Engine::unprotect`]);
//! RTP is then routed to its track (by SSRC, MID or payload type, learning
//! simulcast layers from the rid extensions), counted for reception
//! reports, NACK and transport-cc, and queued in the inbox for the
//! forwarding stage (`forward`).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rustc_hash::FxHashMap as HashMap;

use super::bindings::Bindings;
use super::counters::{Counters, DropReason};
use super::media_session::MediaSession;
use super::messages::EngineEvent;
use super::nack::repair::Verdict;
use super::off_path;
use super::packet_run::RunHeader;
use super::{
    DTLS_APPLICATION_DATA, Engine, LEARNED_LAYER_SSRCS, LEARNED_SSRCS, MEDIA_EVENT_INTERVAL,
    MEDIA_EVENT_MEMORY,
};
use crate::codec::Codec;
use crate::engine::session_media::SessionMedia;
use crate::ids::{SessionKey, TrackKey};
use crate::simulcast::Layer;
use crate::streams::ingress::ReceptionStats;
use crate::wire::rtp::RtpHeader;
use crate::wire::{PacketKind, rtp};

/// An unprotected packet: decrypted in place (its plaintext length), or
/// into a new buffer.
pub(super) enum Plain {
    InPlace(usize),
    Owned(BytesMut),
}

/// Who sent a protected datagram, as [`Engine::unprotect`] found.
pub(super) enum Sender<'s> {
    /// The session, the plaintext, and the session's key when the address
    /// is not its media path (but passed its ICE checks).
    Session(&'s mut MediaSession, Plain, Option<SessionKey>),
    /// An address checked for this session, which lives on another worker
    /// (counted as unbound here).
    Elsewhere(SessionKey),
    /// Dropped (counted).
    Dropped,
}

impl Plain {
    /// The plaintext: in `datagram`, or owned.
    pub(super) fn bytes<'a>(&'a self, datagram: &'a [u8]) -> &'a [u8] {
        match self {
            Plain::InPlace(n) => &datagram[..*n],
            Plain::Owned(b) => b,
        }
    }
}

impl Engine {
    /// Whether a DTLS datagram is data-channel traffic: application data
    /// (content type 23, RFC 6347 §4.1). It goes straight to the session's
    /// DTLS thread, not through the control thread. (A session with data
    /// channels only has no media state on any worker, so this cannot wait
    /// for its SRTP keys; a client sends application data only after our
    /// last flight, which leaves once the handshake is done.)
    pub(super) fn is_data_channel_record(datagram: &[u8]) -> bool {
        datagram.first() == Some(&DTLS_APPLICATION_DATA)
    }

    /// Queues a data-channel record for the session's DTLS thread, within
    /// its budget ([`DATA_RECORDS_PER_WINDOW`]); past it, dropped and
    /// counted (SCTP retransmits).
    pub(super) fn handle_data_record(
        &mut self,
        now: Instant,
        key: SessionKey,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        if self.data_budget.allow(key, now).allows() {
            self.data_records.push_back((key, from, datagram.to_vec()));
        } else {
            self.counters.count_drop(DropReason::DataBudget);
        }
    }

    /// The session whose ICE checks bound `from` on this worker, and the
    /// datagram unprotected with its SRTP context; drops are counted.
    /// Takes the fields it needs, so that the caller keeps using the others.
    pub(super) fn unprotect<'s>(
        bindings: &Bindings,
        sessions: &'s mut HashMap<SessionKey, MediaSession>,
        counters: &Counters,
        from: SocketAddr,
        datagram: &mut [u8],
        kind: PacketKind,
    ) -> Sender<'s> {
        let Some(key) = bindings.get(&from) else {
            counters.count_drop(DropReason::UnboundAddress);
            return Sender::Dropped;
        };
        let Some(session) = sessions.get_mut(&key) else {
            // Dropped here: at most a sample goes on to be authenticated
            // where the session lives.
            counters.count_drop(DropReason::UnboundAddress);
            return Sender::Elsewhere(key);
        };
        let off_path = (session.addr != from).then_some(key);
        let Some(srtp) = session.srtp.as_mut() else {
            counters.count_drop(DropReason::NotReady);
            return Sender::Dropped;
        };
        let plain = match (kind, session.gcm_rx.as_mut()) {
            // AEAD_AES_128_GCM: in place, no allocation.
            (PacketKind::Rtcp, Some((_, rx))) => rx.unprotect(datagram).ok().map(Plain::InPlace),
            (PacketKind::Rtcp, None) => srtp.unprotect_rtcp(datagram).map(Plain::Owned).ok(),
            (_, Some((rx, _))) => {
                // AEAD_AES_128_GCM: in place, no allocation.
                let header_len = rtp::header_len(datagram);
                header_len
                    .and_then(|h| rx.unprotect(datagram, h).ok())
                    .map(Plain::InPlace)
            }
            (_, None) => srtp.unprotect_rtp(datagram).map(Plain::Owned).ok(),
        };
        match plain {
            Some(plain) => Sender::Session(session, plain, off_path),
            None => {
                counters.count_drop(DropReason::SrtpFailure);
                Sender::Dropped
            }
        }
    }

    pub(super) fn handle_rtp(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        let epoch = self.epoch;
        let counters = &self.counters;
        let found = Self::unprotect(
            &self.bindings,
            &mut self.sessions,
            counters,
            from,
            datagram,
            PacketKind::Rtp,
        );
        let at = (self.id, from);
        let events = &mut self.events;
        let Some((session, unprotected)) =
            off_path::settle(found, &mut self.off_path, at, datagram, now, events)
        else {
            return;
        };
        let plain = unprotected.bytes(datagram);
        let Ok(header) = RtpHeader::new_checked(plain) else {
            counters.count_drop(DropReason::Malformed);
            return;
        };
        // Every packet that carries a transport-wide number counts, media,
        // retransmissions and padding alike.
        if let (Some(id), Some(twcc)) = (session.media.twcc_extension, session.twcc.as_mut())
            && let Some(&[hi, lo, ..]) = header.extension(id)
        {
            twcc.record(u16::from_be_bytes([hi, lo]), now);
        }
        let ssrc = header.ssrc();
        let known = session.inbound.get(&ssrc).map(|stats| stats.route);
        let route = known.or_else(|| find_route(&session.media, &header));
        let Some(route_index) = route else {
            counters.count_drop(DropReason::UnknownSsrc);
            return;
        };
        let Some(route) = session.media.inbound.get(route_index) else {
            counters.count_drop(DropReason::UnknownSsrc);
            return;
        };
        if known.is_none() {
            // A new SSRC: within the track's allowance (a publisher that
            // sends a random SSRC per packet keeps no state for each).
            let used = session
                .inbound
                .values()
                .filter(|s| s.route == route_index)
                .count();
            if used >= route.ssrcs.len() + LEARNED_SSRCS {
                counters.count_drop(DropReason::SsrcLimit);
                return;
            }
        }
        let layer = if route.rids.is_empty() {
            None
        } else {
            let Some(layer) = learn_layer(&mut session.layers, &session.media, route, &header)
            else {
                counters.count_drop(DropReason::UnknownRid);
                return;
            };
            Some(layer)
        };
        let verdict = session.repairs.check(
            route_index,
            route,
            layer,
            &header,
            plain,
            now,
            &mut self.scratch,
        );
        let (header, plain) = match verdict {
            Verdict::Drop => {
                counters.count_drop(DropReason::Duplicate);
                return;
            }
            Verdict::Forward => (header, plain),
            Verdict::Repaired => {
                Counters::add(&counters.upstream_recovered, 1);
                (header, plain)
            }
            Verdict::Unwrapped => {
                Counters::add(&counters.upstream_recovered, 1);
                let Ok(h) = RtpHeader::new_checked(&self.scratch) else {
                    return;
                };
                (h, &self.scratch[..])
            }
        };
        let ssrc = header.ssrc();
        let track = route.fanout.key;
        let mut run_header = RunHeader::of(&header);
        if layer.is_some() {
            let pt = header.payload_type();
            let codec = route
                .formats
                .iter()
                .find(|(p, _)| *p == pt)
                .map_or(Codec::Other, |(_, c)| *c);
            run_header.layer = layer;
            run_header.codec = codec;
            run_header.keyframe = codec.starts_keyframe(&plain[header.payload_offset()..]);
        }
        self.inbox.push(&route.fanout, run_header, plain);
        let clock_rate = route.clock_rate;
        session
            .inbound
            .entry(ssrc)
            .or_insert_with(|| {
                ReceptionStats::new(route_index, clock_rate, header.sequence_number())
            })
            .handle_packet(epoch, now, header.sequence_number(), header.timestamp());
        self.note_media(now, track);
        if self.inbox.is_full() {
            self.forward_inbox();
        }
    }

    /// Forgets when tracks silent for [`MEDIA_EVENT_MEMORY`] last made an
    /// event (tracks come and go; the map must not keep them all): the next
    /// packet of such a track is news again.
    pub(super) fn forget_silent_tracks(&mut self, now: Instant) {
        self.media_events
            .retain(|_, last| now.saturating_duration_since(*last) < MEDIA_EVENT_MEMORY);
    }

    pub(super) fn note_media(&mut self, now: Instant, track: TrackKey) {
        let due = self
            .media_events
            .get(&track)
            .is_none_or(|last| now.saturating_duration_since(*last) >= MEDIA_EVENT_INTERVAL);
        if due {
            self.media_events.insert(track, now);
            self.events
                .push_back(EngineEvent::MediaReceived { track, at: now });
        }
    }
}

/// The route of a packet on an SSRC not seen before: a signalled SSRC, else
/// the MID header extension, else the only route of a matching payload type.
fn find_route(media: &SessionMedia, header: &RtpHeader<'_>) -> Option<usize> {
    let ssrc = header.ssrc();
    if let Some(i) = media.inbound.iter().position(|r| r.ssrcs.contains(&ssrc)) {
        return Some(i);
    }
    if let Some(mid) = media.mid_extension.and_then(|id| header.extension(id))
        && let Some(i) = media
            .inbound
            .iter()
            .position(|r| r.mid.as_str().as_bytes() == mid)
    {
        return Some(i);
    }
    let pt = header.payload_type();
    let mut candidates = media
        .inbound
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ssrcs.is_empty() && r.payload_types.contains(&pt));
    match (candidates.next(), candidates.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
    }
}

/// The simulcast layer of a packet of a simulcast route: known for its
/// SSRC, else read from its `rtp-stream-id` (or, for RTX,
/// `repaired-rtp-stream-id`) extension and remembered, within
/// [`LEARNED_LAYER_SSRCS`].
fn learn_layer(
    layers: &mut HashMap<u32, Layer>,
    media: &SessionMedia,
    route: &crate::engine::session_media::InboundRoute,
    header: &RtpHeader<'_>,
) -> Option<Layer> {
    let ssrc = header.ssrc();
    if let Some(&layer) = layers.get(&ssrc) {
        return Some(layer);
    }
    let (rid, repaired) = media.rid_extensions;
    let named = rid
        .and_then(|id| header.extension(id))
        .or_else(|| repaired.and_then(|id| header.extension(id)))?;
    let index = route
        .rids
        .iter()
        .position(|r| r.as_str().as_bytes() == named)?;
    if layers.len() >= LEARNED_LAYER_SSRCS {
        return None;
    }
    let layer = Layer(index as u8);
    layers.insert(ssrc, layer);
    Some(layer)
}
