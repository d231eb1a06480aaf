//! Sessions the server runs itself (a WebSocket adapter's WebRTC client,
//! `crate::adapters`): whether what such a session pulls still exists (an
//! adapter whose publisher left closes), and ending one on the server's
//! own initiative. The Calls API has no call that removes a session (a
//! client's ends when its transport goes), but an adapter's ends when the
//! adapter closes: its tracks go at once, and their subscribers see them
//! end.

use crate::ids::AppId;

use super::Control;

impl Control {
    /// Removes session `session_id` of `app`; whether it existed.
    pub fn end_session(&self, app: &AppId, session_id: &str) -> bool {
        let mut st = self.lock();
        let Some(key) = st.reg.session_key(app, session_id) else {
            return false;
        };
        self.remove_session(&mut st, key);
        true
    }

    /// Whether session `session_id` of `app` exists and, if it pulls
    /// tracks, at least one of them is still pushed (active, or idle for
    /// lack of media: not closed, its publisher's transport not failed).
    pub fn pulls_have_a_source(&self, app: &AppId, session_id: &str) -> bool {
        let st = self.lock();
        let Some(session) = st
            .reg
            .session_key(app, session_id)
            .and_then(|k| st.reg.session(k))
        else {
            return false;
        };
        let mut pulls = session
            .transceivers
            .iter()
            .filter_map(|t| t.subscription.as_ref())
            .peekable();
        pulls.peek().is_none()
            || pulls.any(|s| {
                st.reg
                    .track_owner(s.track)
                    .is_some_and(|(_, p)| p.active || p.idle)
            })
    }
}
