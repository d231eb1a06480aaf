//! Our side of ICE for third-party sessions (`sessions/new?thirdparty=true`,
//! calls-api.md "Third-party sessions", and the cluster's relays): toward
//! an ICE-lite peer the server is the controlling agent and sends the
//! Binding requests (with USE-CANDIDATE) to the candidates of the peer's
//! SDP, where it otherwise only answers them.
//!
//! Where it sits: the control thread's tick asks each third-party session's
//! [`PeerChecks`] which checks are due and sends them through a media worker
//! (all workers share the media port, so the 5-tuple is the same), and
//! records it in the ICE directory: the worker that receives the peer's
//! success response binds the pair on it (`engine::handle_stun_response`),
//! as a check from a peer binds an ordinary session's. (Between nodes of a
//! cluster both ends are third-party, so each also binds on the other's
//! checks.)
//!
//! Sans-IO: `now` in, addresses out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::check_targets::CheckTargets;

/// Ta, the pacing of checks (RFC 8445 §14.2): at most one check of a
/// session per this interval while it connects.
pub const PACING: Duration = Duration::from_millis(50);
/// A pair's first retransmission timeout (RFC 8445 §14.3: at least 500 ms);
/// it doubles with each retransmission.
pub const INITIAL_RTO: Duration = Duration::from_millis(500);
/// Transmissions of one pair's check before the pair fails (Rc, RFC 8489
/// §6.2.1): 7 transmissions span 31.5 s.
pub const TRANSMISSIONS: u32 = 7;
/// Checks a session sends in all while no pair is bound, whatever its SDPs
/// change: every candidate kept ([`crate::sdp::MAX_CANDIDATES`]) its
/// [`TRANSMISSIONS`]. It is given back when a pair binds.
pub const BUDGET: u32 = crate::sdp::MAX_CANDIDATES as u32 * TRANSMISSIONS;
/// Between consent checks on the bound pair (RFC 7675 asks for about 5 s;
/// our lite peers drop a pair after 30 s without one).
pub const CONSENT_INTERVAL: Duration = Duration::from_secs(2);

/// One candidate pair's retransmission state.
#[derive(Debug, Clone)]
struct Pair {
    to: SocketAddr,
    /// Checks sent on it.
    sent: u32,
    /// When its next check is due (`None`: at once).
    due: Option<Instant>,
}

impl Pair {
    fn is_due(&self, now: Instant) -> bool {
        self.sent < TRANSMISSIONS && self.due.is_none_or(|due| now >= due)
    }
}

/// One third-party session's check schedule.
///
/// Call contract: [`Self::set_candidates`] with each SDP of the peer, then
/// [`Self::due`] on every tick with the bound pair (if any); send a check
/// to what it answers.
#[derive(Debug, Clone)]
pub struct PeerChecks {
    targets: CheckTargets,
    pairs: Vec<Pair>,
    /// No check of this session before then (pacing, consent).
    next: Option<Instant>,
    /// Checks sent since a pair was last bound.
    spent: u32,
}

impl PeerChecks {
    /// A schedule that checks only the addresses `targets` admits.
    pub fn new(targets: CheckTargets) -> Self {
        PeerChecks {
            targets,
            pairs: Vec::new(),
            next: None,
            spent: 0,
        }
    }

    /// The candidates of the peer's latest SDP. A pair that was checked
    /// before keeps its retransmission state; new ones are checked first.
    /// (The SDP reader keeps at most [`crate::sdp::MAX_CANDIDATES`]
    /// addresses that name a peer: [`crate::sdp::udp_candidate`].)
    pub fn set_candidates(&mut self, candidates: &[SocketAddr]) {
        let old = std::mem::take(&mut self.pairs);
        let refused = candidates
            .iter()
            .filter(|to| !self.targets.admits(**to))
            .count();
        if refused > 0 {
            tracing::info!(
                refused,
                "third-party candidates not checked: not admitted targets (loopback and private ones need --third-party-private-candidates)"
            );
        }
        for &to in candidates.iter().filter(|to| self.targets.admits(**to)) {
            let pair = old.iter().find(|p| p.to == to).cloned();
            self.pairs.push(pair.unwrap_or(Pair {
                to,
                sent: 0,
                due: None,
            }));
        }
    }

