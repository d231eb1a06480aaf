//! Shedding by queue delay: a channel's SCTP send queue takes a message
//! only while what it already holds would drain within [`MAX_QUEUE_DELAY`]
//! at the rate the channel has been draining. A subscriber on a slow
//! path, or every subscriber of a server short of CPU, then loses the
//! excess at once (counted) instead of receiving everything seconds late
//! from a queue that grows until the memory budgets stop it. A channel
//! that keeps up but is stalled (SCTP waits to retransmit a lost packet)
//! keeps taking messages for up to [`MAX_STALL`]: they would wait behind
//! the lost one anyway, and it drains them at once when it resumes.
//!
//! The drain rate is measured only while the channel has bytes queued (a
//! channel that is idle is not slow), over windows of at least
//! [`WINDOW`], and the best of the latest windows is taken (a stall while
//! SCTP waits to retransmit is not a slow channel); a channel whose client
//! acknowledges nothing measures zero and keeps [`MIN_QUEUE_BYTES`]. Until
//! [`BELIEVED_AFTER`] windows closed the memory cap
//! (`channels::SEND_BUFFER_BYTES`) alone applies, so a burst to a
//! subscriber that keeps up is carried whole.
//!
//! Where it sits: in each session's [`super::channels::SessionChannels`],
//! on the DTLS thread that runs it: before a send it reads the channel's
//! buffered amount into [`QueueDelay::drained_to`] and asks
//! [`QueueDelay::admits`], after it [`QueueDelay::queued`]; after each
//! packet from the client, [`QueueDelay::drained_to`] for each channel with
//! bytes queued. Sans-IO: `now` and byte counts in.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;

/// The longest a message may expect to wait in a channel's send queue.
pub const MAX_QUEUE_DELAY: Duration = Duration::from_millis(500);
/// A channel may always queue this much, however slowly it drains.
pub const MIN_QUEUE_BYTES: usize = 64 * 1024;
/// The shortest span a drain rate is measured over.
pub const WINDOW: Duration = Duration::from_millis(100);
/// Windows whose best rate is the channel's: at least 1.6 s, longer than
/// SCTP's 1 s minimum retransmission timeout, so that a lost packet's
/// stall does not make a channel that keeps up look slow.
const SAMPLES: usize = 16;
/// Windows measured before the rate is believed (until then the memory
/// cap alone applies): one stall at the start is not a slow channel.
pub const BELIEVED_AFTER: usize = 4;
/// No acknowledgement for this long while backlogged: SCTP waits to
/// retransmit a lost packet (its timeout is at least 1 s), the channel is
/// stalled rather than slow. (Acknowledgements of a flowing channel come
/// each round trip, delayed by at most 200 ms.)
pub const STALL: Duration = Duration::from_millis(500);
/// Stalls ridden out at most: SCTP's first retransmission timeout and its
/// doubling (1 s + 2 s).
pub const MAX_STALL: Duration = Duration::from_secs(3);

/// One channel's drain rate.
#[derive(Debug, Clone, Copy, Default)]
struct Drain {
    /// Bytes queued, as last read.
    queued: usize,
    /// The measurement under way: since when the channel has been
    /// backlogged, and the bytes it drained since.
    window: Option<(Instant, usize)>,
    /// Bytes per second drained in the latest windows while backlogged.
    samples: [f32; SAMPLES],
    /// Windows measured (the next sample's slot is this modulo SAMPLES).
    measured: usize,
    /// When the queue last drained (or began, after being empty).
    progress: Option<Instant>,
}

