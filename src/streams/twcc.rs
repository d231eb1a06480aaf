//! Transport-wide congestion control feedback to a publisher
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01). A publisher that
//! negotiated the transport-wide sequence number extension and
//! `rtcp-fb … transport-cc` numbers every packet it sends; we record when
//! each arrived and report it back, so that its own send-side estimator
//! (GCC in browsers) can raise its rate.
//!
//! Where it sits: on the publisher's worker, after a packet is
//! unprotected ([`TwccReceiver::record`], no allocation); the worker's timer
//! drains [`TwccReceiver::poll_feedback`] every [`FEEDBACK_INTERVAL`] and
//! sends each feedback packet as SRTCP. Sans-IO: arrival times are given.
//!
//! Call contract: `record(seq, at)` for every packet carrying the
//! extension (media, RTX and padding alike), in arrival order; then
//! `poll_feedback` until it returns false. A packet arriving after its
//! sequence number was already reported (as lost) is not reported again
//! (`late` counts them). At most [`PENDING`] arrivals wait for a report;
//! older ones are dropped (`overflow`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::wire::rtcp::{
    FMT_TWCC, TWCC_DELTA_UNIT_US as DELTA_UNIT_US, TWCC_REFERENCE_UNIT_US as REFERENCE_UNIT_US,
    packet_type::RTPFB,
};

/// How often feedback is sent (libwebrtc's default is 100 ms; 50 ms keeps
/// the estimator's view fresh at video rates).
pub const FEEDBACK_INTERVAL: Duration = Duration::from_millis(50);
/// Arrivals waiting for a report at most (about 2 s of 4 Mbit/s video).
pub const PENDING: usize = 1024;
/// Packet statuses in one feedback packet at most: with two-bit status
/// chunks and two-byte deltas at worst, about 620 bytes.
pub const MAX_STATUSES: usize = 240;
/// Lost numbers reported at most before the next arrival (longer gaps are
/// skipped).
const MAX_GAP: i64 = 8 * MAX_STATUSES as i64;

/// Arrivals of one publisher's transport-wide sequence numbers, and the
/// feedback that reports them.
#[derive(Debug)]
pub struct TwccReceiver {
    /// Times are microseconds since this.
    epoch: Instant,
    /// (unwrapped sequence number, arrival µs), in arrival order.
    arrivals: VecDeque<(i64, i64)>,
    /// The highest unwrapped sequence number seen.
    highest: Option<i64>,
    /// The first sequence number not yet reported.
    next_base: Option<i64>,
    /// Feedback packets sent (modulo 256).
    feedback_count: u8,
    /// Arrivals too late to report (their number was reported lost).
    pub late: u64,
    /// Arrivals dropped because too many waited.
    pub overflow: u64,
}

impl TwccReceiver {
    /// A receiver whose clock starts at `epoch`.
    pub fn new(epoch: Instant) -> Self {
        TwccReceiver {
            epoch,
            arrivals: VecDeque::with_capacity(PENDING),
            highest: None,
            next_base: None,
            feedback_count: 0,
            late: 0,
            overflow: 0,
        }
    }

    /// Records that the packet numbered `seq` arrived at `at`.
    pub fn record(&mut self, seq: u16, at: Instant) {
        let unwrapped = match self.highest {
            None => i64::from(seq),
            Some(h) => {
                // The nearest value to the highest with these low 16 bits.
                let diff = i64::from(seq.wrapping_sub(h as u16) as i16);
                h + diff
            }
        };
        if self.next_base.is_some_and(|b| unwrapped < b) {
            self.late += 1;
            return;
        }
        self.highest = Some(self.highest.map_or(unwrapped, |h| h.max(unwrapped)));
        if self.arrivals.len() == PENDING {
            self.arrivals.pop_front();
            self.overflow += 1;
        }
        let us = at.saturating_duration_since(self.epoch).as_micros() as i64;
        self.arrivals.push_back((unwrapped, us));
    }

    /// Whether arrivals wait for a report.
    pub fn has_pending(&self) -> bool {
        !self.arrivals.is_empty()
    }

