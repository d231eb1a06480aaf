//! Session descriptions (RFC 8866, JSEP RFC 8829) as switchboard reads and
//! writes them: [`parse`] turns a client's offer or answer into a
//! [`SessionDescription`] without losing what it does not interpret;
//! [`write`] turns a session's transceivers into an answer or offer.
//!
//! Where it sits: on the control thread, in negotiation; nothing here is on
//! the packet path.

pub mod bounds;
mod parse;
mod write;

pub use parse::{SdpError, parse};
pub use write::{MediaOut, SdpWriter, SendStream, Transport};

use crate::ids::Mid;

/// What an m-line carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// `m=application` (data channels).
    Application,
}

impl MediaKind {
    /// The m-line's media word.
    pub fn as_str(&self) -> &'static str {
        match self {
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Application => "application",
        }
    }

    /// From the API's `kind` or an m-line's media word.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "audio" => Some(MediaKind::Audio),
            "video" => Some(MediaKind::Video),
            "application" => Some(MediaKind::Application),
            _ => None,
        }
    }
}

/// An m-line's direction attribute, from the writer's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv` (also the default when none is given).
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// From whether the writer sends and receives.
    pub fn new(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the writer of the SDP sends on this m-line.
    pub fn sends(&self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer of the SDP receives on this m-line.
    pub fn receives(&self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The attribute name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// One payload format of an m-line: `a=rtpmap`, `a=fmtp`, `a=rtcp-fb`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Codec {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written (`opus`, `VP8`, `H264`, `rtx`).
    pub name: String,
    /// Clock rate in Hz.
    pub clock_rate: u32,
    /// Audio channels, when given.
    pub channels: Option<u8>,
    /// The fmtp parameters, verbatim.
    pub fmtp: Option<String>,
    /// rtcp-fb values (`nack pli`, `ccm fir`, `transport-cc`).
    pub rtcp_fb: Vec<String>,
}

impl Codec {
    /// Whether two codecs are the same format (name, clock, channels and
    /// the fmtp parameters that change the bitstream).
    pub fn same_format(&self, other: &Codec) -> bool {
        self.format_id() == other.format_id()
    }

    /// What identifies this codec's format: compare these (or keep them in
    /// a set) to compare many codecs in time linear in their number.
    pub fn format_id(&self) -> FormatId {
        const IDENTIFYING: &[&str] = &[
            "packetization-mode",
            "profile-level-id",
            "profile-id",
            "profile",
            "tier-flag",
            "profile-space",
        ];
        let name = self.name.to_ascii_lowercase();
        let mut parameters: Vec<(String, String)> = self
            .fmtp
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .filter(|(k, _)| IDENTIFYING.iter().any(|i| k.trim().eq_ignore_ascii_case(i)))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
            .map(|(k, v)| {
                // profile-level-id: only the profile (first 4 hex digits) must agree.
                match v.get(..4) {
                    Some(profile) if k == "profile-level-id" && v.len() == 6 => {
                        (k, profile.to_owned())
                    }
                    _ => (k, v),
                }
            })
            .collect();
        // Defaults of absent parameters (RFC 6184, VP9 and AV1 RTP payload specs).
        let defaults: &[(&str, &str)] = match name.as_str() {
            "h264" => &[("packetization-mode", "0"), ("profile-level-id", "4200")],
            "vp9" => &[("profile-id", "0")],
            "av1" => &[("profile", "0")],
            _ => &[],
        };
        for (k, v) in defaults {
            if !parameters.iter().any(|(key, _)| key == k) {
                parameters.push(((*k).into(), (*v).into()));
            }
        }
        parameters.sort();
        FormatId {
            name,
            clock_rate: self.clock_rate,
            channels: self.channels.unwrap_or(1),
            parameters,
        }
    }

    /// Audio or video, from the encoding name (audio: Opus, PCMU, PCMA, G722,
    /// telephone-event and others with a channel count; video otherwise).
    pub fn kind(&self) -> MediaKind {
        const AUDIO: &[&str] = &[
            "opus",
            "pcmu",
            "pcma",
            "g722",
            "telephone-event",
            "cn",
            "red",
        ];
        if AUDIO.contains(&self.name.to_ascii_lowercase().as_str()) || self.channels.is_some() {
            MediaKind::Audio
        } else {
            MediaKind::Video
        }
    }

    /// The payload type this retransmission format (RFC 4588 `rtx`) repairs.
    pub fn rtx_of(&self) -> Option<u8> {
        if !self.name.eq_ignore_ascii_case("rtx") {
            return None;
        }
        self.fmtp
            .as_deref()?
            .split(';')
            .find_map(|p| p.trim().strip_prefix("apt="))?
            .parse()
            .ok()
    }

    /// A retransmission format on `pt` for payload type `apt`.
    pub fn rtx(pt: u8, apt: u8, clock_rate: u32) -> Codec {
        Codec {
            pt,
            name: "rtx".into(),
            clock_rate,
            channels: None,
            fmtp: Some(format!("apt={apt}")),
            rtcp_fb: Vec::new(),
        }
    }

    /// Whether switchboard forwards this format: Opus, PCMU, PCMA for audio;
    /// VP8, VP9, H.264, H.265, AV1 for video. (RTX is negotiated towards
    /// subscribers, not forwarded; RED and FEC are not negotiated yet.)
    pub fn is_forwardable(&self) -> bool {
        const NAMES: &[&str] = &["opus", "pcmu", "pcma", "vp8", "vp9", "h264", "h265", "av1"];
        NAMES.contains(&self.name.to_ascii_lowercase().as_str())
    }
}

/// The identity of a payload format ([`Codec::format_id`]): encoding name
/// (lowercase), clock rate, channels, and the fmtp parameters that change
/// the bitstream, with their defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FormatId {
    name: String,
    clock_rate: u32,
    channels: u8,
    parameters: Vec<(String, String)>,
}

/// `a=extmap`: a header extension and its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extmap {
    /// Local id (1..=14 for one-byte headers).
    pub id: u8,
    /// The extension's URI.
    pub uri: String,
}

