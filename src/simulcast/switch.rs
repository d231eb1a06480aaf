//! One subscriber's layer of one simulcast track: which layers are live and
//! at what rate (it sees every layer go by), which one to send, and when
//! to switch.
//!
//! Call contract, per pull on the subscriber's worker:
//! - [`LayerSwitch::handle_packet`] for every packet of the track, any
//!   layer, then [`LayerSwitch::admit`] for it: forward, skip, or switch
//!   (a keyframe of the target layer: the outbound stream is re-based on
//!   it, with [`LayerSwitch::switch_timestamp`]);
//! - [`LayerSwitch::handle_sender_report`] for each layer's sender report;
//! - [`LayerSwitch::retarget`] after each run of packets (and when the
//!   preferences or the estimate change), then
//!   [`LayerSwitch::poll_keyframe_request`]: the layer to ask a keyframe
//!   of, while the target is not reached.
//!
//! Switching rules (media-quality.md): the current layer is forwarded until
//! the target's keyframe arrives; down at once when the path shows
//! congestion and the estimate no longer carries the current layer (while
//! the path shows none it carries the layer being sent, whatever an
//! estimate still ramping up, or a layer's rate swollen by keyframes,
//! says); up only to a layer live for [`UP_AFTER_LIVE`], when the estimate
//! carries its rate with [`UP_MARGIN`] to spare, and not within
//! [`UP_HOLD`] of a bandwidth-driven downswitch (no flapping).

use std::time::{Duration, Instant};

use super::preferences::{Candidates, Preferences};
use super::{Layer, MAX_LAYERS};
use crate::codec::vp8;
use crate::ids::Rid;

/// A layer silent this long has stopped.
pub const SILENT: Duration = Duration::from_secs(1);
/// A keyframe request for the target is repeated this often until one
/// comes.
pub const KEYFRAME_RETRY: Duration = Duration::from_secs(1);
/// A layer must have been live this long before switching up to it.
pub const UP_AFTER_LIVE: Duration = Duration::from_secs(2);
/// No switch up this long after a switch down for bandwidth.
pub const UP_HOLD: Duration = Duration::from_secs(10);
/// Switch up only when the estimate is this many times the layer's rate.
pub const UP_MARGIN: f64 = 1.15;
/// A better layer that the estimate does not carry is probed for this
/// often (the estimate only grows slowly on its own while a lower layer
/// is sent: the path's spare capacity shows only in a probe).
pub const PROBE_EVERY: Duration = Duration::from_secs(5);
/// A probe for a better layer is at this many times its rate with the
/// margin, so that a success leaves the estimate above what it needs.
pub const PROBE_ABOVE: f64 = 1.1;
/// Layer rates are measured over windows this long.
const RATE_WINDOW: Duration = Duration::from_millis(500);
/// One video frame at 30 fps on the 90 kHz clock: the step of a switch
/// whose keyframe is not after the last frame sent.
pub const FRAME_TICKS: u32 = 3000;
/// The RTP clock rate of video (RFC 7741, RFC 6184, …), Hz.
pub const VIDEO_CLOCK: u32 = 90_000;

/// The subscriber's bandwidth estimate, as the layer choice reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Bit/s.
    pub rate: f64,
    /// The path showed congestion lately (a growing queue, heavy loss).
    /// Only then is the layer being sent left for one the rate fits (and
    /// switching up held for [`UP_HOLD`]): without congestion the path
    /// carries it.
    pub congested: bool,
}

/// What to do with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it (it is of the current layer).
    Forward,
    /// It starts a keyframe of the target layer, now current: send it,
    /// continuing the stream.
    Switch,
    /// Not for this subscriber.
    Skip,
}

/// What is seen of one layer.
#[derive(Debug, Clone, Copy, Default)]
struct Seen {
    last: Option<Instant>,
    live_since: Option<Instant>,
    bytes: u64,
    /// Bit/s, smoothed.
    rate: f64,
    /// The layer's last sender report: (NTP time, RTP timestamp).
    report: Option<(u64, u32)>,
}

/// One subscriber's layer choice for one simulcast track.
#[derive(Debug, Clone)]
pub struct LayerSwitch {
    preferences: Preferences,
    candidates: Candidates,
    current: Option<Layer>,
    /// The layer whose timeline the outbound stream's numbers follow (the
    /// last one sent).
    timeline: Option<Layer>,
    /// The timeline the stream followed before the last switch.
    switched_from: Option<Layer>,
    target: Option<Layer>,
    seen: [Seen; MAX_LAYERS],
    window_start: Option<Instant>,
    asked: Option<Instant>,
    last_down: Option<Instant>,
    last_probe: Option<Instant>,
    last_marker: bool,
    /// VP8 numbering continuity across switches.
    pub vp8: vp8::Rewrite,
}

