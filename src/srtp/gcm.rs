//! SRTP protect for AEAD_AES_128_GCM (RFC 7714), in place: the packet is
//! encrypted where it lies and the tag appended, with no allocation. This
//! is the per-subscriber half of forwarding, so it runs once per subscriber
//! per packet. Unprotect is in place too, for SRTP here and for SRTCP in
//! `gcm_rtcp`; protecting SRTCP stays with `rtc-srtp`.
//!
//! Session keys are derived from the DTLS-exported master key and salt with
//! the AES-CM PRF of RFC 3711 §4.3 (key derivation rate 0).

use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::cipher::{AES_128, EncryptingKey, EncryptionContext, UnboundCipherKey};
use aws_lc_rs::iv::FixedLength;

use super::windows::ReplayWindows;

/// The tag GCM appends.
pub const TAG_LEN: usize = 16;

/// Labels of RFC 3711 §4.3.2.
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_SALT: u8 = 2;

/// Why a protect failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GcmError {
    /// Keys of the wrong length.
    #[error("bad SRTP master key or salt length")]
    BadKey,
    /// Not an RTP packet, or the header is longer than the packet.
    #[error("malformed RTP packet")]
    Malformed,
}

/// RFC 3711 §4.3.1 with kdr = 0: AES-CM keystream of the master key, IV =
/// (master salt, padded to 14 bytes, XOR label at byte 7) || 0x0000.
pub fn derive(
    master_key: &[u8],
    master_salt: &[u8],
    label: u8,
    len: usize,
) -> Result<Vec<u8>, GcmError> {
    if master_key.len() != 16 || master_salt.len() > 14 {
        return Err(GcmError::BadKey);
    }
    let mut iv = [0u8; 16];
    iv[..master_salt.len()].copy_from_slice(master_salt);
    iv[7] ^= label;
    let key = UnboundCipherKey::new(&AES_128, master_key).map_err(|_| GcmError::BadKey)?;
    let ctr = EncryptingKey::ctr(key).map_err(|_| GcmError::BadKey)?;
    let mut out = vec![0u8; len];
    ctr.less_safe_encrypt(&mut out, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| GcmError::BadKey)?;
    Ok(out)
}

/// The session key and salt of one direction (RFC 7714 §8, §11).
pub(super) struct SessionCipher {
    pub(super) key: LessSafeKey,
    pub(super) salt: [u8; 12],
}

impl SessionCipher {
    /// From the master key (16 bytes) and salt (12 bytes), for SRTP.
    fn new(master_key: &[u8], master_salt: &[u8]) -> Result<Self, GcmError> {
        Self::with_labels(master_key, master_salt, LABEL_RTP_KEY, LABEL_RTP_SALT)
    }

    /// The same with the key and salt derived under `labels` (SRTCP's are
    /// 3 and 5).
    pub(super) fn with_labels(
        master_key: &[u8],
        master_salt: &[u8],
        key_label: u8,
        salt_label: u8,
    ) -> Result<Self, GcmError> {
        if master_salt.len() != 12 {
            return Err(GcmError::BadKey);
        }
        let session_key = derive(master_key, master_salt, key_label, 16)?;
        let session_salt = derive(master_key, master_salt, salt_label, 12)?;
        let key = UnboundKey::new(&AES_128_GCM, &session_key).map_err(|_| GcmError::BadKey)?;
        let mut salt = [0u8; 12];
        salt.copy_from_slice(&session_salt);
        Ok(SessionCipher {
            key: LessSafeKey::new(key),
            salt,
        })
    }

    /// RFC 7714 §8.1: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt.
    fn nonce(&self, ssrc: u32, roc: u32, seq: u16) -> Nonce {
        let mut iv = [0u8; 12];
        iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
        iv[6..10].copy_from_slice(&roc.to_be_bytes());
        iv[10..12].copy_from_slice(&seq.to_be_bytes());
        for (b, s) in iv.iter_mut().zip(self.salt) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(iv)
    }
}

