//! DTLS-SRTP (RFC 5763, RFC 5764) for one session, sans-IO: records and
//! `now` in, records, timers and keys out. It runs on the DTLS threads
//! (`crate::dtls_threads`), which pass it the session's records and send
//! what [`DtlsTransport::poll_transmit`] returns; when the handshake
//! completes the SRTP keys are exported and installed on the media worker.
//! Beside it: the server's certificate ([`identity`]), the certificate
//! fingerprints of the SDP ([`fingerprint`]), a checked reader of the
//! client's first flight (`client_hello`) and the flight bookkeeping that
//! answers a retransmitted one (`flight`).
//!
//! The server is the DTLS server in its answers (`a=setup:passive`) and
//! offers `actpass`; browsers answer `active`, but a client that answers
//! `passive` (str0m does) makes the server the DTLS client. The peer's
//! certificate must match the `a=fingerprint` of its SDP. As server, the
//! SRTP profile is our choice: AEAD_AES_128_GCM whenever the client offers
//! it, even when it lists AES_CM first; as client we offer GCM first.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_srtp::protection_profile::ProtectionProfile;

mod client_hello;
pub mod fingerprint;
mod flight;
pub mod identity;

use client_hello::{ClientHello, client_hello_random};
pub use identity::DtlsIdentity;

use crate::srtp::SrtpKeys;

pub use fingerprint::{Fingerprint, HashFunction, matches_any};

/// The label of the DTLS-SRTP exporter (RFC 5764 §4.2).
const SRTP_EXPORTER_LABEL: &str = "EXTRACTOR-dtls_srtp";
/// The associations of one transport are keyed by one fixed address: the
/// client may change 5-tuple during the handshake, the association does not.
const ASSOCIATION: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9);

/// Why a DTLS transport failed.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// The certificate could not be made or loaded.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The handshake failed (bad record, alert, fingerprint mismatch).
    #[error("handshake: {0}")]
    Handshake(String),
    /// The peer offered no SRTP profile we support.
    #[error("no common SRTP protection profile")]
    NoSrtpProfile,
    /// The SRTP keys could not be exported.
    #[error("keying material: {0}")]
    Export(String),
    /// Application data before the handshake completed.
    #[error("the DTLS association is not connected")]
    NotConnected,
    /// Application data the association could not protect.
    #[error("application data: {0}")]
    Write(String),
}

/// One session's DTLS association, server side.
///
/// Inputs: [`handle_datagram`](Self::handle_datagram) with each record the
/// worker passes on, [`handle_timeout`](Self::handle_timeout) when
/// [`poll_timeout`](Self::poll_timeout) is due. Outputs: drain
/// [`poll_transmit`](Self::poll_transmit) after every input. Once
/// connected, application data (SCTP, RFC 8261) goes out with
/// [`send_application_data`](Self::send_application_data) and comes in
/// through [`poll_application_data`](Self::poll_application_data).
pub struct DtlsTransport {
    identity: Arc<DtlsIdentity>,
    role: DtlsRole,
    remote_fingerprints: Vec<Fingerprint>,
    endpoint: Option<Endpoint>,
    /// Before the endpoint exists: the ClientHello being reassembled and
    /// the datagrams that carried it, replayed into the endpoint.
    hello: ClientHello,
    early: Vec<Vec<u8>>,
    connected: bool,
    /// The client random of the ClientHello that started the association.
    hello_random: Option<[u8; 32]>,
    /// Once connected, a second handshake the client started (a ClientHello
    /// with a new random): it runs beside the current association, which
    /// keeps its keys until the new one completes, and is dropped if it
    /// fails. Chromium replaces its DTLS transport when the bundle's tagged
    /// m-line is stopped.
    rehandshake: Option<(Instant, Box<DtlsTransport>)>,
    /// Randoms of handshakes that completed (late retransmissions of their
    /// ClientHello start nothing).
    completed: Vec<[u8; 32]>,
    /// Failed second handshakes, logged once per [`LOG_INTERVAL`].
    failed_rehandshakes: crate::logging::Repeats,
    /// Our last flight, sent again when the peer repeats its own.
    last_flight: flight::LastFlight,
    /// Datagrams to send, before the endpoint's.
    outbox: VecDeque<BytesMut>,
    /// Application data received (SCTP packets, RFC 8261), in order.
    received: VecDeque<BytesMut>,
}

