//! A session moving between workers: its client's path moved to a 5-tuple
//! that another worker receives (a new nominated pair, media from a newly
//! nominated address). What numbers and protects what we send it moves
//! with it: the SRTP rollover counters and SRTCP index, the sequence
//! offsets and RTX numbering of its outbound streams, its transport-wide
//! numbering, round-trip time and bandwidth estimate. A fresh state would
//! restart those numbers, and the client's SRTP replay window would drop
//! every packet that reuses one (resends on the RTX stream, first of all).
//!
//! The old worker lets the session go on [`WorkerCommand::HandOver`] and
//! reports its state in [`EngineEvent::HandedOver`]; the control thread
//! passes it to the session's worker in [`WorkerCommand::Adopt`]: the one
//! that has its path when the state lands (the path may have moved again
//! meanwhile), followed by the keys of a handshake completed meanwhile.
//! Packets that reach the new worker in between are dropped as for an
//! unknown session; keyframes requested around the move repair that.
//!
//! [`WorkerCommand::HandOver`]: super::messages::WorkerCommand::HandOver
//! [`WorkerCommand::Adopt`]: super::messages::WorkerCommand::Adopt
//! [`EngineEvent::HandedOver`]: super::messages::EngineEvent::HandedOver

use std::net::SocketAddr;

use super::Engine;
use super::media_session::{MediaSession, MovedSession, release};
use super::messages::EngineEvent;
use crate::engine::session_media::SessionMedia;
use crate::ids::{SessionKey, WorkerId};

impl Engine {
    /// Lets `key` go to worker `to`, reporting its state to the control
    /// thread (none when it was not here).
    pub(super) fn hand_over(&mut self, key: SessionKey, to: WorkerId) {
        let session = self.let_go(key).map(|mut s| {
            if let Some(e) = s.estimate.as_deref_mut() {
                e.listed = false; // the new worker lists it for probing
            }
            MovedSession(Box::new(s))
        });
        self.events
            .push_back(EngineEvent::HandedOver { key, to, session });
    }

    /// Removes `key` from this worker (its histories, addresses and event
    /// budget go with it) and returns its state.
    pub(super) fn let_go(&mut self, key: SessionKey) -> Option<MediaSession> {
        self.control_budget.forget(key);
        self.data_budget.forget(key);
        self.bindings.forget(key);
        let session = self.sessions.remove(&key)?;
        self.histories
            .follow(&session.media, &SessionMedia::default(), self.clock);
        Some(session)
    }

    /// Takes over `key`, handed over by another worker, at `addr`. A state
    /// made here meanwhile gives way to it.
    pub(super) fn adopt(&mut self, key: SessionKey, addr: SocketAddr, moved: MovedSession) {
        if let Some(fresh) = self.let_go(key) {
            release(fresh.estimate, &self.counters);
        }
        let mut session = *moved.0;
        session.addr = addr;
        self.histories
            .follow(&SessionMedia::default(), &session.media, self.clock);
        self.bindings.bind(addr, key, Some(addr));
        self.sessions.insert(key, session);
    }
}
