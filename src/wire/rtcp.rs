//! RTCP (RFC 3550 §6, RFC 4585, RFC 5104) as an SFU needs it: walk a compound
//! packet, read sender reports and keyframe requests (PLI, FIR), and write
//! PLI, sender reports and receiver reports.
//!
//! Where it sits: after SRTCP unprotect on the worker that owns the sender's
//! 5-tuple; the writers feed SRTCP protect.

/// Packet types (RFC 3550 §12.1, RFC 4585 §6.1).
pub mod packet_type {
    /// Sender report.
    pub const SR: u8 = 200;
    /// Receiver report.
    pub const RR: u8 = 201;
    /// Source description.
    pub const SDES: u8 = 202;
    /// Goodbye.
    pub const BYE: u8 = 203;
    /// Transport-layer feedback (NACK, TWCC).
    pub const RTPFB: u8 = 205;
    /// Payload-specific feedback (PLI, FIR, REMB).
    pub const PSFB: u8 = 206;
    /// Extended report (RFC 3611).
    pub const XR: u8 = 207;
}

/// XR block type: receiver reference time (RFC 3611 §4.4).
const XR_RRTR: u8 = 4;
/// XR block type: delay since the last receiver reference time (§4.5).
const XR_DLRR: u8 = 5;

/// RTPFB format: generic NACK (RFC 4585 §6.2.1).
pub const FMT_NACK: u8 = 1;
/// RTPFB format: transport-wide congestion control feedback
/// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1).
pub const FMT_TWCC: u8 = 15;
/// A transport-cc receive delta's unit, µs.
pub const TWCC_DELTA_UNIT_US: i64 = 250;
/// A transport-cc reference time's unit, µs.
pub const TWCC_REFERENCE_UNIT_US: i64 = 64_000;
/// PSFB format: picture loss indication (RFC 4585 §6.3.1).
pub const FMT_PLI: u8 = 1;
/// PSFB format: full intra request (RFC 5104 §4.3.1).
pub const FMT_FIR: u8 = 4;

/// One packet inside a compound RTCP packet.
#[derive(Debug, Clone, Copy)]
pub struct RtcpPacket<'a> {
    /// The five-bit count or feedback format field.
    pub count: u8,
    /// The packet type.
    pub packet_type: u8,
    /// The whole packet, header included.
    pub bytes: &'a [u8],
}

/// Walks the packets of a compound RTCP packet; stops at the first malformed one.
pub fn packets(compound: &[u8]) -> impl Iterator<Item = RtcpPacket<'_>> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = compound.get(at..)?;
        if rest.len() < 4 || rest[0] >> 6 != 2 {
            return None;
        }
        let len = (usize::from(u16::from_be_bytes([rest[2], rest[3]])) + 1) * 4;
        let bytes = rest.get(..len)?;
        at += len;
        Some(RtcpPacket {
            count: bytes[0] & 0x1f,
            packet_type: bytes[1],
            bytes,
        })
    })
}

impl<'a> RtcpPacket<'a> {
    /// The SSRC after the header (sender SSRC for SR, RR and feedback).
    pub fn sender_ssrc(&self) -> Option<u32> {
        be32(self.bytes.get(4..8)?)
    }

    /// The media SSRC a keyframe request asks about: PLI's media source, or
    /// the first FCI entry of a FIR.
    pub fn keyframe_request_ssrc(&self) -> Option<u32> {
        if self.packet_type != packet_type::PSFB {
            return None;
        }
        match self.count {
            FMT_PLI => be32(self.bytes.get(8..12)?),
            FMT_FIR => be32(self.bytes.get(12..16)?),
            _ => None,
        }
    }

    /// A generic NACK: the media SSRC it is about, and the sequence
    /// numbers it reports lost (each FCI entry: a number and a bitmask of
    /// the 16 after it).
    pub fn nack(&self) -> Option<(u32, impl Iterator<Item = u16> + 'a)> {
        if self.packet_type != packet_type::RTPFB || self.count != FMT_NACK {
            return None;
        }
        let media_ssrc = be32(self.bytes.get(8..12)?)?;
        let fci = self.bytes.get(12..)?;
        let lost = fci.chunks_exact(4).flat_map(|entry| {
            let pid = u16::from_be_bytes([entry[0], entry[1]]);
            let blp = u16::from_be_bytes([entry[2], entry[3]]);
            std::iter::once(pid).chain(
                (0..16u16)
                    .filter(move |i| blp & (1 << i) != 0)
                    .map(move |i| pid.wrapping_add(i + 1)),
            )
        });
        Some((media_ssrc, lost))
    }

