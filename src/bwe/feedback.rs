//! Reading transport-cc feedback (draft-holmer-rmcat-transport-wide-cc-
//! extensions-01 §3.1): which of our transport-wide sequence numbers a
//! subscriber received, and when, in its clock.
//!
//! Where it sits: on the subscriber's worker, when its SRTCP carries an
//! RTPFB packet of FMT 15; what is read feeds the session's
//! [`super::BandwidthEstimator`]. Sans-IO, no allocation: the statuses are
//! written into the caller's buffer.

use crate::wire::rtcp::{
    FMT_TWCC, TWCC_DELTA_UNIT_US as DELTA_UNIT_US, TWCC_REFERENCE_UNIT_US as REFERENCE_UNIT_US,
    packet_type::RTPFB,
};

/// One reported sequence number: when it arrived (µs in the receiver's
/// clock), or `None` when reported lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Our transport-wide sequence number.
    pub seq: u16,
    /// Arrival time in the receiver's clock, µs.
    pub arrival_us: Option<i64>,
}

impl Status {
    /// Status `index` from `base`, its symbol waiting (as the arrival)
    /// until its delta is read.
    fn pending(base: u16, index: usize, symbol: u8) -> Self {
        Status {
            seq: base.wrapping_add(index as u16),
            arrival_us: (symbol != 0).then_some(i64::from(symbol)),
        }
    }
}

/// Whether an RTCP packet (`count` = FMT, `packet_type`) is transport-cc
/// feedback.
pub fn is_feedback(count: u8, packet_type: u8) -> bool {
    count == FMT_TWCC && packet_type == RTPFB
}

/// Reads one transport-cc feedback packet (whole, header included) into
/// `out` (cleared first): its newest `max_statuses` statuses at most (the
/// older ones are past what the sender remembers; a few bytes of
/// run-length chunks can claim 65,535, and `out` never grows past
/// `max_statuses`). Returns false, with `out` holding the statuses read
/// whole before the fault, when the packet is malformed or truncated. The
/// work is linear in the packet's length, whatever it claims.
pub fn read(packet: &[u8], out: &mut Vec<Status>, max_statuses: usize) -> bool {
    out.clear();
    let Some(fixed) = packet.get(..20) else {
        return false;
    };
    if fixed[0] & 0x1f != FMT_TWCC || fixed[1] != RTPFB {
        return false;
    }
    let base = u16::from_be_bytes([fixed[12], fixed[13]]);
    let count = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    let reference = i64::from(i32::from_be_bytes([fixed[16], fixed[17], fixed[18], 0]) >> 8);
    let mut deltas = Deltas {
        packet,
        at: 0,
        time: reference * REFERENCE_UNIT_US,
    };
    // Statuses past `max_statuses` from the newest are skipped; their
    // deltas still move the clock, so where the deltas begin (after the
    // chunks) is found first.
    let skip = count.saturating_sub(max_statuses);
    let mut runs = Runs::new(packet, count);
    if skip > 0 {
        while runs.next().is_some() {}
        if runs.truncated {
            return false;
        }
        deltas.at = runs.at;
        runs = Runs::new(packet, count);
    }
    let mut index = 0;
    for chunk in runs.by_ref() {
        let n = chunk.len();
        match chunk {
            Chunk::Run { symbol, .. } => {
                let skipped = n.min(skip.saturating_sub(index));
                if symbol != 0 {
                    for _ in 0..skipped {
                        if deltas.next(symbol).is_none() {
                            return false;
                        }
                    }
                }
                for k in skipped..n {
                    out.push(Status::pending(base, index + k, symbol));
                }
            }
            Chunk::Vector { .. } => {
                for k in 0..n {
                    let symbol = chunk.symbol(k);
                    if index + k >= skip {
                        out.push(Status::pending(base, index + k, symbol));
                    } else if symbol != 0 && deltas.next(symbol).is_none() {
                        return false;
                    }
                }
            }
        }
        index += n;
    }
    if runs.truncated {
        out.clear();
        return false;
    }
    if skip == 0 {
        deltas.at = runs.at;
    }
    for i in 0..out.len() {
        let Some(symbol) = out[i].arrival_us else {
            continue;
        };
        match deltas.next(symbol as u8) {
            Some(arrival) => out[i].arrival_us = Some(arrival),
            None => {
                // Only what was read whole stays.
                out.truncate(i);
                return false;
            }
        }
    }
    true
}

/// One status chunk, cut to the statuses the packet claims.
#[derive(Clone, Copy)]
enum Chunk {
    /// `n` times `symbol`: 0 not received, 1 small delta, 2 large delta.
    Run { symbol: u8, n: usize },
    /// `n` symbols of `width` bits (1 or 2), the first in the highest bits.
    Vector { bits: u16, width: u8, n: usize },
}

impl Chunk {
    fn len(self) -> usize {
        match self {
            Chunk::Run { n, .. } | Chunk::Vector { n, .. } => n,
        }
    }

