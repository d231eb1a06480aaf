//! The gate in front of rtc-srtp's inbound context. rtc-srtp keeps state
//! (a rollover counter and a replay window) for every SSRC it is handed,
//! made before the packet authenticates and kept for good: a stream of
//! forged packets with a new SSRC each would grow it without bound. The
//! screen hands it a packet of an SSRC it has not admitted only once that
//! packet authenticates here (on a copy, with the session's keys: HMAC-SHA1
//! for AES_CM_128_HMAC_SHA1_80, RFC 3711 §4.2; AEAD for AEAD_AES_128_GCM,
//! RFC 7714), and it admits at most [`MAX_SSRCS`] per direction kind: past
//! that the context starts afresh ([`Verdict::Afresh`]). Only the holder of
//! the keys can get there, and it loses only its own streams' state.
//!
//! Where it sits: in [`super::SrtpSession`], on the media worker, before
//! each inbound decrypt: every packet of an AES-CM session, and the
//! off-path samples of every session. A known SSRC costs one hash lookup;
//! only the first packet of a new one is authenticated twice.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use rtc_srtp::protection_profile::ProtectionProfile;
use rustc_hash::FxHashSet;

use super::gcm::{GcmReceiver, derive};
use super::gcm_rtcp::GcmRtcpReceiver;
use super::windows::MAX_STREAMS;
use crate::wire::rtp;

/// SSRCs admitted per kind (RTP, RTCP) before the context starts afresh:
/// as many as the GCM receivers keep windows for.
pub const MAX_SSRCS: usize = MAX_STREAMS;

/// RFC 3711 §4.3.2 labels of the authentication keys.
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTCP_AUTH: u8 = 4;
/// HMAC-SHA1's key (n_a = 160 bits) and the tag AES_CM_128_HMAC_SHA1_80
/// keeps of it.
const AUTH_KEY_LEN: usize = 20;
const CM_TAG_LEN: usize = 10;

/// What becomes of an inbound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// To the context.
    Pass,
    /// To a fresh context: this new SSRC is one more than it may hold.
    Afresh,
    /// Dropped: a new SSRC whose packet does not authenticate, or not a
    /// packet at all.
    Refuse,
}

/// How a packet of a new SSRC is authenticated.
enum Check {
    HmacSha1 {
        rtp: Box<hmac::Key>,
        rtcp: Box<hmac::Key>,
    },
    Gcm {
        rtp: GcmReceiver,
        rtcp: GcmRtcpReceiver,
    },
}

/// What a packet is: the context keeps the two kinds' state apart.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Rtp = 0,
    Rtcp = 1,
}

/// The SSRCs one session's inbound context holds state for.
///
/// Call contract: [`Self::rtp`] / [`Self::rtcp`] before handing a packet
/// to the context; on [`Verdict::Afresh`] make a new context first.
pub struct Screen {
    check: Check,
    /// Admitted SSRCs, by [`Kind`].
    admitted: [FxHashSet<u32>; 2],
}

impl Screen {
    /// A screen for the client's master key and salt under `profile`;
    /// `None` for keys of the wrong length.
    pub fn new(profile: ProtectionProfile, key: &[u8], salt: &[u8]) -> Option<Self> {
        let check = match profile {
            ProtectionProfile::AeadAes128Gcm => Check::Gcm {
                rtp: GcmReceiver::new(key, salt).ok()?,
                rtcp: GcmRtcpReceiver::new(key, salt).ok()?,
            },
            _ => {
                let auth = |label| {
                    derive(key, salt, label, AUTH_KEY_LEN)
                        .ok()
                        .map(|k| Box::new(hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &k)))
                };
                Check::HmacSha1 {
                    rtp: auth(LABEL_RTP_AUTH)?,
                    rtcp: auth(LABEL_RTCP_AUTH)?,
                }
            }
        };
        Some(Screen {
            check,
            admitted: Default::default(),
        })
    }

    /// The SSRCs admitted: (RTP, RTCP).
    pub fn held(&self) -> (usize, usize) {
        (self.admitted[0].len(), self.admitted[1].len())
    }

    /// An SRTP packet from the client.
    pub fn rtp(&mut self, packet: &[u8]) -> Verdict {
        self.screen(Kind::Rtp, packet)
    }

    /// An SRTCP packet from the client.
    pub fn rtcp(&mut self, packet: &[u8]) -> Verdict {
        self.screen(Kind::Rtcp, packet)
    }

    fn screen(&mut self, kind: Kind, packet: &[u8]) -> Verdict {
        // RTP's SSRC; SRTCP's first sender SSRC (it keys the state).
        let at = match kind {
            Kind::Rtp => 8,
            Kind::Rtcp => 4,
        };
        let Some(ssrc) = packet
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return Verdict::Refuse;
        };
        if self.admitted[kind as usize].contains(&ssrc) {
            return Verdict::Pass;
        }
        if !self.authentic(kind, packet) {
            return Verdict::Refuse;
        }
        let full = self.admitted.iter().any(|a| a.len() >= MAX_SSRCS);
        if full {
            // The context holds both kinds: both start afresh.
            self.admitted.iter_mut().for_each(FxHashSet::clear);
        }
        self.admitted[kind as usize].insert(ssrc);
        if full { Verdict::Afresh } else { Verdict::Pass }
    }

    /// Whether a packet of a new SSRC authenticates (checked on a copy).
    fn authentic(&mut self, kind: Kind, packet: &[u8]) -> bool {
        match (&mut self.check, kind) {
            // A new SSRC's first packet has rollover counter 0 (RFC 3711
            // §3.3.1), as the context will assume.
            (Check::HmacSha1 { rtp, .. }, Kind::Rtp) => cm_authentic(rtp, packet, Some(0)),
            // The tag covers the packet with its E flag and index.
            (Check::HmacSha1 { rtcp, .. }, Kind::Rtcp) => {
                packet.len() >= 8 + 4 + CM_TAG_LEN && cm_authentic(rtcp, packet, None)
            }
            (Check::Gcm { rtp: rx, .. }, Kind::Rtp) => {
                let mut copy = packet.to_vec();
                rtp::header_len(&copy).is_some_and(|h| rx.unprotect(&mut copy, h).is_ok())
            }
            (Check::Gcm { rtcp: rx, .. }, Kind::Rtcp) => rx.unprotect(&mut packet.to_vec()).is_ok(),
        }
    }
}

/// Whether the last [`CM_TAG_LEN`] bytes of `packet` are HMAC-SHA1 (80)
/// of the rest, followed by the rollover counter where SRTP adds one.
fn cm_authentic(key: &hmac::Key, packet: &[u8], roc: Option<u32>) -> bool {
    let Some(split) = packet.len().checked_sub(CM_TAG_LEN).filter(|&n| n >= 12) else {
        return false;
    };
    let (covered, tag) = packet.split_at(split);
    let mut mac = hmac::Context::with_key(key);
    mac.update(covered);
    if let Some(roc) = roc {
        mac.update(&roc.to_be_bytes());
    }
    let full = mac.sign();
    verify_slices_are_equal(&full.as_ref()[..CM_TAG_LEN], tag).is_ok()
}

#[cfg(test)]
#[path = "screen_tests.rs"]
mod tests;
