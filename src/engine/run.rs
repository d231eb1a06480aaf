//! Runs of plaintext RTP packets of one track, the unit the engine fans out.
//!
//! Where it sits: between unprotect and fan-out. The packets a worker reads
//! in one batch (a video frame arrives as a burst) wait in the [`Inbox`];
//! when the batch ends they are grouped by track, in arrival order, and
//! each group is fanned out as one [`PacketRun`]: per subscriber the run's
//! datagrams are protected back to back, so that they leave in one UDP GSO
//! send. A run handed to another worker travels as one [`OwnedRun`].

use std::sync::Arc;

use crate::fanout::TrackFanout;

/// Where one packet lies in a run's buffer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn of(start: usize, len: usize) -> Self {
        Span {
            start: start as u32,
            len: len as u32,
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
    /// A run of one packet.
    pub fn single(packet: &'a [u8], span: &'a mut [Span; 1]) -> Self {
        span[0] = Span::of(0, packet.len());
        PacketRun {
            data: packet,
            spans: &span[..],
        }
    }

    /// The packets.
    pub fn packets(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let data = self.data;
        self.spans.iter().map(move |s| &data[s.range()])
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
        for p in run.packets() {
            self.spans.push(Span::of(self.data.len(), p.len()));
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

    /// Keeps a copy of a packet of `fanout`'s track.
    pub fn push(&mut self, fanout: &Arc<TrackFanout>, plain: &[u8]) {
        self.waiting.push(Waiting {
            fanout: fanout.clone(),
            span: Span::of(self.data.len(), plain.len()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TrackKey;

    #[test]
    fn runs_group_tracks_in_arrival_order() {
        let a = Arc::new(TrackFanout::new(TrackKey(2)));
        let b = Arc::new(TrackFanout::new(TrackKey(1)));
        let mut inbox = Inbox::new();
        for (f, p) in [(&a, 1u8), (&b, 2), (&a, 3), (&a, 4), (&b, 5)] {
            inbox.push(f, &[p; 3][..usize::from(p % 3) + 1]);
        }
        let mut seen = Vec::new();
        inbox.drain_runs(|f, run| {
            let firsts: Vec<u8> = run.packets().map(|p| p[0]).collect();
            seen.push((f.key, firsts, run.bytes()));
        });
        assert_eq!(
            seen,
            vec![
                (TrackKey(1), vec![2, 5], 6),
                (TrackKey(2), vec![1, 3, 4], 5)
            ]
        );
        assert!(inbox.is_empty());
        let mut owned = OwnedRun::default();
        let mut one = [Span::default()];
        owned.copy_from(PacketRun::single(&[9, 8, 7], &mut one));
        assert_eq!(
            owned.as_run().packets().collect::<Vec<_>>(),
            vec![&[9, 8, 7]]
        );
    }
}
