//! One session as the control thread keeps it: ICE credentials, the DTLS
//! transport, where its 5-tuple lives, and its transceivers (m-lines) with
//! what each pushes or pulls.

use std::collections::VecDeque;
use std::time::Instant;

use super::path::PathSelector;
use super::rate_window::RateWindow;
use super::session_dtls::SessionDtls;
use super::signalling::Signalling;
use crate::ice::IceCredentials;
use crate::ids::{Mid, Rid, SessionId, SessionKey, TrackKey, TrackName};
use crate::sdp::{Codec, Extmap, MediaKind, extension};

pub use super::codecs::{default_codecs, sending_feedback, supported_feedback};
pub use super::transceiver::{
    PushedTrack, Subscription, Transceiver, TransportBinding, map_payload_types,
};

/// Most distinct formats a session keeps of what its client receives
/// (`Session::decodable`; Chromium offers about twenty).
pub const MAX_DECODABLE: usize = 64;

/// Closed pulls a session remembers for GET at most (a client that pulls
/// and closes again and again holds no more than this).
pub const MAX_CLOSED_PULLS: usize = 256;

/// A pull that was closed, as GET session lists it (status inactive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedPull {
    /// The m-line it was on.
    pub mid: Mid,
    /// The publisher's session.
    pub session_id: SessionId,
    /// The track's name, as the pull gave it.
    pub track_name: TrackName,
}

/// One session.
pub struct Session {
    /// Its public id.
    pub id: SessionId,
    /// Its compact key.
    pub key: SessionKey,
    /// Our ICE credentials for it.
    pub ice: IceCredentials,
    /// The client's ICE credentials (ufrag, pwd), from its last SDP: new
    /// ones in an offer are an ICE restart (RFC 8839 §4.4.1.1.1).
    pub remote_ice: Option<(String, String)>,
    /// Our ufrag before an ICE restart, until the ICE directory forgets it.
    pub retired_ufrag: Option<String>,
    /// The checks its client sent, as far as the media path is concerned.
    pub path: PathSelector,
    /// When its client last flooded the control thread, and for how many
    /// consecutive windows.
    pub flooding: Option<(Instant, u32)>,
    /// SDP origin session id.
    pub origin: u64,
    /// SDP origin version, bumped per description we write.
    pub version: u64,
    /// Its DTLS association: the client's fingerprints, our role, and
    /// where the handshake stands (its keys once connected).
    pub dtls: SessionDtls,
    /// Where its media flows.
    pub transport: Option<TransportBinding>,
    /// Its m-lines in SDP order.
    pub transceivers: Vec<Transceiver>,
    /// Tracks it pushes.
    pub pushed: Vec<PushedTrack>,
    /// Header extensions of the bundle (URI → id), learned from the client.
    pub extmaps: Vec<Extmap>,
    /// `a=extmap-allow-mixed` from the client.
    pub extmap_allow_mixed: bool,
    /// Where offer/answer stands: stable, or our offer awaiting its answer.
    pub signalling: Signalling,
    /// Every payload type the client has used in this session (BUNDLE
    /// requires one meaning per number), forwardable or not.
    pub client_payload_types: Vec<Codec>,
    /// The forwardable formats the client said it receives (its receiving
    /// m-lines: recvonly, sendrecv), to refuse pulls it cannot decode.
    pub decodable: Vec<Codec>,
    /// The SSRC of our RTCP.
    pub rtcp_ssrc: u32,
    /// When it was created.
    pub created: Instant,
    /// Consent freshness (RFC 7675), from when it connected.
    pub consent: Option<super::consent::Consent>,
    /// Requests in the current rate-limit window.
    pub rate_window: RateWindow,
    /// Pulls that were closed, as GET lists them (status inactive): the
    /// latest [`MAX_CLOSED_PULLS`].
    pub closed_pulls: VecDeque<ClosedPull>,
    /// Its data channels.
    pub channels: super::channel_state::SessionChannelState,
    /// Third-party sessions only: the checks we send as the controlling
    /// ICE agent.
    pub peer_checks: Option<super::peer_checks::PeerChecks>,
}