    /// The address to check now, if any: while no pair is `bound`, the pair
    /// due first, paced and within [`BUDGET`]; once bound, that pair at
    /// [`CONSENT_INTERVAL`].
    pub fn due(&mut self, now: Instant, bound: Option<SocketAddr>) -> Option<SocketAddr> {
        if let Some(addr) = bound {
            if self.spent > 0 {
                // A pair succeeded: a later loss of it may check again.
                self.spent = 0;
                self.pairs.iter_mut().for_each(|p| {
                    p.sent = 0;
                    p.due = None;
                });
                self.next = None;
            }
            if self.next.is_some_and(|next| now < next) {
                return None;
            }
            self.next = Some(now + CONSENT_INTERVAL);
            return Some(addr);
        }
        if self.spent >= BUDGET || self.next.is_some_and(|next| now < next) {
            return None;
        }
        let pair = self
            .pairs
            .iter_mut()
            .filter(|p| p.is_due(now))
            .min_by_key(|p| (p.due.is_some(), p.due))?;
        let rto = INITIAL_RTO * 2u32.pow(pair.sent.min(16));
        pair.sent += 1;
        pair.due = Some(now + rto);
        self.spent += 1;
        self.next = Some(now + PACING);
        Some(pair.to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn checks() -> PeerChecks {
        PeerChecks::new(CheckTargets::new(true, &[addr("127.0.0.1:40000")]))
    }

    /// Every check `due` answers on a virtual clock, polled every 10 ms.
    fn run(c: &mut PeerChecks, from: Instant, span: Duration) -> Vec<(Duration, SocketAddr)> {
        let mut out = Vec::new();
        let mut t = Duration::ZERO;
        while t <= span {
            if let Some(to) = c.due(from + t, None) {
                out.push((t, to));
            }
            t += Duration::from_millis(10);
        }
        out
    }

    #[test]
    fn each_pair_backs_off_and_checks_are_paced() {
        let t0 = Instant::now();
        let mut c = checks();
        assert_eq!(c.due(t0, None), None, "no candidates yet");
        let (a, b) = (addr("10.0.0.1:40000"), addr("10.0.0.2:40000"));
        c.set_candidates(&[a, b]);
        let sent = run(&mut c, t0, Duration::from_secs(60));
        let times = |to| -> Vec<u64> {
            sent.iter()
                .filter(|(_, x)| *x == to)
                .map(|(t, _)| t.as_millis() as u64)
                .collect()
        };
        // a at once; b one pacing interval later; then 0.5, 1, 2, 4, 8, 16 s apart.
        assert_eq!(times(a), vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
        assert_eq!(times(b), vec![50, 550, 1550, 3550, 7550, 15550, 31550]);
        for w in sent.windows(2) {
            assert!(w[1].0 - w[0].0 >= PACING, "paced: {w:?}");
        }
    }

    #[test]
    fn new_sdps_do_not_refill_the_budget() {
        let t0 = Instant::now();
        let mut c = checks();
        let mut sent = 0;
        // An app that renegotiates new candidates every 100 ms for a minute.
        for round in 0..600u32 {
            let at = t0 + Duration::from_millis(100) * round;
            let host = (round % 250) as u8 + 1;
            let cands: Vec<SocketAddr> = (0..8u16)
                .map(|p| SocketAddr::from(([10, 9, 0, host], 5000 + p)))
                .collect();
            c.set_candidates(&cands);
            for step in 0..10u32 {
                sent += c.due(at + Duration::from_millis(10) * step, None).is_some() as u32;
            }
        }
        assert_eq!(sent, BUDGET);
    }

    #[test]
    fn a_bound_pair_gets_consent_checks_only_and_gives_the_budget_back() {
        let t0 = Instant::now();
        let mut c = checks();
        let (a, b) = (addr("10.0.0.1:40000"), addr("10.0.0.2:40000"));
        c.set_candidates(&[a, b]);
        assert_eq!(c.due(t0, None), Some(a));
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(c.due(t1, Some(b)), Some(b));
        assert_eq!(c.due(t1 + Duration::from_secs(1), Some(b)), None);
        assert_eq!(c.due(t1 + CONSENT_INTERVAL, Some(b)), Some(b));
        // The pair is lost: checks start again, from a full budget.
        let t2 = t1 + Duration::from_secs(10);
        let again = run(&mut c, t2, Duration::from_secs(60));
        assert_eq!(again.len(), 2 * TRANSMISSIONS as usize);
    }

    #[test]
    fn only_admitted_targets_are_checked() {
        let mut c = PeerChecks::new(CheckTargets::new(false, &[]));
        c.set_candidates(&[addr("10.0.0.1:40000"), addr("8.8.8.8:40000")]);
        let sent = run(&mut c, Instant::now(), Duration::from_secs(1));
        assert!(sent.iter().all(|(_, to)| *to == addr("8.8.8.8:40000")));
        assert!(!sent.is_empty());
    }

    #[test]
    fn the_same_candidates_again_change_nothing() {
        let t0 = Instant::now();
        let mut c = checks();
        let a = addr("10.0.0.1:40000");
        c.set_candidates(&[a]);
        assert_eq!(c.due(t0, None), Some(a));
        c.set_candidates(&[a]);
        assert_eq!(c.due(t0 + PACING, None), None, "a keeps its backoff");
        let b = addr("10.0.0.9:40000");
        c.set_candidates(&[a, b]);
        assert_eq!(c.due(t0 + PACING, None), Some(b), "a new pair goes first");
    }
}
