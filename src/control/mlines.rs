//! The m-lines the control plane adds to a session: a pull (a send-only
//! m-line carrying a pushed track), a push without SDP (our offer of a
//! receive m-line), the data-channel m-line, and what a client's pushed
//! m-line becomes (its [`PushedTrack`]).

use crate::calls::types::TrackObject;
use crate::fanout::TrackFanout;
use crate::ids::{Mid, TrackName, hex, random_bytes};
use crate::sdp::{self, Codec, MediaKind, extension};

use super::describe::send_stream;
use super::session::{
    PushedTrack, Session, Subscription, Transceiver, default_codecs, sending_feedback,
    supported_feedback,
};

/// Adds a transceiver that sends `track` (a pull without SDP), recycling an
/// idle one of the same kind. Returns its mid.
pub fn add_pull(session: &mut Session, track: &PushedTrack, item: &TrackObject) -> Mid {
    let (codecs, payload_types) = session.map_codecs(track.sent_codecs());
    let mut codecs: Vec<Codec> = codecs
        .into_iter()
        .map(|c| sending_feedback(c, track.kind))
        .collect();
    if track.kind == MediaKind::Video {
        // A retransmission format (RFC 4588) for each.
        let mut taken: Vec<Codec> = codecs.clone();
        for main in codecs.clone() {
            if let Some(pt) = session.free_payload_type(&taken) {
                let rtx = Codec::rtx(pt, main.pt, main.clock_rate);
                taken.push(rtx.clone());
                codecs.push(rtx);
            }
        }
    }
    let subscription = Subscription::of_item(item, track, payload_types);
    // The track's forwarded extensions, and our transport-wide numbers
    // (the subscriber's feedback on them drives its bandwidth estimate).
    let uris: Vec<&str> = track
        .extmaps
        .iter()
        .map(|e| e.uri.as_str())
        .chain(extension::FEEDBACK.iter().copied())
        .collect();
    let extmaps = session.extmaps_for(&uris);
    // An m-line whose pull the API closed while the client kept it (a
    // force close) carries the new pull under its mid; else a stopped
    // m-line is recycled in place under a new mid (JSEP §5.2.2); else one
    // is appended. So pulls and closes never grow the SDP without bound.
    let idle = session
        .transceivers
        .iter()
        .position(|t| !t.stopped && t.pulled_before && t.is_reusable_for(track.kind));
    let mid = match idle {
        Some(i) => session.transceivers[i].mid.clone(),
        None => {
            let mid = session.next_mid();
            let slot = Transceiver::new(mid.clone(), track.kind);
            match session
                .transceivers
                .iter()
                .position(|t| t.stopped && t.is_reusable_for(track.kind))
            {
                Some(i) => session.transceivers[i] = slot,
                None => session.transceivers.push(slot),
            }
            mid
        }
    };
    let t = get_or_create(session, &mid, track.kind);
    t.codecs = codecs;
    t.extmaps = extmaps;
    let rtx = t.codecs.iter().any(|c| c.rtx_of().is_some());
    t.send = Some(send_stream(
        &subscription.session_id.0,
        &subscription.track_name,
        rtx,
    ));
    t.subscription = Some(subscription);
    t.pulled_before = false;
    mid
}

/// Adds a transceiver for a track the client will push (a push without
/// SDP): sendrecv with `bidirectionalMediaStream`, so that a pull can later
/// land on it (`mid: "#name"`), else recvonly. Returns its mid.
pub fn add_push_without_sdp(
    session: &mut Session,
    kind: MediaKind,
    name: TrackName,
    bidirectional: bool,
) -> Mid {
    let mid = session.next_mid();
    let (codecs, _) = session.map_codecs(&default_codecs(kind));
    let uris: Vec<&str> = extension::FORWARDED
        .iter()
        .chain(extension::FEEDBACK)
        .copied()
        .collect();
    let extmaps = session.extmaps_for(&uris);
    let session_id = session.id.0.clone();
    let t = get_or_create(session, &mid, kind);
    t.codecs = codecs.clone();
    t.extmaps = extmaps.clone();
    t.recv = Some(name.clone());
    t.send = bidirectional.then(|| send_stream(&session_id, &name, false));
    session.pushed.push(PushedTrack {
        name,
        mid: mid.clone(),
        kind,
        fanout: TrackFanout::create(),
        codecs,
        ssrcs: Vec::new(),
        extmaps: extmaps
            .into_iter()
            .filter(|e| extension::is_forwarded(&e.uri))
            .collect(),
        rids: Vec::new(),
        active: true,
        idle: false,
    });
    mid
}

/// Adds an `m=application` for data channels to the session unless it has
/// a live one (`datachannels/establish` without an offer).
pub fn add_data_channel_mline(session: &mut Session) {
    if session.data_channel_mid().is_none() {
        let mid = session.next_mid();
        session
            .transceivers
            .push(Transceiver::new(mid, MediaKind::Application));
    }
}

pub(super) fn get_or_create<'a>(
    session: &'a mut Session,
    mid: &Mid,
    kind: MediaKind,
) -> &'a mut Transceiver {
    let i = match session.transceivers.iter().position(|t| &t.mid == mid) {
        Some(i) => i,
        None => {
            session
                .transceivers
                .push(Transceiver::new(mid.clone(), kind));
            session.transceivers.len() - 1
        }
    };
    &mut session.transceivers[i]
}

pub(super) fn push_track(session: &mut Session, m: &sdp::MediaSection, mid: &Mid, name: TrackName) {
    let codecs: Vec<Codec> = m
        .codecs
        .iter()
        .filter(|c| c.is_forwardable())
        .map(supported_feedback)
        .collect();
    // A renegotiation of an already pushed track keeps its key.
    if let Some(existing) = session
        .pushed
        .iter_mut()
        .find(|p| &p.mid == mid && p.active)
    {
        existing.codecs = codecs;
        existing.ssrcs = m.ssrcs.clone();
        existing.extmaps = forwarded_extmaps(m);
        existing.rids = simulcast_rids(m);
        return;
    }
    let t = get_or_create(session, mid, m.kind);
    t.recv = Some(name.clone());
    // The publisher's retransmission formats of what we take: its RTX is
    // unwrapped on the way in (the track's codecs stay the forwardable ones).
    let rtx = m
        .codecs
        .iter()
        .filter(|c| {
            c.rtx_of()
                .is_some_and(|apt| codecs.iter().any(|k| k.pt == apt))
        })
        .map(|c| Codec {
            rtcp_fb: Vec::new(),
            ..c.clone()
        });
    t.codecs = codecs.iter().cloned().chain(rtx).collect();
    session.pushed.push(PushedTrack {
        rids: simulcast_rids(m),
        name,
        mid: mid.clone(),
        kind: m.kind,
        fanout: TrackFanout::create(),
        codecs,
        ssrcs: m.ssrcs.clone(),
        extmaps: forwarded_extmaps(m),
        active: true,
        idle: false,
    });
}

pub(super) fn random_track_name() -> String {
    hex(&random_bytes::<8>())
}

/// The simulcast layers of a video m-line we receive (none for audio).
pub(super) fn simulcast_rids(m: &sdp::MediaSection) -> Vec<crate::ids::Rid> {
    if m.kind == MediaKind::Video {
        m.simulcast_rids()
    } else {
        Vec::new()
    }
}

/// The extensions of a publisher's m-line that are forwarded end to end.
pub(super) fn forwarded_extmaps(m: &sdp::MediaSection) -> Vec<crate::sdp::Extmap> {
    m.extmaps
        .iter()
        .filter(|e| extension::is_forwarded(&e.uri))
        .cloned()
        .collect()
}
