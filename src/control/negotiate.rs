//! Offer/answer for the Calls API operations: applying a client's offer
//! (push, pull with an offer, autoDiscover, legacy sessions/new), writing
//! our offers (pull without SDP, bidirectional push) and applying the
//! client's answer (renegotiate).
//!
//! Where it sits: the control thread, under the API handlers. It changes the
//! registry; `super::sync` then tells the media workers.

use crate::calls::CallsError;
use crate::calls::types::TrackObject;
use crate::datachannel::sctp::MAX_MESSAGE_SIZE;
use crate::dtls::{DtlsIdentity, Fingerprint};
use crate::fanout::TrackFanout;
use crate::ids::{AppId, Mid, SessionKey, TrackName, hex, random_bytes};
use crate::sdp::{
    self, Codec, Direction, MediaKind, MediaOut, SdpWriter, SendStream, SessionDescription,
    Transport, extension,
};

use super::registry::Registry;
use super::session::{
    PushedTrack, Session, Subscription, Transceiver, default_codecs, sending_feedback,
    supported_feedback,
};

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

/// Parses a client SDP of the expected type.
pub fn parse_description(
    kind: &str,
    expected: &str,
    sdp: &str,
    max_mlines: usize,
) -> Result<SessionDescription, CallsError> {
    if kind != expected {
        return Err(CallsError::invalid_session_description(format!(
            "expected an {expected}, got {kind:?}"
        )));
    }
    let desc =
        sdp::parse(sdp).map_err(|e| CallsError::invalid_session_description(e.to_string()))?;
    super::limits::check_mlines(&desc, max_mlines)?;
    if desc.media.is_empty() {
        return Err(CallsError::invalid_session_description(
            "the SDP has no m-lines",
        ));
    }
    Ok(desc)
}

fn session_mut(reg: &mut Registry, key: SessionKey) -> Result<&mut Session, CallsError> {
    reg.session_mut(key).ok_or_else(CallsError::session_gone)
}

/// Records the client's fingerprint and bundle extensions from its SDP.
fn learn_remote(
    session: &mut Session,
    desc: &SessionDescription,
    in_offer: bool,
) -> Result<(), CallsError> {
    let fingerprints: Vec<Fingerprint> = desc
        .fingerprints()
        .into_iter()
        .filter_map(Fingerprint::parse)
        .collect();
    if fingerprints.is_empty() {
        return Err(CallsError::invalid_session_description(
            "missing or unsupported a=fingerprint (one of sha-1, sha-224, sha-256, sha-384, sha-512 required)",
        ));
    }
    let Some((ufrag, pwd)) = desc.ice_credentials() else {
        return Err(CallsError::invalid_session_description(
            "missing a=ice-ufrag / a=ice-pwd",
        ));
    };
    if session.handle_remote_ice(ufrag, pwd, in_offer) {
        tracing::info!(session = %session.id, "ICE restart");
    }
    if let Some(checks) = &mut session.peer_checks {
        checks.set_candidates(&desc.candidates);
    }
    if session.remote_fingerprints.is_empty() {
        session.remote_fingerprints = fingerprints;
    }
    session.extmap_allow_mixed |= desc.extmap_allow_mixed;
    session.learn_formats(desc);
    // The bundle's extension ids: the client's, where it named them.
    for e in desc.media.iter().flat_map(|m| m.extmaps.iter()) {
        if extension::is_accepted(&e.uri)
            && !session
                .extmaps
                .iter()
                .any(|x| x.uri == e.uri || x.id == e.id)
        {
            session.extmaps.push(e.clone());
        }
    }
    Ok(())
}

