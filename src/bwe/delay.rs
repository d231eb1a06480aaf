//! The delay-based half of GCC (draft-ietf-rmcat-gcc-02 §5, as libwebrtc's
//! trendline estimator does it): packets sent within a burst form a group;
//! the growth of one-way delay between groups is smoothed and its trend
//! (the slope of a least-squares line over the last [`WINDOW`] groups) is
//! compared with an adaptive threshold. A growing queue (overuse) is seen
//! before any packet is lost.
//!
//! Where it sits: inside [`super::BandwidthEstimator`], fed the acknowledged
//! packets of each transport-cc feedback in send order. Sans-IO: all times
//! are µs (send times in our clock, arrival times in the receiver's).

/// Packets sent within this of a group's first one join the group.
const BURST_US: i64 = 5_000;
/// Groups in the regression window.
pub const WINDOW: usize = 20;
/// Smoothing of the accumulated delay.
const SMOOTHING: f64 = 0.9;
/// The trend is scaled by this (and by the number of deltas, up to 60).
const GAIN: f64 = 4.0;
/// The threshold's bounds and start, ms.
const THRESHOLD_MIN: f64 = 6.0;
const THRESHOLD_MAX: f64 = 600.0;
const THRESHOLD_START: f64 = 12.5;
/// How fast the threshold follows the trend: up, down (per ms).
const K_UP: f64 = 0.0087;
const K_DOWN: f64 = 0.039;
/// Overuse must last this long (µs of send time) before it is signalled.
const OVERUSE_TIME_US: i64 = 10_000;

/// What the delay trend says of the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// Delay steady: the rate may grow.
    Normal,
    /// A queue builds: the rate must fall.
    Overusing,
    /// A queue drains: hold the rate.
    Underusing,
}

/// One group of packets sent in a burst.
#[derive(Debug, Clone, Copy)]
struct Group {
    first_send: i64,
    last_send: i64,
    last_arrival: i64,
}

/// The trendline detector.
#[derive(Debug)]
pub struct DelayDetector {
    current: Option<Group>,
    previous: Option<Group>,
    first_arrival: Option<i64>,
    accumulated: f64,
    smoothed: f64,
    /// (arrival ms since the first, smoothed delay ms), a ring.
    window: [(f64, f64); WINDOW],
    filled: usize,
    next: usize,
    deltas: u32,
    threshold: f64,
    last_threshold_update: Option<i64>,
    time_over: i64,
    overuse_count: u32,
    previous_trend: f64,
    usage: Usage,
}

impl Default for DelayDetector {
    fn default() -> Self {
        DelayDetector {
            current: None,
            previous: None,
            first_arrival: None,
            accumulated: 0.0,
            smoothed: 0.0,
            window: [(0.0, 0.0); WINDOW],
            filled: 0,
            next: 0,
            deltas: 0,
            threshold: THRESHOLD_START,
            last_threshold_update: None,
            time_over: -1,
            overuse_count: 0,
            previous_trend: 0.0,
            usage: Usage::Normal,
        }
    }
}

impl DelayDetector {
    /// Takes an acknowledged packet (send order): sent at `send_us`,
    /// arrived at `arrival_us`. Returns the usage when a group completed.
    pub fn on_packet(&mut self, send_us: i64, arrival_us: i64) -> Option<Usage> {
        let Some(cur) = self.current.as_mut() else {
            self.current = Some(Group {
                first_send: send_us,
                last_send: send_us,
                last_arrival: arrival_us,
            });
            return None;
        };
        if send_us < cur.first_send {
            return None; // reordered across groups: ignored
        }
        if send_us - cur.first_send <= BURST_US {
            cur.last_send = cur.last_send.max(send_us);
            cur.last_arrival = cur.last_arrival.max(arrival_us);
            return None;
        }
        let done = *cur;
        self.current = Some(Group {
            first_send: send_us,
            last_send: send_us,
            last_arrival: arrival_us,
        });
        let previous = self.previous.replace(done)?;
        let send_delta = done.last_send - previous.last_send;
        let arrival_delta = done.last_arrival - previous.last_arrival;
        if arrival_delta < 0 {
            return None;
        }
        Some(self.update(send_delta, arrival_delta, done.last_arrival))
    }

