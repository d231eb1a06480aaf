//! How much one session may ask of the control thread: DTLS records and ICE
//! bindings go there (a handful per second for a real client: a handshake
//! is about a dozen records, consent checks come every few seconds), so a
//! client that floods either cannot fill the queue to the control thread
//! or make it work for others' time. Excess is dropped and counted
//! (`DropReason::ControlBudget`).
//!
//! Where it sits: in the engine, on the path from a received DTLS or STUN
//! datagram to an `EngineEvent`. Call contract: [`allow`](ControlBudget::allow)
//! before pushing such an event; [`forget`](ControlBudget::forget) when the
//! session leaves the worker.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap as HashMap;

use crate::ids::SessionKey;

/// Events one session may send per window.
pub const EVENTS_PER_WINDOW: u32 = 64;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Per session: when its window started and how many events it sent in it.
#[derive(Debug, Default)]
pub struct ControlBudget {
    windows: HashMap<SessionKey, (Instant, u32)>,
}

impl ControlBudget {
    /// Whether `key` may send one more event at `now` (and counts it).
    pub fn allow(&mut self, key: SessionKey, now: Instant) -> bool {
        let (start, count) = self.windows.entry(key).or_insert((now, 0));
        if now < *start || now.saturating_duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= EVENTS_PER_WINDOW
    }

    /// Forgets a session.
    pub fn forget(&mut self, key: SessionKey) {
        self.windows.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gets_its_budget_per_window_and_others_are_untouched() {
        let mut b = ControlBudget::default();
        let t0 = Instant::now();
        let (flood, calm) = (SessionKey(1), SessionKey(2));
        let allowed = (0..10_000).filter(|_| b.allow(flood, t0)).count();
        assert_eq!(allowed, EVENTS_PER_WINDOW as usize);
        assert!(b.allow(calm, t0), "another session keeps its own budget");
        assert!(!b.allow(flood, t0 + WINDOW / 2));
        assert!(b.allow(flood, t0 + WINDOW), "a new window");
        b.forget(flood);
        assert!(!b.windows.contains_key(&flood));
    }
}