/// Checks a client offer against the session before anything changes: no
/// offer of ours is pending, every m-line has a unique mid, and the m-lines
/// the session knows keep their positions (a stopped one may be recycled
/// under a new mid).
pub fn check_offer(
    session: &Session,
    offer: &SessionDescription,
    now: std::time::Instant,
) -> Result<(), CallsError> {
    if session.offer_pending(now) {
        return Err(CallsError::invalid_session_description(
            "an offer from the server is awaiting its answer (renegotiate first)",
        ));
    }
    let mut seen: Vec<&Mid> = Vec::new();
    for (i, m) in offer.media.iter().enumerate() {
        let Some(mid) = &m.mid else {
            return Err(CallsError::invalid_session_description(
                "every m-line needs a=mid",
            ));
        };
        if seen.contains(&mid) {
            return Err(CallsError::invalid_session_description(format!(
                "mid {mid} appears twice"
            )));
        }
        seen.push(mid);
        match session.transceivers.get(i) {
            Some(t) if &t.mid == mid || t.stopped => {}
            Some(t) => {
                return Err(CallsError::invalid_session_description(format!(
                    "m-line {i} has mid {mid} but was {}: m-lines must keep their order",
                    t.mid
                )));
            }
            None if session.transceiver(mid).is_some() => {
                return Err(CallsError::invalid_session_description(format!(
                    "mid {mid} moved"
                )));
            }
            None => {}
        }
    }
    if offer.media.len() < session.transceivers.len() {
        return Err(CallsError::invalid_session_description(
            "the offer lacks m-lines the session already has",
        ));
    }
    Ok(())
}

/// Gives every offered m-line its transceiver at the same position:
/// known mids stay, a stopped slot offered under a new mid is recycled, new
/// m-lines are appended. `check_offer` must have passed.
fn align_transceivers(session: &mut Session, offer: &SessionDescription) {
    for (i, m) in offer.media.iter().enumerate() {
        let Some(mid) = &m.mid else { continue };
        match session.transceivers.get(i).map(|t| t.mid.clone()) {
            Some(existing) if &existing == mid => {}
            Some(existing) => {
                session.stop_transceiver(&existing);
                session.transceivers[i] = Transceiver::new(mid.clone(), m.kind);
            }
            None => session
                .transceivers
                .push(Transceiver::new(mid.clone(), m.kind)),
        }
    }
}

