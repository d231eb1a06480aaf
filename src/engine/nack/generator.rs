//! Repairing what a publisher's packets lose on the way to us: gaps in
//! one inbound RTP stream become generic NACKs (RFC 4585) to the
//! publisher, retried until the packet comes (in the stream or on its RTX
//! stream) or it is too late, when the caller asks for a keyframe instead.
//!
//! Where it sits: on the publisher's worker, one per inbound SSRC of a
//! track that negotiated NACK; [`NackGenerator::on_packet`] for each packet
//! (its own or unwrapped from RTX), [`NackGenerator::poll`] on the worker's
//! timer. Sans-IO: times are given; no allocation after creation.
//!
//! Call contract: `on_packet` says whether the packet is new, a repair of
//! a missing one, or a duplicate (which the caller drops). `poll` lists
//! the numbers to NACK now (each at most [`MAX_TRIES`] times, one retry
//! interval apart) and how many were given up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Missing packets tracked at most (a longer burst is given up at once).
pub const MAX_MISSING: usize = 256;
/// NACKs of one packet at most.
pub const MAX_TRIES: u8 = 10;
/// A missing packet is given up this long after its gap was seen.
pub const MAX_WAIT: Duration = Duration::from_millis(1000);

/// What a received packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Newer than any before.
    New,
    /// One that was missing: a repair.
    Repaired,
    /// Received before, or too old to be missing: dropped.
    Duplicate,
}

/// One missing packet.
#[derive(Debug, Clone, Copy)]
struct Missing {
    seq: u64,
    seen: Instant,
    next: Instant,
    tries: u8,
}

/// Gaps of one inbound stream and their NACK schedule.
#[derive(Debug)]
pub struct NackGenerator {
    highest: Option<u64>,
    missing: VecDeque<Missing>,
    /// Packets given up (not repaired in time, or lost in too long a burst).
    pub unrecovered: u64,
    /// Packets repaired.
    pub recovered: u64,
}

impl Default for NackGenerator {
    fn default() -> Self {
        NackGenerator {
            highest: None,
            missing: VecDeque::with_capacity(MAX_MISSING),
            unrecovered: 0,
            recovered: 0,
        }
    }
}

impl NackGenerator {
    /// Notes packet `seq` arriving at `now`.
    pub fn on_packet(&mut self, seq: u16, now: Instant) -> Arrival {
        let Some(highest) = self.highest else {
            self.highest = Some(u64::from(seq) + (1 << 16));
            return Arrival::New;
        };
        let diff = i64::from(seq.wrapping_sub(highest as u16) as i16);
        let ext = (highest as i64 + diff) as u64;
        if ext > highest {
            let first_missing = (highest + 1).max(ext.saturating_sub(MAX_MISSING as u64));
            self.unrecovered += first_missing - (highest + 1);
            for s in first_missing..ext {
                if self.missing.len() == MAX_MISSING {
                    self.missing.pop_front();
                    self.unrecovered += 1;
                }
                self.missing.push_back(Missing {
                    seq: s,
                    seen: now,
                    next: now,
                    tries: 0,
                });
            }
            self.highest = Some(ext);
            return Arrival::New;
        }
        match self.missing.iter().position(|m| m.seq == ext) {
            Some(i) => {
                self.missing.remove(i);
                self.recovered += 1;
                Arrival::Repaired
            }
            None => Arrival::Duplicate,
        }
    }

