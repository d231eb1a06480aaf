//! Runs of plaintext RTP packets of one track, the unit the engine fans out.
//!
//! Where it sits: between unprotect and fan-out. The packets a worker reads
//! in one batch (a video frame arrives as a burst) wait in the [`Inbox`];
//! when the batch ends they are grouped by track, in arrival order, and
//! each group is fanned out as one [`PacketRun`]: per subscriber the run's
//! datagrams are protected back to back, so that they leave in one UDP GSO
//! send. A run handed to another worker travels as one [`OwnedRun`].

use std::sync::Arc;

use crate::codec::Codec;
use crate::fanout::TrackFanout;
use crate::simulcast::Layer;
use crate::wire::rtp::{RtpHeader, RtpLayout};

/// What forwarding needs of a packet's RTP header: read once when the packet
/// arrives, used for every subscriber.
#[derive(Debug, Clone, Copy)]
pub struct RunHeader {
    /// Offsets of the extension block and payload.
    pub layout: RtpLayout,
    /// Payload type.
    pub payload_type: u8,
    /// SSRC.
    pub ssrc: u32,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// The marker bit (last packet of a video frame).
    pub marker: bool,
    /// Its simulcast layer (simulcast tracks only).
    pub layer: Option<Layer>,
    /// It starts a keyframe (read for simulcast tracks only).
    pub keyframe: bool,
    /// Its payload format (read for simulcast tracks only).
    pub codec: Codec,
}

impl RunHeader {
    /// The fields of a checked header.
    pub fn of(h: &RtpHeader<'_>) -> Self {
        RunHeader {
            layout: h.layout(),
            payload_type: h.payload_type(),
            ssrc: h.ssrc(),
            sequence_number: h.sequence_number(),
            timestamp: h.timestamp(),
            marker: h.marker(),
            layer: None,
            keyframe: false,
            codec: Codec::Other,
        }
    }
}

/// Where one packet lies in a run's buffer, and its header.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    start: u32,
    len: u32,
    header: RunHeader,
}

impl Span {
    fn of(start: usize, len: usize, header: RunHeader) -> Self {
        Span {
            start: start as u32,
            len: len as u32,
            header,
        }
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..(self.start + self.len) as usize
    }
}

/// Plaintext RTP packets of one track, in arrival order, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct PacketRun<'a> {
    data: &'a [u8],
    spans: &'a [Span],
}

impl<'a> PacketRun<'a> {
    /// The packets, with their headers.
    pub fn packets(&self) -> impl Iterator<Item = (&'a [u8], &'a RunHeader)> + 'a {
        let data = self.data;
        self.spans
            .iter()
            .map(move |s| (&data[s.range()], &s.header))
    }

    /// How many packets.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Bytes of all packets together.
    pub fn bytes(&self) -> usize {
        self.spans.iter().map(|s| s.len as usize).sum()
    }
}

/// A run of packets owned, to hand to another worker. Its buffers are
/// reused when the hand-off comes back to the pool.
#[derive(Debug, Default)]
pub struct OwnedRun {
    data: Vec<u8>,
    spans: Vec<Span>,
}

impl OwnedRun {
    /// Replaces the contents with a copy of `run` (no allocation once the
    /// buffers have grown to the largest run).
    pub fn copy_from(&mut self, run: PacketRun<'_>) {
        self.data.clear();
        self.spans.clear();
        for (p, header) in run.packets() {
            self.spans.push(Span::of(self.data.len(), p.len(), *header));
            self.data.extend_from_slice(p);
        }
    }

    /// The run, borrowed.
    pub fn as_run(&self) -> PacketRun<'_> {
        PacketRun {
            data: &self.data,
            spans: &self.spans,
        }
    }
}

/// Most packets the inbox holds before it is fanned out anyway.
pub const INBOX_PACKETS: usize = 64;
/// Most bytes the inbox holds before it is fanned out anyway.
const INBOX_BYTES: usize = 96 * 1024;

/// One received packet waiting in the inbox.
#[derive(Debug)]
struct Waiting {
    fanout: Arc<TrackFanout>,
    span: Span,
}

