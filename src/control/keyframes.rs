//! Keyframe requests on the control thread: at most one upstream per track
//! per [`KEYFRAME_INTERVAL`], and the requests a session's path change or
//! an idle track's return calls for.

use std::time::{Duration, Instant};

use crate::ids::{SessionKey, TrackKey};

use super::{Control, State};

/// At most one keyframe request upstream per track per this long.
pub(super) const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

impl Control {
    /// A track marked inactive for lack of media whose media came back is
    /// active again (a track the API closed stays closed).
    pub(super) fn reactivate_if_idle(&self, st: &mut State, track: TrackKey) {
        if !st.idle_tracks.remove(&track) {
            return;
        }
        let Some(session) = st.reg.track_owner_mut(track) else {
            return;
        };
        let key = session.key;
        for p in session
            .pushed
            .iter_mut()
            .filter(|p| p.key() == track && p.idle)
        {
            tracing::info!(session = %session.id, track = %p.name, "media resumed: track active again");
            p.idle = false;
            p.active = true;
        }
        self.sync(st, &[key]);
    }

    /// Keyframes for what a session pulls and for what it pushes (its
    /// subscribers), after its transport lost packets (a path or key change).
    pub(super) fn request_keyframes_around(&self, st: &mut State, key: SessionKey, now: Instant) {
        let Some(session) = st.reg.session(key).filter(|s| s.is_connected()) else {
            return;
        };
        let pushed: Vec<TrackKey> = session
            .pushed
            .iter()
            .filter(|p| p.active)
            .map(|p| p.key())
            .collect();
        for track in session.active_pulls().into_iter().chain(pushed) {
            self.request_keyframe(st, track, now);
        }
    }
}