/// Header extension URIs switchboard negotiates.
pub mod extension {
    /// RFC 8843 MID.
    pub const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
    /// RFC 8852 RtpStreamId.
    pub const RTP_STREAM_ID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
    /// RFC 8852 RepairedRtpStreamId.
    pub const REPAIRED_RTP_STREAM_ID: &str =
        "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";
    /// RFC 6464 client-to-mixer audio level.
    pub const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    /// 3GPP coordination of video orientation.
    pub const VIDEO_ORIENTATION: &str = "urn:3gpp:video-orientation";
    /// Absolute capture time.
    pub const ABS_CAPTURE_TIME: &str =
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-capture-time";
    /// The load generator's send time and sequence (12 bytes).
    pub const SEND_TIME: &str = "urn:switchboard:params:rtp-hdrext:send-time";
    /// Transport-wide sequence number (draft-holmer-rmcat-transport-wide-cc-extensions-01).
    pub const TRANSPORT_CC: &str =
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

    /// Read by switchboard to demultiplex; never forwarded (each session
    /// has its own mids).
    pub const READ: &[&str] = &[MID, RTP_STREAM_ID, REPAIRED_RTP_STREAM_ID];
    /// End to end: forwarded from publisher to subscribers, ids remapped.
    pub const FORWARDED: &[&str] = &[AUDIO_LEVEL, VIDEO_ORIENTATION, ABS_CAPTURE_TIME, SEND_TIME];
    /// Hop by hop, never forwarded: negotiated on every m-line. Publishers
    /// get our feedback on their numbers; on what we send, the numbers
    /// are ours and subscribers' feedback drives their bandwidth estimate.
    /// (abs-send-time is not negotiated: transport-cc replaces it.)
    pub const FEEDBACK: &[&str] = &[TRANSPORT_CC];

    /// Whether switchboard negotiates this extension (on some m-lines).
    pub fn is_accepted(uri: &str) -> bool {
        READ.contains(&uri) || FORWARDED.contains(&uri) || FEEDBACK.contains(&uri)
    }

    /// Whether it is forwarded end to end.
    pub fn is_forwarded(uri: &str) -> bool {
        FORWARDED.contains(&uri)
    }
}

/// One m-line of a parsed description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSection {
    /// What it carries.
    pub kind: MediaKind,
    /// The port; 0 means rejected or stopped.
    pub port: u16,
    /// The transport protocol (`UDP/TLS/RTP/SAVPF`, `UDP/DTLS/SCTP`).
    pub proto: String,
    /// The formats of the m-line, verbatim.
    pub formats: Vec<String>,
    /// `a=mid`.
    pub mid: Option<Mid>,
    /// The direction, from the writer's point of view.
    pub direction: Direction,
    /// Payload formats in m-line order.
    pub codecs: Vec<Codec>,
    /// Header extensions.
    pub extmaps: Vec<Extmap>,
    /// SSRCs from `a=ssrc`, in order of first appearance.
    pub ssrcs: Vec<u32>,
    /// `a=msid` (stream id and track id), if any.
    pub msid: Option<String>,
    /// `a=rid` ids with direction `send`.
    pub rids: Vec<String>,
    /// The rids of `a=simulcast:send` (RFC 8853), in its order: the first
    /// alternative of each stream, paused ones (`~`) included.
    pub simulcast_send: Vec<String>,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
    /// `a=rtcp-rsize` present.
    pub rtcp_rsize: bool,
    /// Media-level `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// Media-level `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// Media-level `a=fingerprint` values, in order.
    pub fingerprints: Vec<String>,
    /// Media-level `a=setup`.
    pub setup: Option<String>,
    /// `a=bundle-only` on an m-line of the description's BUNDLE group
    /// (RFC 8843 §6): port 0 then means "bundled", not "rejected". Cleared
    /// by the parser when the mid is not in the group.
    pub bundle_only: bool,
    /// `a=max-message-size` of an `m=application` (RFC 8841 §6).
    pub max_message_size: Option<usize>,
}