impl Drain {
    fn drained_to(&mut self, now: Instant, queued: usize) {
        let drained = self.queued.saturating_sub(queued);
        if drained > 0 || self.queued == 0 {
            self.progress = Some(now);
        }
        self.queued = queued;
        let Some((start, bytes)) = self.window.as_mut() else {
            if queued > 0 {
                self.window = Some((now, 0));
            }
            return;
        };
        *bytes += drained;
        let elapsed = now.saturating_duration_since(*start);
        if elapsed >= WINDOW {
            let sample = *bytes as f64 / elapsed.as_secs_f64();
            self.sample(sample);
            self.window = (queued > 0).then_some((now, 0));
        } else if queued == 0 {
            // Emptied before the window closed: it drains at least this
            // fast (a lower bound, kept only where it is news).
            if !elapsed.is_zero() {
                let sample = *bytes as f64 / elapsed.as_secs_f64();
                if self.rate().is_none_or(|r| sample > r) {
                    self.sample(sample);
                }
            }
            self.window = None;
        }
    }

    fn sample(&mut self, rate: f64) {
        self.samples[self.measured % SAMPLES] = rate as f32;
        self.measured += 1;
    }

    /// The best rate of the latest windows; `None` until
    /// [`BELIEVED_AFTER`] closed.
    fn rate(&self) -> Option<f64> {
        let n = self.measured.min(SAMPLES);
        (self.measured >= BELIEVED_AFTER)
            .then(|| f64::from(self.samples[..n].iter().fold(0f32, |a, b| a.max(*b))))
    }

    /// Whether another message goes, with `queued` bytes queued at `now`
    /// (see [`QueueDelay::admits`]).
    fn admits(&self, now: Instant, queued: usize, cap: usize) -> bool {
        if queued < self.limit(cap) {
            return true;
        }
        let stalled = self
            .progress
            .map(|t| now.saturating_duration_since(t))
            .is_some_and(|d| (STALL..MAX_STALL).contains(&d));
        stalled && queued < cap
    }

    /// The bytes the channel may hold: [`MAX_QUEUE_DELAY`] of its rate,
    /// within [`MIN_QUEUE_BYTES`] and `cap`.
    fn limit(&self, cap: usize) -> usize {
        match self.rate() {
            None => cap,
            Some(rate) => {
                let bytes = rate * MAX_QUEUE_DELAY.as_secs_f64();
                (bytes as usize).clamp(MIN_QUEUE_BYTES.min(cap), cap)
            }
        }
    }
}

/// The drain rates of one session's channels.
///
/// Call contract: as the module says; [`Self::forget`] when a channel
/// goes. Entries exist only for channels that queued something.
#[derive(Debug, Default)]
pub struct QueueDelay {
    channels: FxHashMap<u16, Drain>,
}

impl QueueDelay {
    /// Channel `id` has `queued` bytes in its send queue at `now` (read
    /// from SCTP): what left since the last reading drained.
    pub fn drained_to(&mut self, id: u16, now: Instant, queued: usize) {
        match self.channels.get_mut(&id) {
            Some(d) => d.drained_to(now, queued),
            None if queued > 0 => {
                let mut d = Drain::default();
                d.drained_to(now, queued);
                self.channels.insert(id, d);
            }
            None => {}
        }
    }

    /// Channel `id` has `queued` bytes after a send at `now`.
    pub fn queued(&mut self, id: u16, now: Instant, queued: usize) {
        let d = self.channels.entry(id).or_default();
        if d.queued == 0 {
            d.progress = Some(now);
        }
        d.queued = queued;
        if d.window.is_none() && queued > 0 {
            d.window = Some((now, 0));
        }
    }

    /// Whether channel `id`, holding `queued` bytes at `now`, takes
    /// another message: while what it holds drains within
    /// [`MAX_QUEUE_DELAY`] at its rate, or while it is stalled (between
    /// [`STALL`] and [`MAX_STALL`] without an acknowledgement); never past
    /// `cap`, the memory bound. The message itself may go past the target,
    /// so a large one is not refused for its size.
    pub fn admits(&self, id: u16, now: Instant, queued: usize, cap: usize) -> bool {
        match self.channels.get(&id) {
            Some(d) => d.admits(now, queued, cap),
            None => queued < cap,
        }
    }

    /// The drain rate measured for channel `id`, bytes per second.
    pub fn rate(&self, id: u16) -> Option<f64> {
        self.channels.get(&id).and_then(|d| d.rate())
    }

