//! The replay windows of one session's sending SSRCs (SRTP and SRTCP),
//! bounded: a client that authenticates packets under ever new SSRCs
//! costs one hash lookup per packet and at most [`MAX_STREAMS`] windows;
//! past that, the older half (by last authenticated packet) is forgotten.
//! That is the session's own loss: a stream whose window is forgotten
//! starts again from its next packet, with a rollover counter of 0 (a
//! stream past 65,536 packets then fails to authenticate until its next
//! rollover; a real client never has this many streams).
//!
//! Where it sits: inside the session's inbound GCM contexts
//! ([`super::gcm::GcmReceiver`], [`super::gcm_rtcp::GcmRtcpReceiver`]) on
//! its media worker; looked up per packet, written per authenticated one.

use rustc_hash::FxHashMap;

/// A replay window of 128 packets over a packet index (RFC 3711 §3.3.2):
/// the highest index seen and which of the 127 before it were seen.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReplayWindow {
    highest: u64,
    /// Bit i: index `highest - i` was seen.
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first packet has `index`.
    pub(super) fn new(index: u64) -> Self {
        ReplayWindow {
            highest: index,
            seen: 1,
        }
    }

    /// The highest index seen.
    pub(super) fn highest(&self) -> u64 {
        self.highest
    }

    /// Whether `index` was seen already, or is too old to tell.
    pub(super) fn is_replay(&self, index: u64) -> bool {
        index <= self.highest && {
            let age = self.highest - index;
            age >= 128 || self.seen & (1u128 << age) != 0
        }
    }

    /// Remembers an authenticated `index` (not a replay).
    pub(super) fn accept(&mut self, index: u64) {
        if index > self.highest {
            let shift = index - self.highest;
            self.seen = if shift >= 128 {
                1
            } else {
                (self.seen << shift) | 1
            };
            self.highest = index;
        } else {
            self.seen |= 1u128 << (self.highest - index);
        }
    }
}

/// Most SSRCs one session keeps a window for: every m-line a session may
/// have (256 by default) with a media, an RTX and a FEC stream, and room.
pub const MAX_STREAMS: usize = 1024;

/// Per SSRC: its replay window and when it last authenticated a packet.
#[derive(Default)]
pub(super) struct ReplayWindows {
    streams: FxHashMap<u32, (ReplayWindow, u64)>,
    /// Packets authenticated so far (the age of a window's last use).
    clock: u64,
}

impl ReplayWindows {
    /// The window of `ssrc`, if it has one.
    pub(super) fn get(&self, ssrc: u32) -> Option<ReplayWindow> {
        self.streams.get(&ssrc).map(|(w, _)| *w)
    }

    /// Records an authenticated packet of `ssrc` with `index` (not a
    /// replay): its window moves, or one is made, forgetting the least
    /// recently used half when [`MAX_STREAMS`] are kept.
    pub(super) fn accept(&mut self, ssrc: u32, index: u64) {
        self.clock += 1;
        if let Some((window, used)) = self.streams.get_mut(&ssrc) {
            window.accept(index);
            *used = self.clock;
            return;
        }
        if self.streams.len() >= MAX_STREAMS {
            // The older half goes in one pass: a client making new SSRCs
            // costs one scan per MAX_STREAMS / 2 of them, not one each.
            let mut ages: Vec<u64> = self.streams.values().map(|(_, used)| *used).collect();
            let (_, median, _) = ages.select_nth_unstable(MAX_STREAMS / 2);
            let median = *median;
            self.streams.retain(|_, (_, used)| *used > median);
        }
        self.streams
            .insert(ssrc, (ReplayWindow::new(index), self.clock));
    }

    /// How many windows are kept.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.streams.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_bounded_and_the_stalest_goes_first() {
        let mut w = ReplayWindows::default();
        w.accept(1, 10);
        for ssrc in 100..(100 + MAX_STREAMS as u32 * 3) {
            w.accept(ssrc, 0);
            w.accept(1, 11 + u64::from(ssrc)); // stream 1 stays in use
        }
        assert!(
            w.len() <= MAX_STREAMS && w.len() >= MAX_STREAMS / 2,
            "{}",
            w.len()
        );
        assert!(w.get(1).is_some(), "the stream in use is kept");
        assert!(w.get(100).is_none(), "the stalest were forgotten");
        assert!(w.get(100 + MAX_STREAMS as u32 * 3 - 1).is_some());
    }

    #[test]
    fn a_kept_window_still_refuses_replays() {
        let mut w = ReplayWindows::default();
        w.accept(7, 1000);
        w.accept(7, 1001);
        let window = w.get(7).unwrap();
        assert!(window.is_replay(1000));
        assert!(window.is_replay(1001));
        assert!(!window.is_replay(1002));
    }
}
