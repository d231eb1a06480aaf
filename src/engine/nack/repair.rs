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

use super::generator::{Arrival, NackGenerator};
use crate::engine::session_media::InboundRoute;
use crate::simulcast::Layer;
use crate::wire::rtcp;
use crate::wire::rtp::{self, RtpHeader};

/// A NACK is repeated a round trip after the last one, but never sooner
/// than this (libwebrtc's floor).
pub const MIN_RETRY: Duration = Duration::from_millis(20);
/// At most one keyframe request per stream per this long for given-up gaps.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);

/// Per main SSRC of a session's pushed tracks: its route and simulcast
/// layer, its gaps, and when a keyframe was last asked for.
#[derive(Default)]
pub struct Repairs {
    streams: HashMap<u32, (usize, Option<Layer>, NackGenerator, Option<Instant>)>,
    lost: Vec<u16>,
}

/// What to do with a received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it as it is.
    Forward,
    /// Forward it as it is: it repairs a gap (a resend in the stream).
    Repaired,
    /// Forward the original packet rebuilt in the scratch buffer (from RTX:
    /// a repair, or one whose original has not arrived).
    Unwrapped,
    /// Drop it: a duplicate, or RTX with nothing to repair (padding).
    Drop,
}

impl Repairs {
    /// Checks packet `header`/`plain` of route `route_index` (and simulcast
    /// `layer`: an RTX stream repairs the stream of its layer); an RTX
    /// packet that repairs a gap is rebuilt into `scratch`.
    #[allow(clippy::too_many_arguments)]
    pub fn check(
        &mut self,
        route_index: usize,
        route: &InboundRoute,
        layer: Option<Layer>,
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
                .find(|(_, (r, l, _, _))| *r == route_index && *l == layer);
            let Some((&main_ssrc, (_, _, nacks, _))) = main else {
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
            // A repair, or a packet not seen yet: Chrome's RTX probes
            // resend packets just sent, and the original may have been
            // lost before any later packet showed the gap.
            if nacks.on_packet(osn, now) == Arrival::Duplicate {
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
        let (_, _, nacks, _) = self
            .streams
            .entry(header.ssrc())
            .or_insert_with(|| (route_index, layer, NackGenerator::default(), None));
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
            .retain(|ssrc, (r, _, _, _)| match route_of(*ssrc) {
                Some(now) => {
                    *r = now;
                    true
                }
                None => false,
            });
    }

    /// Writes what is due to `out` as RTCP from `sender_ssrc`, one compound
    /// packet per call: NACKs for the gaps (repeated a round trip `rtt`
    /// apart), and a PLI for a stream whose gap was given up. Returns
    /// (numbers NACKed, numbers given up).
    pub fn poll(
        &mut self,
        now: Instant,
        rtt: Duration,
        sender_ssrc: u32,
        out: &mut Vec<u8>,
    ) -> (usize, usize) {
        out.clear();
        let retry = rtt.max(MIN_RETRY);
        let mut nacked = 0;
        let mut given_up = 0;
        for (&ssrc, (_, _, nacks, last_keyframe)) in self.streams.iter_mut() {
            let gave_up = nacks.poll(now, retry, &mut self.lost);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::TrackFanout;
    use crate::ids::{Mid, TrackKey};
    use std::sync::Arc;

    const MAIN: u32 = 0x1111;
    const RTX: u32 = 0x2222;

    fn route() -> InboundRoute {
        InboundRoute {
            mid: Mid("0".into()),
            ssrcs: vec![MAIN, RTX],
            payload_types: vec![96, 97],
            clock_rate: 90_000,
            fanout: Arc::new(TrackFanout::new(TrackKey(1))),
            nack: true,
            rtx: vec![(97, 96)],
            rids: Vec::new(),
            formats: Vec::new(),
        }
    }

    fn media(seq: u16) -> Vec<u8> {
        let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xaa, 0xbb];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&MAIN.to_be_bytes());
        p
    }

    fn rtx(seq: u16, osn: u16) -> Vec<u8> {
        let mut p = vec![0x80, 97, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[8..12].copy_from_slice(&RTX.to_be_bytes());
        p.extend_from_slice(&osn.to_be_bytes());
        p.extend_from_slice(&[0xaa, 0xbb]);
        p
    }

    fn check(r: &mut Repairs, packet: &[u8], scratch: &mut Vec<u8>) -> Verdict {
        let header = RtpHeader::new_checked(packet).expect("rtp");
        r.check(0, &route(), None, &header, packet, Instant::now(), scratch)
    }

    #[test]
    fn rtx_repairs_a_gap_rtx_ahead_of_the_stream_is_its_packet_and_duplicates_drop() {
        let mut r = Repairs::default();
        let mut scratch = Vec::new();
        assert_eq!(check(&mut r, &media(10), &mut scratch), Verdict::Forward);
        // 11 lost; its repair arrives by RTX.
        assert_eq!(check(&mut r, &media(12), &mut scratch), Verdict::Forward);
        assert_eq!(
            check(&mut r, &rtx(500, 11), &mut scratch),
            Verdict::Unwrapped
        );
        assert_eq!(scratch, media(11));
        assert_eq!(check(&mut r, &rtx(501, 11), &mut scratch), Verdict::Drop);
        // 13 lost, and a probe resends it before 14 shows the gap: it is
        // the packet, forwarded once.
        assert_eq!(
            check(&mut r, &rtx(502, 13), &mut scratch),
            Verdict::Unwrapped
        );
        assert_eq!(scratch, media(13));
        assert_eq!(check(&mut r, &media(14), &mut scratch), Verdict::Forward);
        assert_eq!(check(&mut r, &media(13), &mut scratch), Verdict::Drop);
        // Padding-only RTX is dropped.
        let mut padding = rtx(503, 0);
        padding.truncate(12);
        padding[0] |= 0x20;
        padding.extend_from_slice(&[0, 0, 0, 4]);
        assert_eq!(check(&mut r, &padding, &mut scratch), Verdict::Drop);
    }

    #[test]
    fn a_simulcast_layers_rtx_repairs_that_layers_stream() {
        let mut r = Repairs::default();
        let mut scratch = Vec::new();
        let (low, high) = (Some(Layer(1)), Some(Layer(0)));
        let other = |seq: u16| {
            let mut p = media(seq);
            p[8..12].copy_from_slice(&0x3333u32.to_be_bytes());
            p
        };
        let mut check = |packet: &[u8], layer: Option<Layer>, scratch: &mut Vec<u8>| {
            let header = RtpHeader::new_checked(packet).expect("rtp");
            r.check(0, &route(), layer, &header, packet, Instant::now(), scratch)
        };
        // Layer 0 on 0x3333, layer 1 on MAIN; layer 1 loses 11.
        assert_eq!(check(&other(500), high, &mut scratch), Verdict::Forward);
        assert_eq!(check(&media(10), low, &mut scratch), Verdict::Forward);
        assert_eq!(check(&media(12), low, &mut scratch), Verdict::Forward);
        assert_eq!(check(&other(501), high, &mut scratch), Verdict::Forward);
        // Layer 1's RTX stream brings 11 back into layer 1's stream.
        assert_eq!(check(&rtx(900, 11), low, &mut scratch), Verdict::Unwrapped);
        assert_eq!(scratch, media(11));
    }
}
