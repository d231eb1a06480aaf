//! Audio ingest's buffer and clock: PCM arrives in messages of any size,
//! as fast as the endpoint sends it; it leaves as one 20 ms frame per
//! 20 ms of wall-clock time, with silence wherever nothing is buffered, so
//! that the published track's RTP clock never jumps.
//!
//! Where it sits: the ingest task hands each message's `payload` to
//! [`PcmFramer::push`], which cuts it into whole frames (an empty payload
//! ends a segment: its last partial frame is padded with silence); the task
//! encodes each frame to Opus and queues it here ([`Pacer::queue`]); on its
//! timer it takes due frames ([`Pacer::poll`]) and writes them to its
//! WebRTC client with the frame's RTP timestamp.
//!
//! The queue holds at most [`MAX_QUEUED`] frames (60 s): while it is full
//! the task stops reading the WebSocket (TCP pushes back on the sender);
//! nothing already accepted is dropped.
//!
//! Sans-IO: bytes and `now` in; frames out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Samples per channel in one 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Interleaved stereo samples in one frame.
pub const FRAME_VALUES: usize = FRAME_SAMPLES * 2;
/// Bytes of s16le stereo PCM in one frame.
pub const FRAME_BYTES: usize = FRAME_VALUES * 2;
/// Frames queued at most: 60 s.
pub const MAX_QUEUED: usize = 3000;
const FRAME: Duration = Duration::from_millis(20);

/// Cuts a byte stream of s16le stereo PCM into whole frames.
#[derive(Default)]
pub struct PcmFramer {
    partial: Vec<u8>,
}

impl PcmFramer {
    /// Takes one message's payload; returns the whole frames it
    /// completes. An empty payload ends a segment: a partial frame is
    /// padded with silence and returned.
    pub fn push(&mut self, payload: &[u8]) -> Vec<[i16; FRAME_VALUES]> {
        let mut out = Vec::new();
        if payload.is_empty() {
            if !self.partial.is_empty() {
                self.partial.resize(FRAME_BYTES, 0);
                out.push(frame_of(&self.partial));
                self.partial.clear();
            }
            return out;
        }
        let mut rest = payload;
        if !self.partial.is_empty() {
            let need = FRAME_BYTES - self.partial.len();
            let take = need.min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() == FRAME_BYTES {
                out.push(frame_of(&self.partial));
                self.partial.clear();
            }
        }
        let mut chunks = rest.chunks_exact(FRAME_BYTES);
        for c in &mut chunks {
            out.push(frame_of(c));
        }
        self.partial.extend_from_slice(chunks.remainder());
        out
    }
}

fn frame_of(bytes: &[u8]) -> [i16; FRAME_VALUES] {
    let mut f = [0i16; FRAME_VALUES];
    for (v, b) in f.iter_mut().zip(bytes.chunks_exact(2)) {
        *v = i16::from_le_bytes([b[0], b[1]]);
    }
    f
}

/// One frame due for sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due<F> {
    /// The frame's RTP timestamp (48 kHz, from 0).
    pub rtp_time: u64,
    /// The frame, or `None` for silence.
    pub frame: Option<F>,
}

/// The queue of encoded frames and the real-time clock that drains it.
///
/// Call contract: [`Self::start`] once the track can be sent; then
/// [`Self::queue`] frames (while [`Self::has_room`]); [`Self::poll`] until
/// `None` whenever [`Self::next_due`] has passed.
pub struct Pacer<F> {
    queue: VecDeque<F>,
    start: Option<Instant>,
    sent: u64,
}

impl<F> Default for Pacer<F> {
    fn default() -> Self {
        Pacer {
            queue: VecDeque::new(),
            start: None,
            sent: 0,
        }
    }
}

impl<F> Pacer<F> {
    /// Starts the clock: frame 0 is due at `now`.
    pub fn start(&mut self, now: Instant) {
        self.start.get_or_insert(now);
    }

    /// Whether another frame may be queued.
    pub fn has_room(&self) -> bool {
        self.queue.len() < MAX_QUEUED
    }