/// Applies a client offer to a session and returns our answer. `items` are
/// the request's tracks (all local or all remote); results are written
/// into them; autoDiscover appends items.
pub fn apply_offer(
    reg: &mut Registry,
    app: &AppId,
    key: SessionKey,
    offer: &SessionDescription,
    items: &mut Vec<TrackObject>,
    auto_discover: bool,
    ctx: &Context<'_>,
) -> Result<String, CallsError> {
    // Resolve pulls first (they read other sessions).
    let mut pulls: Vec<(usize, PushedTrack, String)> = Vec::new();
    for (i, item) in items.iter_mut().enumerate() {
        if item.location.as_deref() != Some("remote") {
            continue;
        }
        match resolve_pull(reg, app, item) {
            Some((track, sid)) => pulls.push((i, track, sid)),
            None => not_found(item),
        }
    }
    let session = session_mut(reg, key)?;
    check_offer(session, offer, ctx.now)?;
    learn_remote(session, offer, true)?;
    let known: Vec<Mid> = session
        .transceivers
        .iter()
        .filter(|t| !t.stopped)
        .map(|t| t.mid.clone())
        .collect();
    align_transceivers(session, offer);

    // Match pulls to offered receiving m-lines not yet in use, by kind and order.
    let mut claimed: Vec<Mid> = Vec::new();
    for (i, track, sid) in &pulls {
        let slot = offer.media.iter().find(|m| {
            m.is_active()
                && m.kind == track.kind
                && m.direction.receives()
                && m.mid.as_ref().is_some_and(|mid| {
                    !claimed.contains(mid)
                        && session.transceiver(mid).is_none_or(|t| {
                            !t.stopped && t.subscription.is_none() && t.recv.is_none()
                        })
                })
        });
        let Some(m) = slot else {
            items[*i].mid = Some(String::new());
            items[*i].fail(
                "not_found_track_error",
                "No receiving m-line of this kind in the offer",
            );
            continue;
        };
        let mid = m.mid.clone().unwrap_or_else(|| Mid(String::new()));
        let offered: Vec<Codec> = m
            .codecs
            .iter()
            .filter(|c| c.is_forwardable())
            .cloned()
            .collect();
        let offered_ids: Vec<sdp::FormatId> = offered.iter().map(Codec::format_id).collect();
        let mut payload_types = Vec::new();
        let mut codecs = Vec::new();
        for pc in track.sent_codecs() {
            let id = pc.format_id();
            let found = offered_ids.iter().position(|o| *o == id);
            if let Some(oc) = found.map(|i| &offered[i]) {
                if !codecs.iter().any(|c: &Codec| c.pt == oc.pt) {
                    codecs.push(supported_feedback(oc));
                    // Its retransmission format, where the client offers one.
                    if let Some(rtx) = m.codecs.iter().find(|c| c.rtx_of() == Some(oc.pt)) {
                        codecs.push(Codec {
                            rtcp_fb: Vec::new(),
                            ..rtx.clone()
                        });
                    }
                }
                payload_types.push((pc.pt, oc.pt));
            }
        }
        let rtx = codecs.iter().any(|c| c.rtx_of().is_some());
        if payload_types.is_empty() {
            items[*i].mid = Some(String::new());
            incompatible_codec(&mut items[*i], track, &offered);
            continue;
        }
        claimed.push(mid.clone());
        let t = get_or_create(session, &mid, m.kind);
        t.codecs = codecs;
        let subscription = Subscription::of_item(&items[*i], track, payload_types);
        // The names the pull gave (a relayed track's own name is its
        // mirror's).
        t.send = Some(send_stream(sid, &subscription.track_name, rtx));
        t.subscription = Some(subscription);
        items[*i].mid = Some(mid.0.clone());
    }

    // Pushes named by mid.
    for item in items.iter_mut() {
        if item.location.as_deref() != Some("local") || item.failed() {
            continue;
        }
        let Some(mid) = item.mid.clone().map(Mid) else {
            item.fail(
                "empty_track_error",
                "A local track with an offer needs its mid",
            );
            continue;
        };
        let Some(m) = offer
            .section(&mid)
            .filter(|m| m.is_active() && m.direction.sends() && m.kind != MediaKind::Application)
        else {
            item.fail(
                "not_found_track_error",
                "No sending m-line with this mid in the offer",
            );
            continue;
        };
        let name = TrackName(item.track_name.clone().unwrap_or_else(random_track_name));
        let carried = session.transceiver(&mid).and_then(|t| t.recv.clone());
        if session.pushed_track(&name).is_some_and(|t| t.mid != mid)
            || carried.is_some_and(|c| c != name)
        {
            item.fail(
                "repeated_local_track_error",
                "A track with this name is already pushed, or this mid carries another track",
            );
            continue;
        }
        item.track_name = Some(name.0.clone());
        item.kind = Some(m.kind.as_str().to_owned());
        if item.bidirectional_media_stream == Some(true) {
            // Answered sendrecv: a pull may land on it with mid "#name".
            let session_id = session.id.0.clone();
            let stream = send_stream(&session_id, &name, false);
            let t = get_or_create(session, &mid, m.kind);
            t.send.get_or_insert(stream);
        }
        push_track(session, m, &mid, name);
    }

    // autoDiscover: every other sending m-line becomes a track.
    if auto_discover {
        for m in offer
            .media
            .iter()
            .filter(|m| m.is_active() && m.direction.sends())
        {
            let Some(mid) = &m.mid else { continue };
            // Only m-lines new in this offer: known ones keep what they carry.
            if m.kind == MediaKind::Application
                || known.contains(mid)
                || session.transceiver(mid).is_some_and(|t| t.recv.is_some())
            {
                continue;
            }
            let name = TrackName(random_track_name());
            push_track(session, m, mid, name.clone());
            items.push(TrackObject {
                location: Some("local".into()),
                mid: Some(mid.0.clone()),
                track_name: Some(name.0),
                kind: Some(m.kind.as_str().to_owned()),
                ..TrackObject::default()
            });
        }
    }

    // Every offered m-line gets a transceiver and an answer.
    for m in &offer.media {
        let Some(mid) = &m.mid else { continue };
        get_or_create(session, mid, m.kind);
        if !m.is_active() {
            session.stop_transceiver(mid);
            continue;
        }
        if m.kind == MediaKind::Application {
            if m.is_data_channel() && session.data_channel_mid().is_none_or(|d| d == mid) {
                session.channels.negotiated = true;
                session.channels.remote_max_message_size = m.max_message_size;
            } else {
                session.stop_transceiver(mid);
            }
            continue;
        }
        let t = get_or_create(session, mid, m.kind);
        if t.codecs.is_empty() {
            t.codecs = m
                .codecs
                .iter()
                .filter(|c| c.is_forwardable())
                .take(super::limits::MAX_ANSWERED_FORMATS)
                .map(supported_feedback)
                .collect();
        }
        t.rtcp_rsize = m.rtcp_rsize;
        t.extmaps = accepted_extmaps(m);
        if let Some(name) = t.recv.clone()
            && let Some(p) = session
                .pushed
                .iter_mut()
                .find(|p| p.name == name && p.active)
        {
            p.ssrcs = m.ssrcs.clone();
            p.extmaps = forwarded_extmaps(m);
            p.rids = simulcast_rids(m);
        }
    }
    Ok(write_answer(session, offer, ctx))
}

