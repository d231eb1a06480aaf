//! Loss at the clients and the repairs they make, as browsers do: with
//! `--loss PCT` each loop thread drops that share of the SRTP and SRTCP
//! datagrams its clients send and receive (a seeded coin), and publishers
//! keep what they sent and answer the server's generic NACKs with it;
//! subscribers always NACK the gaps in what they get (retried, as
//! libwebrtc's NACK module does) and send transport-cc feedback every
//! 50 ms, so the server's retransmissions and its bandwidth estimate run.
//!
//! Sans-IO: times are given; the loop threads send what is returned.

use std::time::{Duration, Instant};

use switchboard::engine::nack::generator::{Arrival, NackGenerator};
use switchboard::streams::twcc::{FEEDBACK_INTERVAL, TwccReceiver};
use switchboard::wire::rtcp;
use switchboard::wire::rtp::RtpHeader;

/// A NACK is repeated this long after the last: libwebrtc's round trip
/// before it has measured one (these clients send no receiver reports),
/// and the server's spacing of resends of one packet then.
const NACK_RETRY: Duration = Duration::from_millis(100);
/// Packets a publisher keeps for resends, per stream.
const KEPT: usize = 1024;
/// Our RTCP sender SSRC.
const SENDER_SSRC: u32 = 1;

/// A seeded coin that drops `percent` % of what it is asked about.
#[derive(Debug, Clone)]
pub struct Loss {
    percent: u32,
    state: u64,
}

impl Loss {
    /// Drops `percent` % (0: nothing), seeded.
    pub fn new(percent: u32, seed: u64) -> Self {
        Loss {
            percent,
            state: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
        }
    }

    /// Whether this datagram is lost.
    pub fn drops(&mut self) -> bool {
        if self.percent == 0 {
            return false;
        }
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state % 100) < u64::from(self.percent)
    }
}

/// One stream's kept datagrams: (sequence number, the protected datagram)
/// by number modulo [`KEPT`].
type Kept = Vec<(u16, Vec<u8>)>;

/// What a publisher sent, to answer NACKs with.
#[derive(Debug, Default)]
pub struct Sent {
    /// Per SSRC, what it kept.
    streams: Vec<(u32, Kept)>,
    /// Packets sent again.
    pub resent: u64,
}

impl Sent {
    /// Keeps a sent datagram.
    pub fn keep(&mut self, ssrc: u32, seq: u16, protected: &[u8]) {
        let i = match self.streams.iter().position(|(s, _)| *s == ssrc) {
            Some(i) => i,
            None => {
                self.streams.push((ssrc, vec![(0, Vec::new()); KEPT]));
                self.streams.len() - 1
            }
        };
        let slot = &mut self.streams[i].1[usize::from(seq) % KEPT];
        slot.0 = seq;
        slot.1.clear();
        slot.1.extend_from_slice(protected);
    }

    /// Hands `send` each kept datagram the NACKs in `plain` (SRTCP,
    /// decrypted) ask for.
    pub fn answer(&mut self, plain: &[u8], mut send: impl FnMut(&[u8])) {
        for packet in rtcp::packets(plain) {
            let Some((ssrc, lost)) = packet.nack() else {
                continue;
            };
            let Some((_, slots)) = self.streams.iter().find(|(s, _)| *s == ssrc) else {
                continue;
            };
            for seq in lost {
                let (q, bytes) = &slots[usize::from(seq) % KEPT];
                if *q == seq && !bytes.is_empty() {
                    self.resent += 1;
                    send(bytes);
                }
            }
        }
    }
}

/// A subscriber's side of repair: the gaps of each stream it receives and
/// the arrivals of its transport-wide numbers.
#[derive(Debug)]
pub struct Receiving {
    streams: Vec<(u32, NackGenerator)>,
    twcc: Option<(u8, TwccReceiver)>,
    feedback_every: Duration,
    next_feedback: Instant,
    lost: Vec<u16>,
}

