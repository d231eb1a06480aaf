//! Where the forwarding stage writes outgoing datagrams: a block of
//! [`ARENA_BYTES`] into which a run's packets are rewritten and protected
//! back to back, each split off as it is done, so that one allocation
//! serves many datagrams. An exhausted block waits among the spares until
//! every datagram split from it has been sent, and is then reused: in
//! steady state nothing is allocated (`tests/zero_alloc.rs`).

use std::collections::VecDeque;

use bytes::BytesMut;

/// Bytes of one block.
pub(super) const ARENA_BYTES: usize = 256 * 1024;
/// Exhausted blocks kept for reuse.
const SPARE_BLOCKS: usize = 8;

/// The arena of one worker.
pub(super) struct Arena {
    /// The block being written.
    block: BytesMut,
    /// Exhausted blocks, reused once every datagram split from them has
    /// been sent.
    spare: VecDeque<BytesMut>,
}

impl Arena {
    /// An arena with no block yet (the first write makes one).
    pub(super) fn new() -> Self {
        Arena {
            block: BytesMut::new(),
            spare: VecDeque::with_capacity(SPARE_BLOCKS + 1),
        }
    }

    /// Makes room for `need` contiguous bytes in the block (a whole run,
    /// so that its datagrams stay contiguous).
    pub(super) fn reserve(&mut self, need: usize) {
        if self.block.capacity() < need {
            self.next_block(need);
        }
    }

    /// The block to write into: a datagram is written at its end and split
    /// off.
    pub(super) fn block(&mut self) -> &mut BytesMut {
        &mut self.block
    }

    /// Replaces an exhausted block by a spare one whose datagrams have all
    /// been sent, or by a new block.
    fn next_block(&mut self, need: usize) {
        let spare = &mut self.spare;
        spare.push_back(std::mem::take(&mut self.block));
        for _ in 0..spare.len() {
            let Some(mut block) = spare.pop_front() else {
                break;
            };
            if block.try_reclaim(ARENA_BYTES.max(need)) {
                self.block = block;
                return;
            }
            spare.push_back(block);
        }
        if spare.len() > SPARE_BLOCKS {
            spare.pop_front();
        }
        self.block = BytesMut::with_capacity(ARENA_BYTES.max(need));
    }
}
