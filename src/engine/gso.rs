//! Coalescing of a subscriber's datagrams for UDP GSO (generic segmentation
//! offload): one send carries several datagrams to one destination, which
//! the kernel (or the NIC) splits. A video frame's packets, protected back
//! to back for one subscriber, leave in one message instead of one each.
//!
//! Where it sits: the last step of the engine's forwarding path, just
//! before [`Transmit`]s are queued for the worker's `sendmmsg`.

use std::collections::VecDeque;
use std::net::SocketAddr;

use bytes::BytesMut;

use super::Transmit;

/// Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS is 64 on
/// older kernels).
const MAX_SEGMENTS: usize = 64;
/// Most bytes in one GSO send (a UDP datagram's payload limit, with room).
const MAX_BYTES: usize = 65_000;

/// Datagrams to one destination being gathered into one [`Transmit`]: all
/// of one size, the last possibly shorter, contiguous in memory.
pub struct Coalescer {
    to: SocketAddr,
    bytes: BytesMut,
    segment: usize,
    count: usize,
    /// A shorter datagram ended the group.
    closed: bool,
}

impl Coalescer {
    /// An empty group for `to`.
    pub fn new(to: SocketAddr) -> Self {
        Coalescer {
            to,
            bytes: BytesMut::new(),
            segment: 0,
            count: 0,
            closed: false,
        }
    }

    /// Adds a datagram; a group it cannot join is queued first. Inlined:
    /// it runs once per subscriber per packet.
    #[inline]
    pub fn push(&mut self, datagram: BytesMut, out: &mut VecDeque<Transmit>) {
        let len = datagram.len();
        let joins = self.count > 0
            && !self.closed
            && len <= self.segment
            && self.count < MAX_SEGMENTS
            && self.bytes.len() + len <= MAX_BYTES
            // Only contiguous datagrams join: no copy, ever.
            && self.bytes.as_ptr().wrapping_add(self.bytes.len()) == datagram.as_ptr();
        if joins {
            self.bytes.unsplit(datagram);
            self.count += 1;
            self.closed = len < self.segment;
        } else {
            self.finish(out);
            self.bytes = datagram;
            self.segment = len;
            self.count = 1;
            self.closed = false;
        }
    }

    /// Queues what was gathered.
    pub fn finish(&mut self, out: &mut VecDeque<Transmit>) {
        if self.count == 0 {
            return;
        }
        out.push_back(Transmit {
            to: self.to,
            bytes: std::mem::take(&mut self.bytes),
            segment_size: (self.count > 1).then_some(self.segment),
        });
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(arena: &mut BytesMut, sizes: &[usize]) -> Vec<BytesMut> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                arena.extend(std::iter::repeat_n(i as u8, n));
                arena.split()
            })
            .collect()
    }

    #[test]
    fn equal_sizes_join_and_a_shorter_one_ends_the_group() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut arena = BytesMut::with_capacity(4096);
        let mut out = VecDeque::new();
        let mut c = Coalescer::new(to);
        for d in split_all(&mut arena, &[100, 100, 100, 60, 100, 120, 50]) {
            c.push(d, &mut out);
        }
        c.finish(&mut out);
        let got: Vec<(usize, Option<usize>)> = out
            .iter()
            .map(|t| (t.bytes.len(), t.segment_size))
            .collect();
        assert_eq!(got, vec![(360, Some(100)), (100, None), (170, Some(120))]);
        // The datagrams inside a group are the ones pushed, in order.
        let first: Vec<Vec<u8>> = out[0].datagrams().map(<[u8]>::to_vec).collect();
        assert_eq!(first.len(), 4);
        assert_eq!(first[3], vec![3u8; 60]);
        assert_eq!(out.iter().map(Transmit::count).sum::<usize>(), 7);
    }

    #[test]
    fn datagrams_from_different_buffers_are_not_joined() {
        let to: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut out = VecDeque::new();
        let mut c = Coalescer::new(to);
        c.push(BytesMut::from(&[1u8; 10][..]), &mut out);
        c.push(BytesMut::from(&[2u8; 10][..]), &mut out);
        c.finish(&mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|t| t.segment_size.is_none()));
    }
}
