//! Which 5-tuple carries a session's media, decided from the valid ICE
//! checks the workers saw (RFC 8445 nomination, RFC 7675 consent), so that
//! no single packet can move it:
//!
//! - a check whose transaction id was already seen from another address is
//!   a replay and is ignored (the same id from the same address is a
//!   retransmission: it still refreshes consent);
//! - before a nominated path exists, the client's nomination moves the path
//!   (the initial checks, as RFC 8445 has them);
//! - once a nominated path exists, a check from another address moves it
//!   only when the current path has been silent (no valid check) for
//!   [`PATH_SILENCE`], and the new address was nominated by the client: a
//!   client that is still there keeps its path, whatever a forger or a
//!   replayer sends, and a client that really moved (its old network gone)
//!   is followed once its old path fell silent. Back to the old path works
//!   the same way, if it is the one that keeps checking;
//! - after an ICE restart (new credentials only the client has), the first
//!   valid check moves the path at once;
//! - SRTP or SRTCP authenticated with the session's keys from an address
//!   the client nominated, while nothing authentic comes on the path
//!   (the worker reports it only then), moves the path: the client
//!   switched its selected pair (Chrome does under loss) while the old one
//!   still answers its consent checks. A check proves knowledge of the ICE
//!   credentials, which travel in signalling; media proves the SRTP keys,
//!   which only the client and we hold.
//!
//! Where it sits: on the control thread, in `transport::handle_bound`.
//! Call contract: [`PathSelector::handle_check`] for every valid check, in
//! the order the workers report them; apply what it returns to the
//! session's binding; [`PathSelector::restart`] on an ICE restart.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::ids::WorkerId;

use super::transceiver::TransportBinding;

/// How long the current path must be silent before another one may take
/// its place. Longer than browsers' consent interval (Chrome checks a
/// working pair every 2.5 s, Firefox every 4–6 s), so a live client never
/// loses its path; a client whose network changed is followed after this
/// (browsers restart ICE on a network change, which is followed at once).
pub const PATH_SILENCE: Duration = Duration::from_secs(8);
/// Transaction ids remembered for replay detection.
const RECENT_CHECKS: usize = 64;
/// Addresses remembered per session.
const PATHS: usize = 8;

/// What a check does to the session's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathDecision {
    /// A replayed check: nothing, not even consent.
    Replay,
    /// A check on the current path: consent is fresh. `nominated` when it
    /// just became nominated.
    Current {
        /// The client nominated the current path with this check.
        nominated: bool,
    },
    /// The media path moves to this binding.
    Switch(TransportBinding),
    /// Another address, not (yet) allowed to take the path.
    Elsewhere,
}

/// One address the client checked from.
#[derive(Debug, Clone, Copy)]
struct PathSeen {
    addr: SocketAddr,
    last: Instant,
    nominated: bool,
}

/// The checks a session's client sent, as far as its path is concerned.
#[derive(Debug, Default)]
pub struct PathSelector {
    recent: VecDeque<([u8; 12], SocketAddr)>,
    paths: Vec<PathSeen>,
    restarting: bool,
    /// The probe of a new address before the media moves there.
    pub probe: super::path_probe::PathProbe,
}

impl PathSelector {
    /// ICE restarted: the next valid check (necessarily with the new
    /// credentials) moves the path.
    pub fn restart(&mut self) {
        self.restarting = true;
    }

    /// Whether an ICE restart awaits its first check.
    pub fn is_restarting(&self) -> bool {
        self.restarting
    }

    /// `addr` proved to be the client by other means (it completed a DTLS
    /// handshake with the client's certificate) at `at`.
    pub fn proven(&mut self, addr: SocketAddr, at: Instant) {
        self.note(addr, true, at);
    }

    /// Authenticated media arrived from `addr` at `at`: the path it should
    /// move to, if the client nominated that address (and it is not the
    /// current path).
    pub fn handle_media(
        &mut self,
        current: Option<TransportBinding>,
        worker: WorkerId,
        addr: SocketAddr,
        at: Instant,
    ) -> Option<TransportBinding> {
        let seen = self.paths.iter_mut().find(|p| p.addr == addr)?;
        seen.last = seen.last.max(at);
        let moved = current.is_none_or(|c| c.addr != addr || c.worker != worker);
        (seen.nominated && moved && !self.restarting).then_some(TransportBinding {
            worker,
            addr,
            nominated: true,
        })
    }