/// A repeating log line of one transport is written at most this often.
const LOG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// At most one new second handshake per this long.
const REHANDSHAKE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Randoms of completed handshakes remembered.
const COMPLETED_KEPT: usize = 4;

/// Which side of the DTLS handshake we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We wait for the ClientHello (`a=setup:passive` from us).
    Server,
    /// We send the ClientHello (the client answered `a=setup:passive`).
    Client,
}

impl DtlsTransport {
    /// A transport whose peer's certificate must match one of
    /// `remote_fingerprints`.
    pub fn new(
        identity: Arc<DtlsIdentity>,
        remote_fingerprints: Vec<Fingerprint>,
        role: DtlsRole,
    ) -> Self {
        DtlsTransport {
            identity,
            role,
            remote_fingerprints,
            endpoint: None,
            hello: ClientHello::default(),
            early: Vec::new(),
            connected: false,
            hello_random: None,
            rehandshake: None,
            completed: Vec::new(),
            failed_rehandshakes: Default::default(),
            last_flight: Default::default(),
            outbox: VecDeque::new(),
            received: VecDeque::new(),
        }
    }

    /// As DTLS client, sends the ClientHello (once the ICE path exists).
    /// Does nothing for a server or a started client.
    pub fn start(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.role != DtlsRole::Client || self.endpoint.is_some() {
            return Ok(());
        }
        let config = self.identity.config(
            vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ],
            self.remote_fingerprints.clone(),
            true,
        )?;
        let mut endpoint = Endpoint::new(ASSOCIATION, rtc_shared::TransportProtocol::UDP, None);
        endpoint
            .connect(now, ASSOCIATION, Arc::new(config), None)
            .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        self.endpoint = Some(endpoint);
        self.take_flight();
        Ok(())
    }

    /// Our role.
    pub fn role(&self) -> DtlsRole {
        self.role
    }

    /// Takes one DTLS datagram. Returns the SRTP keys when this datagram
    /// completed the handshake.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Option<SrtpKeys>, DtlsError> {
        if self.endpoint.is_none() && self.role == DtlsRole::Client {
            return Ok(None);
        }
        if self.role == DtlsRole::Server && self.connected {
            return Ok(self.handle_rehandshake(now, datagram));
        }
        if let Some(copies) = self.last_flight.repeat(datagram) {
            // The peer lost our flight (RFC 6347 §4.2.4).
            self.outbox
                .extend(copies.iter().map(|c| BytesMut::from(&c[..])));
            return Ok(None);
        }
        if self.endpoint.is_none() {
            // The first ClientHello decides the SRTP profile (server's
            // preference: GCM) before the association exists. Browsers may
            // fragment it over several datagrams (large key shares).
            if self.early.len() >= MAX_EARLY_DATAGRAMS {
                return Err(DtlsError::Handshake("ClientHello never completed".into()));
            }
            self.early.push(datagram.to_vec());
            self.hello.add_datagram(datagram);
            let Some(body) = self.hello.complete() else {
                return Ok(None);
            };
            self.hello_random = body.random();
            let offered = body.srtp_profiles();
            let profile = choose_profile(&offered).ok_or(DtlsError::NoSrtpProfile)?;
            let config =
                self.identity
                    .config(vec![profile], self.remote_fingerprints.clone(), false)?;
            self.endpoint = Some(Endpoint::new(
                ASSOCIATION,
                rtc_shared::TransportProtocol::UDP,
                Some(Arc::new(config)),
            ));
        } else {
            self.early.push(datagram.to_vec());
        }
        let Some(endpoint) = self.endpoint.as_mut() else {
            return Ok(None);
        };
        let mut completed = false;
        for d in self.early.drain(..) {
            self.last_flight.fed(&d);
            let events = endpoint
                .read(now, ASSOCIATION, None, BytesMut::from(&d[..]))
                .map_err(|e| DtlsError::Handshake(e.to_string()))?;
            completed |= keep(&mut self.received, events);
        }
        self.take_flight();
        if completed && !self.connected {
            self.connected = true;
            if let Some(random) = self.hello_random {
                self.completed.push(random);
            }
            return self.export_keys().map(Some);
        }
        Ok(None)
    }

    /// A datagram after the association connected: records of the current
    /// association (a repeated last flight), or of a second handshake the
    /// client started. Returns the new keys when the second one completes;
    /// its failures are logged and change nothing.
    fn handle_rehandshake(&mut self, now: Instant, datagram: &[u8]) -> Option<SrtpKeys> {
        let random = client_hello_random(datagram);
        let pending_random = self.rehandshake.as_ref().and_then(|(_, p)| p.hello_random);
        let starts =
            random.is_some_and(|r| !self.completed.contains(&r) && pending_random != Some(r))
                && self.rehandshake.as_ref().is_none_or(|(at, _)| {
                    now.saturating_duration_since(*at) >= REHANDSHAKE_INTERVAL
                });
        if starts {
            let fresh = DtlsTransport::new(
                self.identity.clone(),
                self.remote_fingerprints.clone(),
                DtlsRole::Server,
            );
            self.rehandshake = Some((now, Box::new(fresh)));
        }
        let Some((_, pending)) = self.rehandshake.as_mut() else {
            // The current association (e.g. the client repeating its last
            // flight because ours was lost); its errors change nothing now.
            let endpoint = self.endpoint.as_mut()?;
            match endpoint.read(now, ASSOCIATION, None, BytesMut::from(datagram)) {
                Ok(events) => {
                    keep(&mut self.received, events);
                }
                Err(e) => tracing::debug!(error = %e, "DTLS record after the handshake"),
            }
            return None;
        };
        match pending.handle_datagram(now, datagram) {
            Ok(Some(keys)) => {
                let (_, done) = self.rehandshake.take()?;
                let done = *done;
                self.endpoint = done.endpoint;
                // Its last flight (ChangeCipherSpec + Finished) and anything
                // it received go with it.
                self.outbox.extend(done.outbox);
                self.received.extend(done.received);
                self.hello_random = done.hello_random;
                if let Some(r) = done.hello_random {
                    self.completed.push(r);
                    let excess = self.completed.len().saturating_sub(COMPLETED_KEPT);
                    self.completed.drain(..excess);
                }
                Some(keys)
            }
            Ok(None) => None,
            Err(e) => {
                if let Some(left_out) = self.failed_rehandshakes.allow(now, LOG_INTERVAL) {
                    tracing::info!(error = %e, left_out, "a second DTLS handshake failed; the association stays");
                }
                self.rehandshake = None;
                None
            }
        }
    }

    fn export_keys(&self) -> Result<SrtpKeys, DtlsError> {
        let state = self
            .endpoint
            .as_ref()
            .and_then(|e| e.get_connection_state(ASSOCIATION))
            .ok_or_else(|| DtlsError::Export("no association".into()))?;
        let profile = match state.srtp_protection_profile() {
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => ProtectionProfile::AeadAes128Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => {
                ProtectionProfile::Aes128CmHmacSha1_80
            }
            _ => return Err(DtlsError::NoSrtpProfile),
        };
        let (key_len, salt_len) = (profile.key_len(), profile.salt_len());
        let material = state
            .export_keying_material(SRTP_EXPORTER_LABEL, &[], 2 * (key_len + salt_len))
            .map_err(|e| DtlsError::Export(e.to_string()))?
            .into_bytes();
        // RFC 5764 §4.2: client key, server key, client salt, server salt.
        let client = (
            material[..key_len].to_vec(),
            material[2 * key_len..2 * key_len + salt_len].to_vec(),
        );
        let server = (
            material[key_len..2 * key_len].to_vec(),
            material[2 * key_len + salt_len..].to_vec(),
        );
        let (local, remote) = match self.role {
            DtlsRole::Server => (server, client),
            DtlsRole::Client => (client, server),
        };
        Ok(SrtpKeys {
            profile,
            local,
            remote,
        })
    }

    /// Moves what the endpoint queued to the outbox, as our last flight
    /// while the handshake runs.
    fn take_flight(&mut self) {
        let Some(endpoint) = self.endpoint.as_mut() else {
            return;
        };
        let mut flight = Vec::new();
        while let Some(t) = endpoint.poll_transmit() {
            flight.push(t.message.to_vec());
            self.outbox.push_back(t.message);
        }
        // Once connected, what goes out is application data, not a flight.
        if !flight.is_empty() && !self.connected {
            self.last_flight.sent(flight);
        }
    }

    /// Whether the handshake completed.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Sends `data` (one SCTP packet, RFC 8261) as one application-data
    /// record; drain [`Self::poll_transmit`] after.
    pub fn send_application_data(&mut self, now: Instant, data: &[u8]) -> Result<(), DtlsError> {
        if !self.connected {
            return Err(DtlsError::NotConnected);
        }
        let endpoint = self.endpoint.as_mut().ok_or(DtlsError::NotConnected)?;
        endpoint
            .write(now, ASSOCIATION, data)
            .map_err(|e| DtlsError::Write(e.to_string()))
    }

    /// The next application data received, in order.
    pub fn poll_application_data(&mut self) -> Option<BytesMut> {
        self.received.pop_front()
    }

    /// The next datagram to send to the client.
    pub fn poll_transmit(&mut self) -> Option<BytesMut> {
        if let Some(d) = self.outbox.pop_front() {
            return Some(d);
        }
        if let Some(t) = self.endpoint.as_mut().and_then(|e| e.poll_transmit()) {
            return Some(t.message);
        }
        self.rehandshake.as_mut()?.1.poll_transmit()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due. None once
    /// connected: a peer that lost our last flight sends its own again, and
    /// that is answered from `handle_datagram`, not from a timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.connected {
            return self.rehandshake.as_ref()?.1.poll_timeout();
        }
        self.endpoint.as_ref()?.poll_timeout(&ASSOCIATION)
    }

    /// Retransmits the last flight if its timer expired.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        if self.connected {
            if let Some((_, pending)) = self.rehandshake.as_mut()
                && pending.handle_timeout(now).is_err()
            {
                self.rehandshake = None;
            }
            return Ok(());
        }
        if let Some(e) = self.endpoint.as_mut() {
            e.handle_timeout(ASSOCIATION, now)
                .map_err(|e| DtlsError::Handshake(e.to_string()))?;
        }
        self.take_flight();
        Ok(())
    }
}