impl Session {
    /// A new session with no transport.
    pub fn new(key: SessionKey, now: Instant) -> Self {
        let seed = crate::ids::random_bytes::<12>();
        Session {
            id: SessionId::random(),
            key,
            ice: IceCredentials::random(),
            remote_ice: None,
            retired_ufrag: None,
            path: PathSelector::default(),
            flooding: None,
            origin: u64::from_be_bytes(seed[..8].try_into().unwrap_or_default()) >> 2,
            version: 1,
            dtls: SessionDtls::default(),
            transport: None,
            transceivers: Vec::new(),
            pushed: Vec::new(),
            extmaps: Vec::new(),
            extmap_allow_mixed: false,
            signalling: Signalling::Stable,
            client_payload_types: Vec::new(),
            decodable: Vec::new(),
            rtcp_ssrc: u32::from_be_bytes(seed[8..12].try_into().unwrap_or_default()) | 1,
            created: now,
            consent: None,
            rate_window: RateWindow::new(now),
            closed_pulls: VecDeque::new(),
            channels: Default::default(),
            peer_checks: None,
        }
    }

    /// Learns the client's payload types (every one it used) and the
    /// forwardable formats it receives from its SDP `desc`.
    pub fn learn_formats(&mut self, desc: &crate::sdp::SessionDescription) {
        // Linear in the description: a payload type is one of 256, a format is
        // compared by its identity, and what a session keeps is capped.
        let mut known_pts = [false; 256];
        for k in &self.client_payload_types {
            known_pts[usize::from(k.pt)] = true;
        }
        for c in desc.media.iter().flat_map(|m| m.codecs.iter()) {
            if !std::mem::replace(&mut known_pts[usize::from(c.pt)], true) {
                self.client_payload_types.push(c.clone());
            }
        }
        let mut known: std::collections::HashSet<crate::sdp::FormatId> =
            self.decodable.iter().map(Codec::format_id).collect();
        let receiving = desc
            .media
            .iter()
            .filter(|m| m.is_active() && m.direction.receives());
        for c in receiving.flat_map(|m| m.codecs.iter()) {
            if self.decodable.len() >= MAX_DECODABLE {
                break;
            }
            if c.is_forwardable() && known.insert(c.format_id()) {
                self.decodable.push(c.clone());
            }
        }
    }

    /// Stops a transceiver that the SDP rejected or stopped (port 0): what it
    /// carried is closed and the slot may be recycled.
    pub fn stop_transceiver(&mut self, mid: &Mid) {
        self.close_transceiver(mid);
        if let Some(t) = self.transceiver_mut(mid) {
            t.stopped = true;
        }
    }

    /// Closes what a transceiver carries: its pull is closed (and
    /// remembered for GET), its pushed track becomes inactive; the m-line
    /// itself stays (inactive). Returns whether it carried anything.
    pub fn close_transceiver(&mut self, mid: &Mid) -> bool {
        let Some(t) = self.transceivers.iter_mut().find(|t| &t.mid == mid) else {
            return false;
        };
        let had = t.recv.is_some() || t.subscription.is_some();
        t.send = None;
        if let Some(s) = t.subscription.take() {
            t.pulled_before = true;
            if self.closed_pulls.len() == MAX_CLOSED_PULLS {
                self.closed_pulls.pop_front();
            }
            self.closed_pulls.push_back(ClosedPull {
                mid: mid.clone(),
                session_id: s.session_id,
                track_name: s.track_name,
            });
        }
        if let Some(name) = t.recv.take() {
            for p in self.pushed.iter_mut().filter(|p| p.name == name) {
                p.active = false;
                p.idle = false;
                p.fanout.close();
            }
        }
        had
    }

    /// Takes the client's ICE credentials from its SDP; new ones in an offer restart
    /// ICE: we answer with new credentials of ours too, and the old ufrag is
    /// retired (the caller updates the ICE directory). Returns whether ICE
    /// restarted. The DTLS association, tracks and subscriptions stay.
    pub fn handle_remote_ice(&mut self, ufrag: &str, pwd: &str, in_offer: bool) -> bool {
        let new = (ufrag.to_owned(), pwd.to_owned());
        // Only an offer restarts ICE (RFC 8839 §4.4.1.1.1): new credentials
        // in an answer are recorded, ours stay.
        let restart = in_offer && self.remote_ice.as_ref().is_some_and(|old| *old != new);
        self.remote_ice = Some(new);
        if restart {
            let old = std::mem::replace(&mut self.ice, IceCredentials::random());
            self.retired_ufrag = Some(old.ufrag);
            // The first valid check with the new credentials moves the
            // path: browsers send media on a new pair before nominating it.
            self.path.restart();
        }
        restart
    }

    /// Whether our offer awaits an answer. An offer unanswered for 30 s is
    /// abandoned (our rule), so that a client that failed to apply it can
    /// negotiate again.
    pub fn offer_pending(&self, now: Instant) -> bool {
        self.signalling.offer_pending(now)
    }

