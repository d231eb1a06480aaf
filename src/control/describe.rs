//! Our side of offer/answer: the SDP we write, as an answer to a client's
//! offer or as our own offer (pulls without SDP, bidirectional pushes),
//! with each m-line's direction, codecs, extensions and send streams.

use crate::datachannel::sctp::MAX_MESSAGE_SIZE;
use crate::dtls::DtlsIdentity;
use crate::ids::{Mid, TrackName, random_bytes};
use crate::sdp::{
    self, Direction, MediaKind, MediaOut, SdpWriter, SendStream, SessionDescription, Transport,
};

use super::session::{Session, Transceiver};

/// What every SDP needs besides the session: our certificate and
/// candidates, and the time of the request.
pub struct Context<'a> {
    /// Our DTLS identity.
    pub identity: &'a DtlsIdentity,
    /// Host candidates.
    pub candidates: &'a [std::net::SocketAddr],
    /// Now.
    pub now: std::time::Instant,
}

pub(super) fn transport<'a>(
    session: &'a Session,
    ctx: &'a Context<'_>,
    setup: &'static str,
) -> Transport<'a> {
    Transport {
        ice_ufrag: &session.ice.ufrag,
        ice_pwd: &session.ice.pwd,
        fingerprint: &ctx.identity.fingerprint,
        setup,
        candidates: ctx.candidates,
    }
}

pub(super) fn write_answer(
    session: &mut Session,
    offer: &SessionDescription,
    ctx: &Context<'_>,
) -> String {
    session.version += 1;
    // Rejected (port 0, outside the group): what the offer stopped, data
    // channels (not negotiated yet) and m-lines with no codec we forward.
    // An m-line whose track the API closed while the offer keeps it is not
    // rejected but inactive inside the group, so that the group's tagged
    // (first) mid never moves under the client's transport.
    let rejected = |m: &sdp::MediaSection| {
        if m.kind == MediaKind::Application {
            return !m.is_data_channel()
                || m.mid
                    .as_ref()
                    .and_then(|mid| session.transceiver(mid))
                    .is_none_or(|t| t.stopped);
        }
        !m.is_active()
            || m.mid
                .as_ref()
                .and_then(|mid| session.transceiver(mid))
                .is_none_or(|t| t.stopped || t.codecs.is_empty())
    };
    let accepted: Vec<&Mid> = offer
        .media
        .iter()
        .filter(|m| !rejected(m))
        .filter_map(|m| m.mid.as_ref())
        .collect();
    // The offer's group order first (its first mid is the offerer's tag).
    let mut bundle: Vec<&Mid> = offer
        .bundle
        .iter()
        .flatten()
        .filter(|mid| accepted.contains(mid))
        .collect();
    for mid in &accepted {
        if !bundle.contains(mid) {
            bundle.push(mid);
        }
    }
    let group = (offer.bundle.is_some() || !bundle.is_empty()).then_some(bundle.as_slice());
    let mut w = SdpWriter::new(
        session.origin,
        session.version,
        group,
        offer.extmap_allow_mixed,
        session.peer_checks.is_none(),
    );
    let setup = match session.dtls.role {
        crate::dtls::DtlsRole::Server => "passive",
        crate::dtls::DtlsRole::Client => "active",
    };
    let tr = transport(session, ctx, setup);
    for m in &offer.media {
        let Some(mid) = &m.mid else { continue };
        if m.kind == MediaKind::Application {
            if rejected(m) {
                w.rejected_application(mid);
            } else {
                w.application(mid, MAX_MESSAGE_SIZE, &tr);
            }
            continue;
        }
        let t = session.transceiver(mid);
        let Some(t) = t.filter(|_| !rejected(m)) else {
            let codecs = &m.codecs[..m.codecs.len().min(1)];
            w.media(
                &MediaOut {
                    kind: m.kind,
                    mid,
                    rejected: true,
                    direction: Direction::Inactive,
                    codecs,
                    extmaps: &[],
                    rtcp_rsize: false,
                    send: None,
                    recv_rids: &[],
                },
                &tr,
            );
            continue;
        };
        let direction = Direction::new(
            t.send.is_some() && m.direction.receives(),
            t.recv.is_some() && m.direction.sends(),
        );
        w.media(&media_out(session, t, false, direction), &tr);
    }
    w.finish()
}

/// The m-line a transceiver of `session` becomes in an SDP we write (the
/// simulcast layers it receives are those of the track pushed on it).
pub(super) fn media_out<'a>(
    session: &'a Session,
    t: &'a Transceiver,
    rejected: bool,
    direction: Direction,
) -> MediaOut<'a> {
    MediaOut {
        kind: t.kind,
        mid: &t.mid,
        rejected,
        direction,
        codecs: &t.codecs,
        extmaps: &t.extmaps,
        rtcp_rsize: t.rtcp_rsize,
        send: t.send.as_ref(),
        recv_rids: session.received_rids(t),
    }
}

/// Writes our offer with every transceiver of the session, and marks it pending.
pub fn write_offer(session: &mut Session, ctx: &Context<'_>) -> String {
    session.version += 1;
    session.signalling.offer_made(ctx.now);
    let live =
        |t: &Transceiver| !t.stopped && (t.kind == MediaKind::Application || !t.codecs.is_empty());
    let bundle: Vec<&Mid> = session
        .transceivers
        .iter()
        .filter(|t| live(t))
        .map(|t| &t.mid)
        .collect();
    let mut w = SdpWriter::new(
        session.origin,
        session.version,
        Some(&bundle),
        session.extmap_allow_mixed,
        session.peer_checks.is_none(),
    );
    let tr = transport(session, ctx, "actpass");
    for t in &session.transceivers {
        if t.kind == MediaKind::Application {
            if live(t) {
                w.application(&t.mid, MAX_MESSAGE_SIZE, &tr);
            } else {
                w.rejected_application(&t.mid);
            }
            continue;
        }
        w.media(&media_out(session, t, !live(t), t.direction()), &tr);
    }
    w.finish()
}

/// What we send on an m-line: a random SSRC, and one for retransmissions
/// when RTX is negotiated (`rtx`).
pub(super) fn send_stream(stream_id: &str, track: &TrackName, rtx: bool) -> SendStream {
    SendStream {
        ssrc: u32::from_be_bytes(random_bytes::<4>()) | 1,
        rtx_ssrc: rtx.then(|| u32::from_be_bytes(random_bytes::<4>()) | 1),
        stream_id: msid_token(stream_id),
        track_id: msid_token(&track.0),
    }
}

/// An msid id (RFC 8830 §2: a token) from an application-chosen name:
/// anything else becomes `-`, so that no name can break or inject SDP.
pub(super) fn msid_token(name: &str) -> String {
    const TOKEN: &str = "!#$%&'*+-.^_`{|}~";
    let out: String = name
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || TOKEN.contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() { "-".to_owned() } else { out }
}
