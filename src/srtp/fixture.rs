//! Deterministic SRTP keys, the client's side of a session, and a
//! browser-like RTP packet: what tests and benches of SRTP and of the
//! forwarding path (`crate::srtp::fixture`) protect and unprotect. Not
//! used by the server.

use rtc_srtp::protection_profile::ProtectionProfile;

use super::{SrtpKeys, SrtpSession};

/// Payload bytes of [`rtp_packet`]: a 1200-byte SRTP datagram with GCM.
pub const PAYLOAD: usize = 1200 - 12 - 8 - 16;

/// Deterministic keys for a profile.
pub fn keys(profile: ProtectionProfile, seed: u8) -> SrtpKeys {
    let (k, s) = (profile.key_len(), profile.salt_len());
    SrtpKeys {
        profile,
        local: (vec![seed; k], vec![seed ^ 1; s]),
        remote: (vec![seed ^ 2; k], vec![seed ^ 3; s]),
    }
}

/// The client's side of a session with these keys.
pub fn peer(keys: &SrtpKeys) -> SrtpSession {
    let swapped = SrtpKeys {
        profile: keys.profile,
        local: keys.remote.clone(),
        remote: keys.local.clone(),
    };
    SrtpSession::new(&swapped).expect("SRTP context from fixed keys")
}

/// The publisher's transport-wide sequence number extension id.
pub const PUBLISHER_TWCC: u8 = 3;
/// A plaintext VP8-like RTP packet with a transport-wide sequence number,
/// as browsers send them.
pub fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x90, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xbe, 0xde, 0, 1, (PUBLISHER_TWCC << 4) | 1]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.push(0);
    p.extend(std::iter::repeat_n(0xab, PAYLOAD));
    p
}