impl LayerSwitch {
    /// A switch for a track sent as `rids`, with nothing chosen yet.
    pub fn new(preferences: Preferences, rids: &[Rid]) -> Self {
        LayerSwitch {
            candidates: preferences.candidates(rids),
            preferences,
            current: None,
            timeline: None,
            switched_from: None,
            target: None,
            seen: [Seen::default(); MAX_LAYERS],
            window_start: None,
            asked: None,
            last_down: None,
            last_probe: None,
            last_marker: true,
            vp8: vp8::Rewrite::default(),
        }
    }

    /// New preferences (tracks/update): the target is chosen again.
    pub fn set_preferences(&mut self, preferences: Preferences, rids: &[Rid]) {
        self.candidates = preferences.candidates(rids);
        self.preferences = preferences;
        self.last_down = None;
    }

    /// The layer being sent.
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// The layer last sent, whose timeline the stream follows.
    pub fn timeline(&self) -> Option<Layer> {
        self.timeline
    }

    /// Sending stopped (a pause): the next packet sent must start a
    /// keyframe again.
    pub fn restart(&mut self) {
        self.current = None;
        self.asked = None;
    }

    /// The layer wanted.
    pub fn target(&self) -> Option<Layer> {
        self.target
    }

    /// Whether `layer` received media within [`SILENT`].
    pub fn is_live(&self, layer: Layer, now: Instant) -> bool {
        self.seen
            .get(layer.index())
            .and_then(|s| s.last)
            .is_some_and(|t| now.saturating_duration_since(t) < SILENT)
    }

    /// The measured rate of `layer`, bit/s.
    pub fn rate(&self, layer: Layer) -> f64 {
        self.seen.get(layer.index()).map_or(0.0, |s| s.rate)
    }