    /// Frames that may still be queued.
    pub fn room(&self) -> usize {
        MAX_QUEUED.saturating_sub(self.queue.len())
    }

    /// Frames waiting.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues a frame (the caller checked [`Self::has_room`]; beyond it
    /// the frame is refused and returned).
    pub fn queue(&mut self, frame: F) -> Result<(), F> {
        if !self.has_room() {
            return Err(frame);
        }
        self.queue.push_back(frame);
        Ok(())
    }

    /// When the next frame is due (`None` before [`Self::start`]).
    pub fn next_due(&self) -> Option<Instant> {
        Some(self.start? + FRAME * u32::try_from(self.sent).unwrap_or(u32::MAX))
    }

    /// The next frame if it is due at `now`: a queued one, or silence. A
    /// clock more than a second behind (the task was starved) catches up
    /// by skipping silence, never queued audio.
    pub fn poll(&mut self, now: Instant) -> Option<Due<F>> {
        let due = self.next_due()?;
        if due > now {
            return None;
        }
        if now.duration_since(due) > Duration::from_secs(1) && self.queue.is_empty() {
            let behind = now.duration_since(due).as_millis() as u64 / 20;
            self.sent += behind;
        }
        let rtp_time = self.sent * FRAME_SAMPLES as u64;
        self.sent += 1;
        Some(Due {
            rtp_time,
            frame: self.queue.pop_front(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcm(frames: usize, value: i16) -> Vec<u8> {
        std::iter::repeat_n(value.to_le_bytes(), frames * FRAME_VALUES)
            .flatten()
            .collect()
    }

    #[test]
    fn messages_of_any_size_make_whole_frames_and_a_segment_end_pads() {
        let mut f = PcmFramer::default();
        let all = pcm(3, 7);
        // 1,000-byte messages: 11 520 bytes are 3 frames exactly.
        let mut frames = Vec::new();
        for chunk in all.chunks(1000) {
            frames.extend(f.push(chunk));
        }
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|fr| fr.iter().all(|&v| v == 7)));
        // Half a frame, then the end of the segment: padded with silence.
        assert!(f.push(&pcm(1, 9)[..FRAME_BYTES / 2]).is_empty());
        let end = f.push(&[]);
        assert_eq!(end.len(), 1);
        assert_eq!(end[0][0], 9);
        assert_eq!(end[0][FRAME_VALUES - 1], 0);
        assert!(f.push(&[]).is_empty());
    }

    #[test]
    fn a_burst_faster_than_real_time_leaves_at_fifty_frames_a_second() {
        let t0 = Instant::now();
        let mut p: Pacer<u32> = Pacer::default();
        p.start(t0);
        for i in 0..500 {
            p.queue(i).unwrap();
        }
        let mut out = Vec::new();
        for ms in 0..12_000u64 {
            while let Some(d) = p.poll(t0 + Duration::from_millis(ms)) {
                out.push((ms, d));
            }
        }
        assert_eq!(out.len(), 600);
        for (k, (ms, d)) in out.iter().enumerate() {
            assert_eq!(*ms, k as u64 * 20);
            assert_eq!(d.rtp_time, k as u64 * 960);
            assert_eq!(d.frame, (k < 500).then_some(k as u32));
        }
    }

    #[test]
    fn the_queue_is_bounded_and_a_starved_clock_skips_only_silence() {
        let t0 = Instant::now();
        let mut p: Pacer<u32> = Pacer::default();
        for i in 0..MAX_QUEUED as u32 {
            p.queue(i).unwrap();
        }
        assert!(!p.has_room());
        assert_eq!(p.queue(9), Err(9));
        p.start(t0);
        // Five seconds without polling: queued audio is all still played.
        let d = p.poll(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!((d.rtp_time, d.frame), (0, Some(0)));
        let mut q: Pacer<u32> = Pacer::default();
        q.start(t0);
        let d = q.poll(t0 + Duration::from_secs(5)).unwrap();
        assert_eq!(d.rtp_time, 250 * 960);
        assert!(q.poll(t0 + Duration::from_secs(5)).is_none());
    }
}
