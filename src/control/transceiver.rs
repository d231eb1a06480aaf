//! A session's transceivers (m-lines) as the control plane keeps them:
//! where its media flows ([`TransportBinding`]), what an m-line pushes
//! ([`PushedTrack`]) or pulls ([`Subscription`], with the payload types it
//! maps), and the [`Transceiver`] that holds them.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::calls::types::TrackObject;
use crate::fanout::TrackFanout;
use crate::ids::{Mid, Rid, SessionId, TrackKey, TrackName, WorkerId};
use crate::sdp::{Codec, Direction, Extmap, MediaKind, SendStream};

/// Where a session's media flows: the worker and client address chosen by ICE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportBinding {
    /// The worker that owns the 5-tuple.
    pub worker: WorkerId,
    /// The client's address.
    pub addr: SocketAddr,
    /// Whether the client nominated it (USE-CANDIDATE).
    pub nominated: bool,
}

/// A track this session pushes.
#[derive(Debug, Clone)]
pub struct PushedTrack {
    /// Its name, unique in the session.
    pub name: TrackName,
    /// Its transceiver.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Its fan-out, shared with the publisher's worker (and its key).
    pub fanout: Arc<TrackFanout>,
    /// Codecs in the publisher's payload type space.
    pub codecs: Vec<Codec>,
    /// SSRCs signalled for it.
    pub ssrcs: Vec<u32>,
    /// Forwarded header extensions, with the publisher's ids.
    pub extmaps: Vec<Extmap>,
    /// Its simulcast layers (rids in `a=simulcast:send` order); empty
    /// when it is not simulcast.
    pub rids: Vec<Rid>,
    /// False once closed, or while idle.
    pub active: bool,
    /// Inactive only for lack of media: active again when media resumes.
    pub idle: bool,
}

/// A track this session pulls into one of its transceivers.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// The publisher's session.
    pub session_id: SessionId,
    /// The publisher's track name.
    pub track_name: TrackName,
    /// The source track, once resolved.
    pub track: TrackKey,
    /// Publisher payload type → ours.
    pub payload_types: Vec<(u8, u8)>,
    /// The `simulcast` preferences given, if any (echoed; a simulcast
    /// track pulled without them gets [`Preferences::automatic`]).
    pub simulcast: Option<serde_json::Value>,
    /// False once closed.
    pub active: bool,
}

impl PushedTrack {
    /// Its process-wide key.
    pub fn key(&self) -> TrackKey {
        self.fanout.key
    }

    /// The codec the publisher sends: the first of the negotiated list
    /// (answers keep the offer's order, and a client sends its first
    /// negotiated format). A pulled m-line offers exactly this.
    pub fn sent_codecs(&self) -> &[Codec] {
        &self.codecs[..self.codecs.len().min(1)]
    }
}

impl Subscription {
    /// The subscription a pull item asks for: `track` of the item's
    /// session, with its `simulcast` preferences (kept as given, echoed).
    pub fn of_item(item: &TrackObject, track: &PushedTrack, payload_types: Vec<(u8, u8)>) -> Self {
        Subscription {
            simulcast: item.simulcast.clone(),
            // The name the pull gave: a relayed track's own is its
            // mirror's (`control::mirrors`).
            track_name: item
                .track_name
                .clone()
                .map_or_else(|| track.name.clone(), TrackName),
            ..Subscription::new(
                item.session_id.as_deref().unwrap_or_default(),
                track,
                payload_types,
            )
        }
    }

    /// An active subscription to `track` of session `publisher`.
    pub fn new(publisher: &str, track: &PushedTrack, payload_types: Vec<(u8, u8)>) -> Self {
        Subscription {
            session_id: SessionId(publisher.to_owned()),
            track_name: track.name.clone(),
            track: track.key(),
            payload_types,
            simulcast: None,
            active: true,
        }
    }
}

/// Maps a track's payload types onto the codecs a transceiver negotiated
/// (same format); empty when none matches.
pub fn map_payload_types(track: &[Codec], negotiated: &[Codec]) -> Vec<(u8, u8)> {
    track
        .iter()
        .filter_map(|pc| {
            negotiated
                .iter()
                .find(|c| c.same_format(pc))
                .map(|c| (pc.pt, c.pt))
        })
        .collect()
}

/// One m-line of the session.
#[derive(Debug, Clone)]
pub struct Transceiver {
    /// Its mid.
    pub mid: Mid,
    /// What it carries.
    pub kind: MediaKind,
    /// Negotiated codecs, in this session's payload type space.
    pub codecs: Vec<Codec>,
    /// `a=rtcp-rsize` negotiated.
    pub rtcp_rsize: bool,
    /// Header extensions negotiated on this m-line (ids of the bundle).
    pub extmaps: Vec<Extmap>,
    /// The pushed track received on it.
    pub recv: Option<TrackName>,
    /// What we send on it (SSRC and msid), allocated when it first sends.
    pub send: Option<SendStream>,
    /// The pulled track sent on it.
    pub subscription: Option<Subscription>,
    /// Rejected or stopped in the SDP (port 0): it may be recycled under a
    /// new mid. A transceiver whose track the API closed while the client
    /// keeps its m-line is not stopped: it carries nothing and is written
    /// `a=inactive` inside the BUNDLE group.
    pub stopped: bool,
    /// It carried a pull that the API closed while the m-line stayed (the
    /// client receives on it): a later pull may reuse it under its mid.
    pub pulled_before: bool,
}

impl Transceiver {
    /// A new, empty transceiver.
    pub fn new(mid: Mid, kind: MediaKind) -> Self {
        Transceiver {
            mid,
            kind,
            codecs: Vec::new(),
            rtcp_rsize: true,
            extmaps: Vec::new(),
            recv: None,
            send: None,
            subscription: None,
            stopped: false,
            pulled_before: false,
        }
    }

    /// Our direction on it: we send where we declared a stream, we
    /// receive where the client pushes a track.
    pub fn direction(&self) -> Direction {
        Direction::new(self.send.is_some(), self.recv.is_some())
    }

    /// Whether an offer of ours may put a new track on it (stopped or idle
    /// transceivers of the same kind are recycled).
    pub fn is_reusable_for(&self, kind: MediaKind) -> bool {
        self.kind == kind && self.recv.is_none() && self.subscription.is_none()
    }
}