    /// The sender info of an SR.
    pub fn sender_info(&self) -> Option<SenderInfo> {
        if self.packet_type != packet_type::SR {
            return None;
        }
        let b = self.bytes.get(4..28)?;
        Some(SenderInfo {
            ssrc: be32(&b[0..4])?,
            ntp: u64::from_be_bytes(b[4..12].try_into().ok()?),
            rtp_timestamp: be32(&b[12..16])?,
            packet_count: be32(&b[16..20])?,
            octet_count: be32(&b[20..24])?,
        })
    }
}

/// One DLRR sub-block of an extended report (RFC 3611 §4.5): the answer
/// of `ssrc`'s sender to a receiver reference time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dlrr {
    /// Whose reference time is answered.
    pub ssrc: u32,
    /// The compact NTP time of that reference time (LRR).
    pub last_rr: u32,
    /// Delay since it arrived, in 1/65536 s (DLRR).
    pub delay: u32,
}

impl RtcpPacket<'_> {
    /// The DLRR sub-blocks of an extended report.
    pub fn dlrr(&self) -> impl Iterator<Item = Dlrr> + '_ {
        let blocks = if self.packet_type == packet_type::XR {
            self.bytes.get(8..).unwrap_or_default()
        } else {
            &[]
        };
        let mut at = 0;
        let mut sub: &[u8] = &[];
        std::iter::from_fn(move || {
            loop {
                if let Some(b) = sub.get(..12) {
                    sub = &sub[12..];
                    return Some(Dlrr {
                        ssrc: be32(&b[0..4])?,
                        last_rr: be32(&b[4..8])?,
                        delay: be32(&b[8..12])?,
                    });
                }
                let header = blocks.get(at..at + 4)?;
                let len = (usize::from(u16::from_be_bytes([header[2], header[3]])) + 1) * 4;
                let block = blocks.get(at..at + len)?;
                at += len;
                sub = if header[0] == XR_DLRR {
                    &block[4..]
                } else {
                    &[]
                };
            }
        })
    }
}

/// Appends an extended report from `sender_ssrc` holding one receiver
/// reference time block (RFC 3611 §4.4) with `ntp`.
pub fn write_rrtr(out: &mut Vec<u8>, sender_ssrc: u32, ntp: u64) {
    out.extend_from_slice(&[0x80, packet_type::XR, 0, 4]);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&[XR_RRTR, 0, 0, 2]);
    out.extend_from_slice(&ntp.to_be_bytes());
}

/// The sender info block of a sender report (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// NTP timestamp, 32.32 fixed point.
    pub ntp: u64,
    /// RTP timestamp that corresponds to `ntp`.
    pub rtp_timestamp: u32,
    /// Packets sent.
    pub packet_count: u32,
    /// Payload octets sent.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// The source this block is about.
    pub ssrc: u32,
    /// Fraction lost since the last report, 8-bit fixed point.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24 bits, signed).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received.
    pub extended_highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the last SR's NTP timestamp.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

/// Appends a PLI from `sender_ssrc` about `media_ssrc`.
pub fn write_pli(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32) {
    out.extend_from_slice(&[0x80 | FMT_PLI, packet_type::PSFB, 0, 2]);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
}

/// Appends generic NACKs (RFC 4585 §6.2.1) for `lost` sequence numbers of
/// `media_ssrc` (in increasing order, wrapping): each FCI entry a number
/// and a bitmask of the 16 after it.
pub fn write_nack(out: &mut Vec<u8>, sender_ssrc: u32, media_ssrc: u32, lost: &[u16]) {
    let start = out.len();
    out.extend_from_slice(&[0x80 | FMT_NACK, packet_type::RTPFB, 0, 0]);
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    out.extend_from_slice(&media_ssrc.to_be_bytes());
    let mut i = 0;
    while i < lost.len() {
        let pid = lost[i];
        let mut blp: u16 = 0;
        i += 1;
        while let Some(next) = lost.get(i) {
            let d = next.wrapping_sub(pid);
            if d == 0 || d > 16 {
                break;
            }
            blp |= 1 << (d - 1);
            i += 1;
        }
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&blp.to_be_bytes());
    }
    let words = ((out.len() - start) / 4 - 1) as u16;
    out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
}

