//! The recorder's jitter buffer for one RTP stream: puts packets back in
//! sequence order, waits a bounded time for a missing packet (the engine
//! asks the publisher to resend it, RFC 4585 NACK, as for any subscriber),
//! and releases whole frames, depacketised. A video stream starts at a
//! keyframe, and after a loss it cannot repair it skips to the next one
//! (asking for it), so that no frame written refers to one that is not.
//!
//! Where it sits: in the recorder thread, per stream (SSRC) of a recorded
//! track, between the tap ([`super::tap`]) and the timeline
//! ([`super::timeline`]). Sans-IO: `now` is an argument.
//!
//! Call contract: [`JitterBuffer::push`] each packet, then
//! [`JitterBuffer::pop`] until it returns `None`; [`JitterBuffer::take_keyframe_request`]
//! says whether to ask the publisher for a keyframe.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::depacketize::{Depacketizer, Format};

/// How long a gap is waited for before it counts as lost: two or three
/// NACK round trips on a long path.
pub const REPAIR_WAIT: Duration = Duration::from_millis(600);

/// Most packets held; past it the oldest gap counts as lost.
pub const MAX_PACKETS: usize = 4_096;

/// How far ahead of the next expected packet a sequence number may be
/// before the stream counts as restarted.
const MAX_JUMP: u64 = 3_000;

struct Entry {
    timestamp: u32,
    marker: bool,
    at: Instant,
    payload: Vec<u8>,
}

/// A whole frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// Whether a decoder can start at it.
    pub keyframe: bool,
    /// When its first packet arrived.
    pub at: Instant,
    /// The coded frame.
    pub data: Vec<u8>,
}

/// What a stream lost, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Losses {
    /// Frames with a packet that never came (or skipped to the next keyframe).
    pub lost: u64,
    /// Frames whose payload could not be read.
    pub malformed: u64,
    /// Packets that came after their frame was released or skipped.
    pub late: u64,
}

/// One stream's jitter buffer and depacketiser.
pub struct JitterBuffer {
    depacketizer: Depacketizer,
    packets: BTreeMap<u64, Entry>,
    /// The next sequence number to release (extended).
    next: Option<u64>,
    /// The highest sequence number seen (extended).
    highest: Option<u64>,
    /// Video only: waiting for a keyframe to start (again) at.
    need_keyframe: bool,
    keyframe_request: bool,
    /// A frame was released (frames skipped after that count as lost).
    started: bool,
    /// The timestamp of the last packet skipped (a frame counts once).
    skipped: Option<u32>,
    /// Times the stream restarted its numbering.
    restarts: u64,
    losses: Losses,
}

impl JitterBuffer {
    /// An empty buffer for a stream of `format`.
    pub fn new(format: Format) -> Self {
        JitterBuffer {
            depacketizer: Depacketizer::new(format),
            packets: BTreeMap::new(),
            next: None,
            highest: None,
            need_keyframe: format.is_video(),
            keyframe_request: format.is_video(),
            started: false,
            skipped: None,
            restarts: 0,
            losses: Losses::default(),
        }
    }

    /// Its losses so far.
    pub fn losses(&self) -> Losses {
        self.losses
    }

    /// How many times the stream restarted its numbering (a jump of more
    /// than a few thousand either way): its timestamps may have restarted
    /// too.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// Whether to ask for a keyframe (once per time it became true).
    pub fn take_keyframe_request(&mut self) -> bool {
        std::mem::take(&mut self.keyframe_request)
    }

    /// The stream's payload format.
    pub fn format(&self) -> Format {
        self.depacketizer.format()
    }

    /// Takes a packet's fields and payload.
    pub fn push(&mut self, now: Instant, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) {
        let mut ext = self.extend(seq);
        if let Some(next) = self.next
            && next.abs_diff(ext) > MAX_JUMP
        {
            // The stream restarted (or jumped, either way): what is held is
            // lost, and the packet starts it again.
            self.restart();
            ext = self.extend(seq);
        } else if let Some(next) = self.next
            && ext < next
        {
            self.losses.late += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(ext, |h| h.max(ext)));
        self.packets.entry(ext).or_insert_with(|| Entry {
            timestamp,
            marker,
            at: now,
            payload: payload.to_vec(),
        });
        if self.packets.len() > MAX_PACKETS {
            // Full: the oldest packet goes, and its frame with it.
            if let Some((_, e)) = self.packets.pop_first() {
                self.skip(e.timestamp);
            }
            self.give_up_gap();
        }
    }

