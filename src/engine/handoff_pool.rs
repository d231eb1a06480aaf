//! Recycled hand-offs: a run of packets handed to other workers travels in
//! an `Arc<Handoff>` taken from this pool and refilled once every worker
//! has dropped its reference, so that steady-state cross-worker forwarding
//! allocates nothing.
//!
//! Where it sits: on the publisher's worker, between fan-out and the
//! hand-off rings.

use std::sync::Arc;

use super::messages::{Handoff, HandoffPayload};
use super::packet_run::{OwnedRun, PacketRun};
use crate::fanout::TrackFanout;

/// Hand-offs kept for reuse; more in flight at once are allocated and
/// freed as usual.
const POOL_SIZE: usize = 1024;

/// One worker's pool of hand-offs.
#[derive(Default)]
pub struct HandoffPool {
    pool: Vec<Arc<Handoff>>,
    /// Where the next search starts: the oldest hand-off is the likeliest
    /// to be free.
    cursor: usize,
}

impl HandoffPool {
    /// A hand-off carrying a copy of `run` of `fanout`'s track.
    pub fn rtp(&mut self, fanout: &Arc<TrackFanout>, run: PacketRun<'_>) -> Arc<Handoff> {
        let len = self.pool.len();
        for _ in 0..len {
            let i = self.cursor;
            self.cursor = (self.cursor + 1) % len;
            // Unique: every worker it went to has dropped it.
            if let Some(h) = Arc::get_mut(&mut self.pool[i]) {
                if !Arc::ptr_eq(&h.fanout, fanout) {
                    h.fanout = fanout.clone();
                }
                match &mut h.payload {
                    HandoffPayload::Rtp(owned) => owned.copy_from(run),
                    other => {
                        let mut owned = OwnedRun::default();
                        owned.copy_from(run);
                        *other = HandoffPayload::Rtp(owned);
                    }
                }
                return self.pool[i].clone();
            }
        }
        let mut owned = OwnedRun::default();
        owned.copy_from(run);
        let handoff = Arc::new(Handoff {
            fanout: fanout.clone(),
            payload: HandoffPayload::Rtp(owned),
        });
        if len < POOL_SIZE {
            self.pool.push(handoff.clone());
        }
        handoff
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fixture::rtp_packet;
    use crate::engine::packet_run::owned_run;
    use crate::ids::TrackKey;

    #[test]
    fn a_returned_hand_off_is_reused() {
        let fanout = Arc::new(TrackFanout::new(TrackKey(1)));
        let mut pool = HandoffPool::default();
        let (p1, p2, p3) = (rtp_packet(1, 9), rtp_packet(2, 9), rtp_packet(3, 9));
        let first = pool.rtp(&fanout, owned_run(&[&p1]).as_run());
        let second = pool.rtp(&fanout, owned_run(&[&p2]).as_run());
        assert!(!Arc::ptr_eq(&first, &second), "the first is still held");
        let first_ptr = Arc::as_ptr(&first);
        drop(first);
        let third = pool.rtp(&fanout, owned_run(&[&p3]).as_run());
        assert_eq!(Arc::as_ptr(&third), first_ptr);
        let HandoffPayload::Rtp(run) = &third.payload else {
            panic!("an RTP hand-off");
        };
        let packets: Vec<&[u8]> = run.as_run().packets().map(|(p, _)| p).collect();
        assert_eq!(packets, vec![&p3[..]]);
    }
}
