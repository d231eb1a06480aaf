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
//! Reports are limited to one per address per [`REPORT_INTERVAL`], and made
//! only while the path itself is quiet ([`PATH_QUIET`]).

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
/// Media off the path is reported only once nothing authentic has come on
/// the path for this long: a client that switched pairs sends all it sends
/// on the new one, while a transport a renegotiation replaces still sends
/// a last report or two on the old one as the new one takes over.
pub const PATH_QUIET: Duration = Duration::from_millis(500);

/// Whether a session whose path last carried authentic media at `last`
/// has been quiet long enough at `now` for media elsewhere to count.
fn quiet(last: Option<Instant>, now: Instant) -> bool {
    last.is_none_or(|t| now.saturating_duration_since(t) >= PATH_QUIET)
}
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
            match off {
                None => session.last_on_path = Some(now),
                Some(key) if quiet(session.last_on_path, now) => {
                    off_path.report(key, (worker, from), None, now, events);
                }
                Some(_) => {}
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
        let clock = self.clock;
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(srtp) = s.srtp.as_mut().filter(|_| quiet(s.last_on_path, clock)) else {
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
    fn media_elsewhere_counts_only_while_the_path_is_quiet() {
        let t0 = Instant::now();
        assert!(quiet(None, t0), "nothing on the path yet");
        assert!(!quiet(Some(t0), t0 + Duration::from_millis(100)));
        assert!(quiet(Some(t0), t0 + PATH_QUIET));
    }

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
