//! The control thread's side of [`super::consent`]: the liveness scan sends
//! each connected session's consent checks (Binding requests as the
//! controlled agent, with the client's credentials) through the worker
//! that holds its path, and records their ids in the ICE directory so that
//! the worker reports the responses (`engine::handle_stun_response`).
//! Third-party sessions are checked by their own schedule
//! (`third_party::send_peer_checks`).

use std::time::Instant;

use bytes::BytesMut;

use crate::engine::messages::WorkerCommand;

use super::{Control, State};

impl Control {
    /// Sends the consent checks that are due.
    pub(super) fn send_consent_checks(&self, st: &mut State, now: Instant) {
        let State {
            reg,
            consent: counters,
            ..
        } = st;
        for (key, (_, s)) in reg.sessions.iter_mut() {
            let (Some(t), Some(consent), Some((remote_ufrag, remote_pwd)), None) = (
                s.transport,
                s.consent.as_mut(),
                &s.remote_ice,
                &s.peer_checks,
            ) else {
                continue;
            };
            if !consent.is_due(now) {
                continue;
            }
            let jitter = u16::from_be_bytes(crate::ids::random_bytes::<2>());
            let Some(txid) = consent.due(now, t.addr, crate::ids::random_bytes::<12>(), jitter)
            else {
                continue;
            };
            counters.checks += 1;
            let username = format!("{remote_ufrag}:{}", s.ice.ufrag);
            let mut bytes = Vec::with_capacity(128);
            crate::ice::write_controlled_check(&mut bytes, &txid, &username, remote_pwd);
            self.directory.sent_check(txid, *key, remote_pwd, now);
            if let Some(w) = self.workers.get(t.worker.0) {
                w.send(WorkerCommand::Send {
                    to: t.addr,
                    bytes: BytesMut::from(&bytes[..]),
                });
            }
        }
    }
}