    /// The numbers to NACK now (into `out`, which is cleared), each then
    /// scheduled again `retry` later; returns how many were given up now.
    pub fn poll(&mut self, now: Instant, retry: Duration, out: &mut Vec<u16>) -> usize {
        out.clear();
        let before = self.missing.len();
        self.missing
            .retain(|m| now.saturating_duration_since(m.seen) < MAX_WAIT && m.tries < MAX_TRIES);
        let given_up = before - self.missing.len();
        self.unrecovered += given_up as u64;
        for m in self.missing.iter_mut().filter(|m| m.next <= now) {
            out.push(m.seq as u16);
            m.tries += 1;
            m.next = now + retry;
        }
        given_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RETRY: Duration = Duration::from_millis(100);

    #[test]
    fn every_packet_lost_once_is_nacked_and_recovered_before_its_deadline() {
        // A virtual clock: 2000 packets 5 ms apart across a wrap, 5 %
        // lost on the first transmission (seeded), reordered by one now
        // and then; the sender answers each NACK after 30 ms.
        let t0 = Instant::now();
        let mut nacks = NackGenerator::default();
        let mut x: u32 = 0xace1;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let first: u16 = 65_000;
        let mut in_flight: Vec<(Instant, u16)> = Vec::new();
        let mut out = Vec::new();
        let mut lost = 0;
        for i in 0..2000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 5);
            let seq = first.wrapping_add(i as u16);
            // Repairs due now arrive first.
            in_flight.sort_by_key(|(at, _)| *at);
            while in_flight.first().is_some_and(|(at, _)| *at <= now) {
                let (_, s) = in_flight.remove(0);
                assert_eq!(nacks.on_packet(s, now), Arrival::Repaired, "{s}");
            }
            if rand() % 100 < 5 {
                lost += 1;
            } else {
                assert_eq!(nacks.on_packet(seq, now), Arrival::New);
                // A duplicate of it is recognised.
                if rand() % 50 == 0 {
                    assert_eq!(nacks.on_packet(seq, now), Arrival::Duplicate);
                }
            }
            assert_eq!(nacks.poll(now, RETRY, &mut out), 0, "nothing given up");
            for s in out.iter().copied() {
                in_flight.push((now + Duration::from_millis(30), s));
            }
        }
        let end = t0 + Duration::from_secs(11);
        in_flight.sort_by_key(|(at, _)| *at);
        for (_, s) in in_flight.drain(..) {
            nacks.on_packet(s, end);
        }
        assert!(lost > 50);
        assert_eq!(nacks.recovered, lost);
        assert_eq!(nacks.unrecovered, 0);
    }

    #[test]
    fn nacks_are_retried_a_retry_apart_and_given_up_after_the_deadline() {
        let t0 = Instant::now();
        let mut nacks = NackGenerator::default();
        let mut out = Vec::new();
        nacks.on_packet(10, t0);
        nacks.on_packet(13, t0); // 11 and 12 missing
        assert_eq!(nacks.poll(t0, RETRY, &mut out), 0);
        assert_eq!(out, vec![11, 12]);
        nacks.poll(t0 + Duration::from_millis(50), RETRY, &mut out);
        assert!(out.is_empty(), "not before the retry interval");
        nacks.poll(t0 + RETRY, RETRY, &mut out);
        assert_eq!(out, vec![11, 12]);
        assert_eq!(nacks.on_packet(12, t0 + RETRY), Arrival::Repaired);
        assert_eq!(nacks.on_packet(12, t0 + RETRY), Arrival::Duplicate);
        assert_eq!(nacks.poll(t0 + MAX_WAIT, RETRY, &mut out), 1, "11 given up");
        assert!(out.is_empty());
        assert_eq!((nacks.recovered, nacks.unrecovered), (1, 1));
    }

    #[test]
    fn a_long_burst_keeps_only_the_latest_gaps() {
        let t0 = Instant::now();
        let mut nacks = NackGenerator::default();
        nacks.on_packet(0, t0);
        nacks.on_packet(1000, t0);
        let mut out = Vec::new();
        nacks.poll(t0, RETRY, &mut out);
        assert_eq!(out.len(), MAX_MISSING);
        assert_eq!(out.first(), Some(&(1000 - MAX_MISSING as u16)));
        assert_eq!(nacks.unrecovered, 999 - MAX_MISSING as u64);
    }
}