/// The simulcast layers of a video m-line we receive (none for audio).
fn simulcast_rids(m: &sdp::MediaSection) -> Vec<crate::ids::Rid> {
    if m.kind == MediaKind::Video {
        m.simulcast_rids()
    } else {
        Vec::new()
    }
}

/// The extensions of an offered m-line that switchboard accepts.
fn accepted_extmaps(m: &sdp::MediaSection) -> Vec<crate::sdp::Extmap> {
    m.extmaps
        .iter()
        .filter(|e| extension::is_accepted(&e.uri))
        .cloned()
        .collect()
}

/// The extensions of a publisher's m-line that are forwarded end to end.
fn forwarded_extmaps(m: &sdp::MediaSection) -> Vec<crate::sdp::Extmap> {
    m.extmaps
        .iter()
        .filter(|e| extension::is_forwarded(&e.uri))
        .cloned()
        .collect()
}

/// The item code of a pull whose subscriber cannot decode any codec the
/// track is sent with (our rule: the service documents no code for it).
pub const INCOMPATIBLE_CODEC: &str = "incompatible_codec_error";

/// Marks a pull item whose subscriber's codecs (`decodable`) include none
/// of the track's, naming both.
pub fn incompatible_codec(item: &mut TrackObject, track: &PushedTrack, decodable: &[Codec]) {
    let names = |codecs: &[Codec]| {
        let mut names: Vec<String> = codecs.iter().map(|c| c.name.to_uppercase()).collect();
        names.dedup();
        names.join(", ")
    };
    item.fail(
        INCOMPATIBLE_CODEC,
        format!(
            "The subscriber cannot decode the track's codec ({}); it accepts {}",
            names(track.sent_codecs()),
            names(decodable)
        ),
    );
}

/// The formats of `kind` a client has said it receives in this session's
/// SDP so far (empty before it had a receiving m-line of that kind).
pub fn decodable_formats(session: &Session, kind: MediaKind) -> Vec<Codec> {
    session
        .decodable
        .iter()
        .filter(|c| c.kind() == kind)
        .cloned()
        .collect()
}

/// Marks a pull item whose track does not exist.
pub fn not_found(item: &mut TrackObject) {
    item.mid = Some(String::new());
    item.fail(
        "not_found_track_error",
        "Track not found on remote peer (unknown session or track name)",
    );
}

/// The track a pull item names, and its publisher's session id.
pub fn resolve_pull(
    reg: &Registry,
    app: &AppId,
    item: &TrackObject,
) -> Option<(PushedTrack, String)> {
    let sid = item.session_id.clone()?;
    let name = TrackName(item.track_name.clone()?);
    let track = reg.find_track(app, &sid, &name)?.clone();
    Some((track, sid))
}

fn random_track_name() -> String {
    hex(&random_bytes::<8>())
}

/// What we send on an m-line: a random SSRC, and one for retransmissions
/// when RTX is negotiated (`rtx`).
fn send_stream(stream_id: &str, track: &TrackName, rtx: bool) -> SendStream {
    SendStream {
        ssrc: u32::from_be_bytes(random_bytes::<4>()) | 1,
        rtx_ssrc: rtx.then(|| u32::from_be_bytes(random_bytes::<4>()) | 1),
        stream_id: msid_token(stream_id),
        track_id: msid_token(&track.0),
    }
}

