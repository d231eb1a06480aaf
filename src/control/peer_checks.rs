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

/// Between checks while no pair is bound: every candidate each time.
pub const CONNECTING_INTERVAL: Duration = Duration::from_millis(200);
/// Between consent checks on the bound pair (RFC 7675 asks for about 5 s;
/// our lite peers drop a pair after 30 s without one).
pub const CONSENT_INTERVAL: Duration = Duration::from_secs(2);

/// One third-party session's check schedule.
#[derive(Debug, Default, Clone)]
pub struct PeerChecks {
    candidates: Vec<SocketAddr>,
    next: Option<Instant>,
}

impl PeerChecks {
    /// The candidates of the peer's latest SDP; checks start (again) at once
    /// when they changed.
    /// (The SDP reader keeps only addresses that name a peer:
    /// [`crate::sdp::udp_candidate`].)
    pub fn set_candidates(&mut self, candidates: &[SocketAddr]) {
        if self.candidates != candidates {
            self.candidates = candidates.to_vec();
            self.next = None;
        }
    }

    /// The addresses to check now: every candidate while `bound` is `None`,
    /// else the bound address, each at its interval.
    pub fn due(&mut self, now: Instant, bound: Option<SocketAddr>) -> Vec<SocketAddr> {
        if self.next.is_some_and(|next| now < next) {
            return Vec::new();
        }
        let (targets, interval) = match bound {
            Some(addr) => (vec![addr], CONSENT_INTERVAL),
            None => (self.candidates.clone(), CONNECTING_INTERVAL),
        };
        if !targets.is_empty() {
            self.next = Some(now + interval);
        }
        targets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn checks_every_candidate_until_bound_then_only_the_pair_for_consent() {
        let t0 = Instant::now();
        let mut checks = PeerChecks::default();
        assert!(checks.due(t0, None).is_empty(), "no candidates yet");
        let (a, b) = (addr("10.0.0.1:40000"), addr("10.0.0.2:40000"));
        checks.set_candidates(&[a, b]);
        assert_eq!(checks.due(t0, None), vec![a, b]);
        assert!(checks.due(t0 + Duration::from_millis(199), None).is_empty());
        let t1 = t0 + CONNECTING_INTERVAL;
        assert_eq!(checks.due(t1, None), vec![a, b]);
        // Bound: consent on the pair only, at the slower interval.
        let t2 = t1 + CONNECTING_INTERVAL;
        assert_eq!(checks.due(t2, Some(b)), vec![b]);
        assert!(checks.due(t2 + CONNECTING_INTERVAL, Some(b)).is_empty());
        assert_eq!(checks.due(t2 + CONSENT_INTERVAL, Some(b)), vec![b]);
    }

    #[test]
    fn unspecified_multicast_and_port_zero_candidates_are_not_checked() {
        let mut checks = PeerChecks::default();
        let ok = addr("10.0.0.1:40000");
        let read: Vec<SocketAddr> = [
            "1 1 udp 1 0.0.0.0 40000 typ host",
            "2 1 udp 1 224.0.0.1 40000 typ host",
            "3 1 udp 1 10.0.0.1 0 typ host",
            "4 1 udp 1 10.0.0.1 40000 typ host",
        ]
        .into_iter()
        .filter_map(crate::sdp::udp_candidate)
        .collect();
        checks.set_candidates(&read);
        assert_eq!(checks.due(Instant::now(), None), vec![ok]);
    }

    #[test]
    fn new_candidates_are_checked_at_once_and_the_same_ones_change_nothing() {
        let t0 = Instant::now();
        let mut checks = PeerChecks::default();
        let a = addr("10.0.0.1:40000");
        checks.set_candidates(&[a]);
        assert_eq!(checks.due(t0, None), vec![a]);
        checks.set_candidates(&[a]);
        assert!(checks.due(t0, None).is_empty());
        let b = addr("10.0.0.9:40000");
        checks.set_candidates(&[b]);
        assert_eq!(checks.due(t0, None), vec![b]);
    }
}
