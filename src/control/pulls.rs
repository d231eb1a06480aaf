//! A pull item (`location: remote`) before it lands on an m-line: its
//! source track found in the registry, the formats it can send on an
//! offered m-line, and the item errors when there is no such track or no
//! common format.

use crate::calls::types::TrackObject;
use crate::ids::{AppId, TrackName};
use crate::sdp::{self, Codec, MediaKind};

use super::codecs::supported_feedback;
use super::registry::Registry;
use super::session::Session;
use super::transceiver::PushedTrack;

/// A pull item's source track and session id, with the item's index; items
/// whose track is unknown are failed.
pub(super) type Pull = (usize, PushedTrack, String);

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

/// Resolves the pull items (`location: remote`) of a request.
pub(super) fn resolve_pulls(reg: &Registry, app: &AppId, items: &mut [TrackObject]) -> Vec<Pull> {
    let mut pulls = Vec::new();
    for (i, item) in items.iter_mut().enumerate() {
        if item.location.as_deref() != Some("remote") {
            continue;
        }
        match resolve_pull(reg, app, item) {
            Some((track, sid)) => pulls.push((i, track, sid)),
            None => not_found(item),
        }
    }
    pulls
}

/// The forwardable formats an m-line offers.
pub(super) fn forwardable(m: &sdp::MediaSection) -> Vec<Codec> {
    m.codecs
        .iter()
        .filter(|c| c.is_forwardable())
        .cloned()
        .collect()
}

/// What a pull sends on the m-line the client offered for it.
#[derive(Debug, PartialEq)]
pub(super) struct PullFormats {
    /// The formats answered, in the client's payload types: each of the
    /// track's formats the client offers (with the feedback we support),
    /// followed by its RTX format where the client offers one.
    pub codecs: Vec<Codec>,
    /// The track's payload type → the client's, per common format.
    pub payload_types: Vec<(u8, u8)>,
}

impl PullFormats {
    /// The formats `track` sends that the offered m-line `m` receives; None
    /// when there is none.
    pub(super) fn match_offer(track: &PushedTrack, m: &sdp::MediaSection) -> Option<Self> {
        let offered = forwardable(m);
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
        (!payload_types.is_empty()).then_some(PullFormats {
            codecs,
            payload_types,
        })
    }
}
