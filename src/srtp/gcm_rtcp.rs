//! SRTCP unprotect for AEAD_AES_128_GCM (RFC 7714 §9), in place: every
//! feedback packet a client sends (receiver reports, NACKs, keyframe
//! requests, transport-cc feedback every 50 ms) is decrypted where it
//! lies, with no allocation. Replays are refused with a 128-packet window
//! on the SRTCP index, per sending SSRC (RFC 3711 §3.4).
//!
//! Where it sits: in the worker's unprotect step for RTCP
//! (`Engine::unprotect`), next to the SRTP receiver of `gcm`.

use aws_lc_rs::aead::{Aad, Nonce};

use super::gcm::{GcmError, SessionCipher, TAG_LEN, UnprotectError};
use super::windows::ReplayWindows;

/// Labels of RFC 3711 §4.3.2 for SRTCP.
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_SALT: u8 = 5;
/// The RTCP header SRTCP leaves in the clear.
const HEADER_LEN: usize = 8;
/// The E flag and SRTCP index after the tag.
const TRAILER_LEN: usize = 4;

/// The inbound SRTCP context of one session.
pub struct GcmRtcpReceiver {
    cipher: SessionCipher,
    /// Per sender SSRC: the window over its SRTCP index.
    senders: ReplayWindows,
}

impl GcmRtcpReceiver {
    /// A context from the master key (16 bytes) and salt (12 bytes).
    pub fn new(master_key: &[u8], master_salt: &[u8]) -> Result<Self, GcmError> {
        Ok(GcmRtcpReceiver {
            cipher: SessionCipher::with_labels(
                master_key,
                master_salt,
                LABEL_RTCP_KEY,
                LABEL_RTCP_SALT,
            )?,
            senders: ReplayWindows::default(),
        })
    }

    /// Decrypts an SRTCP packet in place; returns the length of the
    /// plaintext compound RTCP packet at its start.
    pub fn unprotect(&mut self, packet: &mut [u8]) -> Result<usize, UnprotectError> {
        let len = packet.len();
        if len < HEADER_LEN + TAG_LEN + TRAILER_LEN {
            return Err(UnprotectError::Malformed);
        }
        let trailer: [u8; 4] = packet[len - TRAILER_LEN..]
            .try_into()
            .map_err(|_| UnprotectError::Malformed)?;
        if trailer[0] & 0x80 == 0 {
            // Unencrypted SRTCP is not negotiated by WebRTC.
            return Err(UnprotectError::Malformed);
        }
        let index = u32::from_be_bytes(trailer) & 0x7fff_ffff;
        let ssrc = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        if self
            .senders
            .get(ssrc)
            .is_some_and(|w| w.is_replay(u64::from(index)))
        {
            return Err(UnprotectError::Replay);
        }
        // RFC 7714 §9.1: IV = (0x0000 || SSRC || 0x0000 || index) XOR salt;
        // §9.2: AAD = the header's 8 octets || E flag and index.
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[8..12].copy_from_slice(&index.to_be_bytes());
        for (b, s) in iv.iter_mut().zip(self.cipher.salt) {
            *b ^= s;
        }
        let mut aad = [0u8; HEADER_LEN + TRAILER_LEN];
        aad[..HEADER_LEN].copy_from_slice(&packet[..HEADER_LEN]);
        aad[HEADER_LEN..].copy_from_slice(&trailer);
        let sealed = &mut packet[HEADER_LEN..len - TRAILER_LEN];
        self.cipher
            .key
            .open_in_place(Nonce::assume_unique_for_key(iv), Aad::from(aad), sealed)
            .map_err(|_| UnprotectError::Authentication)?;
        self.senders.accept(ssrc, u64::from(index));
        Ok(len - TRAILER_LEN - TAG_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::fixture;
    use crate::wire::rtcp;
    use rtc_srtp::protection_profile::ProtectionProfile;

    /// rtc-srtp protects, we unprotect in place; replays and forgeries are
    /// refused.
    #[test]
    fn we_unprotect_what_rtc_srtp_protects() {
        let k = fixture::keys(ProtectionProfile::AeadAes128Gcm, 7);
        let mut ours = GcmRtcpReceiver::new(&k.remote.0, &k.remote.1).unwrap();
        let mut theirs = fixture::peer(&k);
        let mut sent = Vec::new();
        for i in 0..300u16 {
            let mut plain = Vec::new();
            rtcp::write_nack(&mut plain, 0x5151, 0x1234, &[i, i + 3]);
            rtcp::write_pli(&mut plain, 0x5151, 0x1234);
            let protected = theirs.protect_rtcp(&plain).unwrap().to_vec();
            let mut packet = protected.clone();
            let n = ours.unprotect(&mut packet).expect("ours opens it");
            assert_eq!(&packet[..n], &plain[..], "packet {i}");
            sent.push(protected);
        }
        // Replays, recent and old, are refused.
        for old in [&sent[299], &sent[250], &sent[10]] {
            let mut again = old.clone();
            assert_eq!(ours.unprotect(&mut again), Err(UnprotectError::Replay));
        }
        // A flipped bit anywhere fails authentication (or the format).
        let mut next = Vec::new();
        rtcp::write_pli(&mut next, 0x5151, 0x1234);
        let fresh = theirs.protect_rtcp(&next).unwrap().to_vec();
        for at in [0, 9, fresh.len() - 5] {
            let mut forged = fresh.clone();
            forged[at] ^= 1;
            assert!(ours.unprotect(&mut forged).is_err(), "bit flipped at {at}");
        }
        let mut good = fresh.clone();
        assert!(ours.unprotect(&mut good).is_ok());
        // Truncated input is refused without panicking.
        for len in 0..fresh.len() {
            let mut short = fresh[..len].to_vec();
            let _ = ours.unprotect(&mut short);
        }
    }
}
