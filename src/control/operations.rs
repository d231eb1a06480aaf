//! The Calls API operations that open sessions and tracks, on the registry
//! (calls-api.md, "Endpoints"): sessions/new, tracks/new, renegotiate.
//! Changes to existing tracks and reading a session are in `track_changes`.

use std::time::Instant;

use crate::calls::CallsError;
use crate::calls::types::{
    NewSessionRequest, RenegotiateRequest, SessionDescriptionJson, TrackObject, TracksNewRequest,
    TracksResponse,
};
use crate::ids::{AppId, SessionKey, TrackName};
use crate::sdp::MediaKind;

use super::negotiate::{self, Context, parse_description};
use super::session::{Subscription, map_payload_types};
use super::{Control, State, limits};

pub(super) fn offer_json(sdp: String) -> SessionDescriptionJson {
    SessionDescriptionJson {
        kind: "offer".into(),
        sdp,
    }
}

pub(super) fn answer_json(sdp: String) -> SessionDescriptionJson {
    SessionDescriptionJson {
        kind: "answer".into(),
        sdp,
    }
}

/// A tracks/new request checked and counted against its session's rate
/// (session keys are never reused, so it names that session or none).
#[derive(Debug)]
pub struct Admitted(SessionKey);

impl Control {
    pub(super) fn context(&self, now: Instant) -> Context<'_> {
        Context {
            identity: &self.identity,
            candidates: &self.candidates,
            now,
        }
    }

    /// After an operation: DTLS can start if the fingerprint is now known,
    /// and the workers learn the new state.
    pub(super) fn finish(&self, st: &mut State, key: SessionKey) {
        if let Some(s) = st.reg.session_mut(key) {
            if let Some(old) = s.retired_ufrag.take() {
                // ICE restarted: checks with the new credentials bind from now on.
                self.directory.remove(&old);
                self.directory.insert(&s.ice.ufrag, key, &s.ice.pwd);
            }
            if let Some((remote, _)) = &s.remote_ice {
                self.directory.set_remote_ufrag(&s.ice.ufrag, remote);
            }
        }
        self.ensure_dtls(st, key);
        self.enable_channels(st, key);
        self.sync(st, &[key]);
    }

    /// The client's offer, if the request has one.
    fn parse_offer(
        &self,
        sd: Option<&SessionDescriptionJson>,
    ) -> Result<Option<crate::sdp::SessionDescription>, CallsError> {
        sd.map(|sd| parse_description(&sd.kind, "offer", &sd.sdp, self.limits.tracks_per_session))
            .transpose()
    }

    /// POST sessions/new.
    pub fn new_session(
        &self,
        app: &AppId,
        client: Option<std::net::IpAddr>,
        req: NewSessionRequest,
        now: Instant,
    ) -> Result<(String, Option<SessionDescriptionJson>), CallsError> {
        let offer = self.parse_offer(req.session_description.as_ref())?;
        let mut st = self.lock();
        if let (Some(max), Some(ip)) = (self.limits.new_sessions_per_address, client) {
            st.new_sessions.check(ip, max, now)?;
        }
        let room = st
            .reg
            .apps
            .get(app)
            .ok_or_else(|| CallsError::not_found("Unknown app"))?;
        limits::check_app_room(room, &self.limits)?;
        if req.third_party {
            let connecting = self.third_party_connecting(&st, app);
            limits::check_third_party_room(connecting, self.limits.third_party_connecting_per_app)?;
        }
        let key = st
            .reg
            .create_session(app, now)
            .ok_or_else(|| CallsError::not_found("Unknown app"))?;
        let (id, ufrag, pwd) = {
            let s = st
                .reg
                .session(key)
                .ok_or_else(|| CallsError::internal("session vanished"))?;
            (s.id.0.clone(), s.ice.ufrag.clone(), s.ice.pwd.clone())
        };
        self.directory.insert(&ufrag, key, &pwd);
        if req.relay
            && let Some(s) = st.reg.session_mut(key)
        {
            s.rate_window = super::rate_window::RateWindow::exempt(now);
        }
        if req.third_party {
            let targets = self.app_check_targets();
            self.make_third_party(&mut st, key, targets);
        }
        let answer = match offer {
            Some(offer) => {
                let ctx = self.context(now);
                let mut items = Vec::new();
                match negotiate::apply_offer(&mut st.reg, app, key, &offer, &mut items, false, &ctx)
                {
                    Ok(sdp) => Some(answer_json(sdp)),
                    Err(e) => {
                        self.remove_session(&mut st, key);
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        if answer.is_some() {
            // A session without an offer has nothing for the workers yet:
            // creating it costs no sync of its app.
            self.finish(&mut st, key);
        }
        Ok((id, answer))
    }

    /// POST sessions/{id}/tracks/new.
    pub fn tracks_new(
        &self,
        app: &AppId,
        session_id: &str,
        req: TracksNewRequest,
        now: Instant,
    ) -> Result<TracksResponse, CallsError> {
        let admitted = self.admit_tracks_new(app, session_id, &req, now)?;
        self.tracks_new_admitted(admitted, app, req, now)
    }

    /// The checks of a tracks/new that come before any work for it (a
    /// cluster's relays included): the session exists and has not failed,
    /// the request is within its rate (counted here, once) and the item
    /// cap.
    pub fn admit_tracks_new(
        &self,
        app: &AppId,
        session_id: &str,
        req: &TracksNewRequest,
        now: Instant,
    ) -> Result<Admitted, CallsError> {
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        limits::check_track_items(&req.tracks)?;
        Ok(Admitted(key))
    }

    /// A tracks/new that [`Control::admit_tracks_new`] admitted (410 if its
    /// session went meanwhile).
    pub fn tracks_new_admitted(
        &self,
        Admitted(key): Admitted,
        app: &AppId,
        mut req: TracksNewRequest,
        now: Instant,
    ) -> Result<TracksResponse, CallsError> {
        let mut st = self.lock();
        if st.reg.app_of(key) != Some(app) {
            return Err(CallsError::session_gone());
        }
        let remote = match req.tracks.first().map(|t| t.location.as_deref()) {
            _ if req.tracks.is_empty() => false,
            Some(Some("remote")) => true,
            Some(Some("local")) => false,
            _ => {
                return Err(CallsError::invalid_params(
                    "each track needs location \"local\" or \"remote\"",
                ));
            }
        };
        let wanted = if remote { "remote" } else { "local" };
        if req
            .tracks
            .iter()
            .any(|t| t.location.as_deref() != Some(wanted))
        {
            return Err(CallsError::invalid_params(
                "all tracks of one call must have the same location",
            ));
        }
        let offer = self.parse_offer(req.session_description.as_ref())?;
        if offer.is_none() && req.tracks.is_empty() {
            return Err(CallsError::invalid_params(
                "no tracks and no sessionDescription",
            ));
        }
        {
            let session = st.reg.session(key).ok_or_else(CallsError::session_gone)?;
            match &offer {
                Some(offer) if req.auto_discover => {
                    limits::check_auto_discover(session, offer, req.tracks.len())?
                }
                Some(_) => {}
                // Without SDP each item may add an m-line.
                None => {
                    limits::check_room(session, req.tracks.len(), self.limits.tracks_per_session)?
                }
            }
        }
        let ctx = self.context(now);
        let mut tracks = std::mem::take(&mut req.tracks);
        let response = if let Some(offer) = offer {
            let sdp = negotiate::apply_offer(
                &mut st.reg,
                app,
                key,
                &offer,
                &mut tracks,
                req.auto_discover,
                &ctx,
            )?;
            TracksResponse {
                requires_immediate_renegotiation: false,
                session_description: Some(answer_json(sdp)),
                tracks,
            }
        } else if remote
            && tracks
                .iter()
                .all(|t| t.mid.as_deref().is_some_and(|m| m.starts_with('#')))
        {
            self.pull_into_existing(&mut st, app, key, &mut tracks)?;
            TracksResponse {
                requires_immediate_renegotiation: false,
                session_description: None,
                tracks,
            }
        } else {
            let added = if remote {
                self.add_pulls(now, &mut st, app, key, &mut tracks)?
            } else {
                self.add_pushes(now, &mut st, key, &mut tracks)?
            };
            let session = st
                .reg
                .session_mut(key)
                .ok_or_else(CallsError::session_gone)?;
            let sdp = added.then(|| negotiate::write_offer(session, &ctx));
            TracksResponse {
                requires_immediate_renegotiation: sdp.is_some(),
                session_description: sdp.map(offer_json),
                tracks,
            }
        };
        self.finish(&mut st, key);
        self.request_new_keyframes(&mut st, key, now);
        Ok(response)
    }

    pub(super) fn ensure_no_pending(
        st: &State,
        key: SessionKey,
        now: Instant,
    ) -> Result<(), CallsError> {
        match st.reg.session(key) {
            Some(s) if s.offer_pending(now) => Err(CallsError::invalid_session_description(
                "an offer from the server is awaiting its answer (renegotiate first)",
            )),
            Some(_) => Ok(()),
            None => Err(CallsError::session_gone()),
        }
    }

    fn add_pulls(
        &self,
        now: Instant,
        st: &mut State,
        app: &AppId,
        key: SessionKey,
        items: &mut [TrackObject],
    ) -> Result<bool, CallsError> {
        Self::ensure_no_pending(st, key, now)?;
        let mut added = false;
        for item in items.iter_mut() {
            let found = super::pulls::resolve_pull(&st.reg, app, item).map(|(t, _)| t);
            let Some(track) = found else {
                super::pulls::not_found(item);
                continue;
            };
            let session = st
                .reg
                .session_mut(key)
                .ok_or_else(CallsError::session_gone)?;
            // A client that already told us what it decodes (in an earlier
            // SDP) gets the error now rather than a dead m-line.
            let decodable = super::pulls::decodable_formats(session, track.kind);
            if !decodable.is_empty()
                && !track
                    .sent_codecs()
                    .iter()
                    .any(|c| decodable.iter().any(|d| d.same_format(c)))
            {
                item.mid = Some(String::new());
                super::pulls::incompatible_codec(item, &track, &decodable);
                continue;
            }
            let mid = negotiate::add_pull(session, &track, item);
            item.mid = Some(mid.0);
            added = true;
        }
        Ok(added)
    }

    fn add_pushes(
        &self,
        now: Instant,
        st: &mut State,
        key: SessionKey,
        items: &mut [TrackObject],
    ) -> Result<bool, CallsError> {
        Self::ensure_no_pending(st, key, now)?;
        let mut added = false;
        for item in items.iter_mut() {
            let kind = item
                .kind
                .as_deref()
                .and_then(MediaKind::parse)
                .filter(|k| *k != MediaKind::Application);
            let bidirectional = item.bidirectional_media_stream == Some(true);
            let (Some(kind), Some(name)) = (kind, item.track_name.clone()) else {
                item.fail(
                    "empty_track_error",
                    "Without an offer, a local track needs kind (audio or video) and trackName",
                );
                continue;
            };
            let name = TrackName(name);
            let session = st
                .reg
                .session_mut(key)
                .ok_or_else(CallsError::session_gone)?;
            if session.pushed_track(&name).is_some() {
                item.fail(
                    "repeated_local_track_error",
                    "A track with this name is already pushed",
                );
                continue;
            }
            let mid = negotiate::add_push_without_sdp(session, kind, name, bidirectional);
            item.mid = Some(mid.0);
            added = true;
        }
        Ok(added)
    }

    /// Pulls into `mid: "#trackName"`: the transceiver that carries that
    /// local track, which must already send (bidirectionalMediaStream).
    fn pull_into_existing(
        &self,
        st: &mut State,
        app: &AppId,
        key: SessionKey,
        items: &mut [TrackObject],
    ) -> Result<(), CallsError> {
        for item in items.iter_mut() {
            let local = TrackName(
                item.mid
                    .as_deref()
                    .unwrap_or("#")
                    .trim_start_matches('#')
                    .to_owned(),
            );
            let found = super::pulls::resolve_pull(&st.reg, app, item).map(|(t, _)| t);
            let Some(track) = found else {
                super::pulls::not_found(item);
                continue;
            };
            let session = st
                .reg
                .session_mut(key)
                .ok_or_else(CallsError::session_gone)?;
            let Some(t) = session.transceivers.iter_mut().find(|t| {
                t.recv.as_ref() == Some(&local) && t.send.is_some() && t.kind == track.kind
            }) else {
                item.fail(
                    "not_found_track_error",
                    "No sendrecv transceiver carries that local track",
                );
                continue;
            };
            let payload_types = map_payload_types(track.sent_codecs(), &t.codecs);
            if payload_types.is_empty() {
                super::pulls::incompatible_codec(item, &track, &t.codecs);
                continue;
            }
            item.mid = Some(t.mid.0.clone());
            t.subscription = Some(Subscription::of_item(item, &track, payload_types));
        }
        Ok(())
    }

    /// PUT sessions/{id}/renegotiate.
    pub fn renegotiate(
        &self,
        app: &AppId,
        session_id: &str,
        req: RenegotiateRequest,
        now: Instant,
    ) -> Result<(), CallsError> {
        let sd = &req.session_description;
        let answer =
            parse_description(&sd.kind, "answer", &sd.sdp, self.limits.tracks_per_session)?;
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        let session = st
            .reg
            .session_mut(key)
            .ok_or_else(CallsError::session_gone)?;
        negotiate::apply_answer(session, &answer, now)?;
        self.finish(&mut st, key);
        self.request_new_keyframes(&mut st, key, now);
        Ok(())
    }
}