    /// `seq` extended past wraps, near the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        match self.highest {
            None => u64::from(seq) + (1 << 16),
            Some(h) => {
                let delta = i64::from(seq.wrapping_sub(h as u16) as i16);
                (h as i64 + delta).max(0) as u64
            }
        }
    }

    fn restart(&mut self) {
        self.restarts += 1;
        let dropped = self.frames_held();
        self.losses.lost += dropped;
        self.packets.clear();
        self.next = None;
        self.highest = None;
        self.depacketizer.discard();
        if self.format().is_video() {
            self.want_keyframe();
        }
    }

    fn want_keyframe(&mut self) {
        if !self.need_keyframe {
            self.keyframe_request = true;
        }
        self.need_keyframe = true;
    }

    /// Distinct timestamps held (frames that will not be released).
    fn frames_held(&self) -> u64 {
        let mut n = 0;
        let mut last = None;
        for e in self.packets.values() {
            if last != Some(e.timestamp) {
                n += 1;
                last = Some(e.timestamp);
            }
        }
        n
    }

    /// The next whole frame, if one is ready.
    pub fn pop(&mut self, now: Instant) -> Option<Frame> {
        loop {
            if self.need_keyframe && !self.seek_keyframe(now) {
                return None;
            }
            let first = *self.packets.keys().next()?;
            let next = *self.next.get_or_insert(first);
            if first != next {
                // A gap before the next frame: wait for its repair, up to a point.
                if self.gap_expired(now) {
                    self.give_up_gap();
                    continue;
                }
                return None;
            }
            if self
                .packets
                .get(&next)
                .is_some_and(|e| e.payload.is_empty())
            {
                // Padding only (bandwidth probes): holds a number, no media.
                self.packets.remove(&next);
                self.next = Some(next + 1);
                continue;
            }
            match self.frame_at(next) {
                Some(end) => {
                    if let Some(frame) = self.release(next, end) {
                        return Some(frame);
                    }
                }
                None => {
                    if self.gap_expired(now) {
                        self.give_up_gap();
                        continue;
                    }
                    return None;
                }
            }
        }
    }

    /// Whether the oldest packet after a gap has waited [`REPAIR_WAIT`].
    fn gap_expired(&self, now: Instant) -> bool {
        self.packets
            .values()
            .next()
            .is_some_and(|e| now.saturating_duration_since(e.at) >= REPAIR_WAIT)
            || self.packets.len() > MAX_PACKETS
    }

    /// Skips the gap at `next`: audio goes on at the next packet held;
    /// video at the next keyframe.
    fn give_up_gap(&mut self) {
        let Some(&first) = self.packets.keys().next() else {
            return;
        };
        self.depacketizer.discard();
        if self.format().is_video() {
            // The frame at the front may be whole yet refer to the lost one;
            // the frames skipped to the next keyframe count as lost. The
            // front packet goes in any case (progress: a keyframe whose own
            // packets never all come is skipped too).
            // `next` moves past it: a late copy of what was released or
            // skipped stays late.
            if let Some((k, e)) = self.packets.pop_first() {
                self.skip(e.timestamp);
                self.next = Some(k + 1);
            }
            self.want_keyframe();
        } else {
            let next = self.next.unwrap_or(first);
            if first == next {
                // The frame at `next` was incomplete (audio never is): drop it.
                self.losses.lost += 1;
                self.packets.remove(&first);
                self.next = Some(first + 1);
            } else {
                // Each packet of the gap was a frame.
                self.losses.lost += first.saturating_sub(next);
                self.next = Some(first);
            }
        }
    }

    /// Video: drops packets up to the first that starts a keyframe; true
    /// once one is at the front.
    fn seek_keyframe(&mut self, now: Instant) -> bool {
        let format = self.format();
        let start = self
            .packets
            .iter()
            .find(|(_, e)| !e.payload.is_empty() && format.starts_keyframe(&e.payload))
            .map(|(&k, _)| k);
        match start {
            Some(k) => {
                while let Some(entry) = self.packets.first_entry()
                    && *entry.key() < k
                {
                    let e = entry.remove();
                    self.skip(e.timestamp);
                }
                self.next = Some(k);
                self.need_keyframe = false;
                true
            }
            None => {
                // Nothing to start at: keep what may still be completed by a
                // late keyframe start for a while, no longer.
                while let Some(e) = self.packets.values().next() {
                    if now.saturating_duration_since(e.at) < REPAIR_WAIT
                        && self.packets.len() <= MAX_PACKETS
                    {
                        break;
                    }
                    if let Some((k, e)) = self.packets.pop_first() {
                        self.skip(e.timestamp);
                        self.next = Some(k + 1);
                    }
                }
                false
            }
        }
    }

    /// Counts a skipped packet's frame as lost (once per frame, and only
    /// once the stream started).
    fn skip(&mut self, timestamp: u32) {
        if self.started && self.skipped != Some(timestamp) {
            self.losses.lost += 1;
        }
        self.skipped = Some(timestamp);
    }

    /// The last sequence number of the frame starting at `start`, if the
    /// frame is whole: consecutive packets of one timestamp up to the
    /// marker (or up to a packet of the next timestamp).
    fn frame_at(&self, start: u64) -> Option<u64> {
        if !self.format().is_video() {
            return self.packets.contains_key(&start).then_some(start);
        }
        let ts = self.packets.get(&start)?.timestamp;
        for (seq, (&s, e)) in (start..).zip(self.packets.range(start..)) {
            if s != seq {
                return None;
            }
            if e.timestamp != ts {
                return Some(s - 1);
            }
            if e.marker {
                return Some(s);
            }
        }
        None
    }

    /// Depacketises and removes `start..=end`; `None` when the payload was
    /// malformed (counted; video then waits for a keyframe).
    fn release(&mut self, start: u64, end: u64) -> Option<Frame> {
        let mut first = None;
        let mut ok = true;
        for s in start..=end {
            let Some(e) = self.packets.remove(&s) else {
                continue;
            };
            if first.is_none() {
                let keyframe = self.format().starts_keyframe(&e.payload);
                first = Some((e.timestamp, keyframe, e.at));
            }
            ok &= self.depacketizer.push(&e.payload).is_ok();
        }
        self.next = Some(end + 1);
        let (timestamp, keyframe, at) = first?;
        let data = self.depacketizer.finish();
        match (ok, data) {
            (true, Some(data)) => {
                self.started = true;
                Some(Frame {
                    timestamp,
                    keyframe,
                    at,
                    data,
                })
            }
            _ => {
                self.losses.malformed += 1;
                if self.format().is_video() {
                    self.want_keyframe();
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::testing::Rng;

    /// A VP8 packet: descriptor (S on the first of a frame), then one
    /// payload byte; keyframe starts have P = 0 in the first payload byte.
    fn vp8(start: bool, keyframe: bool, byte: u8) -> Vec<u8> {
        let descriptor = if start { 0x10 } else { 0x00 };
        let first = if keyframe { 0x00 } else { 0x01 };
        if start {
            vec![descriptor, first, 0, 0, 0x9d, 0x01, 0x2a, byte]
        } else {
            vec![descriptor, byte]
        }
    }

    /// Frames of three packets each: seqs 3f, 3f+1, 3f+2; frame 0 and every
    /// `gop`th a keyframe.
    fn video_packets(frames: u16, gop: u16) -> Vec<(u16, u32, bool, Vec<u8>)> {
        let mut out = Vec::new();
        for f in 0..frames {
            for i in 0..3u16 {
                let seq = 65_000u16.wrapping_add(f * 3 + i);
                let key = f % gop == 0;
                out.push((seq, 3000 * u32::from(f), i == 2, vp8(i == 0, key, f as u8)));
            }
        }
        out
    }

    fn drain(jb: &mut JitterBuffer, now: Instant, out: &mut Vec<Frame>) {
        while let Some(f) = jb.pop(now) {
            out.push(f);
        }
    }

    #[test]
    fn reordered_packets_across_the_sequence_wrap_come_out_as_whole_frames_in_order() {
        let t0 = Instant::now();
        let mut packets = video_packets(100, 30);
        // Reorder within windows of five, deterministically.
        let mut rng = Rng(7);
        for chunk in packets.chunks_mut(5) {
            for i in (1..chunk.len()).rev() {
                let j = (rng.next() % (i as u64 + 1)) as usize;
                chunk.swap(i, j);
            }
        }
        let mut jb = JitterBuffer::new(Format::Vp8);
        let mut frames = Vec::new();
        for (i, (seq, ts, marker, p)) in packets.iter().enumerate() {
            let now = t0 + Duration::from_millis(i as u64);
            jb.push(now, *seq, *ts, *marker, p);
            drain(&mut jb, now, &mut frames);
        }
        assert_eq!(frames.len(), 100);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.timestamp, 3000 * i as u32);
            assert_eq!(f.keyframe, i % 30 == 0);
            assert_eq!(
                *f.data.last().unwrap(),
                i as u8,
                "three payloads, the last one's byte"
            );
        }
        assert_eq!(jb.losses(), Losses::default());
        assert!(
            jb.take_keyframe_request(),
            "a video stream asks for a keyframe to start at"
        );
    }

    #[test]
    fn a_repair_within_the_wait_fills_the_gap_and_a_late_one_skips_to_the_next_keyframe() {
        let t0 = Instant::now();
        let packets = video_packets(70, 30);
        let mut jb = JitterBuffer::new(Format::Vp8);
        jb.take_keyframe_request();
        let mut frames = Vec::new();
        let mut now = t0;
        // Packet 10 (frame 3) arrives 200 ms late: repaired in time.
        // Packet 100 (frame 33) never arrives.
        for (i, (seq, ts, marker, p)) in packets.iter().enumerate() {
            now = t0 + Duration::from_millis(10 * i as u64);
            if i == 10 || i == 100 {
                continue;
            }
            jb.push(now, *seq, *ts, *marker, p);
            if i == 30 {
                let (seq, ts, marker, p) = &packets[10];
                jb.push(now, *seq, *ts, *marker, p);
            }
            drain(&mut jb, now, &mut frames);
        }
        now += REPAIR_WAIT;
        drain(&mut jb, now, &mut frames);
        let stamps: Vec<u32> = frames.iter().map(|f| f.timestamp / 3000).collect();
        // Frames 0..33 whole, 33..60 skipped (they refer to 33), 60.. whole.
        let expected: Vec<u32> = (0..33).chain(60..70).collect();
        assert_eq!(stamps, expected);
        assert!(jb.take_keyframe_request(), "the loss asked for a keyframe");
        assert_eq!(jb.losses().lost, 27);
        // The repair that comes after the skip is late.
        let (seq, ts, marker, p) = &packets[100];
        jb.push(now, *seq, *ts, *marker, p);
        assert_eq!(jb.losses().late, 1);
    }

    #[test]
    fn audio_skips_a_lost_packet_after_the_wait_and_keeps_the_rest() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Format::Opus);
        assert!(!jb.take_keyframe_request());
        let mut frames = Vec::new();
        let mut rng = Rng(99);
        let mut kept = 0;
        for i in 0..500u16 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            // 5 % loss, seeded.
            if i > 0 && i < 499 && rng.next() % 100 < 5 {
                continue;
            }
            kept += 1;
            jb.push(now, i, 960 * u32::from(i), false, &[0xfc, i as u8]);
            drain(&mut jb, now, &mut frames);
        }
        drain(&mut jb, t0 + Duration::from_secs(60), &mut frames);
        assert_eq!(frames.len(), kept);
        assert!(frames.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        assert_eq!(jb.losses().lost as usize, 500 - kept);
    }

    #[test]
    fn a_flood_of_packets_never_holds_more_than_the_bound() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Format::Vp8);
        let mut rng = Rng(3);
        for i in 0..20_000u32 {
            // Random sequence numbers, no keyframe ever, no marker.
            let seq = rng.next() as u16;
            jb.push(t0, seq, i, false, &[0x00, 0x01]);
            assert!(jb.packets.len() <= MAX_PACKETS);
            assert_eq!(jb.pop(t0), None);
        }
    }

    #[test]
    fn a_jump_in_sequence_numbers_restarts_the_stream_at_a_keyframe() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Format::Vp8);
        let mut frames = Vec::new();
        for (seq, ts, marker, p) in video_packets(5, 30) {
            jb.push(t0, seq, ts, marker, &p);
        }
        drain(&mut jb, t0, &mut frames);
        jb.take_keyframe_request();
        assert_eq!(frames.len(), 5);
        // The publisher restarts its numbering: a delta frame, then a keyframe.
        jb.push(t0, 30_000, 90_000, true, &vp8(true, false, 1));
        assert!(jb.take_keyframe_request());
        jb.push(t0, 30_001, 93_000, true, &vp8(true, true, 2));
        drain(&mut jb, t0, &mut frames);
        assert_eq!(frames.len(), 6);
        assert!(frames[5].keyframe);
    }

    #[test]
    fn a_jump_back_restarts_the_stream_instead_of_dropping_it_as_late() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(Format::Vp8);
        let mut frames = Vec::new();
        for (seq, ts, marker, p) in video_packets(5, 30) {
            jb.push(t0, seq, ts, marker, &p);
        }
        drain(&mut jb, t0, &mut frames);
        assert_eq!((frames.len(), jb.restarts()), (5, 0));
        // 10,000 back: a restarted numbering, not 10,000 late packets.
        jb.push(t0, 55_000, 7, true, &vp8(true, true, 9));
        drain(&mut jb, t0, &mut frames);
        assert_eq!((frames.len(), jb.restarts()), (6, 1));
        assert_eq!(jb.losses().late, 0);
    }
}