/// The outbound SRTP context of one session for AEAD_AES_128_GCM.
pub struct GcmSender {
    cipher: SessionCipher,
    /// Per SSRC: rollover counter and highest sequence number sent.
    rollover: Vec<(u32, u32, u16)>,
}

impl GcmSender {
    /// A context from the master key (16 bytes) and salt (12 bytes).
    pub fn new(master_key: &[u8], master_salt: &[u8]) -> Result<Self, GcmError> {
        Ok(GcmSender {
            cipher: SessionCipher::new(master_key, master_salt)?,
            rollover: Vec::new(),
        })
    }

    /// The rollover counter for `seq` of `ssrc` (RFC 3711 §3.3.1, sender side).
    fn roc(&mut self, ssrc: u32, seq: u16) -> u32 {
        match self.rollover.iter_mut().find(|(s, _, _)| *s == ssrc) {
            Some((_, roc, highest)) => {
                if seq < *highest && *highest - seq > 0x8000 {
                    *roc = roc.wrapping_add(1);
                    *highest = seq;
                } else if seq > *highest && seq - *highest < 0x8000 {
                    *highest = seq;
                } else if seq > *highest {
                    // A late packet from before the last wrap.
                    return roc.wrapping_sub(1);
                }
                *roc
            }
            None => {
                self.rollover.push((ssrc, 0, seq));
                0
            }
        }
    }

    /// Encrypts the RTP packet in `packet` in place and appends the tag.
    pub fn protect(
        &mut self,
        packet: &mut bytes::BytesMut,
        header_len: usize,
    ) -> Result<(), GcmError> {
        if packet.len() < 12 || header_len > packet.len() {
            return Err(GcmError::Malformed);
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let roc = self.roc(ssrc, seq);
        let nonce = self.cipher.nonce(ssrc, roc, seq);
        let (header, payload) = packet.split_at_mut(header_len);
        let tag = self
            .cipher
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(&*header), payload)
            .map_err(|_| GcmError::Malformed)?;
        packet.extend_from_slice(tag.as_ref());
        Ok(())
    }
}

/// The inbound SRTP context of one session for AEAD_AES_128_GCM: decrypts
/// in place, estimates the rollover counter (RFC 3711 Appendix A) and
/// rejects replays with a 128-packet window (RFC 3711 §3.3.2).
pub struct GcmReceiver {
    cipher: SessionCipher,
    /// Per SSRC: the window over its packet index (ROC << 16 | SEQ).
    streams: ReplayWindows,
}

/// Why an inbound packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnprotectError {
    /// Too short, or not RTP.
    #[error("malformed SRTP packet")]
    Malformed,
    /// Already received (or too old for the window).
    #[error("replayed SRTP packet")]
    Replay,
    /// The tag does not authenticate the packet.
    #[error("SRTP authentication failed")]
    Authentication,
}

impl GcmReceiver {
    /// A context from the master key (16 bytes) and salt (12 bytes).
    pub fn new(master_key: &[u8], master_salt: &[u8]) -> Result<Self, GcmError> {
        Ok(GcmReceiver {
            cipher: SessionCipher::new(master_key, master_salt)?,
            streams: ReplayWindows::default(),
        })
    }

