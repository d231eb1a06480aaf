//! Probing and pausing a subscriber's video on its worker: what the pause
//! rule (`crate::bwe::pause`) decided is applied (video stops; on resume
//! its streams re-base and a keyframe is asked for), and the probes its
//! estimate asks for are sent as padding-only packets on the subscriber's
//! RTX stream (RFC 4588 §4: padding carries no OSN), each with our
//! transport-wide number.

use std::time::Instant;

use bytes::BytesMut;

use super::counters::Counters;
use super::messages::EngineEvent;
use super::{Engine, Transmit};
use crate::bwe::pause::Change;
use crate::ids::SessionKey;
use crate::srtp::gcm;

/// Padding bytes in a probe packet (RFC 3550 padding: at most 255).
pub const PROBE_PADDING: usize = 255;

/// Writes a padding-only RTP packet (RFC 3550 §5.1 P bit) on `ssrc`:
/// payload type `pt`, sequence `seq`, timestamp `ts`, carrying our
/// transport-wide number `twcc` in one-byte extension `twcc_id`.
pub fn write_probe(out: &mut Vec<u8>, pt: u8, seq: u16, ts: u32, ssrc: u32, twcc: (u8, u16)) {
    out.clear();
    out.extend_from_slice(&[0xb0, pt & 0x7f]); // V=2, P, X
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(&[0xbe, 0xde, 0, 1, (twcc.0 << 4) | 1]);
    out.extend_from_slice(&twcc.1.to_be_bytes());
    out.push(0);
    out.resize(out.len() + PROBE_PADDING - 1, 0);
    out.push(PROBE_PADDING as u8);
}

/// The sessions with probes to send, and when the next is due.
#[derive(Debug, Default)]
pub(super) struct Probing {
    sessions: Vec<SessionKey>,
    next: Option<Instant>,
}

impl Probing {
    /// `key`'s estimate asks for probes from `now` (it is listed once: its
    /// `listed` flag says so).
    pub(super) fn list(&mut self, key: SessionKey, now: Instant) {
        self.sessions.push(key);
        self.next = Some(now);
    }

    /// When the next probe is due.
    pub(super) fn next(&self) -> Option<Instant> {
        self.next
    }
}

impl Engine {
    /// Pauses or resumes a subscriber's video for its estimate.
    pub(super) fn apply(&mut self, key: SessionKey, change: Change) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let video = s.media.outlets.iter().filter(|o| o.video);
        if let Some(e) = s.estimate.as_deref() {
            let (estimate, need) = (e.bwe.estimate() / 1000, e.need() as u64 / 1000);
            tracing::debug!(?key, ?change, estimate, need, "subscriber video (kbit/s)");
        }
        match change {
            Change::Pause => {
                Counters::add(&self.counters.paused_video, 1);
                Counters::add(&self.counters.video_pauses, 1);
            }
            Change::Resume => {
                self.counters
                    .paused_video
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                for o in video {
                    let mut layer = None;
                    if let Some(stream) = s.outbound.get_mut(&o.ssrc) {
                        stream.rebase();
                        // A simulcast pull waits for a keyframe of its layer.
                        if let Some(sw) = stream.layers.as_deref_mut() {
                            sw.restart();
                            layer = sw.target();
                        }
                    }
                    self.events.push_back(EngineEvent::KeyframeRequest {
                        track: o.track,
                        layer,
                    });
                }
            }
        }
    }

    /// Sends the probe packets due (padding on the RTX stream of a video
    /// outlet, numbered for transport-cc) and schedules the next.
    pub(super) fn send_probes(&mut self, now: Instant) {
        let mut next: Option<Instant> = None;
        let mut probing = std::mem::take(&mut self.probing.sessions);
        probing.retain(|key| {
            let Some(s) = self.sessions.get_mut(key) else {
                return false;
            };
            let (Some(e), Some(srtp), Some(twcc)) = (
                s.estimate.as_deref_mut(),
                s.srtp.as_mut(),
                s.media.twcc_extension,
            ) else {
                return false;
            };
            let rtx = s.media.outlets.iter().find_map(|o| {
                let r = o.rtx.as_ref().filter(|_| o.video)?;
                Some((o.ssrc, r.ssrc, r.payload_types.first()?.1))
            });
            while let Some(cluster) = e.bwe.poll_probe(now) {
                let Some((ssrc, rtx_ssrc, pt)) = rtx else {
                    continue;
                };
                let stream = s.outbound.entry(ssrc).or_default();
                let seq = stream.next_rtx_seq(rtx_ssrc);
                let size = PROBE_PADDING + 20 + gcm::TAG_LEN;
                let number = s.twcc_seq;
                s.twcc_seq = number.wrapping_add(1);
                e.bwe.sent(number, size, now, Some(cluster));
                let ts = stream.last_timestamp();
                write_probe(&mut self.scratch, pt, seq, ts, rtx_ssrc, (twcc, number));
                let protected = match s.gcm.as_mut() {
                    Some(g) => {
                        let mut packet = BytesMut::from(&self.scratch[..]);
                        g.protect(&mut packet, 20).ok().map(|()| packet)
                    }
                    None => srtp.protect_rtp(&self.scratch).ok(),
                };
                if let Some(bytes) = protected {
                    self.transmits.push_back(Transmit::single(s.addr, bytes));
                    Counters::add(&self.counters.probe_packets, 1);
                }
            }
            match e.bwe.probe_at() {
                Some(at) => {
                    next = Some(next.map_or(at, |n| n.min(at)));
                    true
                }
                None => {
                    e.listed = false;
                    false
                }
            }
        });
        self.probing = Probing {
            sessions: probing,
            next,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rtp::RtpHeader;

    #[test]
    fn a_probe_is_padding_only_with_our_number() {
        let mut out = Vec::new();
        write_probe(&mut out, 97, 7, 9000, 0x1234, (3, 0xbeef));
        let h = RtpHeader::new_checked(&out).expect("rtp");
        assert_eq!(
            (h.payload_type(), h.sequence_number(), h.ssrc()),
            (97, 7, 0x1234)
        );
        assert_eq!(h.extension(3), Some(&[0xbe, 0xef][..]));
        assert_eq!(out.len() - h.payload_offset(), PROBE_PADDING);
        assert_eq!(usize::from(*out.last().unwrap()), PROBE_PADDING);
    }
}
