//! The video pause rule of one subscriber, beside its bandwidth estimate:
//! when the estimate cannot carry the subscriber's video for
//! [`PAUSE_AFTER`] while the path keeps showing congestion (a growing
//! queue or heavy loss in every window, not an estimate still ramping up),
//! the video is paused (audio goes on) and probes are asked for every
//! [`PROBE_EVERY`] at what the video needs; once the estimate carries
//! [`RESUME_ABOVE`] × that again, the video resumes. The hysteresis (pause
//! below 0.8 ×, resume above 1.2 ×) keeps it from flapping.
//!
//! Where it sits: per subscriber session on its worker. The fan-out counts
//! the video it sends ([`SubscriberEstimate::note_video`]) and skips paused
//! video; the worker's feedback tick calls [`SubscriberEstimate::judge`]
//! and applies what changed (`crate::engine`'s probes stage, which also
//! sends the probe packets). Sans-IO.

use std::time::{Duration, Instant};

use super::BandwidthEstimator;
use crate::simulcast::Estimate;

/// How often what the video needs is measured and the estimate judged.
pub const WINDOW: Duration = Duration::from_secs(1);
/// The estimate must stay below [`PAUSE_BELOW`] × the need, on a path
/// that keeps showing congestion, this long (LiveKit waits 5 s too).
pub const PAUSE_AFTER: Duration = Duration::from_secs(5);
/// Congestion counts for a window when signalled within this before it
/// ends (a little more than a window: feedback arrives every 50–100 ms).
const CONGESTION_RECENT: Duration = Duration::from_millis(1500);
/// Pause below this share of what the video needs.
pub const PAUSE_BELOW: f64 = 0.8;
/// Resume at this share of what the video needed.
pub const RESUME_ABOVE: f64 = 1.2;
/// A paused subscriber is probed this often ...
pub const PROBE_EVERY: Duration = Duration::from_secs(2);
/// ... this long: 250 ms at 1.3 × a 1 Mbit/s video's need is 40 KB, more
/// than shapers and policers let through in a burst.
pub const PROBE_LENGTH: Duration = Duration::from_millis(250);
/// Video slower than this is never paused (bit/s).
const MIN_NEED: f64 = 50_000.0;
/// What changed for the subscriber's video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Stop forwarding its video.
    Pause,
    /// Forward its video again, from a keyframe.
    Resume,
}

/// One subscriber's estimate and what it decided.
#[derive(Debug)]
pub struct SubscriberEstimate {
    /// The estimate.
    pub bwe: BandwidthEstimator,
    /// Its video is paused.
    pub paused: bool,
    /// It can be probed (an RTX stream exists), hence paused.
    pub can_probe: bool,
    /// It is in the worker's list of probing sessions.
    pub listed: bool,
    /// Judgments made (one per [`WINDOW`]).
    pub judged: u64,
    below_since: Option<Instant>,
    window_start: Instant,
    video_bytes: u64,
    need: f64,
    last_probe: Option<Instant>,
}

impl SubscriberEstimate {
    /// A new estimate at `now`.
    pub fn new(now: Instant) -> Self {
        SubscriberEstimate {
            bwe: BandwidthEstimator::new(now),
            paused: false,
            can_probe: false,
            listed: false,
            judged: 0,
            below_since: None,
            window_start: now,
            video_bytes: 0,
            need: 0.0,
            last_probe: None,
        }
    }

    /// `bytes` of video were sent.
    pub fn note_video(&mut self, bytes: usize) {
        self.video_bytes += bytes as u64;
    }

    /// The estimate as the simulcast layer choice reads it: none until it
    /// rests on a measurement (the start value would move every new
    /// subscriber down a layer and back up a moment later).
    pub fn for_layers(&self, now: Instant) -> Option<Estimate> {
        self.bwe.measured(now).then(|| Estimate {
            rate: self.bwe.estimate() as f64,
            congested: self.bwe.congested(now, CONGESTION_RECENT),
        })
    }

    /// What its video needed over the last window before a pause, bit/s.
    pub fn need(&self) -> f64 {
        self.need
    }

