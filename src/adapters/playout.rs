//! The audio egress jitter buffer: Opus packets in, in any order, one
//! decision per 20 ms frame out, at real-time pace, so that the endpoint
//! sees a steady 50 frames a second whatever the network did.
//!
//! Where it sits: the audio egress task pushes every Opus packet its
//! WebRTC client receives (sequence number, RTP timestamp, payload) and
//! polls this on its timer; each [`Frame`] says what to decode (the packet,
//! the next packet's in-band FEC, loss concealment, or silence) and the
//! decoder (`pcm`) turns it into 3,840 bytes of PCM.
//!
//! Rules: playout starts [`DELAY`] after the first packet and runs on a
//! 20 ms grid of the sender's RTP clock. A missing frame whose neighbours'
//! sequence numbers are contiguous was never sent (DTX): silence. A
//! missing frame with a sequence gap was lost: the next packet's FEC if it
//! is here, else concealment; a stream that stops entirely conceals
//! [`CONCEAL_MAX`] frames, then gives silence. Packets older than the
//! playout point are dropped (late); the buffer holds at most
//! [`MAX_FRAMES`] (beyond: the oldest frames are skipped); three packets
//! in a row more than a second from the playout point (a new source)
//! restart the grid. Packets are taken to be 20 ms (the WebRTC default);
//! shorter ones fall between grid points and are dropped as late.
//!
//! Sans-IO: `now`, sequence numbers, timestamps and bytes in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// One Opus frame of 20 ms in 48 kHz units.
pub const FRAME_TICKS: u32 = 960;
/// One frame's duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// How long after the first packet playout starts: room for reordering
/// and for the next packet's FEC.
pub const DELAY: Duration = Duration::from_millis(60);
/// Frames the buffer holds at most (half a second).
pub const MAX_FRAMES: usize = 25;
/// Missing frames concealed in a row before the rest is silence.
pub const CONCEAL_MAX: u32 = 5;
/// A timestamp this far from the playout point is a stray packet, or,
/// [`RESYNC_AFTER`] in a row, a new source (a new grid).
const RESYNC_TICKS: i64 = 48_000;
const RESYNC_AFTER: u32 = 3;

/// What to play for one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameSource {
    /// The frame's own packet.
    Packet(Vec<u8>),
    /// The frame was lost; the next packet (here) carries its FEC.
    Fec(Vec<u8>),
    /// The frame was lost: conceal it.
    Conceal,
    /// Nothing was sent (DTX, or a stream that stopped): silence.
    Silence,
}

/// One 20 ms frame to decode and send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Counts frames from 0 (the message's `sequenceNumber`).
    pub index: u32,
    /// What to decode.
    pub source: FrameSource,
}

/// Counts of what the buffer did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutCounts {
    /// Packets that came after their frame was played.
    pub late: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// Frames decoded from the next packet's FEC.
    pub fec: u64,
    /// Frames concealed.
    pub concealed: u64,
}

struct Buffered {
    seq: u64,
    payload: Vec<u8>,
}

/// The jitter buffer and playout clock.
///
/// Call contract: [`Self::push`] each received packet; [`Self::poll`]
/// until it answers `None` whenever [`Self::next_due`] has passed.
pub struct Playout {
    /// Buffered packets by RTP timestamp relative to the grid's origin.
    buffer: BTreeMap<i64, Buffered>,
    /// The grid: its origin timestamp and the wall-clock time of frame 0.
    grid: Option<Grid>,
    /// The next frame to play, in ticks from the grid's origin.
    next: i64,
    /// The sequence number of the last packet played (or skipped).
    last_seq: Option<u64>,
    /// Missing frames in a row.
    missing_run: u32,
    /// Packets in a row far from the playout point.
    far: u32,
    index: u32,
    counts: PlayoutCounts,
}

#[derive(Debug, Clone, Copy)]
struct Grid {
    origin_ts: u32,
    start: Instant,
    /// Frames played since `start`.
    played: u64,
}