/// Keeps the application data of an endpoint's `events`, up to
/// [`MAX_RECEIVED_RECORDS`] waiting; returns whether the handshake
/// completed among them.
fn keep(received: &mut VecDeque<BytesMut>, events: Vec<EndpointEvent>) -> bool {
    let mut completed = false;
    for event in events {
        match event {
            EndpointEvent::HandshakeComplete => completed = true,
            EndpointEvent::ApplicationData(data) if received.len() < MAX_RECEIVED_RECORDS => {
                received.push_back(data)
            }
            EndpointEvent::ApplicationData(_) => {
                tracing::debug!("DTLS application data dropped: the queue is full")
            }
            _ => {}
        }
    }
    completed
}

/// The server's choice among the profiles a client offers: GCM first.
fn choose_profile(offered: &[u16]) -> Option<SrtpProtectionProfile> {
    [
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
    ]
    .into_iter()
    .find(|p| offered.contains(&(*p as u16)))
}

/// Application data records kept until read: a peer cannot grow the
/// queue past this (its reader drains it after every datagram).
pub const MAX_RECEIVED_RECORDS: usize = 256;

/// Datagrams kept while the first ClientHello is incomplete.
const MAX_EARLY_DATAGRAMS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_prefers_gcm_whatever_the_client_order() {
        let cm = SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 as u16;
        let gcm = SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm as u16;
        assert_eq!(
            choose_profile(&[cm, gcm]),
            Some(SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm)
        );
        assert_eq!(
            choose_profile(&[cm]),
            Some(SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80)
        );
        assert_eq!(choose_profile(&[0x0002]), None);
    }
}
