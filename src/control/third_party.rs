//! Third-party sessions on the control thread: which sessions we check for
//! (see [`super::peer_checks`]), and the checks themselves, written and
//! handed to a media worker on every tick.

use std::time::Instant;

use bytes::BytesMut;

use crate::engine::messages::WorkerCommand;
use crate::ids::SessionKey;

use crate::ids::AppId;

use super::check_targets::CheckTargets;
use super::peer_checks::PeerChecks;
use super::{Control, State};

impl Control {
    /// Makes `key` a third-party session: from its peer's first SDP on, we
    /// send the ICE checks, to the addresses `targets` admits.
    pub(super) fn make_third_party(&self, st: &mut State, key: SessionKey, targets: CheckTargets) {
        if let Some(s) = st.reg.session_mut(key) {
            s.peer_checks
                .get_or_insert_with(|| PeerChecks::new(targets));
            st.third_party.insert(key);
        }
    }

    /// Where an app's third-party sessions may send checks.
    pub(super) fn app_check_targets(&self) -> CheckTargets {
        CheckTargets::new(self.limits.third_party_private_candidates, &self.candidates)
    }

    /// Where a cluster relay's checks may go.
    pub(super) fn relay_check_targets(&self) -> CheckTargets {
        CheckTargets::cluster(&self.candidates)
    }

    /// `app`'s third-party sessions that have not connected (each sends
    /// checks); cluster mirrors are not the app's.
    pub(super) fn third_party_connecting(&self, st: &State, app: &AppId) -> usize {
        st.third_party
            .iter()
            .filter_map(|key| st.reg.session(*key).map(|s| (*key, s)))
            .filter(|(key, s)| {
                !s.is_connected()
                    && st.reg.app_of(*key) == Some(app)
                    && !st.mirrors.contains_key(key)
            })
            .count()
    }

    /// Sends the checks that are due, through the worker of the session's
    /// pair (any worker before one is bound: they share the port).
    pub(super) fn send_peer_checks(&self, st: &mut State, now: Instant) {
        if st.third_party.is_empty() {
            return;
        }
        let State {
            reg,
            third_party,
            consent: counters,
            ..
        } = st;
        for key in third_party.iter() {
            let Some(s) = reg.session_mut(*key) else {
                continue;
            };
            let (Some((remote_ufrag, remote_pwd)), Some(checks)) =
                (&s.remote_ice, &mut s.peer_checks)
            else {
                continue;
            };
            let bound = s.transport.map(|t| t.addr);
            let worker = s.transport.map_or(0, |t| t.worker.0);
            if let Some(to) = checks.due(now, bound) {
                let username = format!("{remote_ufrag}:{}", s.ice.ufrag);
                let mut bytes = Vec::with_capacity(128);
                let txid = crate::ids::random_bytes::<12>();
                crate::ice::write_binding_request(&mut bytes, &txid, &username, remote_pwd, true);
                self.directory.sent_check(txid, *key, remote_pwd, now);
                if let (Some(consent), Some(_)) = (s.consent.as_mut(), bound) {
                    consent.sent(txid, to);
                    counters.checks += 1;
                }
                if let Some(w) = self.workers.get(worker) {
                    w.send(WorkerCommand::Send {
                        to,
                        bytes: BytesMut::from(&bytes[..]),
                    });
                }
            }
        }
    }
}
