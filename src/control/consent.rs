//! Consent freshness (RFC 7675) for an ICE-lite server: a session's media
//! keeps flowing to its address only while that address answers Binding
//! requests of ours. The client's own checks prove nothing here: anyone
//! who can forge the client's source address (and saw the ICE
//! credentials, which travel in signalling) can send them, and so could
//! keep media aimed at an address that no longer wants it. A response
//! carries the random transaction id we sent, which only the address we
//! sent it to sees.
//!
//! Where it sits: the control thread. Its liveness scan (once a second)
//! asks each connected session's [`Consent`] whether a check is due
//! (`consent_checks` writes it with the client's credentials, records its
//! id in the ICE directory so that the worker reports the response, and
//! sends it); a third-party session's checks come from its
//! [`super::peer_checks::PeerChecks`] and are recorded with
//! [`Consent::sent`]. `transport::handle_bound` hands each response to
//! [`Consent::answered`]; the scan asks [`Consent::silent_for`] and
//! detaches the media of a session silent past the timeout.
//!
//! Sans-IO: `now`, ids and addresses in; ids out.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// No response to our checks for this long: consent is lost and the media
/// stops (RFC 7675 §5.1: 30 s); `--consent-timeout` aside.
pub use crate::config::CONSENT_TIMEOUT;
/// Checks awaiting their response. A response comes within a round trip;
/// these cover a few intervals of late ones.
const OUTSTANDING: usize = 4;

/// One check of ours on its way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outstanding {
    txid: [u8; 12],
    to: SocketAddr,
}

/// A connected session's consent: when its address last proved it wants
/// the media, and the checks that may prove it again.
///
/// Call contract: [`Self::new`] when the session connects (the DTLS
/// handshake proved the address); [`Self::due`] on each scan, sending what
/// it answers to the session's address; [`Self::answered`] for every
/// authentic response the workers report; [`Self::proven`] when the
/// address proved itself otherwise (it answered a path probe, or completed
/// a new handshake).
#[derive(Debug, Clone)]
pub struct Consent {
    timeout: Duration,
    fresh: Instant,
    next: Instant,
    outstanding: [Option<Outstanding>; OUTSTANDING],
    slot: usize,
}

impl Consent {
    /// Consent fresh at `now`, lost after `timeout` without a response;
    /// the first check is due at once (a client that answers none is seen
    /// early, in the log and the metrics), then every sixth of the timeout
    /// (5 s for RFC 7675's 30 s).
    pub fn new(timeout: Duration, now: Instant) -> Self {
        Consent {
            timeout,
            fresh: now,
            next: now,
            outstanding: [None; OUTSTANDING],
            slot: 0,
        }
    }

    /// Between checks, before randomisation.
    pub fn interval(&self) -> Duration {
        self.timeout / 6
    }

    /// Whether a check is due at `now`.
    pub fn is_due(&self, now: Instant) -> bool {
        now >= self.next
    }

    /// A check to send to `to` at `now`, with transaction id `txid`, when
    /// one is due. The next is due after the interval (a fifth of it once
    /// two intervals went unanswered) times a factor in [0.8, 1.2]
    /// (RFC 7675 §5.1) that `jitter` picks, so that sessions that
    /// connected together do not check together.
    pub fn due(
        &mut self,
        now: Instant,
        to: SocketAddr,
        txid: [u8; 12],
        jitter: u16,
    ) -> Option<[u8; 12]> {
        if !self.is_due(now) {
            return None;
        }
        let factor = 0.8 + 0.4 * f64::from(jitter) / f64::from(u16::MAX);
        // Unanswered for two intervals (loss, or a client gone): checks
        // five times as often until consent is regained or lost, so that a
        // lossy path keeps it (RFC 7675 §5.1 allows it). A session spends
        // at most a timeout's worth of these.
        let interval = if self.silent_for(now) >= 2 * self.interval() {
            self.interval() / 5
        } else {
            self.interval()
        };
        self.next = now + interval.mul_f64(factor);
        self.sent(txid, to);
        Some(txid)
    }

    /// A check with `txid` went to `to` (sent by the session's own
    /// schedule or by a third-party session's checks); the oldest
    /// outstanding one is forgotten.
    pub fn sent(&mut self, txid: [u8; 12], to: SocketAddr) {
        self.outstanding[self.slot] = Some(Outstanding { txid, to });
        self.slot = (self.slot + 1) % OUTSTANDING;
    }

    /// An authentic success response with `txid` came from `from`, seen at
    /// `at`: whether it answers one of our outstanding checks (then
    /// consent is fresh as of `at`). A response from another address than
    /// the check went to proves nothing.
    pub fn answered(&mut self, txid: &[u8; 12], from: SocketAddr, at: Instant) -> bool {
        let Some(slot) = self
            .outstanding
            .iter_mut()
            .find(|o| o.is_some_and(|o| &o.txid == txid && o.to == from))
        else {
            return false;
        };
        *slot = None;
        self.proven(at);
        true
    }

    /// The session's address proved itself at `at` by other means.
    pub fn proven(&mut self, at: Instant) {
        self.fresh = self.fresh.max(at);
    }

    /// How long the address has not proved itself, at `now`.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.fresh)
    }

    /// The timeout after which consent is lost.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Consent, counted for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConsentCounters {
    /// Consent checks sent (third-party sessions' included).
    pub checks: u64,
    /// Of them, answered.
    pub answers: u64,
    /// Sessions whose media stopped for want of answers.
    pub lost: u64,
}

#[cfg(test)]
#[path = "consent_tests.rs"]
mod tests;
