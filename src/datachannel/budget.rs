//! How many bytes of data-channel messages the server holds for clients:
//! queued in a session's SCTP send buffers (sent, not yet acknowledged, or
//! waiting for the peer's window) and held for `waitForAck` subscribers.
//! Bounded per channel (`channels::SEND_BUFFER_BYTES`, `HELD_BYTES`), per
//! session ([`SESSION_QUEUED_BYTES`], [`SESSION_HELD_BYTES`]) and per
//! server ([`SERVER_BYTES`]): a subscriber that stops acknowledging, with
//! every channel it may have, costs at most its session's share, and all
//! of them together at most the server's.
//!
//! Where it sits: in each session's [`super::channels::SessionChannels`],
//! on the DTLS thread that runs it; the server's total is one atomic the
//! threads share. Nothing here is on the media path.

use std::sync::atomic::{AtomicUsize, Ordering};

use rustc_hash::FxHashMap;

/// Bytes one session may have queued in its SCTP send buffers, all
/// channels together.
pub const SESSION_QUEUED_BYTES: usize = 16 * 1024 * 1024;
/// Bytes one session may have held for `waitForAck`, all channels together.
pub const SESSION_HELD_BYTES: usize = 8 * 1024 * 1024;
/// Bytes all sessions together may have queued or held.
pub const SERVER_BYTES: usize = 1024 * 1024 * 1024;

/// Queued and held bytes of every session of the process.
static SERVER: AtomicUsize = AtomicUsize::new(0);

/// What the server holds in all (for metrics and tests).
pub fn server_bytes() -> usize {
    SERVER.load(Ordering::Relaxed)
}

/// One session's bytes, mirrored into the server's total.
///
/// Call contract: [`Self::set_queued`] whenever a channel's buffered
/// amount is read (after a send, after the peer's packets); ask
/// [`Self::admits_queue`] before a send and [`Self::hold`] before holding;
/// [`Self::release_held`] when held messages go or are dropped.
#[derive(Debug, Default)]
pub struct Budget {
    /// Per channel: bytes queued, as last read.
    queued: FxHashMap<u16, usize>,
    queued_total: usize,
    held_total: usize,
}

impl Budget {
    /// Channel `id` has `bytes` queued now.
    pub fn set_queued(&mut self, id: u16, bytes: usize) {
        let before = if bytes == 0 {
            self.queued.remove(&id).unwrap_or(0)
        } else {
            self.queued.insert(id, bytes).unwrap_or(0)
        };
        self.queued_total = self.queued_total + bytes - before;
        if bytes >= before {
            SERVER.fetch_add(bytes - before, Ordering::Relaxed);
        } else {
            SERVER.fetch_sub(before - bytes, Ordering::Relaxed);
        }
    }

    /// Reads again what each channel with bytes queued has queued now
    /// (`read` answers for one channel), after the peer acknowledged some.
    pub fn refresh(&mut self, mut read: impl FnMut(u16) -> usize) {
        let mut total = 0;
        self.queued.retain(|id, bytes| {
            *bytes = read(*id);
            total += *bytes;
            *bytes > 0
        });
        let before = std::mem::replace(&mut self.queued_total, total);
        if total >= before {
            SERVER.fetch_add(total - before, Ordering::Relaxed);
        } else {
            SERVER.fetch_sub(before - total, Ordering::Relaxed);
        }
    }

    /// Whether `len` more bytes may be queued: within the session's and
    /// the server's budgets.
    pub fn admits_queue(&self, len: usize) -> bool {
        self.queued_total + len <= SESSION_QUEUED_BYTES && server_bytes() + len <= SERVER_BYTES
    }

    /// Holds `len` bytes for a waiting subscriber, if the session's and the
    /// server's budgets allow.
    pub fn hold(&mut self, len: usize) -> bool {
        if self.held_total + len > SESSION_HELD_BYTES || server_bytes() + len > SERVER_BYTES {
            return false;
        }
        self.held_total += len;
        SERVER.fetch_add(len, Ordering::Relaxed);
        true
    }

    /// `len` held bytes went (sent, or dropped with their channel).
    pub fn release_held(&mut self, len: usize) {
        let len = len.min(self.held_total);
        self.held_total -= len;
        SERVER.fetch_sub(len, Ordering::Relaxed);
    }

    /// The session's queued and held bytes.
    pub fn total(&self) -> usize {
        self.queued_total + self.held_total
    }
}

impl Drop for Budget {
    fn drop(&mut self) {
        SERVER.fetch_sub(self.total(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sessions_bytes_are_bounded_and_given_back() {
        let mut b = Budget::default();
        b.set_queued(1, 10 * 1024 * 1024);
        assert!(b.admits_queue(6 * 1024 * 1024));
        b.set_queued(2, 6 * 1024 * 1024);
        assert!(!b.admits_queue(1), "16 MiB queued: the session's budget");
        b.refresh(|id| if id == 1 { 0 } else { 6 * 1024 * 1024 });
        assert!(b.admits_queue(1024));
        assert_eq!(b.queued.len(), 1, "channel 1 has nothing queued");
        assert!(b.hold(SESSION_HELD_BYTES));
        assert!(!b.hold(1));
        b.release_held(SESSION_HELD_BYTES);
        assert!(b.hold(1));
        assert_eq!(b.total(), 6 * 1024 * 1024 + 1);
    }
}
