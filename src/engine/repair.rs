//! Repairing a publisher's losses on the way in: each received packet of
//! a track that negotiated NACK is checked against its stream's gaps
//! (new, repair, duplicate), RTX packets (RFC 4588) are unwrapped back into
//! the original stream (by their OSN), and on the worker's timer the gaps
//! become NACKs to the publisher, or a keyframe request once a gap is
//! given up.
//!
//! Where it sits: on the publisher's worker, between SRTP unprotect and
//! the fan-out inbox (`Engine::handle_rtp`), and in its timer.

use std::time::{Duration, Instant};

use rustc_hash::FxHashMap as HashMap;

use crate::session::InboundRoute;
use crate::session::nack::{Arrival, NackGenerator};
use crate::wire::rtcp;
use crate::wire::rtp::{self, RtpHeader};

/// A NACK is repeated this long after the last one (no RTT measured yet).
pub const RETRY: Duration = Duration::from_millis(100);
/// At most one keyframe request per stream per this long for given-up gaps.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Per main SSRC of a session's pushed tracks: its route, its gaps, and
/// when a keyframe was last asked for.
#[derive(Default)]
pub struct Repairs {
    streams: HashMap<u32, (usize, NackGenerator, Option<Instant>)>,
    lost: Vec<u16>,
}

/// What to do with a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it as it is.
    Forward,
    /// Forward it as it is: it repairs a gap (a resend in the stream).
    Repaired,
    /// Forward the original packet rebuilt in the scratch buffer (from RTX).
    Unwrapped,
    /// Drop it: a duplicate, or RTX with nothing to repair (padding).
    Drop,
}

impl Repairs {
    /// Checks packet `header`/`plain` of route `route_index`; an RTX packet
    /// that repairs a gap is rebuilt into `scratch`.
    pub fn check(
        &mut self,
        route_index: usize,
        route: &InboundRoute,
        header: &RtpHeader<'_>,
        plain: &[u8],
        now: Instant,
        scratch: &mut Vec<u8>,
    ) -> Verdict {
        let pt = header.payload_type();
        if let Some(&(_, apt)) = route.rtx.iter().find(|(rtx, _)| *rtx == pt) {
            let main = self
                .streams
                .iter_mut()
                .find(|(_, (r, _, _))| *r == route_index);
            let Some((&main_ssrc, (_, nacks, _))) = main else {
                return Verdict::Drop;
            };
            let offset = header.payload_offset();
            let padding = if plain[0] & 0x20 != 0 {
                usize::from(plain.last().copied().unwrap_or(0))
            } else {
                0
            };
            let payload = plain
                .get(offset..plain.len().saturating_sub(padding))
                .unwrap_or_default();
            let [hi, lo, ..] = *payload else {
                return Verdict::Drop; // padding only (bandwidth probing)
            };
            let osn = u16::from_be_bytes([hi, lo]);
            if nacks.on_packet(osn, now) != Arrival::Repaired {
                return Verdict::Drop;
            }
            scratch.clear();
            scratch.extend_from_slice(&plain[..offset]);
            scratch.extend_from_slice(&payload[2..]);
            scratch[0] &= !0x20; // its padding is not the original's
            scratch[1] = (scratch[1] & 0x80) | (apt & 0x7f);
            rtp::set_sequence_number(scratch, osn);
            scratch[8..12].copy_from_slice(&main_ssrc.to_be_bytes());
            return Verdict::Unwrapped;
        }
        if !route.nack {
            return Verdict::Forward;
        }
        let (_, nacks, _) = self
            .streams
            .entry(header.ssrc())
            .or_insert_with(|| (route_index, NackGenerator::default(), None));
        match nacks.on_packet(header.sequence_number(), now) {
            Arrival::Duplicate => Verdict::Drop,
            Arrival::New => Verdict::Forward,
            Arrival::Repaired => Verdict::Repaired,
        }
    }

    /// Follows a renegotiation: each stream takes the route `route_of`
    /// gives its SSRC now, and is forgotten where it gives none.
    pub fn remap(&mut self, route_of: impl Fn(u32) -> Option<usize>) {
        self.streams
            .retain(|ssrc, (r, _, _)| match route_of(*ssrc) {
                Some(now) => {
                    *r = now;
                    true
                }
                None => false,
            });
    }

    /// Writes what is due to `out` as RTCP from `sender_ssrc`, one compound
    /// packet per call: NACKs for the gaps, and a PLI for a stream whose
    /// gap was given up. Returns (numbers NACKed, numbers given up).
    pub fn poll(&mut self, now: Instant, sender_ssrc: u32, out: &mut Vec<u8>) -> (usize, usize) {
        out.clear();
        let mut nacked = 0;
        let mut given_up = 0;
        for (&ssrc, (_, nacks, last_keyframe)) in self.streams.iter_mut() {
            let gave_up = nacks.poll(now, RETRY, &mut self.lost);
            if !self.lost.is_empty() {
                rtcp::write_nack(out, sender_ssrc, ssrc, &self.lost);
                nacked += self.lost.len();
            }
            given_up += gave_up;
            if gave_up > 0
                && last_keyframe
                    .is_none_or(|at| now.saturating_duration_since(at) >= KEYFRAME_INTERVAL)
            {
                *last_keyframe = Some(now);
                rtcp::write_pli(out, sender_ssrc, ssrc);
            }
        }
        (nacked, given_up)
    }
}