    /// Judges the estimate once per [`WINDOW`] (earlier calls do nothing).
    pub fn judge(&mut self, now: Instant) -> Option<Change> {
        let elapsed = now.saturating_duration_since(self.window_start);
        if elapsed < WINDOW {
            return None;
        }
        self.window_start = now;
        self.judged += 1;
        let sent = std::mem::take(&mut self.video_bytes) as f64 * 8.0 / elapsed.as_secs_f64();
        let estimate = self.bwe.estimate() as f64;
        // A successful probe resumes even when the estimate was cut again
        // before this judgement (a probe burst can read as overuse).
        let probed = self.bwe.take_probed();
        if !self.paused {
            self.need = sent;
            // Only a path that keeps showing congestion is paused for: an
            // estimate still ramping up, or one overuse on a busy host, is
            // no reason.
            let congested = self.bwe.congested(now, CONGESTION_RECENT);
            if !self.can_probe
                || !congested
                || self.need < MIN_NEED
                || estimate >= PAUSE_BELOW * self.need
            {
                self.below_since = None;
                return None;
            }
            let since = *self.below_since.get_or_insert(now);
            if now.saturating_duration_since(since) + WINDOW < PAUSE_AFTER {
                return None;
            }
            self.below_since = None;
            self.paused = true;
            self.last_probe = None;
            return Some(Change::Pause);
        }
        if estimate.max(probed) >= RESUME_ABOVE * self.need {
            self.paused = false;
            return Some(Change::Resume);
        }
        if self
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) + WINDOW > PROBE_EVERY)
        {
            self.last_probe = Some(now);
            self.bwe
                .request_probe(RESUME_ABOVE * self.need * 1.1, PROBE_LENGTH, now);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::twcc::TwccReceiver;

    /// Transport-cc feedback reporting 100 packets of which 90 were lost
    /// (heavy loss: congestion), at `t`.
    fn congest(e: &mut SubscriberEstimate, t: Instant, first: &mut u16) {
        let mut client = TwccReceiver::new(t);
        for seq in *first..*first + 100 {
            e.bwe.sent(seq, 1200, t, None);
            if seq % 10 == 0 {
                client.record(seq, t);
            }
        }
        *first += 100;
        let mut packet = Vec::new();
        let mut statuses = Vec::new();
        while client.poll_feedback(1, 2, &mut packet) {
            e.bwe
                .on_feedback(&packet, t, Duration::from_millis(20), &mut statuses);
            packet.clear();
        }
    }

    /// A subscriber whose video sends `video` bit/s, judged every 50 ms
    /// for `seconds`, its path congested once a second when `congested`.
    fn run(
        e: &mut SubscriberEstimate,
        t: &mut Instant,
        seconds: u64,
        video: f64,
        congested: bool,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut first = 0u16;
        for i in 0..seconds * 20 {
            *t += Duration::from_millis(50);
            if congested && i % 20 == 0 {
                congest(e, *t, &mut first);
            }
            if !e.paused {
                e.note_video((video / 8.0 / 20.0) as usize);
            }
            changes.extend(e.judge(*t));
        }
        changes
    }

    /// A paused subscriber whose probe gets through resumes at the next
    /// judgement, even when the estimate was cut again in between (a probe
    /// burst can read as overuse; here, heavy loss right after it).
    #[test]
    fn a_successful_probe_resumes_even_if_the_estimate_is_cut_after() {
        let mut t = Instant::now();
        let mut e = SubscriberEstimate::new(t);
        e.can_probe = true;
        run(&mut e, &mut t, 5, 1_000_000.0, false);
        assert_eq!(run(&mut e, &mut t, 8, 1_000_000.0, true), [Change::Pause]);
        // The queued probe, sent at its pace, arrives at that pace.
        let mut client = TwccReceiver::new(t);
        let mut seq = 1000u16;
        let end = t + Duration::from_millis(1000);
        while t < end && e.bwe.probe_at().is_some() {
            while let Some(cluster) = e.bwe.poll_probe(t) {
                e.bwe
                    .sent(seq, crate::bwe::probe::PROBE_PACKET, t, Some(cluster));
                client.record(seq, t + Duration::from_millis(5));
                seq += 1;
            }
            t += Duration::from_millis(1);
        }
        assert!(seq > 1000, "a probe went out");
        let (mut packet, mut statuses) = (Vec::new(), Vec::new());
        while client.poll_feedback(1, 2, &mut packet) {
            e.bwe
                .on_feedback(&packet, t, Duration::from_millis(20), &mut statuses);
            packet.clear();
        }
        let probed = e.bwe.estimate() as f64;
        assert!(probed >= RESUME_ABOVE * e.need(), "{probed} bit/s probed");
        let mut first = 2000u16;
        congest(&mut e, t, &mut first);
        let cut = e.bwe.estimate() as f64;
        assert!(cut < RESUME_ABOVE * e.need(), "{cut} bit/s after the cut");
        t += WINDOW;
        assert_eq!(e.judge(t), Some(Change::Resume));
    }

    #[test]
    fn video_pauses_after_five_congested_seconds_below() {
        let mut t = Instant::now();
        let mut e = SubscriberEstimate::new(t);
        e.can_probe = true;
        // The estimate starts at 300 kbit/s: 200 kbit/s of video fits.
        assert!(run(&mut e, &mut t, 5, 200_000.0, false).is_empty());
        // 1 Mbit/s does not, but an estimate still ramping up on a path
        // that shows no congestion is no reason to pause.
        assert!(run(&mut e, &mut t, 5, 1_000_000.0, false).is_empty());
        // Congested and below: paused after about five seconds.
        let c = run(&mut e, &mut t, 8, 1_000_000.0, true);
        assert_eq!(c, [Change::Pause]);
        assert!(e.paused);
        assert!(e.need() > 900_000.0);
        // Paused: probes are asked for (the estimator queues a cluster).
        assert!(e.bwe.probe_at().is_some());
        // Without a way to probe, nothing ever pauses.
        let mut f = SubscriberEstimate::new(t);
        assert!(run(&mut f, &mut t, 10, 1_000_000.0, true).is_empty());
    }
}
