//! Shedding when a DTLS thread is short of CPU: the records the media
//! workers hand it ([`DATA_QUEUE`] at most) back up once the
//! messages it delivers cost more than it has. Past that bound the workers
//! drop records, a publisher's among them, and SCTP waits a second or more
//! to retransmit them: every subscriber of that publisher then gets its
//! messages seconds late. Instead the thread drops a share of its
//! deliveries (counted as `overload`) before its queue fills, so that what
//! it delivers stays within what it can do and what it takes in is read
//! promptly.
//!
//! The share is set as PIE sets its drop probability (RFC 8033 §4.2), on
//! the queue's length rather than its delay: every [`UPDATE`] it grows
//! with how far the queue is above [`TARGET_RECORDS`] and with how fast it
//! grew, and shrinks likewise. Deliveries are dropped evenly at that share
//! (a credit, not a coin), so the same share costs each message alike;
//! none within [`BURST_ALLOWANCE`] of a queue's rise from idle, nor while
//! the queue is short and the share small.
//!
//! Where it sits: one per DTLS thread (`dtls_threads`), which feeds it its
//! queue's length with [`Overload::update`] as it takes jobs and asks
//! [`Overload::sheds`] before each delivery. Sans-IO: `now` and a length
//! in.

use std::time::{Duration, Instant};

/// Application-data records queued to one DTLS thread at most: past this,
/// a media worker drops them (counted) and SCTP retransmits.
pub const DATA_QUEUE: usize = 4096;

/// Records waiting past which the thread is behind: a few milliseconds
/// of its work.
pub const TARGET_RECORDS: usize = 128;
/// How often the share is set.
pub const UPDATE: Duration = Duration::from_millis(16);
/// Gain on the queue's distance from the target, per update, per
/// [`SCALE`] records.
const ALPHA: f64 = 0.125;
/// Gain on the queue's growth since the last update, per [`SCALE`] records.
const BETA: f64 = 1.25;
/// The queue length the gains are expressed in.
const SCALE: f64 = 4096.0;
/// A burst the thread rides out before it sheds, from idle (RFC 8033's
/// burst allowance): a client's burst is not an overload.
pub const BURST_ALLOWANCE: Duration = Duration::from_millis(150);

/// One thread's share of deliveries to drop.
#[derive(Debug, Clone, Default)]
pub struct Overload {
    share: f64,
    credit: f64,
    /// When the share was last set.
    last: Option<Instant>,
    /// The queue's length then.
    previous: usize,
    /// Its latest length.
    latest: usize,
    /// What is left of the burst allowance.
    allowance: Duration,
}

impl Overload {
    /// The thread's queue holds `records` at `now`; the share is set again
    /// once each [`UPDATE`].
    pub fn update(&mut self, now: Instant, records: usize) {
        self.latest = records;
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < UPDATE)
        {
            return;
        }
        let short = TARGET_RECORDS / 2;
        if self.share == 0.0 && records < short && self.previous < short {
            self.allowance = BURST_ALLOWANCE;
        } else {
            self.allowance = self.allowance.saturating_sub(UPDATE);
        }
        let (now_len, before) = (records as f64, self.previous as f64);
        let target = TARGET_RECORDS as f64;
        let mut share =
            self.share + ALPHA * (now_len - target) / SCALE + BETA * (now_len - before) / SCALE;
        if records == 0 && self.previous == 0 {
            // Idle: let go faster (RFC 8033 §4.2's decay).
            share *= 0.9;
        }
        self.share = share.clamp(0.0, 1.0);
        self.previous = records;
        self.last = Some(now);
    }

    /// Whether the next delivery is dropped: never within the burst
    /// allowance, nor while the queue is short and the share small (RFC
    /// 8033 §4.1).
    pub fn sheds(&mut self) -> bool {
        let short = self.latest < TARGET_RECORDS / 2 && self.share < 0.2;
        if self.share <= 0.0 || !self.allowance.is_zero() || short {
            return false;
        }
        self.credit += self.share;
        if self.credit >= 1.0 {
            self.credit -= 1.0;
            true
        } else {
            false
        }
    }

    /// The share of deliveries dropped now.
    pub fn share(&self) -> f64 {
        self.share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that can deliver `capacity` messages a second, offered
    /// `offered`, each delivery one record of work in its queue (its
    /// acknowledgement), over `secs` in 1 ms steps: (the longest queue in
    /// the second half, the share delivered).
    fn run(capacity: f64, offered: f64, secs: u64) -> (usize, f64) {
        let t0 = Instant::now();
        let mut o = Overload::default();
        let mut queue = 0f64;
        let (mut delivered, mut offered_n) = (0u64, 0u64);
        let mut longest = 0usize;
        let mut arrivals = 0f64;
        for ms in 0..secs * 1000 {
            let now = t0 + Duration::from_millis(ms);
            o.update(now, queue as usize);
            arrivals += offered / 1000.0;
            while arrivals >= 1.0 {
                arrivals -= 1.0;
                offered_n += 1;
                if !o.sheds() {
                    delivered += 1;
                    queue += 1.0;
                }
            }
            queue = (queue - capacity / 1000.0).max(0.0);
            if ms >= secs * 500 {
                longest = longest.max(queue as usize);
            }
        }
        (longest, delivered as f64 / offered_n as f64)
    }

    #[test]
    fn an_overloaded_thread_keeps_its_queue_near_the_target_and_delivers_its_capacity() {
        // Offered twice what it can do.
        let (longest, share) = run(60_000.0, 120_000.0, 10);
        assert!(longest <= 8 * TARGET_RECORDS, "{longest} records");
        assert!((0.45..=0.55).contains(&share), "{share}");
    }

    #[test]
    fn a_thread_that_keeps_up_drops_nothing() {
        let (_, share) = run(60_000.0, 50_000.0, 10);
        assert_eq!(share, 1.0);
    }

    #[test]
    fn a_burst_from_idle_is_ridden_out() {
        let t0 = Instant::now();
        let mut o = Overload::default();
        o.update(t0, 0);
        // A burst: the queue is long for 100 ms, then drains.
        for i in 1..=6u32 {
            o.update(t0 + UPDATE * i, 1000);
            assert!(!o.sheds(), "within the allowance");
        }
        // The same backlog kept up past the allowance is an overload.
        let mut shed = 0;
        for i in 7..=40u32 {
            o.update(t0 + UPDATE * i, 1000);
            shed += usize::from(o.sheds());
        }
        assert!(shed > 0);
    }

    #[test]
    fn the_share_follows_the_load_down() {
        let t0 = Instant::now();
        let mut o = Overload::default();
        for i in 0..100u64 {
            o.update(t0 + UPDATE * i as u32, 2048);
        }
        assert_eq!(o.share(), 1.0);
        for i in 100..200u64 {
            o.update(t0 + UPDATE * i as u32, 0);
        }
        assert_eq!(o.share(), 0.0);
        assert!(!o.sheds());
    }
}
