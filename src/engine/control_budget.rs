//! How much one session may ask of the control thread: DTLS records and ICE
//! bindings go there (a handful per second for a real client: a handshake
//! is about a dozen records, consent checks come every few seconds), so a
//! client that floods either cannot fill the queue to the control thread
//! or make it work for others' time. Excess is dropped and counted
//! (`DropReason::ControlBudget`).
//!
//! Where it sits: in the engine, on the path from a received DTLS or STUN
//! datagram to an `EngineEvent`. Call contract: [`allow`](ControlBudget::allow)
//! before pushing such an event (on [`Budget::JustSpent`] push
//! `EngineEvent::Flooding` instead, once per window);
//! [`forget`](ControlBudget::forget) when the session leaves the worker.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap as HashMap;

use crate::ids::SessionKey;

/// Events one session may send per window.
pub const EVENTS_PER_WINDOW: u32 = 64;
/// The window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// What a session's budget says of one more event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Within the budget: send it.
    Within,
    /// The first event past the budget in this window: drop it, and tell
    /// the control thread that the session floods (once per window).
    JustSpent,
    /// Past the budget: drop it.
    Spent,
}

impl Budget {
    /// Whether the event may go.
    pub fn allows(self) -> bool {
        self == Budget::Within
    }
}

/// Per session: when its window started and how many events it sent in it.
#[derive(Debug)]
pub struct ControlBudget {
    windows: HashMap<SessionKey, (Instant, u32)>,
    limit: u32,
}

impl Default for ControlBudget {
    /// [`EVENTS_PER_WINDOW`] per session.
    fn default() -> Self {
        ControlBudget::with_limit(EVENTS_PER_WINDOW)
    }
}

impl ControlBudget {
    /// `limit` events per session per window.
    pub fn with_limit(limit: u32) -> Self {
        ControlBudget {
            windows: HashMap::default(),
            limit,
        }
    }

    /// Whether `key` may send one more event at `now` (and counts it).
    pub fn allow(&mut self, key: SessionKey, now: Instant) -> Budget {
        let (start, count) = self.windows.entry(key).or_insert((now, 0));
        if now < *start || now.saturating_duration_since(*start) >= WINDOW {
            *start = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        match (*count).cmp(&(self.limit + 1)) {
            std::cmp::Ordering::Less => Budget::Within,
            std::cmp::Ordering::Equal => Budget::JustSpent,
            std::cmp::Ordering::Greater => Budget::Spent,
        }
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
        let verdicts: Vec<Budget> = (0..10_000).map(|_| b.allow(flood, t0)).collect();
        let allowed = verdicts.iter().filter(|v| v.allows()).count();
        assert_eq!(allowed, EVENTS_PER_WINDOW as usize);
        let told = verdicts.iter().filter(|v| **v == Budget::JustSpent).count();
        assert_eq!(told, 1, "the control thread hears of it once per window");
        assert!(
            b.allow(calm, t0).allows(),
            "another session keeps its own budget"
        );
        assert_eq!(b.allow(flood, t0 + WINDOW / 2), Budget::Spent);
        assert!(b.allow(flood, t0 + WINDOW).allows(), "a new window");
        b.forget(flood);
        assert!(!b.windows.contains_key(&flood));
    }
}
