//! Giving freed heap back to the system. When sessions go, glibc's malloc
//! keeps the pages they used in its arenas (one per thread that
//! allocated), so without help the process's RSS stays at its peak however
//! many sessions remain. The control thread's tick asks malloc to return
//! free pages after the registry shrank, at most once per
//! [`TRIM_INTERVAL`]; it runs without the control lock held. With other C
//! libraries this does nothing.

use std::time::{Duration, Instant};

/// Least time between two trims.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(20);

/// When to trim: after the session count fell since the last look.
#[derive(Debug)]
pub struct Trim {
    next: Instant,
    sessions: usize,
}

impl Trim {
    /// The first look is due one interval after `now`.
    pub fn new(now: Instant) -> Self {
        Trim {
            next: now + TRIM_INTERVAL,
            sessions: 0,
        }
    }

    /// Whether to trim now, with `sessions` in the registry: the interval
    /// passed and there are fewer sessions than at the last look.
    pub fn due(&mut self, now: Instant, sessions: usize) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + TRIM_INTERVAL;
        let shrank = sessions < self.sessions;
        self.sessions = sessions;
        shrank
    }
}

/// Returns malloc's free pages to the system (glibc's `malloc_trim`).
pub fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_interval_after_the_registry_shrank() {
        let t0 = Instant::now();
        let mut trim = Trim::new(t0);
        assert!(!trim.due(t0, 10), "not before the first interval");
        let t1 = t0 + TRIM_INTERVAL;
        assert!(!trim.due(t1, 10), "grew from nothing: no trim");
        assert!(
            !trim.due(t1 + Duration::from_secs(1), 2),
            "within the interval"
        );
        let t2 = t1 + TRIM_INTERVAL;
        assert!(trim.due(t2, 2), "shrank from 10 to 2");
        assert!(!trim.due(t2 + TRIM_INTERVAL, 2), "unchanged");
        assert!(!trim.due(t2 + TRIM_INTERVAL * 2, 5), "grew");
        assert!(trim.due(t2 + TRIM_INTERVAL * 3, 0), "shrank to none");
        release_freed_heap();
    }
}