/// Appends a sender report with no report blocks.
pub fn write_sr(out: &mut Vec<u8>, info: &SenderInfo) {
    out.extend_from_slice(&[0x80, packet_type::SR, 0, 6]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packet_count.to_be_bytes());
    out.extend_from_slice(&info.octet_count.to_be_bytes());
}

/// Appends a receiver report with up to 31 blocks.
pub fn write_rr(out: &mut Vec<u8>, sender_ssrc: u32, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(31)];
    let words = 1 + 6 * blocks.len();
    out.extend_from_slice(&[0x80 | blocks.len() as u8, packet_type::RR]);
    out.extend_from_slice(&(words as u16).to_be_bytes());
    out.extend_from_slice(&sender_ssrc.to_be_bytes());
    for b in blocks {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7f_ffff) as u32) & 0x00ff_ffff;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

/// Reads the report blocks of an RR.
pub fn report_blocks<'a>(packet: &RtcpPacket<'a>) -> impl Iterator<Item = ReportBlock> + 'a {
    let start = match packet.packet_type {
        packet_type::RR => 8,
        packet_type::SR => 28,
        _ => packet.bytes.len(), // no blocks
    };
    let blocks = packet.bytes.get(start..).unwrap_or_default();
    blocks
        .chunks_exact(24)
        .take(usize::from(packet.count))
        .filter_map(|b| {
            let lost = be32(&b[4..8])?;
            Some(ReportBlock {
                ssrc: be32(&b[0..4])?,
                fraction_lost: (lost >> 24) as u8,
                cumulative_lost: ((lost << 8) as i32) >> 8,
                extended_highest_seq: be32(&b[8..12])?,
                jitter: be32(&b[12..16])?,
                last_sr: be32(&b[16..20])?,
                delay_since_last_sr: be32(&b[20..24])?,
            })
        })
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_reports_agree_with_an_independent_stack() {
        use rtc_rtcp::extended_report::{
            DLRRReport, DLRRReportBlock, ExtendedReport, ReceiverReferenceTimeReportBlock,
        };
        use rtc_shared::marshal::{Marshal, Unmarshal};
        // Ours → theirs: a receiver reference time.
        let mut out = Vec::new();
        write_rrtr(&mut out, 77, 0x0102_0304_0506_0708);
        let mut buf = &out[..];
        let xr = ExtendedReport::unmarshal(&mut buf).expect("an XR");
        assert_eq!(xr.sender_ssrc, 77);
        let rrtr = xr.reports[0]
            .as_any()
            .downcast_ref::<ReceiverReferenceTimeReportBlock>()
            .expect("an RRTR block");
        assert_eq!(rrtr.ntp_timestamp, 0x0102_0304_0506_0708);
        // Theirs → ours: an RRTR block, then a DLRR block of two.
        let answer = ExtendedReport {
            sender_ssrc: 5,
            reports: vec![
                Box::new(ReceiverReferenceTimeReportBlock { ntp_timestamp: 9 }),
                Box::new(DLRRReportBlock {
                    reports: vec![
                        DLRRReport {
                            ssrc: 77,
                            last_rr: 0x0304_0506,
                            dlrr: 6_553,
                        },
                        DLRRReport {
                            ssrc: 78,
                            last_rr: 1,
                            dlrr: 2,
                        },
                    ],
                }),
            ],
        };
        let bytes = answer.marshal().expect("marshal");
        let packet = packets(&bytes).next().expect("a packet");
        let read: Vec<Dlrr> = packet.dlrr().collect();
        assert_eq!(
            read,
            [
                Dlrr {
                    ssrc: 77,
                    last_rr: 0x0304_0506,
                    delay: 6_553
                },
                Dlrr {
                    ssrc: 78,
                    last_rr: 1,
                    delay: 2
                }
            ]
        );
    }

    #[test]
    fn a_nack_we_write_is_read_by_an_independent_stack() {
        use rtc_rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
        use rtc_shared::marshal::Unmarshal;
        let lost = [65_530u16, 65_531, 65_535, 3, 40, 41];
        let mut out = Vec::new();
        write_nack(&mut out, 9, 0x1234, &lost);
        let mut buf = &out[..];
        let nack = TransportLayerNack::unmarshal(&mut buf).expect("a NACK");
        assert_eq!((nack.sender_ssrc, nack.media_ssrc), (9, 0x1234));
        let read: Vec<u16> = nack.nacks.iter().flat_map(|p| p.packet_list()).collect();
        assert_eq!(read, lost);
        let ours: Vec<u16> = packets(&out).next().unwrap().nack().unwrap().1.collect();
        assert_eq!(ours, lost);
    }

    #[test]
    fn a_generic_nack_written_by_an_independent_stack_reads_back() {
        use rtc_rtcp::transport_feedbacks::transport_layer_nack::{NackPair, TransportLayerNack};
        use rtc_shared::marshal::Marshal;
        let nack = TransportLayerNack {
            sender_ssrc: 1,
            media_ssrc: 0xabcd,
            nacks: vec![
                NackPair {
                    packet_id: 65_534,
                    lost_packets: 0b101,
                }, // 65534, 65535, 1
                NackPair {
                    packet_id: 100,
                    lost_packets: 0,
                },
            ],
        };
        let bytes = nack.marshal().expect("marshal");
        let packet = packets(&bytes).next().expect("one packet");
        let (ssrc, lost) = packet.nack().expect("a NACK");
        assert_eq!(ssrc, 0xabcd);
        assert_eq!(lost.collect::<Vec<_>>(), vec![65_534, 65_535, 1, 100]);
        assert!(packet.keyframe_request_ssrc().is_none());
    }

    #[test]
    fn reads_a_compound_rr_and_pli() {
        let compound = [
            // RR, 1 block, length 7 words
            0x81, 0xc9, 0x00, 0x07, //
            0x00, 0x00, 0x00, 0x01, // sender SSRC 1
            0x00, 0x00, 0x00, 0x02, // about SSRC 2
            0x10, 0xff, 0xff, 0xfe, // fraction 16/256, cumulative -2
            0x00, 0x01, 0x00, 0x05, // ext highest seq 65541
            0x00, 0x00, 0x00, 0x09, // jitter 9
            0x00, 0x00, 0x00, 0x00, // LSR
            0x00, 0x00, 0x00, 0x00, // DLSR
            // PLI from 1 about 2
            0x81, 0xce, 0x00, 0x02, //
            0x00, 0x00, 0x00, 0x01, //
            0x00, 0x00, 0x00, 0x02,
        ];
        let all: Vec<_> = packets(&compound).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].packet_type, packet_type::RR);
        let blocks: Vec<_> = report_blocks(&all[0]).collect();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].ssrc, 2);
        assert_eq!(blocks[0].fraction_lost, 16);
        assert_eq!(blocks[0].cumulative_lost, -2);
        assert_eq!(blocks[0].extended_highest_seq, 65541);
        assert_eq!(blocks[0].jitter, 9);
        assert_eq!(all[1].keyframe_request_ssrc(), Some(2));
        assert_eq!(all[1].sender_ssrc(), Some(1));

        // Round trip through the writers.
        let mut out = Vec::new();
        write_rr(&mut out, 1, &blocks);
        write_pli(&mut out, 1, 2);
        assert_eq!(out, compound);
    }

    #[test]
    fn reads_a_fir() {
        let fir = [
            0x84, 0xce, 0x00, 0x04, // FIR, length 4
            0x00, 0x00, 0x00, 0x01, // sender
            0x00, 0x00, 0x00, 0x00, // media source (unused)
            0x00, 0x00, 0x00, 0x07, // FCI: SSRC 7
            0x03, 0x00, 0x00, 0x00, // seq nr 3
        ];
        let p = packets(&fir).next().unwrap();
        assert_eq!(p.count, FMT_FIR);
        assert_eq!(p.keyframe_request_ssrc(), Some(7));
    }

    #[test]
    fn sender_report_round_trip() {
        let info = SenderInfo {
            ssrc: 0xabcdef01,
            ntp: 0x0102_0304_0506_0708,
            rtp_timestamp: 90_000,
            packet_count: 10,
            octet_count: 12_000,
        };
        let mut out = Vec::new();
        write_sr(&mut out, &info);
        assert_eq!(out.len(), 28);
        let p = packets(&out).next().unwrap();
        assert_eq!(p.sender_info(), Some(info));
    }

    #[test]
    fn malformed_input_ends_the_walk() {
        assert_eq!(packets(&[0x81, 0xc9, 0x00, 0x07, 0, 0]).count(), 0);
        assert_eq!(packets(&[0x40, 0xc9, 0x00, 0x00]).count(), 0);
        let short_pli = [0x81, 0xce, 0x00, 0x01, 0, 0, 0, 1];
        assert_eq!(
            packets(&short_pli).next().unwrap().keyframe_request_ssrc(),
            None
        );
    }
}
