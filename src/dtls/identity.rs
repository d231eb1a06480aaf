//! The server's DTLS identity: one self-signed certificate made at start,
//! its fingerprint for every SDP we write, and the handshake configuration
//! each session's [`super::DtlsTransport`] is built from.

use std::sync::Arc;

use rtc_dtls::config::{ClientAuthType, ConfigBuilder, ExtendedMasterSecretType, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::crypto_provider::{RTCCryptoProvider, default_provider};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;

use super::{DtlsError, Fingerprint, matches_any};

/// The server's certificate, made once at start and shared by all sessions.
pub struct DtlsIdentity {
    certificate: Certificate,
    provider: Arc<dyn RTCCryptoProvider>,
    /// Its fingerprint, for every SDP we write.
    pub fingerprint: Fingerprint,
}

impl DtlsIdentity {
    /// Generates a self-signed ECDSA P-256 certificate.
    pub fn generate() -> Result<Self, DtlsError> {
        let provider = default_provider().map_err(|e| DtlsError::Certificate(e.to_string()))?;
        let certificate =
            Certificate::generate_self_signed(vec!["switchboard".to_owned()], provider.crypto())
                .map_err(|e| DtlsError::Certificate(e.to_string()))?;
        let fingerprint = Fingerprint::of(certificate.certificate[0].as_ref());
        Ok(DtlsIdentity {
            certificate,
            provider,
            fingerprint,
        })
    }

    pub(super) fn config(
        &self,
        profiles: Vec<SrtpProtectionProfile>,
        remote: Vec<Fingerprint>,
        is_client: bool,
    ) -> Result<HandshakeConfig, DtlsError> {
        let verify = Arc::new(move |certs: &[Vec<u8>], _: &[_]| match certs.first() {
            Some(der) if matches_any(&remote, der) => Ok(()),
            _ => Err(rtc_shared::error::Error::Other(
                "the peer's certificate matches none of its a=fingerprint lines".into(),
            )),
        });
        ConfigBuilder::default()
            .with_crypto_provider(self.provider.clone())
            .with_certificates(vec![self.certificate.clone()])
            .with_srtp_protection_profiles(profiles)
            .with_extended_master_secret(ExtendedMasterSecretType::Request)
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(verify))
            .build(is_client, None)
            .map_err(|e| DtlsError::Certificate(e.to_string()))
    }
}
