//! What a recording needs of a pushed track (`crate::recording`): its
//! fan-out, to put a tap on, its kind and its formats in the publisher's
//! payload types.

use std::sync::Arc;

use super::Control;
use crate::fanout::TrackFanout;
use crate::ids::{AppId, TrackName};
use crate::sdp::MediaKind;

/// A pushed track, as a recording takes it.
pub struct RecordableTrack {
    /// Its fan-out (the same across the publisher's renegotiations).
    pub fanout: Arc<TrackFanout>,
    /// Video (else audio).
    pub video: bool,
    /// Its formats: payload type and encoding name.
    pub codecs: Vec<(u8, String)>,
    /// Its simulcast rids, in layer order (empty: not simulcast).
    pub rids: Vec<String>,
}

impl Control {
    /// The track `name` that session `session_id` of `app` pushes, if it
    /// does and has not closed it (data channels are not recordable).
    pub fn recordable_track(
        &self,
        app: &AppId,
        session_id: &str,
        name: &str,
    ) -> Option<RecordableTrack> {
        let st = self.lock();
        let track = st
            .reg
            .find_track(app, session_id, &TrackName(name.to_string()))
            .filter(|t| !t.fanout.is_closed())?;
        Some(RecordableTrack {
            fanout: track.fanout.clone(),
            video: track.kind == MediaKind::Video,
            codecs: track
                .codecs
                .iter()
                .map(|c| (c.pt, c.name.clone()))
                .collect(),
            rids: track.rids.iter().map(|r| r.as_str().to_string()).collect(),
        })
    }
}
