//! WHIP ingest (RFC 9725) and WHEP playback on Sessions and Tracks
//! (docs/calls-api.md, "WHIP and WHEP"). A WHIP client's offer becomes a
//! Calls API session that pushes its sections as tracks named
//! `{stream}-audio` and `{stream}-video` ([`names`]); a WHEP player's offer
//! becomes a session that pulls a stream's tracks (or, our extension, any
//! session's named tracks). Everything after that is the Calls API's own
//! machinery: the same limits, the same media path.
//!
//! Where it sits: between the HTTP routes (`crate::api::whip`, which owns
//! status codes and headers) and the control plane, which it drives like a
//! client would: `new_session`, `tracks_new`, `tracks_update`,
//! `end_session`. It keeps the resources ([`resources`]) and answers trickle
//! and ICE restart `PATCH`es ([`sdpfrag`]). No I/O of its own, no clock.

pub mod names;
pub mod resources;
pub mod sdpfrag;

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::calls::CallsError;
use crate::calls::types::{
    NewSessionRequest, SessionDescriptionJson, TrackObject, TracksNewRequest, TracksUpdateRequest,
};
use crate::control::Control;
use crate::ids::{AppId, Mid};
use crate::sdp::MediaKind;

use names::Published;
pub use resources::{Door, Place};
use resources::{Generation, Resource, Resources, Role, Source};
use sdpfrag::Fragment;

/// Most WHIP and WHEP sessions kept at once (each is also a Calls API
/// session, under that API's per-app caps).
pub const MAX_RESOURCES: usize = 65_536;

/// Most track names a WHEP request may name.
pub const MAX_PLAYED_TRACKS: usize = 16;

/// A failed WHIP/WHEP operation: the HTTP status RFC 9725 gives it, and
/// the Calls API code and text for the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipError {
    /// The status.
    pub status: u16,
    /// The `errorCode` of the body.
    pub code: &'static str,
    /// Human text.
    pub description: String,
}

impl WhipError {
    fn new(status: u16, code: &'static str, description: impl Into<String>) -> Self {
        WhipError {
            status,
            code,
            description: description.into(),
        }
    }

    /// 400: an offer or fragment that cannot be used.
    pub fn bad_request(description: impl Into<String>) -> Self {
        WhipError::new(400, "invalid_session_description", description)
    }

    /// 404: no such stream or session.
    pub fn not_found(description: impl Into<String>) -> Self {
        WhipError::new(404, "not_found", description)
    }
}

impl From<CallsError> for WhipError {
    fn from(e: CallsError) -> Self {
        use crate::calls::error::ErrorCode;
        // RFC 9725 answers an unusable offer with a 4xx: 400 where the
        // Calls API says 406.
        let status = match e.code {
            ErrorCode::InvalidSessionDescription | ErrorCode::InvalidParams => 400,
            code => code.status(),
        };
        WhipError {
            status,
            code: e.code.as_str(),
            description: e.description,
        }
    }
}

/// A WHIP or WHEP session made by a POST.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its session id, also its resource id.
    pub session_id: String,
    /// Our answer.
    pub answer: String,
    /// Its entity tag.
    pub etag: String,
    /// The tracks it pushes (WHIP) or plays (WHEP): (name, mid).
    pub tracks: Vec<(String, Mid)>,
}

/// What a PATCH did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patched {
    /// Candidates or end of candidates only: 204.
    Trickled,
    /// An ICE restart: 200 with our fragment and the new entity tag.
    Restarted {
        /// Our fragment.
        fragment: String,
        /// The new entity tag.
        etag: String,
    },
}

/// A stream's publisher now (GET of the WHIP endpoint).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Live {
    /// The publishing session: pull its tracks with tracks/new.
    pub session_id: String,
    /// Its tracks.
    pub tracks: Vec<LiveTrack>,
}

/// One track of a live stream.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveTrack {
    /// Its name.
    pub track_name: String,
    /// Its mid in the publisher's session.
    pub mid: String,
    /// `audio` or `video`.
    pub kind: &'static str,
}

