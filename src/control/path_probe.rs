//! Return routability before a connected session's media moves (RFC 7675's
//! point, for an ICE-lite server): a new address that checks or media
//! nominated gets the session's media only once it answered a Binding
//! request of ours, sent there with the client's ICE credentials. A
//! sender that forges its source address (to aim a session's media at a
//! victim) never sees the request, so it cannot answer it.
//!
//! Where it sits: the control thread, beside [`super::path::PathSelector`]:
//! `transport::handle_bound` and `handle_off_path` turn its `Switch` into a
//! probe ([`PathProbe::begin`]) for a connected session, and the probe's
//! success response (a `Bound` event carrying our transaction id) into the
//! move ([`PathProbe::answered`]).
//!
//! Sans-IO: `now` and ids in, ids out; the caller writes and sends.

use std::time::{Duration, Instant};

use super::transceiver::TransportBinding;

/// Between probes of one session: a lost probe is sent again when the
/// client's next check or media asks for the move, at most this often.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// One probe awaiting its response.
#[derive(Debug, Clone, Copy)]
struct Pending {
    to: TransportBinding,
    txid: [u8; 12],
    sent: Instant,
}

/// A session's probe of the address its media would move to.
#[derive(Debug, Default, Clone)]
pub struct PathProbe {
    pending: Option<Pending>,
}

impl PathProbe {
    /// A move to `to` was decided at `now`: the transaction id of a probe
    /// to send there, or `None` when one went out less than
    /// [`PROBE_INTERVAL`] ago.
    pub fn begin(
        &mut self,
        to: TransportBinding,
        now: Instant,
        txid: [u8; 12],
    ) -> Option<[u8; 12]> {
        if self
            .pending
            .is_some_and(|p| now.saturating_duration_since(p.sent) < PROBE_INTERVAL)
        {
            return None;
        }
        self.pending = Some(Pending {
            to,
            txid,
            sent: now,
        });
        Some(txid)
    }

    /// A success response with `txid` came from `addr` on `worker`: the
    /// binding the media moves to, when it answers the pending probe.
    pub fn answered(
        &mut self,
        txid: &[u8; 12],
        worker: crate::ids::WorkerId,
        addr: std::net::SocketAddr,
    ) -> Option<TransportBinding> {
        self.pending
            .filter(|p| &p.txid == txid && p.to.addr == addr)?;
        self.pending = None;
        Some(TransportBinding {
            worker,
            addr,
            nominated: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkerId;

    fn to(port: u16) -> TransportBinding {
        TransportBinding {
            worker: WorkerId(0),
            addr: std::net::SocketAddr::from(([10, 0, 0, 1], port)),
            nominated: true,
        }
    }

    #[test]
    fn only_the_answer_from_the_probed_address_moves_the_media() {
        let t0 = Instant::now();
        let mut p = PathProbe::default();
        let txid = p.begin(to(1), t0, [1; 12]).expect("a probe");
        assert_eq!(
            p.begin(to(1), t0 + Duration::from_millis(100), [2; 12]),
            None,
            "paced"
        );
        assert_eq!(
            p.answered(&[9; 12], WorkerId(0), to(1).addr),
            None,
            "another id"
        );
        assert_eq!(
            p.answered(&txid, WorkerId(0), to(2).addr),
            None,
            "another address"
        );
        assert_eq!(
            p.answered(&txid, WorkerId(1), to(1).addr).map(|b| b.worker),
            Some(WorkerId(1))
        );
        assert_eq!(
            p.answered(&txid, WorkerId(1), to(1).addr),
            None,
            "answered once"
        );
        // After the interval a new probe goes out (the first was lost).
        assert_eq!(p.begin(to(3), t0 + PROBE_INTERVAL, [3; 12]), Some([3; 12]));
    }
}