    /// The latest usage.
    pub fn usage(&self) -> Usage {
        self.usage
    }

    fn update(&mut self, send_delta: i64, arrival_delta: i64, arrival: i64) -> Usage {
        self.deltas = (self.deltas + 1).min(1000);
        let first = *self.first_arrival.get_or_insert(arrival);
        self.accumulated += (arrival_delta - send_delta) as f64 / 1000.0;
        self.smoothed = SMOOTHING * self.smoothed + (1.0 - SMOOTHING) * self.accumulated;
        self.window[self.next] = ((arrival - first) as f64 / 1000.0, self.smoothed);
        self.next = (self.next + 1) % WINDOW;
        self.filled = (self.filled + 1).min(WINDOW);
        if self.filled < WINDOW {
            return self.usage;
        }
        let trend = slope(&self.window).unwrap_or(self.previous_trend);
        self.detect(trend, send_delta, arrival);
        self.usage
    }

    fn detect(&mut self, trend: f64, send_delta: i64, arrival: i64) {
        let modified = f64::from(self.deltas.min(60)) * trend * GAIN;
        if modified > self.threshold {
            if self.time_over == -1 {
                self.time_over = send_delta / 2;
            } else {
                self.time_over += send_delta;
            }
            self.overuse_count += 1;
            if self.time_over > OVERUSE_TIME_US
                && self.overuse_count > 1
                && trend >= self.previous_trend
            {
                self.time_over = 0;
                self.overuse_count = 0;
                self.usage = Usage::Overusing;
            }
        } else if modified < -self.threshold {
            self.time_over = -1;
            self.overuse_count = 0;
            self.usage = Usage::Underusing;
        } else {
            self.time_over = -1;
            self.overuse_count = 0;
            self.usage = Usage::Normal;
        }
        self.previous_trend = trend;
        self.adapt_threshold(modified, arrival);
    }

    fn adapt_threshold(&mut self, modified: f64, arrival: i64) {
        let last = self
            .last_threshold_update
            .replace(arrival)
            .unwrap_or(arrival);
        if modified.abs() > self.threshold + 15.0 {
            return; // a spike (a route change): not learned from
        }
        let k = if modified.abs() < self.threshold {
            K_DOWN
        } else {
            K_UP
        };
        let dt_ms = ((arrival - last) as f64 / 1000.0).min(100.0);
        self.threshold += k * (modified.abs() - self.threshold) * dt_ms;
        self.threshold = self.threshold.clamp(THRESHOLD_MIN, THRESHOLD_MAX);
    }
}

/// The least-squares slope of `points`, if they are not all at one x.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(num, den), (x, y)| {
        (num + (x - mx) * (y - my), den + (x - mx) * (x - mx))
    });
    (den != 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends a packet every `gap_us` for `n` packets through a path whose
    /// queue grows by `growth_us` per packet; returns the last usage.
    fn run(d: &mut DelayDetector, start: i64, n: i64, gap_us: i64, growth_us: i64) -> Usage {
        let mut usage = d.usage();
        for i in 0..n {
            let send = start + i * gap_us;
            let arrival = send + 20_000 + i * growth_us + (i * 7919 % 3) * 100;
            if let Some(u) = d.on_packet(send, arrival) {
                usage = u;
            }
        }
        usage
    }

    #[test]
    fn a_steady_path_is_normal_and_a_growing_queue_is_overuse() {
        let mut d = DelayDetector::default();
        assert_eq!(run(&mut d, 0, 300, 10_000, 0), Usage::Normal);
        // 1 ms more queue for each 10 ms packet: a 10 % overload.
        assert_eq!(run(&mut d, 3_000_000, 100, 10_000, 1_000), Usage::Overusing);
    }

    #[test]
    fn a_draining_queue_is_underuse() {
        let mut d = DelayDetector::default();
        run(&mut d, 0, 100, 10_000, 0);
        assert_eq!(run(&mut d, 1_000_000, 100, 10_000, -800), Usage::Underusing);
    }

    #[test]
    fn the_slope_of_a_line_is_found() {
        let pts: Vec<(f64, f64)> = (0..10)
            .map(|i| (f64::from(i), 3.0 * f64::from(i) + 1.0))
            .collect();
        assert!((slope(&pts).unwrap() - 3.0).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