    /// Takes a valid check (`txid`, from `addr` via `worker`, USE-CANDIDATE
    /// or not, seen at `at`) given the current binding.
    pub fn handle_check(
        &mut self,
        current: Option<TransportBinding>,
        txid: [u8; 12],
        worker: WorkerId,
        addr: SocketAddr,
        nominated: bool,
        at: Instant,
    ) -> PathDecision {
        match self.recent.iter().find(|(id, _)| *id == txid) {
            Some((_, from)) if *from != addr => return PathDecision::Replay,
            Some(_) => {}
            None => {
                if self.recent.len() == RECENT_CHECKS {
                    self.recent.pop_front();
                }
                self.recent.push_back((txid, addr));
            }
        }
        let restarting = std::mem::take(&mut self.restarting);
        let seen = self.note(addr, nominated, at);
        let new = TransportBinding {
            worker,
            addr,
            nominated,
        };
        let Some(cur) = current else {
            return PathDecision::Switch(new);
        };
        if cur.addr == addr && cur.worker == worker {
            return PathDecision::Current {
                nominated: nominated && !cur.nominated,
            };
        }
        if restarting {
            // Not nominated yet: the client's nomination among its new
            // pairs may still move it, as at the start.
            return PathDecision::Switch(TransportBinding {
                nominated: false,
                ..new
            });
        }
        if !cur.nominated {
            // Initial checks: the client's nomination decides.
            return if nominated {
                PathDecision::Switch(new)
            } else {
                PathDecision::Elsewhere
            };
        }
        let silent = self
            .paths
            .iter()
            .find(|p| p.addr == cur.addr)
            .is_none_or(|p| at.saturating_duration_since(p.last) >= PATH_SILENCE);
        if silent && seen.nominated {
            PathDecision::Switch(TransportBinding {
                nominated: true,
                ..new
            })
        } else {
            PathDecision::Elsewhere
        }
    }