/// Plaintext packets received in the current batch, not yet fanned out.
#[derive(Debug, Default)]
pub struct Inbox {
    data: Vec<u8>,
    waiting: Vec<Waiting>,
    /// The spans of the run being fanned out (reused).
    run: Vec<Span>,
}

impl Inbox {
    /// An inbox with room for a full batch.
    pub fn new() -> Self {
        Inbox {
            data: Vec::with_capacity(INBOX_BYTES + 2048),
            waiting: Vec::with_capacity(INBOX_PACKETS),
            run: Vec::with_capacity(INBOX_PACKETS),
        }
    }

    /// Keeps a copy of a packet of `fanout`'s track, with its header.
    pub fn push(&mut self, fanout: &Arc<TrackFanout>, header: RunHeader, plain: &[u8]) {
        self.waiting.push(Waiting {
            fanout: fanout.clone(),
            span: Span::of(self.data.len(), plain.len(), header),
        });
        self.data.extend_from_slice(plain);
    }

    /// Whether it should be fanned out before taking more.
    pub fn is_full(&self) -> bool {
        self.waiting.len() >= INBOX_PACKETS || self.data.len() >= INBOX_BYTES
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Calls `f` once per track with its packets in arrival order, then
    /// empties the inbox.
    pub fn drain_runs(&mut self, mut f: impl FnMut(&Arc<TrackFanout>, PacketRun<'_>)) {
        // Arrival order is the order of `start`: sorting by (track, start)
        // groups tracks and keeps each in order, without allocating.
        self.waiting
            .sort_unstable_by_key(|w| (w.fanout.key, w.span.start));
        let mut i = 0;
        while i < self.waiting.len() {
            let key = self.waiting[i].fanout.key;
            let end = i + self.waiting[i..]
                .iter()
                .take_while(|w| w.fanout.key == key)
                .count();
            self.run.clear();
            self.run.extend(self.waiting[i..end].iter().map(|w| w.span));
            f(
                &self.waiting[i].fanout,
                PacketRun {
                    data: &self.data,
                    spans: &self.run,
                },
            );
            i = end;
        }
        self.waiting.clear();
        self.data.clear();
    }
}

/// A run of RTP packets, owned (tests).
#[cfg(test)]
pub(crate) fn owned_run(packets: &[&[u8]]) -> OwnedRun {
    let mut run = OwnedRun::default();
    for p in packets {
        let header = RtpHeader::new_checked(p).expect("an RTP packet");
        run.spans
            .push(Span::of(run.data.len(), p.len(), RunHeader::of(&header)));
        run.data.extend_from_slice(p);
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TrackKey;
    use crate::srtp::fixture::rtp_packet;

    #[test]
    fn runs_group_tracks_in_arrival_order() {
        let a = Arc::new(TrackFanout::new(TrackKey(2)));
        let b = Arc::new(TrackFanout::new(TrackKey(1)));
        let mut inbox = Inbox::new();
        // Packet i has sequence number i and is 20 + i bytes long.
        for (f, seq) in [(&a, 1u16), (&b, 2), (&a, 3), (&a, 4), (&b, 5)] {
            let p = &rtp_packet(seq, 7)[..20 + usize::from(seq)];
            let header = RunHeader::of(&RtpHeader::new_checked(p).unwrap());
            inbox.push(f, header, p);
        }
        let mut seen = Vec::new();
        let mut owned = OwnedRun::default();
        inbox.drain_runs(|f, run| {
            let seqs: Vec<u16> = run.packets().map(|(_, h)| h.sequence_number).collect();
            seen.push((f.key, seqs, run.bytes()));
            owned.copy_from(run);
        });
        assert_eq!(
            seen,
            vec![
                (TrackKey(1), vec![2, 5], 47),
                (TrackKey(2), vec![1, 3, 4], 68)
            ]
        );
        assert!(inbox.is_empty());
        // A copy keeps packets and headers together.
        let copied: Vec<(usize, u16)> = owned
            .as_run()
            .packets()
            .map(|(p, h)| (p.len(), h.sequence_number))
            .collect();
        assert_eq!(copied, vec![(21, 1), (23, 3), (24, 4)]);
    }
}
