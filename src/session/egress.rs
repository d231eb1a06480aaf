//! One outbound stream towards a subscriber: the sequence number and
//! timestamp continuity across source changes (tracks/update re-points an
//! outlet), and the counters its sender reports carry.

use crate::wire::rtcp::SenderInfo;

/// State of one stream we send to a subscriber.
#[derive(Debug, Clone, Default)]
pub struct OutboundStream {
    source_ssrc: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

impl OutboundStream {
    /// The sequence number and timestamp to send for a source packet.
    /// When the source SSRC changes, offsets are chosen so that the
    /// subscriber sees a continuous stream.
    pub fn translate(
        &mut self,
        source_ssrc: u32,
        seq: u16,
        ts: u32,
        payload_len: usize,
    ) -> (u16, u32) {
        if self.source_ssrc != Some(source_ssrc) {
            if self.source_ssrc.is_some() {
                self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
                self.ts_offset = self.last_ts.wrapping_add(1).wrapping_sub(ts);
            }
            self.source_ssrc = Some(source_ssrc);
        }
        let out = (
            seq.wrapping_add(self.seq_offset),
            ts.wrapping_add(self.ts_offset),
        );
        self.last_seq = out.0;
        self.last_ts = out.1;
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        out
    }

    /// A sender report for this stream from the publisher's one: its clock
    /// mapping (NTP ↔ RTP, shifted by our offset), our counters.
    pub fn sender_report(&self, ssrc: u32, publisher: &SenderInfo) -> SenderInfo {
        SenderInfo {
            ssrc,
            ntp: publisher.ntp,
            rtp_timestamp: publisher.rtp_timestamp.wrapping_add(self.ts_offset),
            packet_count: self.packets,
            octet_count: self.octets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_switch_keeps_the_stream_continuous() {
        let mut s = OutboundStream::default();
        assert_eq!(s.translate(1, 100, 9000, 10), (100, 9000));
        assert_eq!(s.translate(1, 101, 12000, 10), (101, 12000));
        // Another source with unrelated numbers continues right after.
        assert_eq!(s.translate(2, 5000, 777, 10), (102, 12001));
        assert_eq!(s.translate(2, 5001, 3777, 10), (103, 15001));
        assert_eq!((s.packets, s.octets), (4, 40));
    }
}
