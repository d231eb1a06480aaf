//! The rate the client acknowledged: bytes of the packets its feedback
//! reported received over the last [`WINDOW_US`] (in its clock), at most
//! [`PACKETS`] packets, kept with a running sum so that each feedback costs
//! O(packets it reports).
//!
//! Where it sits: inside [`super::BandwidthEstimator`]; the AIMD controller
//! cuts to 0.85 × this on overuse and grows to at most 1.5 × it.

/// Packets remembered at most.
pub const PACKETS: usize = 128;
/// The window, µs.
pub const WINDOW_US: i64 = 500_000;

/// A sliding window of acknowledged packets.
#[derive(Debug)]
pub struct AckedRate {
    /// (arrival µs, bytes), a ring from `head`, `len` long.
    ring: Box<[(i64, u32); PACKETS]>,
    head: usize,
    len: usize,
    bytes: u64,
}

impl Default for AckedRate {
    fn default() -> Self {
        AckedRate {
            ring: Box::new([(0, 0); PACKETS]),
            head: 0,
            len: 0,
            bytes: 0,
        }
    }
}

impl AckedRate {
    /// A packet of `size` bytes arrived at `arrival_us` (client's clock).
    pub fn push(&mut self, arrival_us: i64, size: u32) {
        if self.len == PACKETS {
            self.pop();
        }
        let at = (self.head + self.len) % PACKETS;
        self.ring[at] = (arrival_us, size);
        self.len += 1;
        self.bytes += u64::from(size);
        // Reordered arrivals may be older than the newest: the window is
        // measured from the newest pushed.
        while self.len > 1 && arrival_us - self.ring[self.head].0 > WINDOW_US {
            self.pop();
        }
    }

    fn pop(&mut self) {
        self.bytes -= u64::from(self.ring[self.head].1);
        self.head = (self.head + 1) % PACKETS;
        self.len -= 1;
    }

    /// The rate over the window, bit/s, once it spans at least a tenth of
    /// it.
    pub fn rate(&self) -> Option<f64> {
        if self.len < 2 {
            return None;
        }
        let oldest = self.ring[self.head].0;
        let newest = self.ring[(self.head + self.len - 1) % PACKETS].0;
        let span = newest - oldest;
        (span >= WINDOW_US / 10).then(|| self.bytes as f64 * 8e6 / span as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_stream_reads_its_rate_and_a_slower_one_replaces_it() {
        let mut a = AckedRate::default();
        assert_eq!(a.rate(), None);
        // 1000-byte packets every 4 ms: 2 Mbit/s.
        for i in 0..500i64 {
            a.push(i * 4_000, 1000);
        }
        let r = a.rate().unwrap();
        assert!((r / 2_000_000.0 - 1.0).abs() < 0.02, "{r}");
        // Then every 16 ms: 500 kbit/s, once the window has moved on.
        for i in 0..100i64 {
            a.push(2_000_000 + i * 16_000, 1000);
        }
        let r = a.rate().unwrap();
        assert!((r / 500_000.0 - 1.0).abs() < 0.05, "{r}");
    }
}