/// An msid id (RFC 8830 §2: a token) from an application-chosen name:
/// anything else becomes `-`, so that no name can break or inject SDP.
fn msid_token(name: &str) -> String {
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

fn get_or_create<'a>(session: &'a mut Session, mid: &Mid, kind: MediaKind) -> &'a mut Transceiver {
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

fn push_track(session: &mut Session, m: &sdp::MediaSection, mid: &Mid, name: TrackName) {
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

fn transport<'a>(session: &'a Session, ctx: &'a Context<'_>, setup: &'static str) -> Transport<'a> {
    Transport {
        ice_ufrag: &session.ice.ufrag,
        ice_pwd: &session.ice.pwd,
        fingerprint: &ctx.identity.fingerprint,
        setup,
        candidates: ctx.candidates,
    }
}

fn write_answer(session: &mut Session, offer: &SessionDescription, ctx: &Context<'_>) -> String {
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
    let setup = match session.dtls_role {
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
fn media_out<'a>(
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
    session.offer_made = Some(ctx.now);
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

/// Applies the client's answer to our pending offer.
pub fn apply_answer(
    session: &mut Session,
    answer: &SessionDescription,
    now: std::time::Instant,
) -> Result<(), CallsError> {
    if !session.offer_pending(now) {
        return Err(CallsError::invalid_session_description(
            "no offer from the server is pending",
        ));
    }
    let setup = answer
        .setup
        .as_deref()
        .or_else(|| answer.media.iter().find_map(|m| m.setup.as_deref()));
    let role = match setup {
        Some("passive") => crate::dtls::DtlsRole::Client,
        Some("active") | None => crate::dtls::DtlsRole::Server,
        Some(other) => {
            return Err(CallsError::invalid_session_description(format!(
                "a=setup:{other} is not a valid answer to actpass"
            )));
        }
    };
    if session.dtls_open && session.dtls_role != role {
        return Err(CallsError::invalid_session_description(
            "the DTLS role cannot change",
        ));
    }
    learn_remote(session, answer, false)?;
    session.dtls_role = role;
    for m in &answer.media {
        let Some(mid) = &m.mid else { continue };
        // In an answer, a port-0 m-line inside the BUNDLE group is bundled
        // (RFC 8843 §7.3.3 removes rejected ones from the group).
        if !m.is_active() && !answer.in_bundle(mid) {
            session.stop_transceiver(mid);
            continue;
        }
        if m.kind == MediaKind::Application {
            if m.is_data_channel() {
                session.channels.negotiated = true;
                session.channels.remote_max_message_size = m.max_message_size;
            } else {
                session.stop_transceiver(mid);
            }
            continue;
        }
        if let Some(t) = session.transceiver_mut(mid) {
            {
                // Keep the payload types the client accepted, each with the
                // feedback it accepted (RFC 4585 §4.2: an answer narrows).
                let accepted: Vec<u8> = m.codecs.iter().map(|c| c.pt).collect();
                t.codecs.retain(|c| accepted.contains(&c.pt));
                for c in t.codecs.iter_mut() {
                    if let Some(theirs) = m.codecs.iter().find(|x| x.pt == c.pt) {
                        c.rtcp_fb.retain(|f| theirs.rtcp_fb.contains(f));
                    }
                }
                if let Some(s) = t.subscription.as_mut() {
                    s.payload_types.retain(|(_, to)| accepted.contains(to));
                }
                // And the header extensions it accepted, with our ids.
                t.extmaps.retain(|e| m.extmaps.contains(e));
                if let Some(name) = t.recv.clone() {
                    let codecs = t.codecs.clone();
                    let forwarded: Vec<_> = t
                        .extmaps
                        .iter()
                        .filter(|e| extension::is_forwarded(&e.uri))
                        .cloned()
                        .collect();
                    if let Some(p) = session
                        .pushed
                        .iter_mut()
                        .find(|p| p.name == name && p.active)
                    {
                        p.ssrcs = m.ssrcs.clone();
                        p.codecs = codecs;
                        p.extmaps = forwarded;
                    }
                }
            }
        }
    }
    session.offer_made = None;
    Ok(())
}
