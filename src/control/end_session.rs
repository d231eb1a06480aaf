//! Ends a session on the server's own initiative: the Calls API has no
//! call that removes a session (a client's ends when its transport goes),
//! but a session the server runs itself (a WebSocket adapter's WebRTC
//! client, `crate::adapters`) ends when its adapter closes: its tracks go
//! at once, and their subscribers see them end.

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
}
