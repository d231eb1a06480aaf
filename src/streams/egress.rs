//! One outbound stream towards a subscriber: the sequence number and
//! timestamp continuity across source changes (tracks/update re-points an
//! outlet), and the counters its sender reports carry.

use crate::simulcast::switch::{FRAME_TICKS, VIDEO_CLOCK};
use crate::simulcast::{Layer, LayerSwitch};
use crate::wire::rtcp::SenderInfo;

/// State of one stream we send to a subscriber.
#[derive(Debug, Clone, Default)]
pub struct OutboundStream {
    source_ssrc: Option<u32>,
    /// The first sequence number sent from the current source.
    source_first: u16,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    /// The next sequence number of its retransmission stream, once used.
    rtx_seq: Option<u16>,
    /// The next packet continues right after the last one sent (the
    /// packets in between were not sent: a pause).
    rebase: bool,
    /// Packets sent before this number are not resent: the subscriber
    /// asked for a keyframe after them.
    resend_from: Option<u16>,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
    /// The layer choice, when the source is simulcast.
    pub layers: Option<Box<LayerSwitch>>,
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
            self.source_first = seq.wrapping_add(self.seq_offset);
        } else if std::mem::take(&mut self.rebase) {
            // Same source, same clock: only the numbers close the gap.
            self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
            self.source_first = seq.wrapping_add(self.seq_offset);
        }
        let out = self.sent_as(seq, ts);
        self.last_seq = out.0;
        self.last_ts = out.1;
        self.packets = self.packets.wrapping_add(1);
        self.octets = self.octets.wrapping_add(payload_len as u32);
        out
    }

    /// The source packet (SSRC, sequence number) that was sent as `seq`,
    /// if it came from the current source and was sent already.
    pub fn source_of(&self, seq: u16) -> Option<(u32, u16)> {
        let ssrc = self.source_ssrc?;
        let since_first = seq.wrapping_sub(self.source_first);
        let sent = self.last_seq.wrapping_sub(self.source_first);
        (since_first <= sent).then(|| (ssrc, seq.wrapping_sub(self.seq_offset)))
    }

    /// Re-bases the stream on a keyframe of `layer` (`ssrc`, `seq`, `ts`)
    /// that its pull `sw` just switched to: the same layer after a pause
    /// continues its own numbers; another layer continues the stream at the
    /// keyframe's time on the previous layer's clock (through both layers'
    /// sender reports), or one frame after the last one sent when that
    /// time is unknown or not later.
    pub fn switch_layer(
        &mut self,
        sw: &mut LayerSwitch,
        layer: Layer,
        ssrc: u32,
        seq: u16,
        ts: u32,
    ) {
        sw.vp8.switched();
        let timeline = sw.switched_from();
        if timeline == Some(layer) {
            self.rebase();
            return;
        }
        let last = self.last_timestamp();
        let mapped = timeline
            .and_then(|from| sw.switch_timestamp(from, layer, ts, VIDEO_CLOCK))
            .map(|at| self.sent_as(0, at).1)
            .filter(|at| (at.wrapping_sub(last) as i32) > 0);
        let at = mapped.unwrap_or(last.wrapping_add(FRAME_TICKS));
        let skip = !sw.frame_complete();
        self.switch_source(ssrc, seq, ts, at, skip);
    }

    /// The next packet, `seq`/`ts` of source `ssrc`, starts a keyframe of
    /// another simulcast layer: it follows the last packet sent (one
    /// sequence number left out when `skip`: the frame before it is
    /// incomplete, and the subscriber must not wait for it) at timestamp
    /// `at`. Before anything was sent, the stream simply starts there.
    pub fn switch_source(&mut self, ssrc: u32, seq: u16, ts: u32, at: u32, skip: bool) {
        if self.source_ssrc.is_none() {
            return;
        }
        let next = self.last_seq.wrapping_add(1 + u16::from(skip));
        self.seq_offset = next.wrapping_sub(seq);
        self.ts_offset = at.wrapping_sub(ts);
        self.source_ssrc = Some(ssrc);
        self.source_first = next;
        self.rebase = false;
    }

    /// Whether anything was sent on this stream.
    pub fn started(&self) -> bool {
        self.source_ssrc.is_some()
    }

    /// The sequence number and timestamp a source packet was sent with
    /// (for a resend), without counting it.
    pub fn sent_as(&self, seq: u16, ts: u32) -> (u16, u32) {
        (
            seq.wrapping_add(self.seq_offset),
            ts.wrapping_add(self.ts_offset),
        )
    }

    /// The packets from now on follow the last one sent without a gap in
    /// sequence numbers (those skipped were never sent: the subscriber
    /// must not NACK them); the older ones no longer map back.
    pub fn rebase(&mut self) {
        self.rebase = true;
    }

    /// The subscriber asked for a keyframe: what was sent so far belongs
    /// to frames the keyframe replaces, and is not resent.
    pub fn keyframe_requested(&mut self) {
        if self.source_ssrc.is_some() {
            self.resend_from = Some(self.last_seq.wrapping_add(1));
        }
    }

    /// Whether `seq` (as sent) was sent before the subscriber's last
    /// keyframe request.
    pub fn superseded(&self, seq: u16) -> bool {
        self.resend_from
            .is_some_and(|from| (from.wrapping_sub(seq) as i16) > 0)
    }

    /// The timestamp of the last packet sent.
    pub fn last_timestamp(&self) -> u32 {
        self.last_ts
    }

    /// The next sequence number of the retransmission stream `rtx_ssrc`
    /// (it starts from the SSRC's low bits, not from zero).
    pub fn next_rtx_seq(&mut self, rtx_ssrc: u32) -> u16 {
        let seq = self.rtx_seq.unwrap_or(rtx_ssrc as u16);
        self.rtx_seq = Some(seq.wrapping_add(1));
        seq
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

    #[test]
    fn a_layer_switch_continues_at_the_chosen_timestamp_and_may_skip_one_number() {
        let mut s = OutboundStream::default();
        s.switch_source(9, 1, 1, 1, true); // nothing sent: no effect
        assert_eq!(s.translate(1, 100, 9000, 10), (100, 9000));
        // Layer 2's keyframe, mapped to 12000; the last frame was incomplete.
        s.switch_source(2, 7000, 500, 12_000, true);
        assert_eq!(s.translate(2, 7000, 500, 10), (102, 12_000));
        assert_eq!(s.translate(2, 7001, 3500, 10), (103, 15_000));
        assert_eq!(s.source_of(102), Some((2, 7000)));
        assert_eq!(s.source_of(100), None, "the old layer's packets");
    }

    #[test]
    fn after_a_pause_the_numbers_continue_and_the_clock_does_not_jump() {
        let mut s = OutboundStream::default();
        s.translate(1, 100, 9000, 10);
        s.translate(1, 101, 9000, 10);
        s.rebase();
        // 400 packets and 10 s later.
        assert_eq!(s.translate(1, 501, 909_000, 10), (102, 909_000));
        assert_eq!(s.translate(1, 502, 909_000, 10), (103, 909_000));
        assert_eq!(s.source_of(101), None, "before the pause");
        assert_eq!(s.source_of(102), Some((1, 501)));
    }

    #[test]
    fn packets_sent_before_a_keyframe_request_are_superseded() {
        let mut s = OutboundStream::default();
        s.keyframe_requested(); // nothing sent yet: nothing superseded
        assert!(!s.superseded(0));
        for seq in 65_530u16..=65_535 {
            s.translate(1, seq, 0, 10);
        }
        s.keyframe_requested();
        assert!(s.superseded(65_535) && s.superseded(65_530));
        s.translate(1, 0, 3000, 10); // the keyframe's first packet, across the wrap
        assert!(!s.superseded(0));
        assert!(!s.superseded(1));
    }

    #[test]
    fn a_sent_number_maps_back_to_its_source_packet_of_the_current_source() {
        let mut s = OutboundStream::default();
        assert_eq!(s.source_of(0), None, "nothing sent");
        s.translate(1, 65_535, 0, 10);
        s.translate(1, 0, 3000, 10);
        assert_eq!(s.source_of(65_535), Some((1, 65_535)));
        assert_eq!(s.source_of(0), Some((1, 0)));
        assert_eq!(s.source_of(1), None, "not sent yet");
        // After a switch only the new source's packets map back.
        s.translate(2, 500, 9, 10); // sent as 1
        assert_eq!(s.source_of(1), Some((2, 500)));
        assert_eq!(s.source_of(0), None);
        assert_eq!(s.sent_as(500, 9), (1, 3001));
    }
}
