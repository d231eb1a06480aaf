//! What an egress adapter has for its endpoint and has not yet handed to
//! the WebSocket: a bounded queue that drops its oldest message when full.
//! Audio keeps a few seconds (an endpoint that reconnects gets the recent
//! past); video keeps one picture (the latest).
//!
//! Where it sits: the egress task queues each message it makes and moves
//! them, one at a time, to the WebSocket writer whenever the writer has
//! room. A writer that takes nothing for [`STUCK_AFTER`] while messages
//! wait is a stuck endpoint: the task closes the adapter.
//!
//! Sans-IO: messages and `now` in.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Audio messages kept at most: 5 s of 20 ms frames.
pub const AUDIO_BACKLOG: usize = 250;
/// Video messages kept at most: the latest picture.
pub const VIDEO_BACKLOG: usize = 1;
/// An endpoint that takes nothing for this long while messages wait is
/// closed.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

/// The bounded queue of messages `M`.
pub struct Backlog<M> {
    queue: VecDeque<M>,
    capacity: usize,
    /// When the writer last took a message (or the queue last was empty).
    progress: Instant,
    dropped: u64,
}

impl<M> Backlog<M> {
    /// An empty queue of at most `capacity` messages (at least one).
    pub fn new(capacity: usize, now: Instant) -> Self {
        Backlog {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            progress: now,
            dropped: 0,
        }
    }

    /// Queues a message; returns whether an older one was dropped for it.
    pub fn push(&mut self, message: M, now: Instant) -> bool {
        if self.queue.is_empty() {
            self.progress = now;
        }
        let dropped = if self.queue.len() >= self.capacity {
            self.queue.pop_front();
            self.dropped += 1;
            true
        } else {
            false
        };
        self.queue.push_back(message);
        dropped
    }

    /// The next message for the writer, which has room for it.
    pub fn take(&mut self, now: Instant) -> Option<M> {
        let m = self.queue.pop_front()?;
        self.progress = now;
        Some(m)
    }

    /// A new writer starts: waiting counts from `now`.
    pub fn restart(&mut self, now: Instant) {
        self.progress = now;
    }

    /// Whether messages wait.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Messages dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether messages have waited [`STUCK_AFTER`] with none taken.
    pub fn is_stuck(&self, now: Instant) -> bool {
        !self.queue.is_empty() && now.duration_since(self.progress) >= STUCK_AFTER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_drops_the_oldest_and_video_keeps_the_latest() {
        let t0 = Instant::now();
        let mut b = Backlog::new(AUDIO_BACKLOG, t0);
        for i in 0..300u32 {
            b.push(i.to_be_bytes().to_vec(), t0);
        }
        assert_eq!(b.dropped(), 50);
        assert_eq!(b.take(t0), Some(50u32.to_be_bytes().to_vec()));
        let mut v = Backlog::new(VIDEO_BACKLOG, t0);
        assert!(!v.push(vec![1], t0));
        assert!(v.push(vec![2], t0));
        assert_eq!(v.take(t0), Some(vec![2]));
        assert!(v.is_empty());
    }

    #[test]
    fn an_endpoint_that_takes_nothing_is_stuck_one_that_is_idle_is_not() {
        let t0 = Instant::now();
        let mut b = Backlog::new(4, t0);
        assert!(!b.is_stuck(t0 + STUCK_AFTER * 2)); // nothing waits
        b.push(vec![1], t0 + STUCK_AFTER * 2);
        assert!(!b.is_stuck(t0 + STUCK_AFTER * 2 + Duration::from_secs(1)));
        assert!(b.is_stuck(t0 + STUCK_AFTER * 3));
        b.take(t0 + STUCK_AFTER * 3);
        assert!(!b.is_stuck(t0 + STUCK_AFTER * 5));
    }
}