    /// The source tracks of its active pulls.
    pub fn active_pulls(&self) -> Vec<TrackKey> {
        self.transceivers
            .iter()
            .filter_map(|t| {
                t.subscription
                    .as_ref()
                    .filter(|s| s.active)
                    .map(|s| s.track)
            })
            .collect()
    }

    /// Whether DTLS completed.
    pub fn is_connected(&self) -> bool {
        self.dtls.keys().is_some()
    }

    /// The transceiver with this mid.
    pub fn transceiver(&self, mid: &Mid) -> Option<&Transceiver> {
        self.transceivers.iter().find(|t| &t.mid == mid)
    }

    /// The transceiver with this mid, mutably.
    pub fn transceiver_mut(&mut self, mid: &Mid) -> Option<&mut Transceiver> {
        self.transceivers.iter_mut().find(|t| &t.mid == mid)
    }

    /// The active pushed track with this name.
    pub fn pushed_track(&self, name: &TrackName) -> Option<&PushedTrack> {
        self.pushed.iter().find(|t| &t.name == name && t.active)
    }

    /// The id of the transport-wide sequence number extension, if an
    /// m-line negotiated it (one id per session: the m-lines are bundled).
    pub fn twcc_extension(&self) -> Option<u8> {
        self.transceivers
            .iter()
            .filter(|t| !t.stopped)
            .flat_map(|t| t.extmaps.iter())
            .find(|e| e.uri == extension::TRANSPORT_CC)
            .map(|e| e.id)
    }

    /// The id of the MID header extension in this session.
    pub fn mid_extension(&self) -> Option<u8> {
        self.extension_id(extension::MID)
    }

    /// The simulcast layers transceiver `t` receives: those of the active
    /// track pushed on it (none when it receives no simulcast track).
    pub fn received_rids(&self, t: &Transceiver) -> &[Rid] {
        self.pushed
            .iter()
            .find(|p| p.active && Some(&p.name) == t.recv.as_ref())
            .map_or(&[], |p| &p.rids)
    }

    /// The id of header extension `uri` in this session's bundle.
    pub fn extension_id(&self, uri: &str) -> Option<u8> {
        self.extmaps.iter().find(|e| e.uri == uri).map(|e| e.id)
    }

    /// The bundle's id for an extension, allocating a free one (1..=14,
    /// one-byte headers) the first time. `None` when all are taken.
    pub fn extmap_id(&mut self, uri: &str) -> Option<u8> {
        if let Some(e) = self.extmaps.iter().find(|e| e.uri == uri) {
            return Some(e.id);
        }
        // Chrome's ids for the ones it knows, so that a browser's later
        // offer agrees with ours; else the first free one.
        let preferred: u8 = match uri {
            extension::MID => 4,
            extension::RTP_STREAM_ID => 10,
            extension::REPAIRED_RTP_STREAM_ID => 11,
            extension::AUDIO_LEVEL => 1,
            extension::VIDEO_ORIENTATION => 13,
            extension::TRANSPORT_CC => 3,
            _ => 0,
        };
        let free = |id: &u8| !self.extmaps.iter().any(|e| e.id == *id);
        let id = std::iter::once(preferred)
            .filter(|p| *p != 0)
            .chain(1..=14)
            .find(free)?;
        self.extmaps.push(Extmap {
            id,
            uri: uri.to_owned(),
        });
        Some(id)
    }

    /// Extmaps for a new m-line of ours: MID, plus the given URIs.
    pub fn extmaps_for(&mut self, uris: &[&str]) -> Vec<Extmap> {
        std::iter::once(extension::MID)
            .chain(uris.iter().copied())
            .filter_map(|uri| {
                Some(Extmap {
                    id: self.extmap_id(uri)?,
                    uri: uri.to_owned(),
                })
            })
            .collect()
    }

    /// The mid of its live `m=application` (data channels), if any.
    pub fn data_channel_mid(&self) -> Option<&Mid> {
        self.transceivers
            .iter()
            .find(|t| t.kind == MediaKind::Application && !t.stopped)
            .map(|t| &t.mid)
    }

    /// A mid not used by any transceiver.
    pub fn next_mid(&self) -> Mid {
        let mut n = self.transceivers.len();
        loop {
            let mid = Mid(n.to_string());
            if self.transceiver(&mid).is_none() {
                return mid;
            }
            n += 1;
        }
    }

