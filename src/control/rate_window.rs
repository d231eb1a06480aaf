//! Request rates: a session's API requests counted in one-second windows
//! (429 `rate_limited` past `--max-requests-per-second`), and the same per
//! client address for sessions/new.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::calls::CallsError;

/// Requests counted in one-second windows: 429 past a maximum.
#[derive(Debug, Clone, Copy)]
pub struct RateWindow {
    start: Instant,
    count: u32,
    /// Never 429: a cluster's relay sessions, whose requests are a node's
    /// on behalf of its clients (each of them limited on that node).
    exempt: bool,
}

impl RateWindow {
    /// A window starting at `now`, with nothing counted.
    pub fn new(now: Instant) -> Self {
        RateWindow {
            start: now,
            count: 0,
            exempt: false,
        }
    }

    /// A window that never refuses (a relay's session, on either node).
    pub fn exempt(now: Instant) -> Self {
        RateWindow {
            exempt: true,
            ..RateWindow::new(now)
        }
    }

    /// Counts a request at `now`; 429 past `max` in its window.
    pub fn count(&mut self, max: u32, now: Instant) -> Result<(), CallsError> {
        if self.exempt {
            return Ok(());
        }
        if now.saturating_duration_since(self.start) >= WINDOW {
            *self = RateWindow::new(now);
        }
        self.count += 1;
        if self.count > max {
            return Err(CallsError::rate_limited());
        }
        Ok(())
    }

    /// Whether its window ended before `now`.
    fn ended(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.start) >= WINDOW
    }
}

/// A [`RateWindow`] per client address (the optional sessions/new limit
/// per address).
#[derive(Default)]
pub struct AddressRate {
    windows: HashMap<IpAddr, RateWindow>,
}

/// Addresses remembered before stale windows are dropped.
const ADDRESSES_KEPT: usize = 65_536;

impl AddressRate {
    /// Counts a request from `ip`; 429 past `max` in its window.
    pub fn check(&mut self, ip: IpAddr, max: u32, now: Instant) -> Result<(), CallsError> {
        if self.windows.len() >= ADDRESSES_KEPT {
            self.windows.retain(|_, w| !w.ended(now));
        }
        self.windows
            .entry(ip)
            .or_insert_with(|| RateWindow::new(now))
            .count(max, now)
    }
}

/// A rate window.
const WINDOW: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exempt_window_never_refuses() {
        let now = Instant::now();
        let mut limited = RateWindow::new(now);
        for _ in 0..50 {
            assert!(limited.count(50, now).is_ok());
        }
        assert!(limited.count(50, now).is_err());
        let mut exempt = RateWindow::exempt(now);
        for _ in 0..1000 {
            assert!(exempt.count(50, now).is_ok());
        }
    }
}