    /// Appends one transport-cc feedback packet (RTCP RTPFB, FMT 15) for the
    /// oldest waiting arrivals to `out`; false when none wait. Call again
    /// until false: each packet reports at most [`MAX_STATUSES`] numbers.
    pub fn poll_feedback(&mut self, sender_ssrc: u32, media_ssrc: u32, out: &mut Vec<u8>) -> bool {
        let arrivals = self.arrivals.make_contiguous();
        // Mostly in order already; a stable sort keeps the first of duplicates first.
        arrivals.sort_by_key(|(seq, _)| *seq);
        let Some(&(first, _)) = arrivals.first() else {
            return false;
        };
        // A gap longer than a few packets' worth (a sender that paused or
        // restarted its numbering) is skipped rather than reported lost.
        let base = match self.next_base {
            Some(b) if first - b < MAX_GAP => b,
            _ => first,
        };
        let highest = arrivals.last().map_or(first, |(seq, _)| *seq);
        let last = highest.min(base + MAX_STATUSES as i64 - 1);
        let count = (last - base + 1) as usize;
        let taken = arrivals.iter().take_while(|(seq, _)| *seq <= last).count();
        let reported = &arrivals[..taken];
        // The reference time: the first reported arrival's (or, in a packet
        // that reports only losses, the next arrival's).
        let reference = arrivals[0].1.div_euclid(REFERENCE_UNIT_US);

        let start = out.len();
        out.extend_from_slice(&[0x80 | FMT_TWCC, RTPFB, 0, 0]);
        out.extend_from_slice(&sender_ssrc.to_be_bytes());
        out.extend_from_slice(&media_ssrc.to_be_bytes());
        out.extend_from_slice(&(base as u16).to_be_bytes());
        out.extend_from_slice(&(count as u16).to_be_bytes());
        let reference_bytes = ((reference as u32) & 0x00ff_ffff).to_be_bytes();
        out.extend_from_slice(&reference_bytes[1..]);
        out.push(self.feedback_count);
        self.feedback_count = self.feedback_count.wrapping_add(1);

        // Statuses, then deltas: 0 not received, 1 small delta (one byte,
        // 0..=255 units), 2 large or negative delta (two bytes, signed).
        let mut statuses = [0u8; MAX_STATUSES];
        let mut deltas_at = out.len() + count.div_ceil(7) * 2;
        let mut previous = reference * REFERENCE_UNIT_US;
        let mut deltas = [0u8; MAX_STATUSES * 2];
        let mut deltas_len = 0;
        let mut next = 0usize;
        for (seq, us) in reported {
            let i = (*seq - base) as usize;
            if i < next {
                continue; // a duplicate: the first arrival is reported
            }
            next = i + 1;
            let units = (us - previous).div_euclid(DELTA_UNIT_US);
            let units = units.clamp(i64::from(i16::MIN), i64::from(i16::MAX));
            previous += units * DELTA_UNIT_US;
            if (0..=255).contains(&units) {
                statuses[i] = 1;
                deltas[deltas_len] = units as u8;
                deltas_len += 1;
            } else {
                statuses[i] = 2;
                deltas[deltas_len..deltas_len + 2].copy_from_slice(&(units as i16).to_be_bytes());
                deltas_len += 2;
            }
        }
        // Two-bit status vector chunks, seven statuses each.
        for chunk in statuses[..count].chunks(7) {
            let mut word: u16 = 0b11 << 14;
            for (k, s) in chunk.iter().enumerate() {
                word |= u16::from(*s) << (12 - 2 * k);
            }
            out.extend_from_slice(&word.to_be_bytes());
        }
        debug_assert_eq!(out.len(), deltas_at);
        out.extend_from_slice(&deltas[..deltas_len]);
        deltas_at += deltas_len;
        // Padding to 32 bits, its length in the last byte (RFC 3550 §6.4.1).
        let padding = (4 - (deltas_at - start) % 4) % 4;
        if padding > 0 {
            out.extend(std::iter::repeat_n(0, padding - 1));
            out.push(padding as u8);
            out[start] |= 0x20;
        }
        let words = ((out.len() - start) / 4 - 1) as u16;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());

        self.arrivals.drain(..taken);
        self.next_base = Some(last + 1);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc_rtcp::transport_feedbacks::transport_layer_cc::{
        PacketStatusChunk, SymbolTypeTcc, TransportLayerCc,
    };
    use rtc_shared::marshal::Unmarshal;

    /// The statuses and arrival times (µs after the reference time) a
    /// feedback packet reports, read by an independent implementation.
    fn read(packet: &[u8]) -> (TransportLayerCc, Vec<Option<i64>>) {
        let mut buf = packet;
        let fb = TransportLayerCc::unmarshal(&mut buf).expect("a valid transport-cc packet");
        let mut symbols = Vec::new();
        for chunk in &fb.packet_chunks {
            match chunk {
                PacketStatusChunk::RunLengthChunk(r) => symbols.extend(std::iter::repeat_n(
                    r.packet_status_symbol,
                    r.run_length as usize,
                )),
                PacketStatusChunk::StatusVectorChunk(v) => {
                    symbols.extend(v.symbol_list.iter().copied())
                }
            }
        }
        symbols.truncate(fb.packet_status_count as usize);
        let mut deltas = fb.recv_deltas.iter();
        let mut at = i64::from(fb.reference_time) * REFERENCE_UNIT_US;
        let times = symbols
            .iter()
            .map(|s| match s {
                SymbolTypeTcc::PacketNotReceived => None,
                _ => {
                    at += deltas.next().expect("a delta per received packet").delta;
                    Some(at)
                }
            })
            .collect();
        (fb, times)
    }

