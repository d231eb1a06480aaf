//! A session's round-trip time, from the RTCP reports its client echoes:
//! the LSR/DLSR of a receiver report block about a sender report we sent
//! it (RFC 3550 §6.4.1), or the LRR/DLRR of an extended report answering
//! our receiver reference time (RFC 3611 §4.4–4.5, which browsers answer
//! even when they only publish). RTT = arrival − our send time − the
//! client's holding delay; smoothed as TCP does (RFC 6298, gain 1/8).
//!
//! Where it sits: on the worker that owns the session's 5-tuple. The
//! engine notes each report it sends ([`RoundTrip::sent`]) and hands over
//! each echo ([`RoundTrip::echoed`]); the NACK timers (upstream retries,
//! the resend spacing, the history age) read [`RoundTrip::get`].
//! Sans-IO: times are given.

use std::time::{Duration, Instant};

/// What the timers assume before the first measurement (RFC 4585's
/// feedback spirit; libwebrtc starts from 100 ms as well).
pub const DEFAULT_RTT: Duration = Duration::from_millis(100);
/// Samples above this are taken as a misread echo and ignored.
const MAX_SAMPLE: Duration = Duration::from_secs(10);
/// Reports whose send time is remembered (a few report intervals).
const REMEMBERED: usize = 8;

/// One session's round-trip time.
#[derive(Debug, Clone)]
pub struct RoundTrip {
    /// Compact NTP time (middle 32 bits) of recent reports → when sent.
    sent: [(u32, Instant); REMEMBERED],
    next: usize,
    smoothed: Option<Duration>,
    latest: Option<Duration>,
}

impl RoundTrip {
    /// No measurement yet.
    pub fn new(now: Instant) -> Self {
        RoundTrip {
            sent: [(0, now); REMEMBERED],
            next: 0,
            smoothed: None,
            latest: None,
        }
    }

    /// A report carrying NTP time `ntp` (its compact form is what the
    /// client echoes) was sent at `now`.
    pub fn sent(&mut self, ntp: u64, now: Instant) {
        let compact = compact(ntp);
        if compact == 0 {
            return;
        }
        self.sent[self.next] = (compact, now);
        self.next = (self.next + 1) % REMEMBERED;
    }

    /// The client echoed `last` (LSR or LRR, compact NTP) after holding it
    /// `delay` (DLSR or DLRR, 1/65536 s); returns the sample when `last`
    /// is one of ours.
    pub fn echoed(&mut self, last: u32, delay: u32, now: Instant) -> Option<Duration> {
        if last == 0 {
            return None;
        }
        let &(_, at) = self.sent.iter().find(|(c, _)| *c == last)?;
        let held = Duration::from_micros(u64::from(delay) * 1_000_000 / 65_536);
        let sample = now.checked_duration_since(at)?.checked_sub(held)?;
        if sample > MAX_SAMPLE {
            return None;
        }
        let sample = sample.max(Duration::from_micros(100));
        self.latest = Some(sample);
        self.smoothed = Some(match self.smoothed {
            None => sample,
            Some(s) => (s * 7 + sample) / 8,
        });
        Some(sample)
    }

    /// The smoothed round-trip time, once measured.
    pub fn measured(&self) -> Option<Duration> {
        self.smoothed
    }

    /// The smoothed round-trip time, or [`DEFAULT_RTT`] before the first
    /// measurement.
    pub fn get(&self) -> Duration {
        self.smoothed.unwrap_or(DEFAULT_RTT)
    }
}

/// The middle 32 bits of a 64-bit NTP timestamp (RFC 3550 §4).
pub fn compact(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// An NTP-format timestamp for `now`, counted from `epoch` (the client
/// only echoes it, so it need not be wall-clock time; never zero).
pub fn ntp_since(epoch: Instant, now: Instant) -> u64 {
    let d = now.saturating_duration_since(epoch) + Duration::from_secs(1);
    (d.as_secs() << 32) | ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side of an echo: holds the report `held`, stamps the
    /// delay in 1/65536 s.
    fn delay_units(held: Duration) -> u32 {
        (held.as_micros() * 65_536 / 1_000_000) as u32
    }

    #[test]
    fn a_report_echoed_after_a_round_trip_and_a_holding_delay_measures_the_round_trip() {
        let t0 = Instant::now();
        let mut rtt = RoundTrip::new(t0);
        assert_eq!(rtt.get(), DEFAULT_RTT);
        let ntp = ntp_since(t0, t0 + Duration::from_millis(5));
        rtt.sent(ntp, t0 + Duration::from_millis(5));
        // 30 ms each way, held 400 ms by the client.
        let back = t0 + Duration::from_millis(5 + 30 + 400 + 30);
        let sample = rtt
            .echoed(compact(ntp), delay_units(Duration::from_millis(400)), back)
            .expect("ours");
        assert!(sample.abs_diff(Duration::from_millis(60)) < Duration::from_millis(1));
        assert_eq!(rtt.measured(), Some(sample));
    }

    #[test]
    fn echoes_of_reports_we_did_not_send_are_ignored() {
        let t0 = Instant::now();
        let mut rtt = RoundTrip::new(t0);
        rtt.sent(ntp_since(t0, t0), t0);
        assert_eq!(rtt.echoed(0, 0, t0 + Duration::from_millis(10)), None);
        assert_eq!(
            rtt.echoed(0x1234_5678, 0, t0 + Duration::from_millis(10)),
            None
        );
        // A holding delay longer than the time since we sent it.
        let c = compact(ntp_since(t0, t0));
        assert_eq!(rtt.echoed(c, delay_units(Duration::from_secs(1)), t0), None);
        assert_eq!(rtt.get(), DEFAULT_RTT);
    }

    #[test]
    fn jittery_samples_smooth_towards_the_true_round_trip() {
        // Seeded jitter of ±20 ms around an 80 ms round trip, one report a
        // second, the echo held a random time.
        let t0 = Instant::now();
        let mut rtt = RoundTrip::new(t0);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for i in 0..60u64 {
            let at = t0 + Duration::from_secs(i);
            let ntp = ntp_since(t0, at);
            rtt.sent(ntp, at);
            let held = Duration::from_millis(rand(900));
            let path = Duration::from_millis(60 + rand(41));
            rtt.echoed(compact(ntp), delay_units(held), at + held + path);
        }
        let got = rtt.get();
        assert!(
            got.abs_diff(Duration::from_millis(80)) < Duration::from_millis(10),
            "{got:?}"
        );
    }
}
