//! SRTP master keys and salts, as a DTLS handshake exports them (RFC 5764
//! §4.2) and the SRTP contexts of one session are built from.

use rtc_srtp::protection_profile::ProtectionProfile;

/// SRTP master keys and salts exported from a completed handshake.
#[derive(Clone)]
pub struct SrtpKeys {
    /// The negotiated profile.
    pub profile: ProtectionProfile,
    /// Key and salt protecting what we send.
    pub local: (Vec<u8>, Vec<u8>),
    /// Key and salt protecting what the client sends.
    pub remote: (Vec<u8>, Vec<u8>),
}

impl std::fmt::Debug for SrtpKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SrtpKeys({:?})", self.profile)
    }
}
