//! Turning GCC's signals into a rate (draft-ietf-rmcat-gcc-02 §5.5, §6, as
//! libwebrtc does it): the delay detector's usage drives an AIMD
//! controller (grow 8 %/s while far from the last known capacity, about a
//! packet per round trip when near it, fall to 0.85 × the acknowledged
//! rate on overuse, never above 1.5 × what is acknowledged), and the loss
//! ratio caps it (more than 10 % lost: cut by half the ratio; under 2 %:
//! let it grow again).
//!
//! Where it sits: inside [`super::BandwidthEstimator`], updated on each
//! transport-cc feedback. Sans-IO: times are µs of our clock.

use super::delay::Usage;

/// Estimates never fall below this (audio must keep flowing), bit/s.
pub const MIN_RATE: f64 = 30_000.0;
/// ... nor rise above this, bit/s.
pub const MAX_RATE: f64 = 50_000_000.0;
/// The multiplicative decrease on overuse.
const BETA: f64 = 0.85;
/// Growth per second far from the known capacity.
const GROWTH_PER_SECOND: f64 = 1.08;
/// Loss ratios: above cuts, below lets grow.
const LOSS_HIGH: f64 = 0.10;
const LOSS_LOW: f64 = 0.02;
/// Loss cuts at most this often, µs.
const LOSS_CUT_INTERVAL_US: i64 = 300_000;

/// The AIMD controller and the loss cap.
#[derive(Debug)]
pub struct RateControl {
    rate: f64,
    loss_cap: f64,
    /// The acknowledged rate at the last decrease: the link's capacity as
    /// far as known.
    capacity: Option<f64>,
    last_update: Option<i64>,
    last_loss_cut: Option<i64>,
    holding: bool,
    /// When it last cut for congestion (overuse or heavy loss), µs.
    pub last_congestion: Option<i64>,
    /// The acknowledged rate last seen: loss cuts stop at 0.85 × it (what
    /// gets through is the path's capacity, whatever is lost beyond it).
    acked: Option<f64>,
}

impl RateControl {
    /// Starts at `start` bit/s.
    pub fn new(start: f64) -> Self {
        RateControl {
            rate: start,
            loss_cap: MAX_RATE,
            capacity: None,
            last_update: None,
            last_loss_cut: None,
            holding: false,
            last_congestion: None,
            acked: None,
        }
    }

    /// The estimate, bit/s.
    pub fn rate(&self) -> f64 {
        self.rate.min(self.loss_cap).clamp(MIN_RATE, MAX_RATE)
    }

    /// A probe showed the path carries `rate` bit/s: jump there.
    pub fn probed(&mut self, rate: f64) {
        if rate > self.rate() {
            self.rate = rate;
            self.loss_cap = self.loss_cap.max(rate);
            self.capacity = None;
        }
    }

    /// Takes the usage at `now_us`, the acknowledged rate (bit/s, when
    /// known) and the round trip (µs).
    pub fn update(&mut self, now_us: i64, usage: Usage, acked: Option<f64>, rtt_us: i64) {
        self.acked = acked.or(self.acked);
        let dt = self
            .last_update
            .replace(now_us)
            .map_or(0.0, |t| ((now_us - t).max(0) as f64 / 1e6).min(1.0));
        match usage {
            Usage::Overusing => {
                self.last_congestion = Some(now_us);
                if !self.holding {
                    let from = acked.unwrap_or(self.rate);
                    let cut = BETA * from;
                    self.rate = self.rate.min(cut).max(MIN_RATE);
                    self.capacity = acked;
                }
                // One cut per overuse episode: hold until it clears.
                self.holding = true;
            }
            Usage::Underusing => self.holding = true,
            Usage::Normal => {
                self.holding = false;
                let near = self
                    .capacity
                    .is_some_and(|c| self.rate > 0.9 * c && self.rate < 1.5 * c);
                // Increases stop at 1.5 × what is acknowledged (a rate
                // above it, from a probe, is kept, not cut).
                let limit = acked.map_or(f64::MAX, |a| 1.5 * a + 10_000.0);
                let before = self.rate;
                if before >= limit {
                    return;
                }
                if near {
                    // About one 1200-byte packet more per response time.
                    let response_s = (rtt_us as f64 / 1e6) + 0.1;
                    self.rate += 1200.0 * 8.0 / response_s * dt;
                } else {
                    self.rate *= GROWTH_PER_SECOND.powf(dt);
                }
                self.rate = self.rate.min(limit);
            }
        }
        self.rate = self.rate.clamp(MIN_RATE, MAX_RATE);
    }

    /// Takes the loss ratio of a feedback interval ending at `now_us`.
    pub fn on_loss(&mut self, now_us: i64, ratio: f64, rtt_us: i64) {
        if ratio > LOSS_HIGH {
            let due = self
                .last_loss_cut
                .is_none_or(|t| now_us - t >= LOSS_CUT_INTERVAL_US + rtt_us);
            self.last_congestion = Some(now_us);
            if due {
                self.last_loss_cut = Some(now_us);
                let floor = self.acked.map_or(MIN_RATE, |a| BETA * a);
                self.loss_cap = (self.rate() * (1.0 - 0.5 * ratio)).max(floor.min(self.rate()));
            }
        } else if ratio < LOSS_LOW && self.loss_cap < MAX_RATE {
            // Free again: the delay-based rate leads.
            self.loss_cap = (self.loss_cap * 1.08).min(MAX_RATE);
            if self.loss_cap >= self.rate {
                self.loss_cap = MAX_RATE;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_grows_about_eight_percent_a_second_and_overuse_cuts_once() {
        let mut r = RateControl::new(1_000_000.0);
        for i in 0..=40 {
            r.update(i * 25_000, Usage::Normal, None, 20_000);
        }
        let grown = r.rate();
        assert!((grown / 1_000_000.0 - 1.08).abs() < 0.01, "{grown}");
        r.update(1_025_000, Usage::Overusing, Some(800_000.0), 20_000);
        assert!((r.rate() - 680_000.0).abs() < 1.0);
        r.update(1_050_000, Usage::Overusing, Some(500_000.0), 20_000);
        assert!((r.rate() - 680_000.0).abs() < 1.0, "one cut per episode");
    }

    #[test]
    fn growth_stops_at_one_and_a_half_times_what_is_acknowledged() {
        let mut r = RateControl::new(300_000.0);
        for i in 0..400 {
            r.update(i * 25_000, Usage::Normal, Some(300_000.0), 20_000);
        }
        assert!((r.rate() - 460_000.0).abs() < 1.0);
        // A probe's result above it is kept, not cut back.
        r.probed(2_000_000.0);
        r.update(10_025_000, Usage::Normal, Some(300_000.0), 20_000);
        assert_eq!(r.rate(), 2_000_000.0);
    }

    #[test]
    fn heavy_loss_cuts_and_light_loss_lets_it_recover() {
        let mut r = RateControl::new(1_000_000.0);
        r.on_loss(0, 0.2, 20_000);
        assert!((r.rate() - 900_000.0).abs() < 1.0);
        r.on_loss(100_000, 0.2, 20_000);
        assert!((r.rate() - 900_000.0).abs() < 1.0, "not again so soon");
        r.on_loss(400_000, 0.05, 20_000);
        assert!((r.rate() - 900_000.0).abs() < 1.0, "5 %: held");
        for i in 0..3 {
            r.on_loss(500_000 + i * 100_000, 0.0, 20_000);
        }
        assert_eq!(r.rate(), 1_000_000.0);
    }
}
