//! How much a subscriber's NACKs may make us resend: a budget of resends
//! per second (a NACK storm cannot amplify into a flood), and per packet
//! at most [`MAX_PER_PACKET`] resends, one per round trip (see
//! [`repeat_after`]); a packet NACKed again after those is
//! [`Refused::Exhausted`], and the engine asks a keyframe for the
//! subscriber instead.
//!
//! Where it sits: on the subscriber's worker, consulted for each sequence
//! number of its generic NACKs before the packet is looked up in the
//! track's history. Sans-IO: times are given.

use std::time::{Duration, Instant};

/// Resends per second per subscriber (about 6 Mbit/s of 1200-byte packets).
pub const BUDGET_PER_SECOND: u32 = 600;
/// Resends of one packet at most.
pub const MAX_PER_PACKET: u8 = 3;
/// A packet is resent again at most this long after its last resend,
/// however long the round trip (a lost resend is not waited on forever).
pub const REPEAT_AFTER: Duration = Duration::from_millis(100);
/// ... and at least this long after it (a NACK repeated at once is a
/// duplicate, not a lost resend).
const REPEAT_FLOOR: Duration = Duration::from_millis(5);

/// How long after a resend the same packet may be resent to a subscriber
/// whose round trip is `rtt`: one round trip, within 5–100 ms.
pub fn repeat_after(rtt: Duration) -> Duration {
    rtt.clamp(REPEAT_FLOOR, REPEAT_AFTER)
}
/// Packets whose resends are remembered.
const REMEMBERED: usize = 128;

/// Why a resend was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The subscriber's budget for this second is spent.
    Budget,
    /// Resent too recently.
    Repeat,
    /// Resent [`MAX_PER_PACKET`] times already: the subscriber still
    /// lacks it, and only a keyframe helps now.
    Exhausted,
}

/// One subscriber's resend allowance.
#[derive(Debug)]
pub struct ResendLimiter {
    window: Instant,
    used: u32,
    /// Per recently resent sequence number: when, and how often.
    recent: [(u16, Instant, u8); REMEMBERED],
}

impl ResendLimiter {
    /// A limiter with a full budget.
    pub fn new(now: Instant) -> Self {
        ResendLimiter {
            window: now,
            used: 0,
            recent: [(0, now, 0); REMEMBERED],
        }
    }

    /// Whether `seq` (our sequence number towards the subscriber) may be
    /// resent now, `repeat` after its last resend; counts it if so.
    pub fn allow(&mut self, seq: u16, now: Instant, repeat: Duration) -> Result<(), Refused> {
        if now.saturating_duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.used = 0;
        }
        let slot = &mut self.recent[usize::from(seq) % REMEMBERED];
        let (times, last) = if slot.0 == seq && slot.2 > 0 {
            (slot.2, Some(slot.1))
        } else {
            (0, None)
        };
        if last.is_some_and(|at| now.saturating_duration_since(at) < repeat) {
            return Err(Refused::Repeat);
        }
        if times >= MAX_PER_PACKET {
            return Err(Refused::Exhausted);
        }
        if self.used >= BUDGET_PER_SECOND {
            return Err(Refused::Budget);
        }
        self.used += 1;
        *slot = (seq, now, times + 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_resent_a_few_times_at_most_one_round_trip_apart() {
        let t0 = Instant::now();
        let mut l = ResendLimiter::new(t0);
        assert_eq!(l.allow(7, t0, REPEAT_AFTER), Ok(()));
        assert_eq!(
            l.allow(7, t0 + Duration::from_millis(50), REPEAT_AFTER),
            Err(Refused::Repeat)
        );
        assert_eq!(
            l.allow(7, t0 + Duration::from_millis(100), REPEAT_AFTER),
            Ok(())
        );
        assert_eq!(
            l.allow(7, t0 + Duration::from_millis(200), REPEAT_AFTER),
            Ok(())
        );
        assert_eq!(
            l.allow(7, t0 + Duration::from_millis(250), REPEAT_AFTER),
            Err(Refused::Repeat)
        );
        assert_eq!(
            l.allow(7, t0 + Duration::from_millis(300), REPEAT_AFTER),
            Err(Refused::Exhausted)
        );
        // Another number sharing the slot starts afresh.
        assert_eq!(
            l.allow(
                7 + REMEMBERED as u16,
                t0 + Duration::from_millis(300),
                REPEAT_AFTER
            ),
            Ok(())
        );
    }

    #[test]
    fn on_a_short_round_trip_a_lost_resend_is_resent_sooner() {
        let t0 = Instant::now();
        let mut l = ResendLimiter::new(t0);
        let rtt = Duration::from_millis(20);
        assert_eq!(l.allow(9, t0, repeat_after(rtt)), Ok(()));
        let early = t0 + Duration::from_millis(10);
        assert_eq!(l.allow(9, early, repeat_after(rtt)), Err(Refused::Repeat));
        assert_eq!(l.allow(9, t0 + rtt, repeat_after(rtt)), Ok(()));
        assert_eq!(repeat_after(Duration::from_millis(1)), REPEAT_FLOOR);
        assert_eq!(repeat_after(Duration::from_secs(1)), REPEAT_AFTER);
    }

    #[test]
    fn a_nack_storm_stays_within_the_budget() {
        let t0 = Instant::now();
        let mut l = ResendLimiter::new(t0);
        // A seeded storm: 10,000 NACKed numbers in half a second.
        let mut x: u32 = 0x9e37_79b9;
        let mut allowed = 0;
        for i in 0..10_000u32 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let at = t0 + Duration::from_micros(u64::from(i) * 50);
            if l.allow(x as u16, at, REPEAT_AFTER).is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, BUDGET_PER_SECOND);
        // The next second has a new budget.
        assert_eq!(
            l.allow(1, t0 + Duration::from_secs(1), REPEAT_AFTER),
            Ok(())
        );
    }
}