/// What a WHEP request plays.
#[derive(Debug, Clone, Default)]
pub struct PlayRequest {
    /// `sessionId` (our extension): play this session's tracks.
    pub session_id: Option<String>,
    /// `tracks` (with `sessionId`): their names.
    pub tracks: Vec<String>,
    /// `rid` (our extension): the simulcast layer to prefer.
    pub rid: Option<String>,
}

/// WHIP and WHEP on the control plane.
pub struct Whip {
    control: Arc<Control>,
    resources: Mutex<Resources>,
}

impl Whip {
    /// WHIP and WHEP for `control`'s apps.
    pub fn new(control: Arc<Control>) -> Self {
        Whip {
            control,
            resources: Mutex::new(Resources::new(MAX_RESOURCES)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Resources> {
        self.resources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A session whose setup failed goes at once.
    fn abandon(&self, app: &AppId, session_id: &str) {
        self.control.end_session(app, session_id);
    }

    /// Room for one more session in `r`, forgetting ended ones first if
    /// needed.
    fn make_room(&self, r: &mut Resources) -> Result<(), WhipError> {
        if r.len() >= r.capacity() {
            r.retain(|app, id| self.control.owns_session(app, id));
        }
        if r.len() >= r.capacity() {
            return Err(too_many());
        }
        Ok(())
    }

    /// Forgets sessions that ended without a DELETE (expiry, a failed
    /// transport). Run periodically.
    pub fn forget_ended(&self) {
        self.lock()
            .retain(|app, id| self.control.owns_session(app, id));
    }

    /// (publishers, players) now.
    pub fn counts(&self) -> (usize, usize) {
        self.lock().counts()
    }

    /// POST of a WHIP endpoint: `offer` publishes `stream`. A publisher
    /// already live on it is replaced (a broadcaster that reconnects), and
    /// the players that follow the stream move to the new tracks.
    ///
    /// Every operation holds the resources' lock from its first look to its
    /// last change (the lock order: these resources, then the control
    /// plane's), so a replacement and a new player, or two restarts, never
    /// interleave.
    pub fn publish(
        &self,
        app: &AppId,
        stream: &str,
        client: Option<IpAddr>,
        offer: &str,
        now: Instant,
    ) -> Result<Created, WhipError> {
        let desc = crate::sdp::parse(offer).map_err(|e| WhipError::bad_request(e.to_string()))?;
        let tracks = names::published(stream, &desc);
        if tracks.is_empty() {
            return Err(WhipError::bad_request("the offer sends no audio or video"));
        }
        let mut r = self.lock();
        self.make_room(&mut r)?;
        let items = tracks
            .iter()
            .map(|t| TrackObject {
                location: Some("local".into()),
                mid: Some(t.mid.0.clone()),
                track_name: Some(t.track_name.clone()),
                ..Default::default()
            })
            .collect();
        let (session_id, answer, _) = self.open(app, client, offer, items, now)?;
        let resource = Resource {
            app: app.clone(),
            stream: stream.to_owned(),
            role: Role::Publish {
                tracks: tracks.clone(),
            },
            offer: offer.to_owned(),
            generation: Generation(0),
            turn_username: None,
        };
        let etag = resource.etag(&session_id);
        match r.insert(session_id.clone(), resource) {
            Err(resources::Full) => {
                self.abandon(app, &session_id);
                return Err(too_many());
            }
            Ok(Some((old, _))) => {
                tracing::info!(%stream, old = %old, new = %session_id, "WHIP publisher replaced");
                self.abandon(app, &old);
                for (player, pulls) in r.followers(app, stream) {
                    self.follow(app, &player, &pulls, (&session_id, &tracks), now);
                }
            }
            Ok(None) => {}
        }
        Ok(Created {
            session_id,
            answer,
            etag,
            tracks: tracks.into_iter().map(|t| (t.track_name, t.mid)).collect(),
        })
    }

    /// A new session with `offer` and `items` in one tracks/new; every item
    /// must succeed (else the session goes).
    fn open(
        &self,
        app: &AppId,
        client: Option<IpAddr>,
        offer: &str,
        items: Vec<TrackObject>,
        now: Instant,
    ) -> Result<(String, String, Vec<TrackObject>), WhipError> {
        let (session_id, _) =
            self.control
                .new_session(app, client, NewSessionRequest::default(), now)?;
        let result = self.control.tracks_new(
            app,
            &session_id,
            TracksNewRequest {
                session_description: Some(SessionDescriptionJson {
                    kind: "offer".into(),
                    sdp: offer.to_owned(),
                }),
                tracks: items,
                auto_discover: false,
            },
            now,
        );
        let fail = |e: WhipError| {
            self.abandon(app, &session_id);
            Err(e)
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => return fail(e.into()),
        };
        if let Some(t) = response.tracks.iter().find(|t| t.failed()) {
            // A track the offer names that cannot be pushed or pulled: the
            // request cannot be served as sent (the URL itself was fine).
            return fail(WhipError::bad_request(format!(
                "{}: {}: {}",
                t.track_name.clone().unwrap_or_default(),
                t.error_code.clone().unwrap_or_default(),
                t.error_description.clone().unwrap_or_default()
            )));
        }
        let Some(answer) = response.session_description else {
            return fail(WhipError::new(500, "internal_error", "no answer"));
        };
        Ok((session_id, answer.sdp, response.tracks))
    }

    /// Player `player` (its `pulls`: sections and track names) now pulls
    /// the tracks of the same names of `publisher` (no SDP: its sections
    /// stay).
    fn follow(
        &self,
        app: &AppId,
        player: &str,
        pulls: &[(Mid, String)],
        (publisher, tracks): (&str, &[Published]),
        now: Instant,
    ) {
        let items: Vec<TrackObject> = pulls
            .iter()
            .filter(|(_, name)| tracks.iter().any(|t| &t.track_name == name))
            .map(|(mid, name)| TrackObject {
                location: Some("remote".into()),
                mid: Some(mid.0.clone()),
                session_id: Some(publisher.to_owned()),
                track_name: Some(name.clone()),
                ..Default::default()
            })
            .collect();
        if items.is_empty() {
            return;
        }
        if let Err(e) =
            self.control
                .tracks_update(app, player, TracksUpdateRequest { tracks: items }, now)
        {
            tracing::info!(%player, error = %e, "WHEP player not moved to the new publisher");
        }
    }

    /// POST of a WHEP endpoint: `offer` (receiving sections) plays
    /// `stream`'s live tracks, or `request`'s session and tracks (the
    /// caller has checked that the token may name any session).
    pub fn play(
        &self,
        app: &AppId,
        stream: &str,
        client: Option<IpAddr>,
        offer: &str,
        request: &PlayRequest,
        now: Instant,
    ) -> Result<Created, WhipError> {
        let desc = crate::sdp::parse(offer).map_err(|e| WhipError::bad_request(e.to_string()))?;
        let receiving: Vec<MediaKind> = desc
            .media
            .iter()
            .filter(|m| m.is_active() && m.direction.receives() && m.kind != MediaKind::Application)
            .map(|m| m.kind)
            .collect();
        if receiving.is_empty() {
            return Err(WhipError::bad_request(
                "the offer receives no audio or video",
            ));
        }
        let mut r = self.lock();
        let (source, publisher, named): (Source, String, Vec<(String, Option<MediaKind>)>) =
            match &request.session_id {
                Some(id) => {
                    if request.tracks.is_empty() || request.tracks.len() > MAX_PLAYED_TRACKS {
                        return Err(WhipError::new(
                            400,
                            "invalid_params",
                            format!(
                                "sessionId needs 1 to {MAX_PLAYED_TRACKS} track names in tracks"
                            ),
                        ));
                    }
                    let named = request.tracks.iter().map(|t| (t.clone(), None)).collect();
                    (Source::Session(id.clone()), id.clone(), named)
                }
                None => {
                    let not_live = || WhipError::not_found(format!("stream {stream} is not live"));
                    let (id, live) = r.live(app, stream).ok_or_else(not_live)?;
                    let Role::Publish { tracks } = &live.role else {
                        return Err(not_live());
                    };
                    let named = tracks
                        .iter()
                        .map(|t| (t.track_name.clone(), Some(t.kind)))
                        .collect();
                    (Source::Stream, id.to_owned(), named)
                }
            };
        // The offer's receiving sections in order take the source's tracks
        // of their kind in order (a track of unknown kind takes any).
        let mut unused = named;
        let mut items = Vec::new();
        for kind in receiving {
            let Some(i) = unused.iter().position(|(_, k)| k.is_none_or(|k| k == kind)) else {
                continue;
            };
            let (name, _) = unused.remove(i);
            items.push(TrackObject {
                location: Some("remote".into()),
                session_id: Some(publisher.clone()),
                track_name: Some(name),
                simulcast: request
                    .rid
                    .as_ref()
                    .filter(|_| kind == MediaKind::Video)
                    .map(|rid| serde_json::json!({ "preferredRid": rid })),
                ..Default::default()
            });
        }
        if items.is_empty() {
            return Err(WhipError::bad_request(
                "no offered section matches a track of the stream",
            ));
        }
        self.make_room(&mut r)?;
        let (session_id, answer, results) = self.open(app, client, offer, items, now)?;
        let pulls: Vec<(Mid, String)> = results
            .iter()
            .filter_map(|t| Some((Mid(t.mid.clone()?), t.track_name.clone()?)))
            .collect();
        let resource = Resource {
            app: app.clone(),
            stream: stream.to_owned(),
            role: Role::Play {
                source,
                pulls: pulls.clone(),
            },
            offer: offer.to_owned(),
            generation: Generation(0),
            turn_username: None,
        };
        let etag = resource.etag(&session_id);
        if r.insert(session_id.clone(), resource).is_err() {
            self.abandon(app, &session_id);
            return Err(too_many());
        }
        Ok(Created {
            session_id,
            answer,
            etag,
            tracks: pulls.into_iter().map(|(mid, name)| (name, mid)).collect(),
        })
    }

    /// PATCH of a session: trickled candidates (nothing to do: the server
    /// is ICE-lite and learns the client's addresses from its checks) or,
    /// with `If-Match: *` and new credentials, an ICE restart (the
    /// client's last offer again, with those credentials). `if_match`: the
    /// request's `If-Match` (an unreadable one is `Some("")`), which must
    /// name the current entity tag (412 otherwise). Credentials other than
    /// the current ones without `If-Match: *` are a late trickle of an
    /// earlier generation, or a restart RFC 9725 §4.3.2 does not allow:
    /// 412, and nothing changes.
    pub fn patch(
        &self,
        place: Place<'_>,
        session_id: &str,
        fragment: &str,
        if_match: Option<&str>,
        now: Instant,
    ) -> Result<Patched, WhipError> {
        let mut r = self.lock();
        let (app, ..) = place;
        let resource = r
            .get(place, session_id)
            .filter(|_| self.control.owns_session(app, session_id))
            .ok_or_else(|| WhipError::not_found("no such WHIP/WHEP session"))?;
        let precondition = |why: &str| WhipError::new(412, "precondition_failed", why.to_owned());
        if let Some(tag) = if_match
            && !resource.matches(session_id, tag)
        {
            return Err(precondition(
                "If-Match does not name the session's current entity tag",
            ));
        }
        let fragment =
            Fragment::parse(fragment).map_err(|e| WhipError::bad_request(e.to_string()))?;
        let Some((ufrag, pwd)) = fragment.restart else {
            return Ok(Patched::Trickled);
        };
        let current = crate::sdp::parse(&resource.offer)
            .ok()
            .and_then(|d| d.ice_credentials().map(|(u, _)| u.to_owned()));
        if current.as_deref() == Some(ufrag.as_str()) {
            return Ok(Patched::Trickled);
        }
        if if_match.map(str::trim) != Some("*") {
            return Err(precondition(
                "new ICE credentials restart ICE only with If-Match: *; these are not the session's",
            ));
        }
        let restarted = with_credentials(&resource.offer, &ufrag, &pwd);
        let response = self.control.tracks_new(
            app,
            session_id,
            TracksNewRequest {
                session_description: Some(SessionDescriptionJson {
                    kind: "offer".into(),
                    sdp: restarted.clone(),
                }),
                tracks: Vec::new(),
                auto_discover: false,
            },
            now,
        )?;
        let answer = response
            .session_description
            .ok_or_else(|| WhipError::new(500, "internal_error", "no answer"))?;
        let resource = r
            .get_mut(place, session_id)
            .ok_or_else(|| WhipError::not_found("no such WHIP/WHEP session"))?;
        resource.offer = restarted;
        resource.generation = Generation(resource.generation.0 + 1);
        Ok(Patched::Restarted {
            fragment: sdpfrag::answer_fragment(&answer.sdp),
            etag: resource.etag(session_id),
        })
    }

    /// Notes the TURN username a session's `Link` headers carried.
    pub fn set_turn_username(&self, place: Place<'_>, session_id: &str, username: String) {
        if let Some(resource) = self.lock().get_mut(place, session_id) {
            resource.turn_username = Some(username);
        }
    }

    /// DELETE of a session: it ends now. Returns the TURN username its
    /// `Link` headers carried, for the caller to revoke.
    pub fn delete(&self, place: Place<'_>, session_id: &str) -> Result<Option<String>, WhipError> {
        let resource = self
            .lock()
            .remove(place, session_id)
            .ok_or_else(|| WhipError::not_found("no such WHIP/WHEP session"))?;
        self.control.end_session(place.0, session_id);
        Ok(resource.turn_username)
    }

    /// Who publishes `stream` now.
    pub fn live(&self, app: &AppId, stream: &str) -> Option<Live> {
        let r = self.lock();
        let (id, resource) = r.live(app, stream)?;
        if !self.control.owns_session(app, id) {
            return None;
        }
        let Role::Publish { tracks } = &resource.role else {
            return None;
        };
        Some(Live {
            session_id: id.to_owned(),
            tracks: tracks
                .iter()
                .map(|t| LiveTrack {
                    track_name: t.track_name.clone(),
                    mid: t.mid.0.clone(),
                    kind: t.kind.as_str(),
                })
                .collect(),
        })
    }
}

fn too_many() -> WhipError {
    WhipError::new(
        503,
        "temporarily_unavailable_error",
        "too many WHIP and WHEP sessions",
    )
}

/// `offer` with its ICE credentials replaced and its candidates dropped (a
/// restart's offer; the server learns addresses from checks).
fn with_credentials(offer: &str, ufrag: &str, pwd: &str) -> String {
    let mut out = String::with_capacity(offer.len());
    for line in offer.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("a=ice-ufrag:") {
            out.push_str("a=ice-ufrag:");
            out.push_str(ufrag);
        } else if line.starts_with("a=ice-pwd:") {
            out.push_str("a=ice-pwd:");
            out.push_str(pwd);
        } else if line.starts_with("a=candidate:") || line.starts_with("a=end-of-candidates") {
            continue;
        } else {
            out.push_str(line);
        }
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_offer_carries_only_the_new_credentials() {
        let offer = "v=0\r\na=ice-ufrag:old1\r\na=ice-pwd:oldoldoldoldoldoldoldold\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:old1\r\n\
            a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n";
        let out = with_credentials(offer, "new1", "newnewnewnewnewnewnewnew");
        assert_eq!(out.matches("a=ice-ufrag:new1").count(), 2);
        assert!(out.contains("a=ice-pwd:newnewnewnewnewnewnewnew\r\n"));
        assert!(!out.contains("old") && !out.contains("candidate"));
    }

    #[test]
    fn unusable_offers_are_400_not_406() {
        let e: WhipError = CallsError::invalid_session_description("x").into();
        assert_eq!(e.status, 400);
        let e: WhipError = CallsError::unauthorized().into();
        assert_eq!(e.status, 401);
        let e: WhipError = CallsError::rate_limited().into();
        assert_eq!(e.status, 429);
    }
}