impl Receiving {
    /// Repair for a subscriber whose session numbers packets with
    /// transport-cc extension `id` (if negotiated), fed back `every` so
    /// long.
    pub fn new(twcc: Option<(u8, Duration)>, now: Instant) -> Self {
        let feedback_every = twcc.map_or(FEEDBACK_INTERVAL, |(_, every)| every);
        Receiving {
            streams: Vec::new(),
            twcc: twcc.map(|(id, _)| (id, TwccReceiver::new(now))),
            feedback_every,
            next_feedback: now + feedback_every,
            lost: Vec::new(),
        }
    }

    /// Notes an RTP packet (still protected: its header is clear text).
    pub fn on_rtp(&mut self, packet: &[u8], now: Instant) -> Arrival {
        let Ok(header) = RtpHeader::new_checked(packet) else {
            return Arrival::Duplicate;
        };
        if let Some((id, twcc)) = self.twcc.as_mut()
            && let Some(&[hi, lo, ..]) = header.extension(*id)
        {
            twcc.record(u16::from_be_bytes([hi, lo]), now);
        }
        let ssrc = header.ssrc();
        let i = match self.streams.iter().position(|(s, _)| *s == ssrc) {
            Some(i) => i,
            None => {
                self.streams.push((ssrc, NackGenerator::default()));
                self.streams.len() - 1
            }
        };
        self.streams[i].1.on_packet(header.sequence_number(), now)
    }

    /// The RTCP due now (plaintext, one compound packet per entry): NACKs
    /// for the gaps, and transport-cc feedback when due.
    pub fn poll(&mut self, now: Instant, out: &mut Vec<Vec<u8>>) {
        let mut nacks = Vec::new();
        for (ssrc, gaps) in self.streams.iter_mut() {
            gaps.poll(now, NACK_RETRY, &mut self.lost);
            if !self.lost.is_empty() {
                rtcp::write_nack(&mut nacks, SENDER_SSRC, *ssrc, &self.lost);
            }
        }
        if !nacks.is_empty() {
            out.push(nacks);
        }
        if now < self.next_feedback {
            return;
        }
        self.next_feedback = now + self.feedback_every;
        let media_ssrc = self.streams.first().map_or(0, |(s, _)| *s);
        if let Some((_, twcc)) = self.twcc.as_mut() {
            loop {
                let mut packet = Vec::new();
                if !twcc.poll_feedback(SENDER_SSRC, media_ssrc, &mut packet) {
                    break;
                }
                out.push(packet);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&[0; 4]);
        p.extend_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn a_coin_drops_about_its_share() {
        let mut loss = Loss::new(5, 42);
        let dropped = (0..100_000).filter(|_| loss.drops()).count();
        assert!((4_500..5_500).contains(&dropped), "{dropped}");
        assert!(!(0..1000).any(|_| Loss::new(0, 1).drops()));
    }

    #[test]
    fn a_gap_is_nacked_and_the_publisher_answers_it_from_what_it_kept() {
        let t0 = Instant::now();
        let mut sub = Receiving::new(None, t0);
        assert_eq!(sub.on_rtp(&rtp(7, 10), t0), Arrival::New);
        assert_eq!(sub.on_rtp(&rtp(7, 12), t0), Arrival::New);
        let mut out = Vec::new();
        sub.poll(t0, &mut out);
        assert_eq!(out.len(), 1);
        let mut publisher = Sent::default();
        publisher.keep(7, 11, b"eleven");
        publisher.keep(7, 12, b"twelve");
        let mut answered = Vec::new();
        publisher.answer(&out[0], |b| answered.push(b.to_vec()));
        assert_eq!(answered, [b"eleven".to_vec()]);
        assert_eq!(publisher.resent, 1);
        assert_eq!(sub.on_rtp(&rtp(7, 11), t0), Arrival::Repaired);
        assert_eq!(sub.on_rtp(&rtp(7, 11), t0), Arrival::Duplicate);
    }
}