impl Default for Playout {
    fn default() -> Self {
        Self::new()
    }
}

impl Playout {
    /// An empty buffer; playout starts with the first packet.
    pub fn new() -> Self {
        Playout {
            buffer: BTreeMap::new(),
            grid: None,
            next: 0,
            last_seq: None,
            missing_run: 0,
            far: 0,
            index: 0,
            counts: PlayoutCounts::default(),
        }
    }

    /// What the buffer did so far.
    pub fn counts(&self) -> PlayoutCounts {
        self.counts
    }

    /// A received packet: its extended sequence number, RTP timestamp and
    /// Opus payload.
    pub fn push(&mut self, now: Instant, seq: u64, ts: u32, payload: &[u8]) {
        let grid = *self.grid.get_or_insert(Grid {
            origin_ts: ts,
            start: now + DELAY,
            played: 0,
        });
        // Relative to the playout point, so that the 32-bit clock's wrap
        // never matters.
        let point = grid.origin_ts.wrapping_add(self.next as u32);
        let mut at = self.next + i64::from(ts.wrapping_sub(point) as i32);
        if (at - self.next).abs() > RESYNC_TICKS {
            // One stray packet is late (or absurd); a run of them is a new
            // source: a new grid from this packet, keeping the frame count
            // and pace.
            self.far += 1;
            if self.far < RESYNC_AFTER {
                self.counts.late += 1;
                return;
            }
            let start = self.next_due().unwrap_or(now).max(now);
            self.grid = Some(Grid {
                origin_ts: ts,
                start,
                played: 0,
            });
            self.buffer.clear();
            self.next = 0;
            self.last_seq = seq.checked_sub(1);
            at = 0;
        }
        self.far = 0;
        if at < self.next {
            self.counts.late += 1;
            return;
        }
        if self.buffer.len() >= MAX_FRAMES && !self.buffer.contains_key(&at) {
            // Full: the oldest frame goes (the sender's clock runs ahead).
            if let Some((_, oldest)) = self.buffer.pop_first() {
                self.last_seq = Some(oldest.seq);
            }
            self.counts.overflow += 1;
            self.next = self.buffer.keys().next().copied().unwrap_or(at).min(at);
        }
        self.buffer.insert(
            at,
            Buffered {
                seq,
                payload: payload.to_vec(),
            },
        );
    }

    /// When the next frame is due (`None` before the first packet).
    pub fn next_due(&self) -> Option<Instant> {
        let g = self.grid?;
        Some(g.start + FRAME * u32::try_from(g.played).unwrap_or(u32::MAX))
    }

    /// The next frame if it is due at `now`.
    pub fn poll(&mut self, now: Instant) -> Option<Frame> {
        if self.next_due()? > now {
            return None;
        }
        let source = self.decide();
        if let Some(g) = self.grid.as_mut() {
            g.played += 1;
        }
        self.next += i64::from(FRAME_TICKS);
        let index = self.index;
        self.index = self.index.wrapping_add(1);
        Some(Frame { index, source })
    }