    /// Decrypts an SRTP packet in place; returns the plaintext RTP length
    /// (the packet without its tag). `header_len` is the RTP header's length
    /// with CSRCs and extension, which SRTP leaves in the clear.
    pub fn unprotect(
        &mut self,
        packet: &mut [u8],
        header_len: usize,
    ) -> Result<usize, UnprotectError> {
        if packet.len() < header_len + TAG_LEN || header_len < 12 {
            return Err(UnprotectError::Malformed);
        }
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
        let window = self.streams.get(ssrc);
        // RFC 3711 Appendix A: the ROC this packet most likely has.
        let roc = match window {
            None => 0u32,
            Some(w) => {
                let (roc, highest) = ((w.highest() >> 16) as u32, w.highest() as u16);
                if highest < 0x8000 {
                    if seq > highest && seq - highest > 0x8000 {
                        roc.wrapping_sub(1)
                    } else {
                        roc
                    }
                } else if highest - 0x8000 > seq {
                    roc.wrapping_add(1)
                } else {
                    roc
                }
            }
        };
        let index = (u64::from(roc) << 16) | u64::from(seq);
        if window.is_some_and(|w| w.is_replay(index)) {
            return Err(UnprotectError::Replay);
        }
        let nonce = self.cipher.nonce(ssrc, roc, seq);
        let len = packet.len();
        let (header, rest) = packet.split_at_mut(header_len);
        self.cipher
            .key
            .open_in_place(nonce, Aad::from(&*header), rest)
            .map_err(|_| UnprotectError::Authentication)?;
        // Authenticated: remember it.
        self.streams.accept(ssrc, index);
        Ok(len - TAG_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srtp::SrtpKeys;
    use crate::srtp::SrtpSession;
    use rtc_srtp::protection_profile::ProtectionProfile;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 3711 Appendix B.3: key derivation.
    #[test]
    fn derives_the_rfc3711_session_key_and_salt() {
        let key = hex("E1F97A0D3E018BE0D64FA32C06DE4139");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        assert_eq!(
            derive(&key, &salt, 0, 16).unwrap(),
            hex("C61E7A93744F39EE10734AFE3FF7A087")
        );
        assert_eq!(
            derive(&key, &salt, 2, 14).unwrap(),
            hex("30CBBC08863D8C85D49DB34A9AE1")
        );
        assert_eq!(
            derive(&key, &salt, 1, 20).unwrap(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    /// Our in-place protect against an independent implementation (rtc-srtp):
    /// it must unprotect every packet, across a sequence number wrap.
    #[test]
    fn rtc_srtp_unprotects_what_we_protect() {
        let k = SrtpKeys {
            profile: ProtectionProfile::AeadAes128Gcm,
            local: ((1..=16).collect(), (21..=32).collect()),
            remote: (vec![9; 16], vec![8; 12]),
        };
        let mut ours = GcmSender::new(&k.local.0, &k.local.1).unwrap();
        let peer = SrtpKeys {
            profile: k.profile,
            local: k.remote.clone(),
            remote: k.local.clone(),
        };
        let mut theirs = SrtpSession::new(&peer).unwrap();
        for i in 0..200u32 {
            let seq = 65_500u16.wrapping_add(i as u16);
            let mut plain = vec![0x90, 96];
            plain.extend_from_slice(&seq.to_be_bytes());
            plain.extend_from_slice(&(i * 3000).to_be_bytes());
            plain.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            plain.extend_from_slice(&[0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0]); // one extension word
            plain.extend((0..300).map(|j| (j as u8) ^ (i as u8)));
            let mut packet = bytes::BytesMut::with_capacity(plain.len() + TAG_LEN);
            packet.extend_from_slice(&plain);
            ours.protect(&mut packet, 20).unwrap();
            assert_eq!(packet.len(), plain.len() + TAG_LEN);
            assert_eq!(&packet[..20], &plain[..20], "the header stays in the clear");
            assert_ne!(&packet[20..plain.len()], &plain[20..]);
            let back = theirs.unprotect_rtp(&packet).expect("rtc-srtp accepts it");
            assert_eq!(&back[..], &plain[..], "packet {i}");
        }
    }

    /// Our receiver and, for the peer, an rtc-srtp session whose outbound
    /// keys are the receiver's inbound ones.
    fn receiver_and_peer() -> (GcmReceiver, SrtpSession) {
        let k = SrtpKeys {
            profile: ProtectionProfile::AeadAes128Gcm,
            local: ((1..=16).collect(), (21..=32).collect()),
            remote: ((41..=56).collect(), (61..=72).collect()),
        };
        let ours = GcmReceiver::new(&k.remote.0, &k.remote.1).unwrap();
        let peer = SrtpKeys {
            profile: k.profile,
            local: k.remote.clone(),
            remote: k.local.clone(),
        };
        (ours, SrtpSession::new(&peer).unwrap())
    }

    /// rtc-srtp protects, we unprotect in place; replays, forgeries and
    /// sequence wraps behave.
    #[test]
    fn we_unprotect_what_rtc_srtp_protects() {
        let (mut ours, mut theirs) = receiver_and_peer();
        let mut sent = Vec::new();
        for i in 0..300u32 {
            let seq = 65_400u16.wrapping_add(i as u16);
            let mut plain = vec![0x80, 111];
            plain.extend_from_slice(&seq.to_be_bytes());
            plain.extend_from_slice(&(i * 960).to_be_bytes());
            plain.extend_from_slice(&0xfeed_beefu32.to_be_bytes());
            plain.extend((0..100).map(|j| (j as u8).wrapping_mul(i as u8)));
            let protected = theirs.protect_rtp(&plain).unwrap().to_vec();
            sent.push(protected.clone());
            let mut buf = protected;
            let n = ours.unprotect(&mut buf, 12).expect("accepted");
            assert_eq!(&buf[..n], &plain[..], "packet {i}");
        }
        // A replay of a recent packet, and of an old one, are refused.
        let mut again = sent[299].clone();
        assert_eq!(ours.unprotect(&mut again, 12), Err(UnprotectError::Replay));
        let mut old = sent[10].clone();
        assert_eq!(ours.unprotect(&mut old, 12), Err(UnprotectError::Replay));
        // A flipped bit fails authentication; a truncated packet is malformed.
        let mut forged = theirs
            .protect_rtp(&[
                0x80, 111, 0, 200, 0, 0, 0, 1, 0xfe, 0xed, 0xbe, 0xef, 1, 2, 3,
            ])
            .unwrap()
            .to_vec();
        forged[13] ^= 1;
        assert_eq!(
            ours.unprotect(&mut forged, 12),
            Err(UnprotectError::Authentication)
        );
        assert_eq!(
            ours.unprotect(&mut [0x80u8; 20], 12),
            Err(UnprotectError::Malformed)
        );
    }

    /// A client that authenticates every packet under a new SSRC: the
    /// context keeps at most `MAX_STREAMS` windows, and a stream in use
    /// keeps its own (its replays are still refused).
    #[test]
    fn a_client_rotating_its_ssrc_keeps_a_bounded_state() {
        use crate::srtp::windows::MAX_STREAMS;
        let (mut ours, mut theirs) = receiver_and_peer();
        let packet = |seq: u16, ssrc: u32| {
            let mut plain = vec![0x80, 111];
            plain.extend_from_slice(&seq.to_be_bytes());
            plain.extend_from_slice(&[0, 0, 0, 0]);
            plain.extend_from_slice(&ssrc.to_be_bytes());
            plain.extend_from_slice(&[1, 2, 3, 4]);
            plain
        };
        let mut kept = Vec::new();
        for i in 0..(MAX_STREAMS as u32 * 2) {
            let mut rotated = theirs.protect_rtp(&packet(1, 0x1000 + i)).unwrap().to_vec();
            assert!(ours.unprotect(&mut rotated, 12).is_ok());
            let mut steady = theirs.protect_rtp(&packet(i as u16, 7)).unwrap().to_vec();
            kept = steady.clone();
            assert!(
                ours.unprotect(&mut steady, 12).is_ok(),
                "packet {i} of the steady stream"
            );
        }
        assert!(ours.streams.len() <= MAX_STREAMS, "{}", ours.streams.len());
        assert_eq!(ours.unprotect(&mut kept, 12), Err(UnprotectError::Replay));
    }
}
