//! A session's DTLS association as the control thread keeps it: the
//! client's fingerprints and our role (from the SDP), then where its
//! handshake stands. The handshake itself runs on a DTLS thread
//! (`crate::dtls_threads`); this is what the control plane needs to know:
//! whether records may go there yet (or wait, bounded, for the
//! fingerprint), whether it failed for good, and the keys it exported.
//!
//! The states, each entered only as its method says:
//!
//! ```text
//! Waiting ──open()──▶ Handshaking ──connected()──▶ Connected ──connected()──▶ Connected
//!    │                    │
//!    └──────fail()────────┴──▶ Failed (terminal; a Connected one is never failed)
//! ```

use std::time::Instant;

use crate::dtls::{DtlsRole, Fingerprint};
use crate::dtls_threads::Route;
use crate::srtp::SrtpKeys;

/// DTLS records kept while the client's fingerprint is not yet known.
pub const DTLS_BACKLOG: usize = 32;

/// A session's DTLS association, control side.
#[derive(Debug)]
pub struct SessionDtls {
    /// Our DTLS role (client when the client answered `a=setup:passive`).
    pub role: DtlsRole,
    /// The client's certificate fingerprints (any may match), from its
    /// first SDP; empty until then.
    pub remote_fingerprints: Vec<Fingerprint>,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Not yet handed to a DTLS thread: records that arrive wait here, at
    /// most [`DTLS_BACKLOG`], with the worker and address each came from.
    Waiting { backlog: Vec<(Route, Vec<u8>)> },
    /// Handed to its DTLS thread; no handshake completed yet.
    Handshaking,
    /// A handshake completed: the keys of the latest one, and when.
    Connected { keys: SrtpKeys, at: Instant },
    /// Refused for good before any handshake completed: API calls answer
    /// 410 with the reason, and no more media flows.
    Failed(String),
}

impl Default for SessionDtls {
    fn default() -> Self {
        SessionDtls {
            role: DtlsRole::Server,
            remote_fingerprints: Vec::new(),
            state: State::Waiting {
                backlog: Vec::new(),
            },
        }
    }
}

impl SessionDtls {
    /// Whether the handshake was handed to its DTLS thread (and has not
    /// failed).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Handshaking | State::Connected { .. })
    }

    /// Why it failed for good, if it did.
    pub fn failure(&self) -> Option<&str> {
        match &self.state {
            State::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// The keys of the latest completed handshake.
    pub fn keys(&self) -> Option<&SrtpKeys> {
        match &self.state {
            State::Connected { keys, .. } => Some(keys),
            _ => None,
        }
    }

    /// When the latest handshake completed.
    pub fn connected_at(&self) -> Option<Instant> {
        match self.state {
            State::Connected { at, .. } => Some(at),
            _ => None,
        }
    }

    /// Keeps a record that arrived before the handshake was handed over;
    /// false when it was not kept (handed over already, failed, or
    /// [`DTLS_BACKLOG`] waiting): the client retransmits.
    pub fn hold(&mut self, from: Route, bytes: Vec<u8>) -> bool {
        match &mut self.state {
            State::Waiting { backlog } if backlog.len() < DTLS_BACKLOG => {
                backlog.push((from, bytes));
                true
            }
            _ => false,
        }
    }

    /// Hands the handshake over once the client's fingerprints are known:
    /// the records that waited, to replay there. None when it is not
    /// waiting or no fingerprint is known yet.
    pub fn open(&mut self) -> Option<Vec<(Route, Vec<u8>)>> {
        let State::Waiting { backlog } = &mut self.state else {
            return None;
        };
        if self.remote_fingerprints.is_empty() {
            return None;
        }
        let backlog = std::mem::take(backlog);
        self.state = State::Handshaking;
        Some(backlog)
    }

    /// Fails it for good; false (nothing changes) once a handshake has
    /// completed: whoever can send from its 5-tuple must not end it.
    pub fn fail(&mut self, reason: String) -> bool {
        if matches!(self.state, State::Connected { .. }) {
            return false;
        }
        self.state = State::Failed(reason);
        true
    }

    /// A handshake completed at `now` with `keys`; whether one had
    /// completed before (new keys for a new association).
    pub fn connected(&mut self, keys: SrtpKeys, now: Instant) -> bool {
        let again = matches!(self.state, State::Connected { .. });
        self.state = State::Connected { keys, at: now };
        again
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkerId;
    use crate::srtp::fixture::keys;
    use rtc_srtp::protection_profile::ProtectionProfile;

    fn route() -> Route {
        (WorkerId(0), "127.0.0.1:5000".parse().unwrap())
    }

    fn fingerprint() -> Fingerprint {
        Fingerprint::of(b"certificate")
    }

    #[test]
    fn records_wait_bounded_until_the_fingerprint_is_known() {
        let mut dtls = SessionDtls::default();
        for i in 0..DTLS_BACKLOG {
            assert!(dtls.hold(route(), vec![i as u8]));
        }
        assert!(!dtls.hold(route(), vec![0xff]), "past the backlog");
        assert!(dtls.open().is_none(), "no fingerprint yet");
        dtls.remote_fingerprints.push(fingerprint());
        let backlog = dtls.open().expect("opened");
        assert_eq!(backlog.len(), DTLS_BACKLOG);
        assert_eq!(backlog[3].1, vec![3]);
        assert!(dtls.is_open());
        assert!(dtls.open().is_none(), "opened once");
        assert!(!dtls.hold(route(), vec![1]), "records go to the thread now");
    }

    #[test]
    fn a_connected_association_is_never_failed() {
        let mut dtls = SessionDtls::default();
        dtls.remote_fingerprints.push(fingerprint());
        dtls.open();
        let t0 = Instant::now();
        let k = keys(ProtectionProfile::AeadAes128Gcm, 1);
        assert!(!dtls.connected(k.clone(), t0), "the first handshake");
        assert!(!dtls.fail("bad record".into()));
        assert_eq!(dtls.failure(), None);
        assert!(dtls.keys().is_some());
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert!(dtls.connected(k, t1), "a second one");
        assert_eq!(dtls.connected_at(), Some(t1));
    }

    #[test]
    fn a_failed_handshake_stays_failed() {
        let mut dtls = SessionDtls::default();
        dtls.remote_fingerprints.push(fingerprint());
        dtls.open();
        assert!(dtls.fail("fingerprint mismatch".into()));
        assert_eq!(dtls.failure(), Some("fingerprint mismatch"));
        assert!(!dtls.is_open());
        assert!(dtls.open().is_none());
        assert!(!dtls.hold(route(), vec![1]));
        assert!(dtls.keys().is_none());
    }
}
