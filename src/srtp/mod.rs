//! SRTP and SRTCP (RFC 3711, RFC 7714) for one session: one inbound context
//! keyed by the client's DTLS keys, one outbound keyed by ours.
//!
//! Where it sits: on the media worker that owns the session's 5-tuple,
//! right after receive (unprotect) and right before send (protect). What
//! reaches the inbound context passes [`screen`] first.

#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
pub mod gcm;
pub mod gcm_rtcp;
mod keys;
pub mod screen;
pub mod windows;

use bytes::BytesMut;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::default_provider;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};

use self::screen::{Screen, Verdict};
pub use keys::SrtpKeys;

/// Why a packet could not be protected or unprotected.
#[derive(Debug, thiserror::Error)]
#[error("srtp: {0}")]
pub struct SrtpError(String);

/// The two SRTP contexts of a session.
pub struct SrtpSession {
    inbound: Context,
    /// Which SSRCs `inbound` may hold state for.
    screen: Screen,
    outbound: Context,
    /// The exported keys, for a fresh `inbound`.
    keys: SrtpKeys,
}

impl SrtpSession {
    /// Contexts from the keys a DTLS handshake exported.
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        let provider = default_provider().map_err(|e| SrtpError(e.to_string()))?;
        let crypto = provider.crypto();
        let inbound = inbound_context(keys)?;
        let screen = Screen::new(keys.profile, &keys.remote.0, &keys.remote.1)
            .ok_or_else(|| SrtpError("bad SRTP master key or salt length".into()))?;
        let outbound = Context::new(
            &keys.local.0,
            &keys.local.1,
            keys.profile,
            None,
            None,
            crypto,
        )
        .map_err(|e| SrtpError(e.to_string()))?;
        Ok(SrtpSession {
            inbound,
            screen,
            outbound,
            keys: keys.clone(),
        })
    }

    /// Decrypts and authenticates an SRTP packet from the client.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        let verdict = self.screen.rtp(packet);
        self.screened(verdict)?;
        self.inbound
            .decrypt_rtp(packet)
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Decrypts and authenticates an SRTCP packet from the client.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        let verdict = self.screen.rtcp(packet);
        self.screened(verdict)?;
        self.inbound
            .decrypt_rtcp(packet)
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// The SSRCs the inbound context holds state for: (RTP, RTCP).
    pub fn inbound_ssrcs(&self) -> (usize, usize) {
        self.screen.held()
    }

    fn screened(&mut self, verdict: Verdict) -> Result<(), SrtpError> {
        match verdict {
            Verdict::Pass => Ok(()),
            Verdict::Afresh => {
                self.inbound = inbound_context(&self.keys)?;
                Ok(())
            }
            Verdict::Refuse => Err(SrtpError(
                "a new SSRC whose packet does not authenticate".into(),
            )),
        }
    }

    /// Protects an RTP packet for the client.
    ///
    /// rtc-srtp reads the header again and splits the packet where that
    /// header would end once written back, which lies past the packet when
    /// a one-byte extension element runs beyond its block to the end (a
    /// packet the RTP view accepts): such packets are refused here, not
    /// left to panic the worker.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        use rtc_shared::marshal::{MarshalSize as _, Unmarshal as _};
        let header =
            rtc_rtp::Header::unmarshal(&mut &packet[..]).map_err(|e| SrtpError(e.to_string()))?;
        if header.marshal_size() > packet.len() {
            return Err(SrtpError(format!(
                "RTP header of {} bytes as rewritten, in {} bytes",
                header.marshal_size(),
                packet.len()
            )));
        }
        self.outbound
            .encrypt_rtp_with_header(packet, &header)
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Protects an RTCP packet for the client.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        self.outbound
            .encrypt_rtcp(packet)
            .map_err(|e| SrtpError(e.to_string()))
    }
}

/// The inbound context for the client's keys.
fn inbound_context(keys: &SrtpKeys) -> Result<Context, SrtpError> {
    let provider = default_provider().map_err(|e| SrtpError(e.to_string()))?;
    Context::new(
        &keys.remote.0,
        &keys.remote.1,
        keys.profile,
        Some(srtp_replay_protection(1024)),
        Some(srtcp_replay_protection(1024)),
        provider.crypto(),
    )
    .map_err(|e| SrtpError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use rtc_srtp::protection_profile::ProtectionProfile;

    use super::*;
    use crate::srtp::fixture::{keys, peer};
    use crate::wire::rtp::RtpHeader;

    /// Found by the engine fuzz target: a one-byte extension element that
    /// runs past its one-word block to the packet's end. The RTP view
    /// accepts it (so it can be forwarded); rtc-srtp would slice past the
    /// packet and panic.
    #[test]
    fn a_packet_whose_rewritten_header_outgrows_it_is_refused_not_panicked() {
        let mut packet = vec![0x90, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2];
        packet.extend_from_slice(&[0xbe, 0xde, 0, 1]);
        packet.push(0x1f); // id 1, 16 bytes: 13 past the block
        packet.extend_from_slice(&[0xab; 16]);
        assert!(RtpHeader::new_checked(&packet).is_ok(), "forwardable");
        for profile in [
            ProtectionProfile::AeadAes128Gcm,
            ProtectionProfile::Aes128CmHmacSha1_80,
        ] {
            let mut ours = SrtpSession::new(&keys(profile, 7)).expect("keys");
            assert!(ours.protect_rtp(&packet).is_err(), "{profile:?}");
            // The context goes on: an ordinary packet still round-trips.
            let plain = crate::srtp::fixture::rtp_packet(2, 2);
            let protected = ours.protect_rtp(&plain).expect("protect");
            let back = peer(&keys(profile, 7))
                .unprotect_rtp(&protected)
                .expect("unprotect");
            assert_eq!(&back[..], &plain[..]);
        }
    }
}