    /// A seeded generator (xorshift), so that every run sees the same input.
    struct Seeded(u64);
    impl Seeded {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn every_arrival_is_reported_once_with_its_time_and_losses_as_lost() {
        // A virtual clock: 3000 packets 1 ms apart with jitter, 5 % lost,
        // some reordered by one, numbers wrapping past 65535.
        let t0 = Instant::now();
        let mut rx = TwccReceiver::new(t0);
        let mut rng = Seeded(0x5eed);
        let mut sent: Vec<(u16, Option<i64>)> = Vec::new();
        let first: u16 = 64_000;
        let mut order: Vec<u16> = (0..3000u16).collect();
        for i in (1..order.len()).step_by(17) {
            order.swap(i - 1, i);
        }
        let mut reports = Vec::new();
        for (k, i) in order.iter().enumerate() {
            let seq = first.wrapping_add(*i);
            let lost = rng.next() % 100 < 5;
            let us = 1000 * k as i64 + (rng.next() % 400) as i64;
            sent.push((seq, (!lost).then_some(us)));
            if !lost {
                rx.record(seq, t0 + Duration::from_micros(us as u64));
            }
            if k % 50 == 49 {
                let mut out = Vec::new();
                while rx.poll_feedback(1, 2, &mut out) {
                    reports.push(std::mem::take(&mut out));
                }
            }
        }
        let mut out = Vec::new();
        while rx.poll_feedback(1, 2, &mut out) {
            reports.push(std::mem::take(&mut out));
        }
        // What the reports say, by sequence number.
        let mut said: std::collections::HashMap<u16, Option<i64>> = Default::default();
        let mut expected_count = 0u8;
        for r in &reports {
            assert_eq!(r.len() % 4, 0);
            assert!(r.len() <= 1200, "fits the MTU");
            let (fb, times) = read(r);
            assert_eq!(fb.fb_pkt_count, expected_count);
            expected_count = expected_count.wrapping_add(1);
            for (k, t) in times.into_iter().enumerate() {
                let seq = fb.base_sequence_number.wrapping_add(k as u16);
                assert!(said.insert(seq, t).is_none(), "{seq} reported twice");
            }
        }
        for (seq, arrival) in &sent {
            let Some(reported) = said.get(seq) else {
                // Only numbers after the last arrival may go unreported.
                assert!(arrival.is_none(), "{seq} never reported");
                continue;
            };
            match (arrival, reported) {
                (Some(a), Some(r)) => assert!(
                    (a - r).abs() < DELTA_UNIT_US,
                    "{seq}: arrived at {a} µs, reported {r} µs"
                ),
                (None, None) => {}
                // A packet reordered behind a report of its number: late.
                (Some(_), None) => {}
                (None, Some(r)) => panic!("{seq} lost but reported at {r}"),
            }
        }
        let received = sent.iter().filter(|(_, a)| a.is_some()).count();
        let reported = said.values().filter(|t| t.is_some()).count();
        assert_eq!(reported as u64 + rx.late, received as u64);
    }

    #[test]
    fn a_long_gap_and_a_large_delta_use_two_byte_deltas_and_several_packets() {
        let t0 = Instant::now();
        let mut rx = TwccReceiver::new(t0);
        rx.record(10, t0 + Duration::from_millis(1));
        // 100 ms later: more than 255 units of 250 µs.
        rx.record(11, t0 + Duration::from_millis(101));
        // 500 numbers later: the report is split.
        rx.record(511, t0 + Duration::from_millis(102));
        let mut packets = Vec::new();
        let mut out = Vec::new();
        while rx.poll_feedback(7, 8, &mut out) {
            packets.push(std::mem::take(&mut out));
        }
        assert!(packets.len() >= 2, "{} packets", packets.len());
        let (fb, times) = read(&packets[0]);
        assert_eq!((fb.sender_ssrc, fb.media_ssrc), (7, 8));
        assert_eq!(fb.base_sequence_number, 10);
        assert_eq!(times[0], Some(1_000 - 1_000 % DELTA_UNIT_US));
        assert_eq!(times[1], Some(101_000));
        assert!(
            fb.recv_deltas
                .iter()
                .any(|d| d.type_tcc_packet == SymbolTypeTcc::PacketReceivedLargeDelta)
        );
        let (last, times) = read(packets.last().unwrap());
        assert_eq!(
            last.base_sequence_number as usize + last.packet_status_count as usize - 1,
            511
        );
        assert_eq!(times.last().copied().flatten(), Some(102_000));
        assert!(!rx.poll_feedback(7, 8, &mut out), "nothing left");
    }

    #[test]
    fn waiting_arrivals_are_bounded() {
        let t0 = Instant::now();
        let mut rx = TwccReceiver::new(t0);
        for i in 0..(PENDING as u16 + 100) {
            rx.record(i, t0 + Duration::from_micros(u64::from(i) * 100));
        }
        assert_eq!(rx.overflow, 100);
        assert_eq!(rx.arrivals.len(), PENDING);
    }
}