    /// Symbol `k` of a vector chunk (the symbol of a run).
    fn symbol(self, k: usize) -> u8 {
        match self {
            Chunk::Run { symbol, .. } => symbol,
            Chunk::Vector { bits, width: 1, .. } => ((bits >> (13 - k)) & 1) as u8,
            Chunk::Vector { bits, .. } => ((bits >> (12 - 2 * k)) & 0x3) as u8,
        }
    }
}

/// The status chunks of a packet claiming `left` statuses.
struct Runs<'a> {
    packet: &'a [u8],
    /// The next chunk.
    at: usize,
    /// Statuses still to come.
    left: usize,
    /// The chunks ended before `left` statuses did.
    truncated: bool,
}

impl<'a> Runs<'a> {
    fn new(packet: &'a [u8], count: usize) -> Self {
        Runs {
            packet,
            at: 20,
            left: count,
            truncated: false,
        }
    }
}

impl Iterator for Runs<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        if self.left == 0 {
            return None;
        }
        let Some(c) = self.packet.get(self.at..self.at + 2) else {
            self.truncated = true;
            return None;
        };
        self.at += 2;
        let bits = u16::from_be_bytes([c[0], c[1]]);
        let chunk = if bits & 0x8000 == 0 {
            Chunk::Run {
                symbol: ((bits >> 13) & 0x3) as u8,
                n: usize::from(bits & 0x1fff).min(self.left),
            }
        } else if bits & 0x4000 == 0 {
            Chunk::Vector {
                bits,
                width: 1,
                n: self.left.min(14),
            }
        } else {
            Chunk::Vector {
                bits,
                width: 2,
                n: self.left.min(7),
            }
        };
        self.left -= chunk.len();
        Some(chunk)
    }
}

/// The receive deltas after the chunks, and the clock they move.
struct Deltas<'a> {
    packet: &'a [u8],
    at: usize,
    /// The receiver's clock, µs.
    time: i64,
}

