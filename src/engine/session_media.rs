//! What the control thread tells a worker about a session's media: the
//! routes of its pushed tracks and the outlets of its pulled tracks.

use std::sync::Arc;

use crate::codec::Codec;
use crate::fanout::TrackFanout;
use crate::ids::{Mid, Rid, TrackKey};
use crate::simulcast::Preferences;

/// A session's negotiated media, as its worker needs it. Immutable; the
/// control thread sends a new one when negotiation changes it.
#[derive(Debug, Clone, Default)]
pub struct SessionMedia {
    /// The id of the MID header extension in this session, if negotiated.
    pub mid_extension: Option<u8>,
    /// The id of the transport-wide sequence number extension on what it
    /// pushes, if negotiated: arrivals are reported back (transport-cc).
    pub twcc_extension: Option<u8>,
    /// The ids of the `rtp-stream-id` and `repaired-rtp-stream-id` header
    /// extensions (RFC 8852), if negotiated: simulcast layers by rid.
    pub rid_extensions: (Option<u8>, Option<u8>),
    /// The SSRC our RTCP (RR, PLI) is sent from.
    pub rtcp_ssrc: u32,
    /// Tracks this session pushes.
    pub inbound: Vec<InboundRoute>,
    /// Tracks this session pulls.
    pub outlets: Vec<Outlet>,
}

impl PartialEq for SessionMedia {
    fn eq(&self, other: &Self) -> bool {
        self.mid_extension == other.mid_extension
            && self.twcc_extension == other.twcc_extension
            && self.rid_extensions == other.rid_extensions
            && self.rtcp_ssrc == other.rtcp_ssrc
            && self.inbound == other.inbound
            && self.outlets == other.outlets
    }
}

/// A pushed track: packets on these SSRCs, or tagged with this mid, go to
/// this track's fan-out.
#[derive(Debug, Clone)]
pub struct InboundRoute {
    /// The transceiver's mid in the publisher's session.
    pub mid: Mid,
    /// SSRCs signalled in the SDP (may be empty: learned from the MID extension).
    pub ssrcs: Vec<u32>,
    /// Payload types the publisher may send on it.
    pub payload_types: Vec<u8>,
    /// The RTP clock rate, for jitter.
    pub clock_rate: u32,
    /// Where its packets go.
    pub fanout: Arc<TrackFanout>,
    /// Generic NACK negotiated: its losses are NACKed to the publisher.
    pub nack: bool,
    /// Its RTX payload types and the ones they repair (RFC 4588 `apt`).
    pub rtx: Vec<(u8, u8)>,
    /// Its simulcast layers, by rid (empty: not simulcast).
    pub rids: Vec<Rid>,
    /// Payload type → format, for the keyframe starts of simulcast
    /// tracks (empty when not simulcast).
    pub formats: Vec<(u8, Codec)>,
}

impl PartialEq for InboundRoute {
    fn eq(&self, other: &Self) -> bool {
        self.mid == other.mid
            && self.ssrcs == other.ssrcs
            && self.payload_types == other.payload_types
            && self.clock_rate == other.clock_rate
            && self.nack == other.nack
            && self.rtx == other.rtx
            && self.rids == other.rids
            && self.formats == other.formats
            && Arc::ptr_eq(&self.fanout, &other.fanout)
    }
}

/// A pulled track: packets of `track` leave to this session as `ssrc`, with
/// payload types mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlet {
    /// The source track.
    pub track: TrackKey,
    /// It carries video (paused when the subscriber's estimate cannot
    /// carry it).
    pub video: bool,
    /// Our SSRC towards the subscriber.
    pub ssrc: u32,
    /// Publisher payload type → subscriber payload type.
    pub payload_types: Vec<(u8, u8)>,
    /// Header extension ids, publisher → subscriber; any other extension
    /// is blanked. Indexed by the publisher's one-byte id (0..=15); 0 = drop.
    pub extensions: [u8; 16],
    /// The subscriber negotiated generic NACK: its NACKs are answered.
    pub nack: bool,
    /// Where resends go when RTX (RFC 4588) is negotiated; else they are
    /// sent again in the original stream.
    pub rtx: Option<RtxStream>,
    /// The source is simulcast: one layer of it is sent, as chosen here.
    pub simulcast: Option<SimulcastPull>,
}

/// A pull of a simulcast track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimulcastPull {
    /// The track's layers, by rid.
    pub rids: Vec<Rid>,
    /// What the subscriber asked for.
    pub preferences: Preferences,
}

/// Our retransmission stream towards a subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtxStream {
    /// Its SSRC (`a=ssrc-group:FID` with the outlet's).
    pub ssrc: u32,
    /// Subscriber payload type → its RTX payload type.
    pub payload_types: Vec<(u8, u8)>,
}

impl Outlet {
    /// The subscriber's payload type for a publisher's one.
    pub fn map_payload_type(&self, pt: u8) -> Option<u8> {
        self.payload_types
            .iter()
            .find(|(from, _)| *from == pt)
            .map(|(_, to)| *to)
    }
}
