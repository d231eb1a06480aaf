//! Counters of the data channels of every session, shared by the DTLS
//! threads that run them and read by `/metrics`: messages the clients
//! sent, messages delivered to channels, and messages dropped by reason.

use std::sync::atomic::{AtomicU64, Ordering};

use super::channels::Drops;

/// What the DTLS threads count.
#[derive(Debug, Default)]
pub struct DataChannelCounters {
    /// Messages received from clients.
    pub received: AtomicU64,
    /// Messages handed to SCTP for a client.
    pub delivered: AtomicU64,
    drops: [AtomicU64; DROP_REASONS.len()],
}

/// The drop reasons, as metric labels, in the order of [`Drops::by_reason`].
pub const DROP_REASONS: [&str; 9] = [
    "unknown_channel",
    "no_reply_right",
    "held_full",
    "send_buffer_full",
    "queue_delay",
    "overload",
    "not_connected",
    "refused",
    "malformed_sctp",
];

impl Drops {
    /// The counts in the order of [`DROP_REASONS`].
    pub fn by_reason(&self) -> [u64; DROP_REASONS.len()] {
        [
            self.unknown_channel,
            self.no_reply_right,
            self.held_full,
            self.send_buffer_full,
            self.queue_delay,
            self.overload,
            self.not_connected,
            self.refused,
            self.malformed,
        ]
    }
}

impl DataChannelCounters {
    /// Adds what one session's channels counted since they were last asked.
    pub fn add(&self, received: u64, delivered: u64, drops: &Drops) {
        if received > 0 {
            self.received.fetch_add(received, Ordering::Relaxed);
        }
        if delivered > 0 {
            self.delivered.fetch_add(delivered, Ordering::Relaxed);
        }
        for (counter, n) in self.drops.iter().zip(drops.by_reason()) {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Drops so far, with their labels.
    pub fn drops(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DROP_REASONS
            .iter()
            .zip(&self.drops)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
    }

    /// A counter's value.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
