//! A per-source rate limit on STUN checks, before their MESSAGE-INTEGRITY
//! is computed: a flood of checks from one 5-tuple (valid ones with the
//! attacker's own credentials included) costs one table lookup per
//! datagram beyond the limit, not an HMAC and a response, and cannot
//! starve the checks of other clients. Real clients check a pair a few
//! times a second at most (RFC 8445 paces checks at 50 ms over all pairs).
//!
//! Memory is fixed: source addresses are hashed (with a per-worker random
//! key) into a table of buckets; two sources that share a bucket share its
//! budget, which is rare and costs only a slower check.
//!
//! Where it sits: in the engine, first thing on a STUN datagram. Call
//! contract: [`StunLimit::allow`] once per datagram, with the worker's
//! `now`.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Checks one source may send per window.
pub const CHECKS_PER_WINDOW: u16 = 25;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);
/// Buckets in the table (a power of two).
const BUCKETS: usize = 16384;

/// The per-source budgets of one worker.
pub struct StunLimit {
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
    /// Per bucket: the window it counts (in windows since `epoch`) and the
    /// checks seen in it.
    buckets: Box<[(u32, u16)]>,
}

impl StunLimit {
    /// An empty table; `epoch` is any instant not after the first `now`.
    pub fn new(epoch: Instant) -> Self {
        StunLimit {
            hasher: std::collections::hash_map::RandomState::new(),
            epoch,
            buckets: vec![(0, 0); BUCKETS].into_boxed_slice(),
        }
    }

    /// Whether a check from `from` at `now` is within its source's budget.
    pub fn allow(&mut self, from: SocketAddr, now: Instant) -> bool {
        let mut h = self.hasher.build_hasher();
        std::hash::Hash::hash(&from, &mut h);
        let bucket = &mut self.buckets[(h.finish() as usize) & (BUCKETS - 1)];
        let window =
            (now.saturating_duration_since(self.epoch).as_millis() / WINDOW.as_millis()) as u32;
        if bucket.0 != window {
            *bucket = (window, 0);
        }
        bucket.1 = bucket.1.saturating_add(1);
        bucket.1 <= CHECKS_PER_WINDOW
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_source_is_limited_and_the_others_are_not() {
        let t0 = Instant::now();
        let mut limit = StunLimit::new(t0);
        let flood: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let allowed = (0..100_000).filter(|_| limit.allow(flood, t0)).count();
        assert_eq!(allowed, usize::from(CHECKS_PER_WINDOW));
        // Real clients, one check each per 100 ms, are all let through
        // (unless one shares the flood's bucket: 1 in 16384).
        let mut refused = 0;
        for step in 0..10u32 {
            let now = t0 + Duration::from_millis(u64::from(step) * 100);
            for port in 5000..5100u16 {
                let client = SocketAddr::from(([192, 0, 2, 2], port));
                refused += usize::from(!limit.allow(client, now));
                limit.allow(flood, now);
            }
        }
        assert!(refused <= 10, "{refused} real checks refused");
        // A new window: the flooding source may check again.
        assert!(limit.allow(flood, t0 + WINDOW));
    }
}