    /// Records a check from `addr`; returns what is known of it.
    fn note(&mut self, addr: SocketAddr, nominated: bool, at: Instant) -> PathSeen {
        if let Some(p) = self.paths.iter_mut().find(|p| p.addr == addr) {
            p.last = p.last.max(at);
            p.nominated |= nominated;
            return *p;
        }
        if self.paths.len() == PATHS {
            // Forget the address heard from least recently.
            if let Some(i) = (0..self.paths.len()).min_by_key(|&i| self.paths[i].last) {
                self.paths.swap_remove(i);
            }
        }
        let p = PathSeen {
            addr,
            last: at,
            nominated,
        };
        self.paths.push(p);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: WorkerId = WorkerId(0);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    /// Drives a selector like the control thread does: returns the binding
    /// after the check.
    struct Client {
        sel: PathSelector,
        current: Option<TransportBinding>,
        next_id: u8,
    }

    impl Client {
        fn new() -> Self {
            Client {
                sel: PathSelector::default(),
                current: None,
                next_id: 0,
            }
        }

        fn check(&mut self, port: u16, nominated: bool, at: Instant) -> PathDecision {
            self.next_id = self.next_id.wrapping_add(1);
            self.check_with_id([self.next_id; 12], port, nominated, at)
        }

        fn check_with_id(
            &mut self,
            id: [u8; 12],
            port: u16,
            nominated: bool,
            at: Instant,
        ) -> PathDecision {
            let d = self
                .sel
                .handle_check(self.current, id, W, addr(port), nominated, at);
            match d {
                PathDecision::Switch(b) => self.current = Some(b),
                PathDecision::Current { nominated: true } => {
                    if let Some(c) = self.current.as_mut() {
                        c.nominated = true;
                    }
                }
                _ => {}
            }
            d
        }

        fn port(&self) -> Option<u16> {
            self.current.map(|c| c.addr.port())
        }
    }

    #[test]
    fn the_first_check_binds_and_the_nomination_moves_it() {
        let t0 = Instant::now();
        let mut c = Client::new();
        assert!(matches!(c.check(1000, false, t0), PathDecision::Switch(_)));
        assert!(matches!(c.check(2000, true, t0), PathDecision::Switch(_)));
        assert_eq!(c.port(), Some(2000));
        assert_eq!(
            c.check(2000, false, t0),
            PathDecision::Current { nominated: false }
        );
    }

    #[test]
    fn a_replayed_check_from_another_port_changes_nothing() {
        let t0 = Instant::now();
        let mut c = Client::new();
        let id = [7; 12];
        c.check_with_id(id, 1000, true, t0);
        // The attacker replays the very same check, seconds later, while
        // the real client has gone quiet for longer than the silence.
        let later = t0 + PATH_SILENCE * 2;
        assert_eq!(c.check_with_id(id, 6666, true, later), PathDecision::Replay);
        assert_eq!(c.port(), Some(1000));
        // A retransmission from the same address still counts as consent.
        assert_eq!(
            c.check_with_id(id, 1000, true, later),
            PathDecision::Current { nominated: false }
        );
    }

    #[test]
    fn a_forged_nomination_cannot_take_a_live_path() {
        let t0 = Instant::now();
        let mut c = Client::new();
        c.check(1000, true, t0);
        // Consent checks every 2.5 s, a forged nominating check in between.
        let mut t = t0;
        for _ in 0..20 {
            t += Duration::from_millis(2500);
            c.check(1000, false, t);
            let forged = c.check(6666, true, t + Duration::from_millis(100));
            assert_eq!(forged, PathDecision::Elsewhere);
            assert_eq!(c.port(), Some(1000));
        }
    }

    #[test]
    fn a_client_that_moves_is_followed_once_its_old_path_falls_silent() {
        let t0 = Instant::now();
        let mut c = Client::new();
        c.check(1000, true, t0);
        // The old network is gone; the client checks from a new port, with
        // a nomination, every 500 ms.
        let mut t = t0;
        let mut moved_at = None;
        for _ in 0..40 {
            t += Duration::from_millis(500);
            if let PathDecision::Switch(_) = c.check(2000, true, t) {
                moved_at.get_or_insert(t);
            }
        }
        let moved_at = moved_at.expect("followed");
        assert_eq!(c.port(), Some(2000));
        let took = moved_at.duration_since(t0);
        assert!(took >= PATH_SILENCE && took <= PATH_SILENCE + Duration::from_millis(500));

        // The new path falls silent while the old one checks again: back.
        let mut back = false;
        for _ in 0..40 {
            t += Duration::from_millis(500);
            back |= matches!(c.check(1000, false, t), PathDecision::Switch(_));
        }
        assert!(back, "the path returns to the tuple whose checks continue");
        assert_eq!(c.port(), Some(1000));
    }

    #[test]
    fn authenticated_media_from_a_nominated_address_moves_a_live_path() {
        let t0 = Instant::now();
        let mut c = Client::new();
        c.check(1000, true, t0);
        // The client switches pairs: it nominates 2000 and sends its media
        // there, while 1000 keeps answering consent.
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(c.check(2000, true, t1), PathDecision::Elsewhere);
        c.check(1000, false, t1);
        // Media from an address checked but never nominated moves nothing.
        c.check(3000, false, t1);
        assert_eq!(c.sel.handle_media(c.current, W, addr(3000), t1), None);
        // Nor from an address never checked.
        assert_eq!(c.sel.handle_media(c.current, W, addr(4000), t1), None);
        let moved = c.sel.handle_media(c.current, W, addr(2000), t1);
        assert_eq!(moved.map(|b| b.addr), Some(addr(2000)));
        c.current = moved;
        // Media on the path itself: nothing to do.
        assert_eq!(c.sel.handle_media(c.current, W, addr(2000), t1), None);
        // The old pair's consent checks do not take it back while the new
        // one is alive.
        assert_eq!(
            c.check(1000, false, t1 + Duration::from_secs(2)),
            PathDecision::Elsewhere
        );
    }

    #[test]
    fn after_an_ice_restart_the_first_check_moves_the_path() {
        let t0 = Instant::now();
        let mut c = Client::new();
        c.check(1000, true, t0);
        c.check(1000, false, t0 + Duration::from_secs(1));
        c.sel.restart();
        assert!(c.sel.is_restarting());
        let d = c.check(3000, false, t0 + Duration::from_secs(2));
        assert!(matches!(d, PathDecision::Switch(_)));
        assert!(!c.sel.is_restarting());
        assert_eq!(c.port(), Some(3000));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_addresses_and_ids() {
        let t0 = Instant::now();
        let mut sel = PathSelector::default();
        let cur = Some(TransportBinding {
            worker: W,
            addr: addr(1),
            nominated: true,
        });
        for i in 0..10_000u32 {
            let mut id = [0u8; 12];
            id[..4].copy_from_slice(&i.to_be_bytes());
            sel.handle_check(cur, id, W, addr(2 + (i % 5000) as u16), true, t0);
        }
        assert!(sel.recent.len() <= RECENT_CHECKS);
        assert!(sel.paths.len() <= PATHS);
    }
}
