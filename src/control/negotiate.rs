//! Offer/answer for the Calls API operations: applying a client's offer
//! (push, pull with an offer, autoDiscover, legacy sessions/new), writing
//! our offers (pull without SDP, bidirectional push) and applying the
//! client's answer (renegotiate).
//!
//! Where it sits: the control thread, under the API handlers. It changes the
//! registry; `super::sync` then tells the media workers.

use crate::calls::CallsError;
use crate::calls::types::TrackObject;
use crate::dtls::Fingerprint;
use crate::ids::{AppId, Mid, SessionKey, TrackName};
use crate::sdp::{self, MediaKind, SessionDescription, extension};

use super::pulls::{Pull, PullFormats, forwardable, incompatible_codec, resolve_pulls};
use super::registry::Registry;
use super::session::{Session, Subscription, Transceiver, supported_feedback};

pub use super::describe::{Context, write_offer};
use super::describe::{send_stream, write_answer};
pub use super::mlines::{add_data_channel_mline, add_pull, add_push_without_sdp};
use super::mlines::{
    forwarded_extmaps, get_or_create, push_track, random_track_name, simulcast_rids,
};

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
    if session.dtls.remote_fingerprints.is_empty() {
        session.dtls.remote_fingerprints = fingerprints;
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
    // Pulls are resolved first: they read other sessions.
    let pulls = resolve_pulls(reg, app, items);
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
    place_pulls(session, offer, items, &pulls);
    apply_pushes(session, offer, items);
    if auto_discover {
        discover_pushes(session, offer, items, &known);
    }
    answer_mlines(session, offer);
    Ok(write_answer(session, offer, ctx))
}

/// Places each pull on an offered receiving m-line not yet in use, of its
/// kind, in order, with the formats both sides have; an item with no such
/// m-line, or no common format, fails.
fn place_pulls(
    session: &mut Session,
    offer: &SessionDescription,
    items: &mut [TrackObject],
    pulls: &[Pull],
) {
    let mut claimed: Vec<Mid> = Vec::new();
    for (i, track, sid) in pulls {
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
        let Some(formats) = PullFormats::match_offer(track, m) else {
            items[*i].mid = Some(String::new());
            incompatible_codec(&mut items[*i], track, &forwardable(m));
            continue;
        };
        claimed.push(mid.clone());
        let rtx = formats.codecs.iter().any(|c| c.rtx_of().is_some());
        let t = get_or_create(session, &mid, m.kind);
        t.codecs = formats.codecs;
        let subscription = Subscription::of_item(&items[*i], track, formats.payload_types);
        // The names the pull gave (a relayed track's own name is its
        // mirror's).
        t.send = Some(send_stream(sid, &subscription.track_name, rtx));
        t.subscription = Some(subscription);
        items[*i].mid = Some(mid.0.clone());
    }
}

/// Pushes named by mid (`location: local`): each becomes the track of the
/// offered sending m-line of its mid; an item without a mid, without such
/// an m-line, or naming a track pushed elsewhere fails.
fn apply_pushes(session: &mut Session, offer: &SessionDescription, items: &mut [TrackObject]) {
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
}

/// autoDiscover: every sending m-line new in this offer (not among `known`,
/// carrying no track yet) becomes a track with a random name, listed as an
/// item of its own.
fn discover_pushes(
    session: &mut Session,
    offer: &SessionDescription,
    items: &mut Vec<TrackObject>,
    known: &[Mid],
) {
    for m in offer
        .media
        .iter()
        .filter(|m| m.is_active() && m.direction.sends())
    {
        let Some(mid) = &m.mid else { continue };
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

/// Every offered m-line gets a transceiver to answer with: inactive ones
/// are stopped, the data-channel m-line is negotiated (a second one
/// stopped), and a media m-line without formats of its own yet takes the
/// forwardable ones offered; pushed tracks learn their SSRCs, extensions
/// and simulcast layers from their m-line.
fn answer_mlines(session: &mut Session, offer: &SessionDescription) {
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
}

/// The extensions of an offered m-line that switchboard accepts.
fn accepted_extmaps(m: &sdp::MediaSection) -> Vec<crate::sdp::Extmap> {
    m.extmaps
        .iter()
        .filter(|e| extension::is_accepted(&e.uri))
        .cloned()
        .collect()
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
    if session.dtls.is_open() && session.dtls.role != role {
        return Err(CallsError::invalid_session_description(
            "the DTLS role cannot change",
        ));
    }
    learn_remote(session, answer, false)?;
    session.dtls.role = role;
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
    session.signalling.answered();
    Ok(())
}

#[cfg(test)]
#[path = "negotiate_tests.rs"]
mod tests;
