//! Reception statistics of one inbound stream (RFC 3550 §6.4.1, A.3, A.8):
//! extended highest sequence number, loss, interarrival jitter and the last
//! sender report, which our receiver reports carry back to the publisher.
//!
//! Sans-IO: arrival times come in as `now`.

use std::time::Instant;

use crate::wire::rtcp::ReportBlock;

/// Statistics of one SSRC we receive.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    /// Which route (pushed track) the SSRC belongs to.
    pub route: usize,
    clock_rate: u32,
    base_seq: u64,
    max_seq: u64,
    received: u64,
    expected_prior: u64,
    received_prior: u64,
    jitter: f64,
    last_transit: Option<i64>,
    last_sr: Option<(u32, Instant)>,
    /// When its last packet arrived.
    last_packet: Option<Instant>,
}

impl ReceptionStats {
    /// A stream whose first packet has sequence `seq`.
    pub fn new(route: usize, clock_rate: u32, seq: u16) -> Self {
        ReceptionStats {
            route,
            clock_rate: clock_rate.max(1),
            base_seq: u64::from(seq) + 65536,
            max_seq: u64::from(seq) + 65536 - 1,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: 0.0,
            last_transit: None,
            last_sr: None,
            last_packet: None,
        }
    }

    /// Packets received, packets lost (expected minus received, RFC 3550
    /// §6.4.1: negative when duplicates arrived) and the interarrival
    /// jitter, for the stats route.
    pub fn totals(&self) -> (u64, i64, std::time::Duration) {
        let expected = self.max_seq + 1 - self.base_seq;
        let lost = expected as i64 - self.received as i64;
        let jitter = std::time::Duration::from_secs_f64(self.jitter / f64::from(self.clock_rate));
        (self.received, lost, jitter)
    }

    /// Whether no packet arrived for `timeout` before `now` (its state may
    /// be freed).
    pub fn is_silent(&self, now: Instant, timeout: std::time::Duration) -> bool {
        self.last_packet
            .is_none_or(|at| now.saturating_duration_since(at) >= timeout)
    }

    /// Records a packet: `seq`, `rtp_timestamp`, arrival `now` relative to `epoch`.
    pub fn handle_packet(&mut self, epoch: Instant, now: Instant, seq: u16, rtp_timestamp: u32) {
        let ext = unwrap_seq(self.max_seq, seq);
        if ext > self.max_seq {
            self.max_seq = ext;
        }
        self.received += 1;
        self.last_packet = Some(now);
        let arrival =
            now.saturating_duration_since(epoch).as_secs_f64() * f64::from(self.clock_rate);
        let transit = arrival as i64 - i64::from(rtp_timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Records a sender report's NTP timestamp, received at `now`.
    pub fn handle_sender_report(&mut self, now: Instant, ntp: u64) {
        self.last_sr = Some(((ntp >> 16) as u32, now));
    }

    /// The report block for this stream, and resets the interval counters.
    pub fn report_block(&mut self, now: Instant, ssrc: u32) -> ReportBlock {
        let expected = self.max_seq + 1 - self.base_seq;
        let lost = expected as i64 - self.received as i64;
        let expected_interval = expected - self.expected_prior;
        let received_interval = self.received - self.received_prior;
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => {
                let delay = now.saturating_duration_since(at).as_secs_f64() * 65536.0;
                (lsr, delay as u32)
            }
            None => (0, 0),
        };
        ReportBlock {
            ssrc,
            fraction_lost,
            cumulative_lost: lost.clamp(-0x80_0000, 0x7f_ffff) as i32,
            extended_highest_seq: self.max_seq.wrapping_sub(65536) as u32,
            jitter: self.jitter as u32,
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// The extended sequence number closest to `max` for a 16-bit `seq`.
fn unwrap_seq(max: u64, seq: u16) -> u64 {
    let candidate = (max & !0xffff) | u64::from(seq);
    let options = [candidate.wrapping_sub(65536), candidate, candidate + 65536];
    options
        .into_iter()
        .min_by_key(|c| c.abs_diff(max))
        .unwrap_or(candidate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_loss_across_a_wrap() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(0, 90000, 65530);
        for (i, seq) in [65530u16, 65531, 65533, 65535, 0, 1, 3].iter().enumerate() {
            s.handle_packet(
                t0,
                t0 + Duration::from_millis(i as u64 * 33),
                *seq,
                i as u32 * 3000,
            );
        }
        let block = s.report_block(t0, 42);
        // Expected 65530..=65539 (10 packets), received 7.
        assert_eq!(block.cumulative_lost, 3);
        assert_eq!(block.extended_highest_seq, 65536 + 3);
        assert_eq!(block.fraction_lost, (3 * 256 / 10) as u8);
        // A second report with nothing new reports no fresh loss.
        assert_eq!(s.report_block(t0, 42).fraction_lost, 0);
    }

    #[test]
    fn jitter_is_zero_for_a_perfect_clock_and_grows_with_variation() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(0, 90000, 0);
        for i in 0..50u32 {
            s.handle_packet(
                t0,
                t0 + Duration::from_millis(u64::from(i) * 20),
                i as u16,
                i * 1800,
            );
        }
        assert!(s.report_block(t0, 1).jitter <= 1);
        for i in 50..100u32 {
            let wobble = if i % 2 == 0 { 5 } else { 0 };
            s.handle_packet(
                t0,
                t0 + Duration::from_millis(u64::from(i) * 20 + wobble),
                i as u16,
                i * 1800,
            );
        }
        assert!(s.report_block(t0, 1).jitter > 100);
    }

    #[test]
    fn reports_the_delay_since_the_last_sender_report() {
        let t0 = Instant::now();
        let mut s = ReceptionStats::new(0, 48000, 0);
        s.handle_sender_report(t0, 0x1234_5678_9abc_def0);
        let block = s.report_block(t0 + Duration::from_millis(500), 1);
        assert_eq!(block.last_sr, 0x5678_9abc);
        assert_eq!(block.delay_since_last_sr, 32768);
    }
}
