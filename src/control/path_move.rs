//! A connected session's media moves only where the client answers: the
//! control thread's side of [`super::path_probe`]. A move its checks or
//! media decided (`transport::handle_bound`, `handle_off_path`) is made at
//! once where nothing can be forged, and otherwise waits for the new
//! address to answer a Binding request this sends.

use std::time::Instant;

use crate::engine::messages::WorkerCommand;
use crate::ids::SessionKey;

use super::session::TransportBinding;
use super::transport::Keys;
use super::{Control, State};

impl Control {
    /// Moves a session's media to `new` as its checks or media decided: at
    /// once while it is not connected (the DTLS handshake proves the
    /// address), on a new worker at the same address, and for third-party
    /// sessions (their checks are ours); otherwise once the new address
    /// answers a check of ours (`path_probe`).
    pub(super) fn move_path(
        &self,
        st: &mut State,
        key: SessionKey,
        new: TransportBinding,
        now: Instant,
    ) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        // After consent was lost (no path), the way back is probed too.
        let elsewhere = session.transport.is_none_or(|t| t.addr != new.addr);
        let probed = elsewhere && session.is_connected() && session.peer_checks.is_none();
        let credentials = session.remote_ice.clone();
        let (Some((remote_ufrag, remote_pwd)), true) = (credentials, probed) else {
            self.switch_path(st, key, new, Keys::Same, now);
            return;
        };
        let Some(txid) = session
            .path
            .probe
            .begin(new, now, crate::ids::random_bytes::<12>())
        else {
            return;
        };
        let username = format!("{remote_ufrag}:{}", session.ice.ufrag);
        let mut bytes = Vec::with_capacity(128);
        crate::ice::write_controlled_check(&mut bytes, &txid, &username, &remote_pwd);
        self.directory.sent_check(txid, key, &remote_pwd, now);
        if let Some(w) = self.workers.get(new.worker.0) {
            w.send(WorkerCommand::Send {
                to: new.addr,
                bytes: bytes::BytesMut::from(&bytes[..]),
            });
        }
    }
}
