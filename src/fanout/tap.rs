//! Where a recording meets the media path: a [`Tap`] on a pushed track.
//!
//! Where it sits: the publisher's worker, in the fan-out stage, hands each
//! unprotected RTP packet and sender report of a tapped track to its taps
//! ([`Tap::offer_rtp`], [`Tap::offer_sender_report`]) after its subscribers
//! got it. A tap is a bounded queue of buffers taken from its own pool, so
//! the worker never allocates, never blocks and never waits on a disk: when
//! the recorder falls behind, the pool runs dry and packets are dropped and
//! counted. The recorder thread drains the queue ([`Tap::drain`]) and gives
//! the buffers back.
//!
//! The other way, the recorder asks for a keyframe by raising a flag
//! ([`Tap::request_keyframe`]) that the worker turns into a keyframe
//! request of the track, like a subscriber's PLI.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_queue::ArrayQueue;

use crate::simulcast::Layer;
use crate::wire::rtcp::SenderInfo;

/// Capacity of one pooled buffer: the largest RTP packet a worker receives
/// fits without growing it.
pub const BUFFER_BYTES: usize = 1_536;

/// Packets a video track's tap holds (about 0.5 s at 8 Mbit/s).
pub const VIDEO_PACKETS: usize = 384;
/// Packets an audio track's tap holds (about 2.5 s of 20 ms frames).
pub const AUDIO_PACKETS: usize = 128;

/// One thing the worker handed over.
pub enum Tapped {
    /// An unprotected RTP packet (header and payload), when it arrived, and
    /// its simulcast layer (simulcast tracks only).
    Rtp {
        /// Arrival on the worker.
        at: Instant,
        /// Its layer.
        layer: Option<Layer>,
        /// The packet; give it back with [`Tap::recycle`].
        packet: Vec<u8>,
    },
    /// A sender report of the publisher's stream.
    SenderReport {
        /// Arrival on the worker.
        at: Instant,
        /// Its sender info.
        info: SenderInfo,
    },
}

/// A recorder's tap on one pushed track: shared by the track's fan-out
/// (the worker, writer) and the recorder thread (reader).
pub struct Tap {
    filled: ArrayQueue<Tapped>,
    free: ArrayQueue<Vec<u8>>,
    keyframe_wanted: AtomicBool,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Tap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tap")
            .field("depth", &self.depth())
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Tap {
    /// A tap holding at most `packets` packets, its buffers allocated now.
    pub fn new(packets: usize) -> Self {
        let packets = packets.max(1);
        let free = ArrayQueue::new(packets);
        for _ in 0..packets {
            let _ = free.push(Vec::with_capacity(BUFFER_BYTES));
        }
        Tap {
            // Sender reports need no buffer: room for some beside the packets.
            filled: ArrayQueue::new(packets + 16),
            free,
            keyframe_wanted: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    /// Worker side: queues a copy of an unprotected RTP packet; without a
    /// free buffer (the recorder is behind), drops it and counts.
    pub fn offer_rtp(&self, at: Instant, layer: Option<Layer>, plain: &[u8]) {
        if plain.len() > BUFFER_BYTES {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let Some(mut packet) = self.free.pop() else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        packet.clear();
        packet.extend_from_slice(plain);
        if let Err(Tapped::Rtp { packet, .. }) = self.filled.push(Tapped::Rtp { at, layer, packet })
        {
            let _ = self.free.push(packet);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Worker side: queues a sender report (dropped and counted when full).
    pub fn offer_sender_report(&self, at: Instant, info: SenderInfo) {
        if self.filled.push(Tapped::SenderReport { at, info }).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Worker side: whether the recorder asked for a keyframe since the
    /// last call (the flag is cleared).
    pub fn take_keyframe_request(&self) -> bool {
        self.keyframe_wanted.load(Ordering::Relaxed)
            && self.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// Recorder side: asks the publisher for a keyframe (the worker sends
    /// the request with the track's next packet).
    pub fn request_keyframe(&self) {
        self.keyframe_wanted.store(true, Ordering::Relaxed);
    }

    /// Recorder side: what is queued, in order; at most a queue's worth
    /// per call (the worker refills it meanwhile: a flood must not keep
    /// the recorder here).
    pub fn drain(&self, mut each: impl FnMut(Tapped)) {
        for _ in 0..self.filled.capacity() {
            let Some(t) = self.filled.pop() else {
                return;
            };
            each(t);
        }
    }

    /// Recorder side: gives a packet's buffer back to the pool.
    pub fn recycle(&self, packet: Vec<u8>) {
        let _ = self.free.push(packet);
    }

    /// Packets dropped because the recorder was behind (or too large).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Items waiting for the recorder.
    pub fn depth(&self) -> usize {
        self.filled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_tap_drops_and_counts_and_recycled_buffers_come_back() {
        let tap = Tap::new(2);
        let now = Instant::now();
        for i in 0..3u8 {
            tap.offer_rtp(now, None, &[0x80, i]);
        }
        assert_eq!(tap.dropped(), 1);
        assert_eq!(tap.depth(), 2);
        let mut got = Vec::new();
        tap.drain(|t| {
            if let Tapped::Rtp { packet, .. } = t {
                got.push(packet[1]);
                tap.recycle(packet);
            }
        });
        assert_eq!(got, [0, 1]);
        assert_eq!(tap.depth(), 0);
        tap.offer_rtp(now, None, &[0x80, 9]);
        assert_eq!(tap.depth(), 1);
        assert_eq!(tap.dropped(), 1);
        // A packet larger than a buffer is dropped, not grown into.
        tap.offer_rtp(now, None, &[0; BUFFER_BYTES + 1]);
        assert_eq!(tap.dropped(), 2);
    }

    #[test]
    fn a_keyframe_request_is_taken_once() {
        let tap = Tap::new(1);
        assert!(!tap.take_keyframe_request());
        tap.request_keyframe();
        assert!(tap.take_keyframe_request());
        assert!(!tap.take_keyframe_request());
    }
}