    /// Channel `id` is gone.
    pub fn forget(&mut self, id: u16) {
        self.channels.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: usize = 8 * 1024 * 1024;

    /// A channel draining `rate` bytes/s, fed `offered` bytes/s in 1 KiB
    /// messages, read every 10 ms for `secs`: (accepted bytes, the most
    /// it held in the second half, the delay that implies at its rate).
    fn feed(rate: usize, offered: usize, secs: u64) -> (usize, usize, Duration) {
        let t0 = Instant::now();
        let mut q = QueueDelay::default();
        let mut queued = 0usize;
        let mut accepted = 0;
        let mut most = 0;
        let step = Duration::from_millis(10);
        let mut now = t0;
        while now < t0 + Duration::from_secs(secs) {
            now += step;
            queued = queued.saturating_sub(rate / 100);
            q.drained_to(1, now, queued);
            for _ in 0..offered / 100 / 1024 {
                if q.admits(1, now, queued, CAP) {
                    queued += 1024;
                    accepted += 1024;
                    q.queued(1, now, queued);
                }
            }
            if now >= t0 + Duration::from_secs(secs) / 2 {
                most = most.max(queued);
            }
        }
        let delay = Duration::from_secs_f64(most as f64 / rate.max(1) as f64);
        (accepted, most, delay)
    }

    #[test]
    fn a_slow_channel_holds_half_a_second_and_takes_what_it_drains() {
        // 200 KB/s drained, 1 MB/s offered: the queue settles near 100 KB.
        let (accepted, most, delay) = feed(200_000, 1_000_000, 10);
        assert!(
            delay <= Duration::from_millis(700),
            "{most} bytes, {delay:?}"
        );
        assert!(
            accepted >= 10 * 200_000 * 9 / 10,
            "{accepted}: what it drains"
        );
    }

    #[test]
    fn a_channel_that_keeps_up_loses_nothing() {
        let offered = 500_000;
        let (accepted, _, _) = feed(2_000_000, offered, 10);
        assert_eq!(accepted, 10 * (offered / 100 / 1024) * 1024 * 100);
    }

    #[test]
    fn a_stalled_channel_takes_messages_for_max_stall_then_none() {
        // A client that acknowledges nothing, offered 1 MB/s for 8 s: it
        // is taken as stalled (a lost packet) for up to 3 s, then not.
        let (accepted, most, _) = feed(0, 1_000_000, 8);
        let bound = 1_000_000 * MAX_STALL.as_millis() as usize / 1000 + 20 * 1024;
        assert!(accepted <= bound, "{accepted}");
        assert!(accepted >= bound / 2, "{accepted}: a stall is ridden out");
        assert_eq!(accepted, most, "nothing drained");
    }

    #[test]
    fn a_burst_to_an_unmeasured_channel_is_taken_whole_and_idle_is_not_slow() {
        let t0 = Instant::now();
        let mut q = QueueDelay::default();
        // 4 MB at once: no rate yet, so only the cap applies.
        let mut queued = 0;
        for _ in 0..4096 {
            assert!(q.admits(1, t0, queued, CAP));
            queued += 1024;
            q.queued(1, t0, queued);
        }
        // It drains at 4 MB/s, then idles for a minute.
        let mut now = t0;
        while queued > 0 {
            now += Duration::from_millis(10);
            queued = queued.saturating_sub(40_000);
            q.drained_to(1, now, queued);
        }
        let rate = q.rate(1).expect("measured");
        assert!((3.9e6..4.1e6).contains(&rate), "{rate}");
        now += Duration::from_secs(60);
        q.drained_to(1, now, 0);
        assert_eq!(q.rate(1), Some(rate), "idle measures nothing");
        // Half a second of 4 MB/s.
        assert!(q.admits(1, now, 1 << 20, CAP));
        assert!(!q.admits(1, now, 2_100_000, CAP));
        q.forget(1);
        assert_eq!(q.rate(1), None);
    }
}
