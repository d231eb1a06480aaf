//! Where a session's offer/answer stands (the signalling states of RFC 8829
//! §3.2, as far as the Calls API leads them): stable, or our offer made
//! and awaiting the client's answer (renegotiate). An offer that waits
//! longer than [`OFFER_ANSWER_TIMEOUT`] counts as abandoned (our rule), so
//! that a client that failed to apply it can negotiate again.

use std::time::{Duration, Instant};

/// How long our offer waits for its answer before it is abandoned.
pub const OFFER_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A session's signalling state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Signalling {
    /// No offer awaits an answer: the client may offer, or we may.
    #[default]
    Stable,
    /// We made an offer at this time; the client's answer is awaited.
    HaveLocalOffer(Instant),
}

impl Signalling {
    /// We made an offer at `now`.
    pub fn offer_made(&mut self, now: Instant) {
        *self = Signalling::HaveLocalOffer(now);
    }

    /// The client answered it.
    pub fn answered(&mut self) {
        *self = Signalling::Stable;
    }

    /// Whether our offer awaits its answer at `now` (one older than
    /// [`OFFER_ANSWER_TIMEOUT`] does not).
    pub fn offer_pending(&self, now: Instant) -> bool {
        match *self {
            Signalling::Stable => false,
            Signalling::HaveLocalOffer(at) => {
                now.saturating_duration_since(at) < OFFER_ANSWER_TIMEOUT
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offer_is_pending_until_answered_or_abandoned() {
        let t0 = Instant::now();
        let mut s = Signalling::default();
        assert!(!s.offer_pending(t0));
        s.offer_made(t0);
        assert!(s.offer_pending(t0 + OFFER_ANSWER_TIMEOUT - Duration::from_millis(1)));
        assert!(!s.offer_pending(t0 + OFFER_ANSWER_TIMEOUT), "abandoned");
        s.answered();
        assert!(!s.offer_pending(t0));
        assert_eq!(s, Signalling::Stable);
    }
}