impl MediaSection {
    /// The simulcast layers a sender announces: the rids of
    /// `a=simulcast:send` that also have an `a=rid … send` line (RFC 8853
    /// §5.1), at most [`crate::simulcast::MAX_LAYERS`]; empty when it does
    /// not send simulcast (a single rid is no simulcast either).
    pub fn simulcast_rids(&self) -> Vec<crate::ids::Rid> {
        let rids: Vec<crate::ids::Rid> = self
            .simulcast_send
            .iter()
            .filter(|r| self.rids.contains(r))
            .take(crate::simulcast::MAX_LAYERS)
            .map(|r| crate::ids::Rid(r.clone()))
            .collect();
        if rids.len() < 2 { Vec::new() } else { rids }
    }

    /// Whether the m-line is live: a port other than zero, or port zero
    /// with `a=bundle-only` inside the BUNDLE group (what Firefox offers
    /// for every m-line but the first with `bundlePolicy: "max-bundle"`).
    pub fn is_active(&self) -> bool {
        self.port != 0 || self.bundle_only
    }

    /// Whether it is an `m=application` for data channels that we take:
    /// SCTP over DTLS (RFC 8841), live.
    pub fn is_data_channel(&self) -> bool {
        self.kind == MediaKind::Application
            && self.is_active()
            && self.proto.ends_with("DTLS/SCTP")
            && self.formats.iter().any(|f| f == "webrtc-datachannel")
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SessionDescription {
    /// Session-level `a=ice-ufrag`.
    pub ice_ufrag: Option<String>,
    /// Session-level `a=ice-pwd`.
    pub ice_pwd: Option<String>,
    /// Session-level `a=fingerprint` values, in order.
    pub fingerprints: Vec<String>,
    /// Session-level `a=setup`.
    pub setup: Option<String>,
    /// `a=extmap-allow-mixed` present.
    pub extmap_allow_mixed: bool,
    /// The mids of the first `a=group:BUNDLE` line, in order (the first is
    /// the offerer's tagged m-line); `None` without a BUNDLE group.
    pub bundle: Option<Vec<Mid>>,
    /// The m-lines in order.
    pub media: Vec<MediaSection>,
    /// The UDP candidates of component 1 (`a=candidate`, any level), in
    /// order, at most [`MAX_CANDIDATES`]: where a full ICE agent of ours
    /// sends its checks (third-party sessions).
    pub candidates: Vec<std::net::SocketAddr>,
}

/// The candidates of a description that are kept.
pub const MAX_CANDIDATES: usize = 8;

/// The address of an `a=candidate` value when it is UDP, component 1 (RFC
/// 8839 §5.1: foundation, component, transport, priority, address, port,
/// `typ`, type, …) and names a peer; `None` for other components, TCP,
/// mDNS names, port 0, unspecified or multicast addresses, or malformed
/// values.
pub fn udp_candidate(value: &str) -> Option<std::net::SocketAddr> {
    let mut f = value.split_ascii_whitespace();
    let (_foundation, component, transport) = (f.next()?, f.next()?, f.next()?);
    let (_priority, address, port) = (f.next()?, f.next()?, f.next()?);
    if component != "1" || !transport.eq_ignore_ascii_case("udp") {
        return None;
    }
    let ip: std::net::IpAddr = address.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    (port != 0 && !ip.is_unspecified() && !ip.is_multicast())
        .then_some(std::net::SocketAddr::new(ip, port))
}

impl SessionDescription {
    /// The ICE credentials of the bundle: session level, else those of the
    /// first live m-line (the bundle's), else of any m-line.
    pub fn ice_credentials(&self) -> Option<(&str, &str)> {
        fn of(m: &MediaSection) -> Option<(&str, &str)> {
            Some((m.ice_ufrag.as_deref()?, m.ice_pwd.as_deref()?))
        }
        let media = || {
            let live = self.media.iter().filter(|m| m.is_active()).find_map(of);
            live.or_else(|| self.media.iter().find_map(of))
        };
        match (self.ice_ufrag.as_deref(), self.ice_pwd.as_deref()) {
            (Some(ufrag), Some(pwd)) => Some((ufrag, pwd)),
            _ => media(),
        }
    }

    /// Every certificate fingerprint listed, session level first, then each
    /// m-line's (one transport, the bundle's: any of them may match).
    pub fn fingerprints(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let all = self
            .fingerprints
            .iter()
            .chain(self.media.iter().flat_map(|m| m.fingerprints.iter()));
        for f in all {
            if !out.contains(&f.as_str()) {
                out.push(f);
            }
        }
        out
    }

    /// Whether `mid` is in the BUNDLE group.
    pub fn in_bundle(&self, mid: &Mid) -> bool {
        self.bundle.as_ref().is_some_and(|g| g.contains(mid))
    }

    /// The m-line with this mid.
    pub fn section(&self, mid: &Mid) -> Option<&MediaSection> {
        self.media.iter().find(|m| m.mid.as_ref() == Some(mid))
    }
}