    /// A packet of `layer` (`bytes` long) went by.
    pub fn handle_packet(&mut self, now: Instant, layer: Layer, bytes: usize) {
        let start = *self.window_start.get_or_insert(now);
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            self.window_start = Some(now);
            for s in &mut self.seen {
                let sample = std::mem::take(&mut s.bytes) as f64 * 8.0 / elapsed.as_secs_f64();
                s.rate = if s.rate == 0.0 {
                    sample
                } else {
                    0.6 * s.rate + 0.4 * sample
                };
            }
        }
        let Some(s) = self.seen.get_mut(layer.index()) else {
            return;
        };
        let resumed = s
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= SILENT);
        if resumed {
            s.live_since = Some(now);
        }
        s.last = Some(now);
        s.bytes += bytes as u64;
    }

    /// The sender report of `layer`: its NTP time and RTP timestamp.
    pub fn handle_sender_report(&mut self, layer: Layer, ntp: u64, rtp_timestamp: u32) {
        if let Some(s) = self.seen.get_mut(layer.index()) {
            s.report = Some((ntp, rtp_timestamp));
        }
    }

    /// Chooses the target from the preferences, the live layers and the
    /// estimate (`None` when the subscriber has none yet).
    pub fn retarget(&mut self, now: Instant, estimate: Option<Estimate>) {
        let current_rank = self.current.and_then(|c| self.candidates.rank(c));
        let up_allowed = self
            .last_down
            .is_none_or(|t| now.saturating_duration_since(t) >= UP_HOLD);
        // A switch down waits for its keyframe: it is not undone because
        // the congestion that caused it has not been signalled again since.
        let going_down = self.target.and_then(|t| self.candidates.rank(t)) > current_rank;
        let fits = |layer: Layer| {
            let Some(estimate) = estimate else {
                return true;
            };
            let rate = self.rate(layer);
            match (self.candidates.rank(layer), current_rank) {
                (Some(r), Some(c)) if r < c => {
                    let settled = self.seen[layer.index()]
                        .live_since
                        .is_some_and(|t| now.saturating_duration_since(t) >= UP_AFTER_LIVE);
                    up_allowed && settled && rate * UP_MARGIN <= estimate.rate
                }
                (Some(r), Some(c)) if r == c && !estimate.congested && !going_down => true,
                _ => rate <= estimate.rate,
            }
        };
        let target = self
            .preferences
            .target(&self.candidates, |l| self.is_live(l, now), fits);
        if let (Some(t), Some(c)) = (target, self.current)
            && estimate.is_some()
            && self.is_live(c, now)
            && self.candidates.rank(t) > self.candidates.rank(c)
        {
            // Down while the current layer still flows: for bandwidth.
            self.last_down = Some(now);
        }
        if target != self.target {
            self.target = target;
            self.asked = None;
        }
    }

    /// What to do with a packet of `layer` (`keyframe`: it starts one).
    pub fn admit(&mut self, layer: Layer, keyframe: bool) -> Admit {
        match self.target {
            Some(t) if t == layer && self.current != Some(t) && keyframe => {
                self.current = Some(t);
                self.switched_from = self.timeline.replace(t);
                Admit::Switch
            }
            _ if self.current == Some(layer) => Admit::Forward,
            _ => Admit::Skip,
        }
    }

    /// The layer whose timeline the stream followed before the last
    /// [`Admit::Switch`] (none before the first).
    pub fn switched_from(&self) -> Option<Layer> {
        self.switched_from
    }

    /// Whether this pull forwards a packet of `layer` (`bytes` long;
    /// `keyframe`: it starts one), after counting it: a pull without a
    /// target gets one at once, so that a keyframe among its first packets
    /// is not missed; a `paused` pull (its video paused for bandwidth)
    /// forwards nothing.
    pub fn admit_packet(
        &mut self,
        now: Instant,
        layer: Layer,
        bytes: usize,
        keyframe: bool,
        estimate: Option<Estimate>,
        paused: bool,
    ) -> Admit {
        self.handle_packet(now, layer, bytes);
        if self.target.is_none() {
            self.retarget(now, estimate);
        }
        if paused {
            return Admit::Skip;
        }
        self.admit(layer, keyframe)
    }

    /// A packet this pull admitted is about to be protected: its VP8
    /// numbering continued (`vp8_payload`: its payload, when VP8), its end
    /// of frame (`marker`) noted.
    #[inline(never)]
    pub fn sent_packet(&mut self, vp8_payload: Option<&mut [u8]>, marker: bool) {
        if let Some(payload) = vp8_payload {
            self.vp8.apply(payload);
        }
        self.sent(marker);
    }

    /// A packet was sent, with the marker bit `marker` (the last packet
    /// of its frame).
    pub fn sent(&mut self, marker: bool) {
        self.last_marker = marker;
    }

    /// Whether the last packet sent ended its frame. If not, a switch
    /// leaves one sequence number out, so the subscriber drops the
    /// incomplete frame instead of waiting for it.
    pub fn frame_complete(&self) -> bool {
        self.last_marker
    }

    /// The layer to ask a keyframe of: the target, while it is not
    /// current, is live, and was not asked within [`KEYFRAME_RETRY`].
    pub fn poll_keyframe_request(&mut self, now: Instant) -> Option<Layer> {
        let target = self.target?;
        if self.current == Some(target) || !self.is_live(target, now) {
            return None;
        }
        if self
            .asked
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_RETRY)
        {
            return None;
        }
        self.asked = Some(now);
        Some(target)
    }

    /// The rate (bit/s) to probe the subscriber's path at, when the
    /// preferences follow the estimate and the next better live layer does
    /// not fit it: at most every [`PROBE_EVERY`], not within [`UP_HOLD`]
    /// of a switch down (it could not be switched up to anyway).
    pub fn poll_probe(&mut self, now: Instant, estimate: Option<Estimate>) -> Option<f64> {
        if !self.preferences.by_estimate {
            return None;
        }
        let estimate = estimate?.rate;
        let rank = self.candidates.rank(self.current?)?;
        let better = *self.candidates.layers()[..rank]
            .iter()
            .rev()
            .find(|l| self.is_live(**l, now))?;
        let want = self.rate(better) * UP_MARGIN;
        let recent = |t: Option<Instant>, d: Duration| {
            t.is_some_and(|t| now.saturating_duration_since(t) < d)
        };
        if want <= estimate
            || recent(self.last_probe, PROBE_EVERY)
            || recent(self.last_down, UP_HOLD)
        {
            return None;
        }
        self.last_probe = Some(now);
        Some(want * PROBE_ABOVE)
    }

    /// Timestamp `ts` of layer `to`, on the clock of layer `from` (both
    /// `clock_rate`), through the two layers' sender reports; `None`
    /// until both have sent one.
    pub fn switch_timestamp(
        &self,
        from: Layer,
        to: Layer,
        ts: u32,
        clock_rate: u32,
    ) -> Option<u32> {
        let (ntp_from, rtp_from) = self.seen.get(from.index())?.report?;
        let (ntp_to, rtp_to) = self.seen.get(to.index())?.report?;
        // NTP is 32.32 fixed point: seconds between the reports, in ticks.
        let between = ((i128::from(ntp_to) - i128::from(ntp_from)) * i128::from(clock_rate)) >> 32;
        let since_report = i128::from(ts.wrapping_sub(rtp_to) as i32);
        Some(rtp_from.wrapping_add((between + since_report) as i64 as u32))
    }
}

#[cfg(test)]
#[path = "switch_tests.rs"]
mod tests;