    fn decide(&mut self) -> FrameSource {
        // Packets the grid skipped past (a timestamp between two frames).
        while let Some((&at, _)) = self.buffer.first_key_value() {
            if at >= self.next {
                break;
            }
            if let Some((_, b)) = self.buffer.pop_first() {
                self.last_seq = Some(b.seq);
            }
            self.counts.late += 1;
        }
        if let Some(b) = self.buffer.remove(&self.next) {
            self.last_seq = Some(b.seq);
            self.missing_run = 0;
            return FrameSource::Packet(b.payload);
        }
        let following = self.buffer.first_key_value().map(|(&at, b)| (at, b.seq));
        let lost = match (following, self.last_seq) {
            // The next packet follows the last one played: nothing was
            // sent in between (DTX).
            (Some((_, seq)), Some(last)) => seq != last + 1,
            (Some(_), None) => true,
            // Nothing here: lost or stopped, conceal a little.
            (None, _) => self.missing_run < CONCEAL_MAX,
        };
        self.missing_run = self.missing_run.saturating_add(1);
        if !lost {
            return FrameSource::Silence;
        }
        if let Some((at, _)) = following
            && at == self.next + i64::from(FRAME_TICKS)
            && let Some(b) = self.buffer.get(&at)
        {
            self.counts.fec += 1;
            return FrameSource::Fec(b.payload.clone());
        }
        self.counts.concealed += 1;
        FrameSource::Conceal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic generator for the seeded scenarios.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Plays `sent` (seq, ts, arrival ms) to the end; the frames and the
    /// frame times in ms from t0.
    fn play(t0: Instant, mut arrivals: Vec<(u64, u32, u64)>, until_ms: u64) -> Vec<(u64, Frame)> {
        arrivals.sort_by_key(|a| a.2);
        let mut p = Playout::new();
        let mut out = Vec::new();
        let mut next_arrival = 0;
        for now_ms in 0..until_ms {
            let now = t0 + ms(now_ms);
            while next_arrival < arrivals.len() && arrivals[next_arrival].2 <= now_ms {
                let (seq, ts, _) = arrivals[next_arrival];
                p.push(now, seq, ts, &seq.to_be_bytes());
                next_arrival += 1;
            }
            while let Some(f) = p.poll(now) {
                out.push((now_ms, f));
            }
        }
        out
    }

    fn packet_seq(f: &Frame) -> Option<u64> {
        match &f.source {
            FrameSource::Packet(b) => Some(u64::from_be_bytes(b[..8].try_into().unwrap())),
            _ => None,
        }
    }

    #[test]
    fn a_clean_stream_plays_every_packet_on_a_20_ms_grid() {
        let t0 = Instant::now();
        let sent: Vec<_> = (0..100u64)
            .map(|i| (i, 5000 + i as u32 * 960, i * 20))
            .collect();
        let out = play(t0, sent, 2100);
        // Frames at 60, 80, ..., 2080 ms.
        assert_eq!(out.len(), 102);
        for (k, (at, f)) in out.iter().take(100).enumerate() {
            assert_eq!(f.index, k as u32);
            assert_eq!(*at, 60 + 20 * k as u64);
            assert_eq!(packet_seq(f), Some(k as u64));
        }
    }

    #[test]
    fn reordering_within_the_delay_is_undone() {
        let t0 = Instant::now();
        let mut rng = Lcg(7);
        // Each packet late by 0..40 ms: arrival order differs from sending.
        let sent: Vec<_> = (0..200u64)
            .map(|i| (i, i as u32 * 960, i * 20 + rng.next() % 40))
            .collect();
        let out = play(t0, sent, 4200);
        let seqs: Vec<u64> = out.iter().filter_map(|(_, f)| packet_seq(f)).collect();
        assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_lost_packet_is_recovered_from_the_next_ones_fec_and_a_burst_concealed() {
        let t0 = Instant::now();
        let sent: Vec<_> = (0..50u64)
            .filter(|i| ![10, 20, 21, 22].contains(i))
            .map(|i| (i, i as u32 * 960, i * 20))
            .collect();
        let out = play(t0, sent, 1100);
        let at = |i: usize| &out[i].1.source;
        assert_eq!(*at(10), FrameSource::Fec(11u64.to_be_bytes().to_vec()));
        assert_eq!(*at(20), FrameSource::Conceal);
        assert_eq!(*at(21), FrameSource::Conceal);
        assert_eq!(*at(22), FrameSource::Fec(23u64.to_be_bytes().to_vec()));
        assert_eq!(packet_seq(&out[23].1), Some(23));
    }

    #[test]
    fn dtx_gaps_are_silence_and_frames_keep_coming() {
        let t0 = Instant::now();
        // Talk for 10 frames, DTX: one packet every 400 ms (20 frames),
        // with contiguous sequence numbers.
        let mut sent: Vec<_> = (0..10u64).map(|i| (i, i as u32 * 960, i * 20)).collect();
        for k in 0..3u64 {
            let frame = 10 + 20 * k;
            sent.push((10 + k, frame as u32 * 960, frame * 20));
        }
        let out = play(t0, sent, 1400);
        // 50 frames a second from the start (60, 80, ..., 1380 ms).
        assert_eq!(out.len(), 67);
        // Until the next packet shows the gap was DTX, a few frames are
        // concealed; then silence; then the packet.
        for f in &out[11..16] {
            assert_eq!(f.1.source, FrameSource::Conceal, "{f:?}");
        }
        for f in &out[16..30] {
            assert_eq!(f.1.source, FrameSource::Silence, "{f:?}");
        }
        assert_eq!(packet_seq(&out[30].1), Some(11));
        // Once the DTX packet is here, the frames before it are silence.
        assert_eq!(out[49].1.source, FrameSource::Silence);
        assert_eq!(packet_seq(&out[50].1), Some(12));
    }

    #[test]
    fn seeded_loss_still_gives_fifty_frames_a_second() {
        let t0 = Instant::now();
        let mut rng = Lcg(42);
        let mut sent = Vec::new();
        for i in 0..500u64 {
            let (lost, jitter) = (rng.next() % 100 < 5, rng.next() % 30);
            if !lost {
                sent.push((i, i as u32 * 960, i * 20 + jitter));
            }
        }
        let out = play(t0, sent, 10_200);
        // Playout starts 60 ms after the first arrival (jittered by up
        // to 30 ms): 10 s of frames, numbered without a gap.
        assert!((503..=507).contains(&out.len()), "{}", out.len());
        let indexes: Vec<u32> = out.iter().map(|(_, f)| f.index).collect();
        assert_eq!(indexes, (0..out.len() as u32).collect::<Vec<_>>());
        for w in out.windows(2) {
            assert_eq!(w[1].0 - w[0].0, 20);
        }
        let played = out.iter().filter(|(_, f)| packet_seq(f).is_some()).count();
        assert!(played >= 450, "{played}");
    }

    #[test]
    fn a_timestamp_jump_restarts_the_grid_and_the_buffer_stays_bounded() {
        let t0 = Instant::now();
        let mut p = Playout::new();
        p.push(t0, 0, 0, b"a");
        // A flood of future frames: at most MAX_FRAMES kept.
        for i in 1..1000u64 {
            p.push(t0, i, i as u32 * 960, b"b");
        }
        assert!(p.buffer.len() <= MAX_FRAMES);
        assert!(p.counts().overflow > 0);
        // One stray packet a minute away is dropped; three in a row are
        // a new source: a new grid, playing at once.
        let late = p.counts().late;
        p.push(t0, 5000, 48_000 * 60, b"c");
        assert_eq!(p.counts().late, late + 1);
        p.push(t0, 5001, 48_000 * 60 + 960, b"d");
        p.push(t0, 5002, 48_000 * 60 + 1920, b"e");
        let f = p.poll(t0 + DELAY).expect("due");
        assert_eq!(f.source, FrameSource::Packet(b"e".to_vec()));
    }

    #[test]
    fn the_rtp_clock_wraps_without_a_glitch() {
        let t0 = Instant::now();
        let start = u32::MAX - 960 * 10;
        let sent: Vec<_> = (0..40u64)
            .map(|i| (i, start.wrapping_add(i as u32 * 960), i * 20))
            .collect();
        let out = play(t0, sent, 900);
        let seqs: Vec<u64> = out.iter().filter_map(|(_, f)| packet_seq(f)).collect();
        assert_eq!(seqs, (0..40).collect::<Vec<_>>());
    }
}
