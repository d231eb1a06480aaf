//! SRTP and SRTCP (RFC 3711, RFC 7714) for one session: one inbound context
//! keyed by the client's DTLS keys, one outbound keyed by ours.
//!
//! Where it sits: on the media worker that owns the session's 5-tuple,
//! right after receive (unprotect) and right before send (protect).

pub mod gcm;
pub mod gcm_rtcp;

use bytes::BytesMut;
use rtc_srtp::context::Context;
use rtc_srtp::crypto::default_provider;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};

use crate::dtls::SrtpKeys;

/// Why a packet could not be protected or unprotected.
#[derive(Debug, thiserror::Error)]
#[error("srtp: {0}")]
pub struct SrtpError(String);

/// The two SRTP contexts of a session.
pub struct SrtpSession {
    inbound: Context,
    outbound: Context,
}

impl SrtpSession {
    /// Contexts from the keys a DTLS handshake exported.
    pub fn new(keys: &SrtpKeys) -> Result<Self, SrtpError> {
        let provider = default_provider().map_err(|e| SrtpError(e.to_string()))?;
        let crypto = provider.crypto();
        let inbound = Context::new(
            &keys.remote.0,
            &keys.remote.1,
            keys.profile,
            Some(srtp_replay_protection(1024)),
            Some(srtcp_replay_protection(1024)),
            crypto,
        )
        .map_err(|e| SrtpError(e.to_string()))?;
        let outbound = Context::new(
            &keys.local.0,
            &keys.local.1,
            keys.profile,
            None,
            None,
            crypto,
        )
        .map_err(|e| SrtpError(e.to_string()))?;
        Ok(SrtpSession { inbound, outbound })
    }

    /// Decrypts and authenticates an SRTP packet from the client.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        self.inbound
            .decrypt_rtp(packet)
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Decrypts and authenticates an SRTCP packet from the client.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        self.inbound
            .decrypt_rtcp(packet)
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Protects an RTP packet for the client.
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        self.outbound
            .encrypt_rtp(packet)
            .map_err(|e| SrtpError(e.to_string()))
    }

    /// Protects an RTCP packet for the client.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<BytesMut, SrtpError> {
        self.outbound
            .encrypt_rtcp(packet)
            .map_err(|e| SrtpError(e.to_string()))
    }
}