    /// A dynamic payload type no m-line of this session uses, nor any of
    /// `also`.
    pub fn free_payload_type(&self, also: &[Codec]) -> Option<u8> {
        let used = |pt: u8| {
            self.transceivers
                .iter()
                .flat_map(|t| t.codecs.iter())
                .chain(self.client_payload_types.iter())
                .chain(also.iter())
                .any(|c| c.pt == pt)
        };
        (96..=127u8).chain(35..=63).find(|pt| !used(*pt))
    }

    /// Maps codecs into this session's payload type space: a format the
    /// session already has keeps its payload type; otherwise the
    /// publisher's number if free, else a free dynamic one. Returns the
    /// mapped codecs and the publisher → session map.
    pub fn map_codecs(&self, codecs: &[Codec]) -> (Vec<Codec>, Vec<(u8, u8)>) {
        let mut used: Vec<(u8, crate::sdp::FormatId)> = self
            .transceivers
            .iter()
            .flat_map(|t| t.codecs.iter())
            .chain(self.client_payload_types.iter())
            .map(|c| (c.pt, c.format_id()))
            .collect();
        let mut out = Vec::new();
        let mut map = Vec::new();
        for c in codecs {
            let id = c.format_id();
            let pt = match used.iter().find(|(_, u)| *u == id) {
                Some((pt, _)) => *pt,
                None if !used.iter().any(|(pt, _)| *pt == c.pt) => c.pt,
                None => match (96..=127u8)
                    .chain(35..=63)
                    .find(|pt| !used.iter().any(|(u, _)| u == pt))
                {
                    Some(pt) => pt,
                    None => continue,
                },
            };
            let mapped = Codec { pt, ..c.clone() };
            used.push((pt, id));
            map.push((c.pt, pt));
            out.push(mapped);
        }
        (out, map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_offer_with_new_credentials_restarts_ice() {
        let mut s = Session::new(SessionKey(1), Instant::now());
        let ours = s.ice.clone();
        assert!(!s.handle_remote_ice("abcd", "p".repeat(22).as_str(), true));
        assert!(!s.handle_remote_ice("abcd", "p".repeat(22).as_str(), true));
        assert_eq!(s.ice, ours, "the same credentials again: no restart");
        // New credentials in an answer: recorded, ours stay.
        assert!(!s.handle_remote_ice("efgh", "q".repeat(22).as_str(), false));
        assert_eq!(s.ice, ours);
        assert!(s.retired_ufrag.is_none());
        // In an offer: a restart, with new credentials of ours.
        assert!(s.handle_remote_ice("ijkl", "r".repeat(22).as_str(), true));
        assert_ne!(s.ice.ufrag, ours.ufrag);
        assert_ne!(s.ice.pwd, ours.pwd);
        assert_eq!(s.retired_ufrag.as_deref(), Some(ours.ufrag.as_str()));
        assert!(s.path.is_restarting());
    }

    /// A client that pulls and closes on one m-line again and again: GET
    /// keeps listing the latest closed pulls, and the session holds no
    /// more than [`MAX_CLOSED_PULLS`] of them.
    #[test]
    fn closed_pulls_are_bounded() {
        use super::super::transceiver::{PushedTrack, Subscription, Transceiver};
        let mut s = Session::new(SessionKey(1), Instant::now());
        let mid = Mid("0".into());
        s.transceivers
            .push(Transceiver::new(mid.clone(), MediaKind::Video));
        let track = |i: usize| PushedTrack {
            name: TrackName(format!("t{i}")),
            mid: Mid("1".into()),
            kind: MediaKind::Video,
            fanout: std::sync::Arc::new(crate::fanout::TrackFanout::new(TrackKey(i as u64))),
            codecs: Vec::new(),
            ssrcs: Vec::new(),
            extmaps: Vec::new(),
            rids: Vec::new(),
            active: true,
            idle: false,
        };
        for i in 0..MAX_CLOSED_PULLS + 10 {
            let t = s.transceiver_mut(&mid).expect("the m-line");
            t.subscription = Some(Subscription::new("publisher", &track(i), Vec::new()));
            assert!(s.close_transceiver(&mid));
        }
        assert_eq!(s.closed_pulls.len(), MAX_CLOSED_PULLS);
        let last = s.closed_pulls.back().expect("the latest");
        assert_eq!(
            last.track_name,
            TrackName(format!("t{}", MAX_CLOSED_PULLS + 9))
        );
        assert_eq!(
            s.closed_pulls.front().map(|c| c.track_name.0.as_str()),
            Some("t10")
        );
    }
}