impl Deltas<'_> {
    /// The arrival time of the next received packet, whose symbol is
    /// `symbol`; `None` past the packet's end or for a reserved symbol.
    fn next(&mut self, symbol: u8) -> Option<i64> {
        let (delta, len) = match symbol {
            1 => self.packet.get(self.at).map(|&b| (i64::from(b), 1))?,
            2 => self
                .packet
                .get(self.at..self.at + 2)
                .map(|b| (i64::from(i16::from_be_bytes([b[0], b[1]])), 2))?,
            _ => return None,
        };
        self.at += len;
        self.time += delta * DELTA_UNIT_US;
        Some(self.time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::twcc::TwccReceiver;
    use std::time::{Duration, Instant};

    #[test]
    fn what_an_independent_stack_writes_is_read_back() {
        use rtc_rtcp::transport_feedbacks::transport_layer_cc::{
            PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, StatusVectorChunk,
            SymbolSizeTypeTcc, SymbolTypeTcc, TransportLayerCc,
        };
        use rtc_shared::marshal::Marshal;
        let fb = TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence_number: 65_534,
            packet_status_count: 9,
            reference_time: 100,
            fb_pkt_count: 3,
            packet_chunks: vec![
                PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                    type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                    packet_status_symbol: SymbolTypeTcc::PacketReceivedSmallDelta,
                    run_length: 2,
                }),
                PacketStatusChunk::StatusVectorChunk(StatusVectorChunk {
                    type_tcc: StatusChunkTypeTcc::StatusVectorChunk,
                    symbol_size: SymbolSizeTypeTcc::TwoBit,
                    symbol_list: vec![
                        SymbolTypeTcc::PacketNotReceived,
                        SymbolTypeTcc::PacketReceivedLargeDelta,
                        SymbolTypeTcc::PacketReceivedSmallDelta,
                        SymbolTypeTcc::PacketNotReceived,
                        SymbolTypeTcc::PacketNotReceived,
                        SymbolTypeTcc::PacketReceivedSmallDelta,
                        SymbolTypeTcc::PacketReceivedSmallDelta,
                    ],
                }),
            ],
            recv_deltas: vec![
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 1000,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 250,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedLargeDelta,
                    delta: -2000,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 0,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 63_750,
                },
                RecvDelta {
                    type_tcc_packet: SymbolTypeTcc::PacketReceivedSmallDelta,
                    delta: 500,
                },
            ],
        };
        let bytes = fb.marshal().expect("marshal");
        assert!(is_feedback(bytes[0] & 0x1f, bytes[1]));
        let mut out = Vec::new();
        assert!(read(&bytes, &mut out, ANY));
        let base = 100 * REFERENCE_UNIT_US;
        let got: Vec<(u16, Option<i64>)> = out.iter().map(|s| (s.seq, s.arrival_us)).collect();
        assert_eq!(
            got,
            [
                (65_534, Some(base + 1000)),
                (65_535, Some(base + 1250)),
                (0, None),
                (1, Some(base - 750)),
                (2, Some(base - 750)),
                (3, None),
                (4, None),
                (5, Some(base + 63_000)),
                (6, Some(base + 63_500)),
            ]
        );
    }

    #[test]
    fn our_own_feedback_writer_round_trips_through_the_reader() {
        // Seeded arrivals with losses and jitter, written by the publisher
        // side's writer, read here: every status matches.
        let t0 = Instant::now();
        let mut rx = TwccReceiver::new(t0);
        let mut x: u32 = 7;
        let mut expect = Vec::new();
        let mut now = t0;
        for seq in 65_500u16..=65_535 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            now += Duration::from_micros(u64::from(x % 20_000));
            if x.is_multiple_of(10) {
                expect.push((seq, false));
            } else {
                rx.record(seq, now);
                expect.push((seq, true));
            }
        }
        // The writer reports from the first arrival; drop leading losses.
        while expect.first().is_some_and(|e| !e.1) {
            expect.remove(0);
        }
        // Its writer reports up to the highest arrival; drop trailing losses.
        while expect.last().is_some_and(|e| !e.1) {
            expect.pop();
        }
        let mut got = Vec::new();
        let mut packet = Vec::new();
        let mut statuses = Vec::new();
        while rx.poll_feedback(1, 2, &mut packet) {
            assert!(read(&packet, &mut statuses, ANY));
            got.extend(statuses.iter().map(|s| (s.seq, s.arrival_us.is_some())));
            packet.clear();
        }
        assert_eq!(got, expect);
    }

    /// No bound on the statuses read.
    const ANY: usize = u16::MAX as usize;

    #[test]
    fn feedback_reporting_more_than_the_sender_remembers_is_read_to_its_newest() {
        // 28 bytes claiming 65,535 statuses (base 0) with three runs of
        // 8,191 "not received" and an empty run: truncated, nothing read.
        let mut packet = vec![
            0x8f, 205, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0xff, 0xff, 0, 0, 1, 0,
        ];
        packet.extend_from_slice(&[0x1f, 0xff, 0x1f, 0xff, 0x1f, 0xff, 0, 0]);
        let mut out = Vec::new();
        assert!(!read(&packet, &mut out, 512));
        assert!(out.is_empty() && out.capacity() == 0, "nothing was read");
        // Eight runs of 8,191 and one of 7: all 65,535, none received.
        // Only the newest 512 are read.
        packet.truncate(20);
        for _ in 0..8 {
            packet.extend_from_slice(&[0x1f, 0xff]);
        }
        packet.extend_from_slice(&[0, 7]);
        assert!(read(&packet, &mut out, 512));
        assert!(out.len() == 512 && out.capacity() <= 1024, "{}", out.len());
        assert_eq!(out[0].seq, 65_534 - 511);
        assert_eq!(out[511].seq, 65_534);
        assert!(out.iter().all(|s| s.arrival_us.is_none()));
    }

    #[test]
    fn the_newest_statuses_of_a_long_feedback_keep_their_arrival_times() {
        // Written by an independent stack: 600 statuses (received, lost,
        // received), more than the 512 read; the older deltas still move
        // the clock of the newer ones.
        use rtc_rtcp::transport_feedbacks::transport_layer_cc::{
            PacketStatusChunk, RecvDelta, RunLengthChunk, StatusChunkTypeTcc, SymbolTypeTcc,
            TransportLayerCc,
        };
        use rtc_shared::marshal::Marshal;
        let run = |symbol, run_length| {
            PacketStatusChunk::RunLengthChunk(RunLengthChunk {
                type_tcc: StatusChunkTypeTcc::RunLengthChunk,
                packet_status_symbol: symbol,
                run_length,
            })
        };
        let small = SymbolTypeTcc::PacketReceivedSmallDelta;
        let fb = TransportLayerCc {
            sender_ssrc: 1,
            media_ssrc: 2,
            base_sequence_number: 65_000,
            packet_status_count: 600,
            reference_time: 7,
            fb_pkt_count: 1,
            packet_chunks: vec![
                run(small, 300),
                run(SymbolTypeTcc::PacketNotReceived, 200),
                run(small, 100),
            ],
            recv_deltas: (0..400)
                .map(|i| RecvDelta {
                    type_tcc_packet: small,
                    delta: 250 * (i % 4),
                })
                .collect(),
        };
        let bytes = fb.marshal().expect("marshal");
        let (mut all, mut newest) = (Vec::new(), Vec::new());
        assert!(read(&bytes, &mut all, ANY));
        assert!(read(&bytes, &mut newest, 512));
        assert_eq!(all.len(), 600);
        assert_eq!(newest[..], all[88..]);
        assert_eq!(newest[0].seq, 65_088);
        assert!(newest[300 - 88].arrival_us.is_none());
        assert!(newest.last().unwrap().arrival_us.is_some());
    }

    #[test]
    fn truncated_feedback_is_refused_without_panicking() {
        let mut out = Vec::new();
        let mut packet = vec![
            0x8f, 205, 0, 5, 0, 0, 0, 1, 0, 0, 0, 2, 0, 10, 0, 40, 0, 0, 1, 0,
        ];
        packet.extend_from_slice(&[0x20, 40]); // a run of 40 small deltas
        packet.extend_from_slice(&[4, 4, 4]); // only three of them
        assert!(!read(&packet, &mut out, ANY));
        for len in 0..packet.len() {
            read(&packet[..len], &mut out, ANY);
        }
    }
}
