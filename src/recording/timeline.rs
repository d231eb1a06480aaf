//! A recording's one timeline: every frame's RTP timestamp mapped to
//! seconds since the recording began, so that the tracks of one publisher
//! stay in lip-sync and gaps (DTX, loss) keep their length.
//!
//! Where it sits: in the recorder, between the jitter buffers and the
//! muxer. The publisher's sender reports (RFC 3550 §6.4.1) relate each
//! stream's RTP clock to the publisher's NTP clock; that clock is related
//! to ours once per publisher (the least `arrival − ntp` seen, the report
//! that was delayed least), so all of one publisher's tracks share one
//! mapping and keep the sync the publisher captured them with. A stream
//! with no report yet is placed by its first frame's arrival. Sans-IO.

use std::time::Instant;

use crate::wire::rtcp::SenderInfo;

/// Seconds of a 32.32 NTP timestamp.
fn ntp_seconds(ntp: u64) -> f64 {
    (ntp >> 32) as f64 + (ntp & 0xffff_ffff) as f64 / 4_294_967_296.0
}

/// The recording's clock: its start, and each publisher's NTP offset.
pub struct Timeline {
    epoch: Instant,
    /// Per publisher (by index): our seconds minus its NTP seconds.
    offsets: Vec<Option<f64>>,
}

impl Timeline {
    /// A timeline that starts at `epoch`, for `publishers` publishers.
    pub fn new(epoch: Instant, publishers: usize) -> Self {
        Timeline {
            epoch,
            offsets: vec![None; publishers],
        }
    }

    fn seconds(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.epoch).as_secs_f64()
    }
}

/// One RTP stream's clock on the timeline.
pub struct StreamClock {
    rate: f64,
    publisher: usize,
    report: Option<(u64, u32)>,
    /// (extended timestamp, seconds) of its first placed frame.
    anchor: Option<(i64, f64)>,
    last: Option<(u32, i64)>,
}

impl StreamClock {
    /// A stream of `publisher` with RTP clock `rate`.
    pub fn new(rate: u32, publisher: usize) -> Self {
        StreamClock {
            rate: f64::from(rate.max(1)),
            publisher,
            report: None,
            anchor: None,
            last: None,
        }
    }

    /// Takes a sender report of the stream, received at `at`.
    pub fn sender_report(&mut self, timeline: &mut Timeline, at: Instant, info: &SenderInfo) {
        self.report = Some((info.ntp, info.rtp_timestamp));
        let offset = timeline.seconds(at) - ntp_seconds(info.ntp);
        if let Some(slot) = timeline.offsets.get_mut(self.publisher) {
            *slot = Some(slot.map_or(offset, |o: f64| o.min(offset)));
        }
    }

    /// Whether a sender report placed the stream (or will place it).
    pub fn has_report(&self) -> bool {
        self.report.is_some()
    }

    /// The timestamp extended past wraps (in order of frames).
    fn extend(&mut self, ts: u32) -> i64 {
        let ext = match self.last {
            None => i64::from(ts),
            Some((last, last_ext)) => last_ext + i64::from(ts.wrapping_sub(last) as i32),
        };
        self.last = Some((ts, ext));
        ext
    }

    /// Seconds on the timeline of a frame with RTP timestamp `ts` whose
    /// first packet arrived at `at`. The first frame anchors the stream
    /// (by its sender report if there is one, else by arrival); later ones
    /// follow their timestamps.
    pub fn place(&mut self, timeline: &Timeline, ts: u32, at: Instant) -> f64 {
        let ext = self.extend(ts);
        let (anchor_ext, anchor_secs) = *self.anchor.get_or_insert_with(|| {
            let offset = timeline.offsets.get(self.publisher).copied().flatten();
            let secs = match (self.report, offset) {
                (Some((ntp, rtp)), Some(offset)) => {
                    let since = f64::from(ts.wrapping_sub(rtp) as i32) / self.rate;
                    offset + ntp_seconds(ntp) + since
                }
                _ => timeline.seconds(at),
            };
            (ext, secs)
        });
        anchor_secs + (ext - anchor_ext) as f64 / self.rate
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report(ssrc: u32, ntp_secs: f64, rtp: u32) -> SenderInfo {
        SenderInfo {
            ssrc,
            ntp: (ntp_secs * 4_294_967_296.0) as u64,
            rtp_timestamp: rtp,
            packet_count: 0,
            octet_count: 0,
        }
    }

    #[test]
    fn audio_and_video_of_one_publisher_align_by_their_reports_not_by_arrival() {
        let t0 = Instant::now();
        let mut timeline = Timeline::new(t0, 1);
        let mut audio = StreamClock::new(48_000, 0);
        let mut video = StreamClock::new(90_000, 0);
        // The publisher's NTP clock reads 1000 s at our t0 + 1 s; audio RTP
        // 48_000 and video RTP 900_000 were captured at that instant.
        // The video report is 30 ms late (queued behind a frame): the audio
        // one, delayed least, fixes the offset.
        audio.sender_report(
            &mut timeline,
            t0 + Duration::from_secs(1),
            &report(1, 1000.0, 48_000),
        );
        video.sender_report(
            &mut timeline,
            t0 + Duration::from_millis(1030),
            &report(2, 1000.0, 900_000),
        );
        // A video frame captured 0.5 s later arrives 150 ms after capture
        // (a long jitter buffer wait); the audio frame of the same instant 20 ms after.
        let v = video.place(
            &timeline,
            900_000 + 45_000,
            t0 + Duration::from_millis(1650),
        );
        let a = audio.place(&timeline, 48_000 + 24_000, t0 + Duration::from_millis(1520));
        assert!((v - 1.5).abs() < 1e-6, "{v}");
        assert!((a - 1.5).abs() < 1e-6, "{a}");
        // Later frames follow their timestamps across the 32-bit wrap.
        let mut wrap = StreamClock::new(90_000, 0);
        let first = wrap.place(&timeline, u32::MAX - 1_499, t0);
        let next = wrap.place(&timeline, 1_500, t0);
        assert!((next - first - 3_000.0 / 90_000.0).abs() < 1e-9);
    }

    #[test]
    fn without_a_report_a_stream_is_placed_by_arrival_and_gaps_keep_their_length() {
        let t0 = Instant::now();
        let timeline = Timeline::new(t0, 1);
        let mut audio = StreamClock::new(48_000, 0);
        assert!(!audio.has_report());
        let a = audio.place(&timeline, 5_000, t0 + Duration::from_millis(200));
        // DTX: the next frame 2 s later by its timestamp, whenever it arrives.
        let b = audio.place(&timeline, 5_000 + 96_000, t0 + Duration::from_millis(900));
        assert!((a - 0.2).abs() < 1e-9);
        assert!((b - 2.2).abs() < 1e-9);
    }
}
