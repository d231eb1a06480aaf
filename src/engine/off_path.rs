//! Media from a client address that passed ICE checks but is not the
//! session's media path: a client (Chrome, under loss) that switched its
//! selected candidate pair while its old pair still answers consent. Such
//! media is accepted where the session lives (RFC 8445 §12: a controlled
//! agent receives on any valid pair), and it is reported to the control
//! thread, which moves the path there when the client had nominated that
//! address: SRTP authenticated with the session's keys (and its replay
//! window) proves the client sends from there, which a check alone, whose
//! credentials travel in signalling, does not.
//!
//! Where it sits: in the worker's SRTP unprotect step (`Engine::unprotect`).
//! A datagram from an address checked on this worker for a session that
//! lives on another worker is handed over (as bytes) for that worker to
//! authenticate ([`WorkerCommand::Verify`](super::messages::WorkerCommand)).
//! Reports are limited to one per address per [`REPORT_INTERVAL`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap as HashMap;

use crate::ids::{SessionKey, WorkerId};

use super::messages::EngineEvent;
use super::{Engine, MediaSession, Plain, Sender};
use crate::wire::{PacketKind, classify};

/// At most one report per address this often.
pub const REPORT_INTERVAL: Duration = Duration::from_millis(250);
/// Addresses remembered at most (forgotten all at once past it).
const REMEMBERED: usize = 1024;

/// The off-path reports of one worker.
#[derive(Debug, Default)]
pub struct OffPath {
    last: HashMap<SocketAddr, Instant>,
}

impl OffPath {
    fn due(&mut self, addr: SocketAddr, now: Instant) -> bool {
        if self.last.len() >= REMEMBERED {
            self.last.clear();
        }
        let last = self.last.entry(addr).or_insert(now - REPORT_INTERVAL);
        if now.saturating_duration_since(*last) < REPORT_INTERVAL {
            return false;
        }
        *last = now;
        true
    }

    /// Media of `key` from `addr` (received by `worker`) off its path:
    /// authenticated already (`datagram` is `None`), or to be
    /// authenticated where the session lives.
    pub fn report(
        &mut self,
        key: SessionKey,
        (worker, addr): (WorkerId, SocketAddr),
        datagram: Option<&[u8]>,
        now: Instant,
        events: &mut VecDeque<EngineEvent>,
    ) {
        if self.due(addr, now) {
            events.push_back(EngineEvent::OffPath {
                key,
                worker,
                addr,
                at: now,
                bytes: datagram.map(<[u8]>::to_vec),
            });
        }
    }
}

/// What [`Engine::unprotect`] found, settled: the session and plaintext to
/// go on with, any media off the session's path reported.
pub(super) fn settle<'s>(
    found: Sender<'s>,
    off_path: &mut OffPath,
    (worker, from): (WorkerId, SocketAddr),
    datagram: &[u8],
    now: Instant,
    events: &mut VecDeque<EngineEvent>,
) -> Option<(&'s mut MediaSession, Plain)> {
    match found {
        Sender::Session(session, plain, off) => {
            if let Some(key) = off {
                off_path.report(key, (worker, from), None, now, events);
            }
            Some((session, plain))
        }
        Sender::Elsewhere(key) => {
            off_path.report(key, (worker, from), Some(datagram), now, events);
            None
        }
        Sender::Dropped => None,
    }
}

impl Engine {
    /// Authenticates a datagram of `key` that `worker` received from
    /// `addr`, off the session's path; reports it when authentic. It is
    /// not processed further (a repair covers it).
    pub(super) fn verify(
        &mut self,
        key: SessionKey,
        worker: WorkerId,
        addr: SocketAddr,
        bytes: &mut [u8],
    ) {
        let Some(srtp) = self.sessions.get_mut(&key).and_then(|s| s.srtp.as_mut()) else {
            return;
        };
        let authentic = match classify(bytes) {
            PacketKind::Rtp => srtp.unprotect_rtp(bytes).is_ok(),
            PacketKind::Rtcp => srtp.unprotect_rtcp(bytes).is_ok(),
            _ => false,
        };
        if authentic {
            self.events.push_back(EngineEvent::OffPath {
                key,
                worker,
                addr,
                at: self.clock,
                bytes: None,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_limited_per_address() {
        let t0 = Instant::now();
        let mut o = OffPath::default();
        let mut events = VecDeque::new();
        let a = SocketAddr::from(([10, 0, 0, 1], 5000));
        let b = SocketAddr::from(([10, 0, 0, 1], 5001));
        for i in 0..100u64 {
            let now = t0 + Duration::from_millis(i * 10);
            o.report(SessionKey(1), (WorkerId(0), a), None, now, &mut events);
            o.report(
                SessionKey(2),
                (WorkerId(0), b),
                Some(&[1, 2]),
                now,
                &mut events,
            );
        }
        // A second: four reports per address.
        assert_eq!(events.len(), 8);
    }
}
