//! The retransmission history of one track on one worker: the last
//! [`SLOTS`] plaintext RTP packets the publisher sent, as they were fanned
//! out, so that a subscriber's NACK is answered from here (rewritten for
//! that subscriber) rather than from a copy per subscriber.
//!
//! Where it sits: on every worker that has NACK-capable subscribers of the
//! track, filled in the fan-out step (`Engine::deliver`) and read when a
//! subscriber's generic NACK arrives. Sans-IO: times are given.
//!
//! Call contract: [`TrackHistory::store`] each forwarded packet (no
//! allocation once every slot has held a full-size packet);
//! [`TrackHistory::get`] a packet by source SSRC and sequence number, which
//! answers only while the packet is among the last [`SLOTS`] stored and
//! younger than the subscriber's [`max_age`].

use std::time::{Duration, Instant};

/// Packets kept per track (about 0.5 s of 8 Mbit/s video).
pub const SLOTS: usize = 512;
/// Packets younger than this are resent whatever the round trip: the
/// subscriber's jitter buffer waits about this long (libwebrtc: 1 s).
pub const MIN_AGE: Duration = Duration::from_millis(1000);
/// Packets older than this are never resent.
pub const MAX_AGE: Duration = Duration::from_millis(3000);

/// How old a packet may be and still be resent to a subscriber whose round
/// trip is `rtt`: three round trips, within [`MIN_AGE`]..=[`MAX_AGE`].
pub fn max_age(rtt: Duration) -> Duration {
    (rtt * 3).clamp(MIN_AGE, MAX_AGE)
}

/// The largest packet kept (an MTU-sized datagram).
const MAX_PACKET: usize = 1500;

/// One kept packet.
#[derive(Debug)]
struct Slot {
    ssrc: u32,
    seq: u16,
    at: Instant,
    used: bool,
    bytes: Vec<u8>,
}

/// The last packets of one track, by sequence number.
#[derive(Debug)]
pub struct TrackHistory {
    slots: Vec<Slot>,
}

impl TrackHistory {
    /// An empty history; its slots are allocated once, here.
    pub fn new(now: Instant) -> Self {
        TrackHistory {
            slots: (0..SLOTS)
                .map(|_| Slot {
                    ssrc: 0,
                    seq: 0,
                    at: now,
                    used: false,
                    bytes: Vec::with_capacity(MAX_PACKET),
                })
                .collect(),
        }
    }

    /// Keeps a forwarded packet (plaintext, as the publisher sent it).
    /// Packets larger than an MTU are not kept.
    pub fn store(&mut self, ssrc: u32, seq: u16, packet: &[u8], now: Instant) {
        if packet.len() > MAX_PACKET {
            return;
        }
        let slot = &mut self.slots[usize::from(seq) % SLOTS];
        slot.ssrc = ssrc;
        slot.seq = seq;
        slot.at = now;
        slot.used = true;
        slot.bytes.clear();
        slot.bytes.extend_from_slice(packet);
    }

    /// The packet `seq` of `ssrc`, if still kept and at most `max_age` old.
    pub fn get(&self, ssrc: u32, seq: u16, now: Instant, max_age: Duration) -> Option<&[u8]> {
        let slot = &self.slots[usize::from(seq) % SLOTS];
        (slot.used
            && slot.ssrc == ssrc
            && slot.seq == seq
            && now.saturating_duration_since(slot.at) <= max_age)
            .then_some(slot.bytes.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_are_found_while_recent_and_not_after() {
        let t0 = Instant::now();
        let mut h = TrackHistory::new(t0);
        for seq in 65_000u16..=65_535 {
            h.store(7, seq, &seq.to_be_bytes(), t0);
        }
        for seq in 0u16..100 {
            h.store(7, seq, &seq.to_be_bytes(), t0 + Duration::from_millis(10));
        }
        // Across the wrap.
        assert_eq!(
            h.get(7, 65_535, t0, MIN_AGE),
            Some(&65_535u16.to_be_bytes()[..])
        );
        assert_eq!(h.get(7, 5, t0, MIN_AGE), Some(&5u16.to_be_bytes()[..]));
        // Another SSRC, or a number overwritten by a later one.
        assert_eq!(h.get(8, 5, t0, MIN_AGE), None);
        let overwritten = 65_000u16;
        h.store(7, overwritten.wrapping_add(SLOTS as u16), b"new", t0);
        assert_eq!(h.get(7, overwritten, t0, MIN_AGE), None);
        // Too old for a short round trip, not for a long one.
        let later = t0 + Duration::from_millis(10) + MIN_AGE + Duration::from_millis(1);
        assert_eq!(h.get(7, 5, later, max_age(Duration::from_millis(20))), None);
        let kept = h.get(7, 5, later, max_age(Duration::from_millis(600)));
        assert_eq!(kept, Some(&5u16.to_be_bytes()[..]));
        assert_eq!(max_age(Duration::from_secs(5)), MAX_AGE);
    }

    #[test]
    fn oversize_packets_are_not_kept() {
        let t0 = Instant::now();
        let mut h = TrackHistory::new(t0);
        h.store(1, 1, &[0u8; MAX_PACKET + 1], t0);
        assert_eq!(h.get(1, 1, t0, MIN_AGE), None);
    }
}
