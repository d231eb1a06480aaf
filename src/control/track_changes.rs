//! The Calls API operations on tracks a session already has, on the
//! registry (calls-api.md, "Endpoints"): tracks/update, tracks/close, and
//! GET session.

use std::time::Instant;

use serde_json::{Value, json};

use crate::calls::CallsError;
use crate::calls::types::{TrackObject, TracksCloseRequest, TracksResponse, TracksUpdateRequest};
use crate::ids::{AppId, Mid};

use super::negotiate::{self, parse_description};
use super::session::{Subscription, map_payload_types};
use super::{Control, limits};

use super::operations::answer_json;

impl Control {
    /// PUT sessions/{id}/tracks/update: re-point receiving transceivers.
    pub fn tracks_update(
        &self,
        app: &AppId,
        session_id: &str,
        mut req: TracksUpdateRequest,
        now: Instant,
    ) -> Result<TracksResponse, CallsError> {
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        limits::check_track_items(&req.tracks)?;
        for item in req.tracks.iter_mut() {
            let target = super::pulls::resolve_pull(&st.reg, app, item).map(|(t, _)| t);
            let mid = Mid(item.mid.clone().unwrap_or_default());
            // Whether the track pulled on that mid now is simulcast.
            let pulls_simulcast = st
                .reg
                .session(key)
                .and_then(|s| s.transceiver(&mid))
                .and_then(|t| t.subscription.as_ref())
                .and_then(|sub| st.reg.track_owner(sub.track))
                .is_some_and(|(_, track)| !track.rids.is_empty());
            let session = st
                .reg
                .session_mut(key)
                .ok_or_else(CallsError::session_gone)?;
            let Some(t) = session
                .transceiver_mut(&mid)
                .filter(|t| t.subscription.is_some() && !t.stopped)
            else {
                item.fail(
                    "update_track_error",
                    "No receiving transceiver with this mid",
                );
                continue;
            };
            match target {
                None if item.track_name.is_none() && item.session_id.is_none() => {
                    // Only a simulcast preference change: nothing to re-point.
                    if item.simulcast.is_some() {
                        if !pulls_simulcast {
                            item.fail("update_track_error", "The track is not simulcast");
                            continue;
                        }
                        if let Some(sub) = t.subscription.as_mut() {
                            sub.simulcast = item.simulcast.clone();
                        }
                    }
                }
                None => item.fail("update_track_error", "Track not found on remote peer"),
                Some(track) if track.kind != t.kind => item.fail(
                    "update_track_error",
                    "The track's kind differs from the transceiver's",
                ),
                Some(track) if item.simulcast.is_some() && track.rids.is_empty() => {
                    item.fail("update_track_error", "The track is not simulcast")
                }
                Some(track) => {
                    let payload_types = map_payload_types(track.sent_codecs(), &t.codecs);
                    if payload_types.is_empty() {
                        item.fail(
                            "update_track_error",
                            "The track uses no codec negotiated on this transceiver",
                        );
                        continue;
                    }
                    t.subscription = Some(Subscription::of_item(item, &track, payload_types));
                }
            }
        }
        self.sync(&mut st, &[key]);
        self.request_new_keyframes(&mut st, key, now);
        Ok(TracksResponse {
            requires_immediate_renegotiation: false,
            session_description: None,
            tracks: req.tracks,
        })
    }

    /// PUT sessions/{id}/tracks/close.
    pub fn tracks_close(
        &self,
        app: &AppId,
        session_id: &str,
        mut req: TracksCloseRequest,
        now: Instant,
    ) -> Result<TracksResponse, CallsError> {
        limits::check_items(req.tracks.len(), "tracks")?;
        limits::check_names(&req.tracks)?;
        let offer = match (&req.session_description, req.force) {
            (Some(sd), false) => Some(parse_description(
                &sd.kind,
                "offer",
                &sd.sdp,
                self.limits.tracks_per_session,
            )?),
            (None, false) => {
                return Err(CallsError::invalid_params(
                    "tracks/close without force needs the client's offer",
                ));
            }
            (_, true) => None,
        };
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        let session = st
            .reg
            .session_mut(key)
            .ok_or_else(CallsError::session_gone)?;
        // Validate the offer before anything is closed.
        if let Some(offer) = &offer {
            negotiate::check_offer(session, offer, now)?;
        }
        for item in req.tracks.iter_mut() {
            let mid = Mid(item.mid.clone().unwrap_or_default());
            let live = session
                .transceiver(&mid)
                .is_some_and(|t| !t.stopped && (t.recv.is_some() || t.subscription.is_some()));
            if !live {
                item.fail(
                    "close_track_error",
                    "Track doesn't exist or was already closed",
                );
                continue;
            }
            if let Some(t) = session.transceiver(&mid) {
                if let Some(name) = &t.recv {
                    item.track_name.get_or_insert(name.0.clone());
                    item.location.get_or_insert("local".into());
                }
                if let Some(sub) = &t.subscription {
                    item.track_name.get_or_insert(sub.track_name.0.clone());
                    item.session_id.get_or_insert(sub.session_id.0.clone());
                    item.location.get_or_insert("remote".into());
                }
            }
            session.close_transceiver(&mid);
        }
        let sdp = match offer {
            Some(offer) => {
                let ctx = self.context(now);
                let mut none = Vec::new();
                Some(answer_json(negotiate::apply_offer(
                    &mut st.reg,
                    app,
                    key,
                    &offer,
                    &mut none,
                    false,
                    &ctx,
                )?))
            }
            None => None,
        };
        self.finish(&mut st, key);
        Ok(TracksResponse {
            requires_immediate_renegotiation: false,
            session_description: sdp,
            tracks: req.tracks,
        })
    }

    /// GET sessions/{id}.
    pub fn get_session(
        &self,
        app: &AppId,
        session_id: &str,
        now: Instant,
    ) -> Result<Value, CallsError> {
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        let session = st.reg.session(key).ok_or_else(CallsError::session_gone)?;
        let mut tracks = Vec::new();
        for p in &session.pushed {
            tracks.push(TrackObject {
                location: Some("local".into()),
                mid: Some(p.mid.0.clone()),
                track_name: Some(p.name.0.clone()),
                status: Some(if p.active { "active" } else { "inactive" }.into()),
                ..TrackObject::default()
            });
        }
        for t in &session.transceivers {
            if let Some(s) = &t.subscription {
                // A pull is active while its source is: closing or expiring
                // a pushed track stops it for every subscriber.
                let source_active = st.reg.track_owner(s.track).is_some_and(|(_, p)| p.active);
                let active = s.active && !t.stopped && source_active;
                tracks.push(TrackObject {
                    location: Some("remote".into()),
                    mid: Some(t.mid.0.clone()),
                    session_id: Some(s.session_id.0.clone()),
                    track_name: Some(s.track_name.0.clone()),
                    status: Some(if active { "active" } else { "inactive" }.into()),
                    ..TrackObject::default()
                });
            }
        }
        for c in &session.closed_pulls {
            tracks.push(TrackObject {
                location: Some("remote".into()),
                mid: Some(c.mid.0.clone()),
                session_id: Some(c.session_id.0.clone()),
                track_name: Some(c.track_name.0.clone()),
                status: Some("inactive".into()),
                ..TrackObject::default()
            });
        }
        let connected = session.channels.connected;
        let channels: Vec<_> = session
            .channels
            .channels
            .iter()
            .map(|c| c.item(connected))
            .collect();
        Ok(json!({ "tracks": tracks, "dataChannels": channels }))
    }
}
