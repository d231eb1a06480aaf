//! One simulated client's transport, sans-IO: ICE checks as the controlling
//! agent (USE-CANDIDATE on the one pair), then a DTLS handshake (as client,
//! or as server when the SFU answered `a=setup:active`), then SRTP. Consent
//! checks keep the pair alive during a run. The CPU time the calling
//! thread spends on the handshake (DTLS and SRTP keys) is counted, so a run
//! can tell what joins cost the load generator itself.
//!
//! Inputs: `handle_datagram`, `handle_timeout`; output: `poll_transmit`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard::dtls::{DtlsIdentity, DtlsRole, DtlsTransport, Fingerprint};
use switchboard::ice::{BindingRequest, IceCredentials, write_binding_request};
use switchboard::ids::random_bytes;
use switchboard::srtp::SrtpSession;
use switchboard::wire::stun::{StunMessage, message_type};
use switchboard::wire::{PacketKind, classify};

use crate::procstat::thread_cpu_time;

/// How often checks repeat until the first answer.
const CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// Consent checks once connected (RFC 7675 asks for about every 5 s).
const CONSENT_INTERVAL: Duration = Duration::from_secs(2);

/// What the far side told us in its SDP.
#[derive(Debug, Clone)]
pub struct Remote {
    /// Its ice-ufrag.
    pub ufrag: String,
    /// Its ice-pwd.
    pub pwd: String,
    /// Its certificate fingerprint.
    pub fingerprint: Fingerprint,
    /// Our side of the DTLS handshake, from the SDP's `a=setup`.
    pub dtls_role: DtlsRole,
}

/// Where the endpoint is in connecting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Sending ICE checks.
    Checking,
    /// ICE answered; DTLS handshake running.
    Handshaking,
    /// SRTP ready.
    Connected,
    /// The handshake failed.
    Failed,
}

/// One client endpoint.
pub struct Endpoint {
    /// Our ICE credentials (what our SDP says).
    pub ice: IceCredentials,
    remote: Remote,
    dtls: DtlsTransport,
    srtp: Option<SrtpSession>,
    phase: Phase,
    next_check: Instant,
    transmits: VecDeque<Vec<u8>>,
    /// When SRTP became ready.
    pub connected_at: Option<Instant>,
    /// CPU time spent on the DTLS handshake and the SRTP keys (until connected).
    pub handshake_cpu: Duration,
}

impl Endpoint {
    /// An endpoint that will connect to `remote` as ICE controlling agent.
    pub fn new(
        identity: Arc<DtlsIdentity>,
        ice: IceCredentials,
        remote: Remote,
        now: Instant,
    ) -> Self {
        let dtls = DtlsTransport::new(identity, vec![remote.fingerprint.clone()], remote.dtls_role);
        Endpoint {
            ice,
            remote,
            dtls,
            srtp: None,
            phase: Phase::Checking,
            next_check: now,
            transmits: VecDeque::new(),
            connected_at: None,
            handshake_cpu: Duration::ZERO,
        }
    }

    /// Runs `step` of the handshake, adding its CPU time to `handshake_cpu`
    /// while not connected yet.
    fn handshake_step<T>(&mut self, step: impl FnOnce(&mut Self) -> T) -> T {
        if self.phase == Phase::Connected {
            return step(self);
        }
        let t0 = thread_cpu_time();
        let out = step(self);
        self.handshake_cpu += thread_cpu_time().saturating_sub(t0);
        out
    }

    /// The connection phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    fn send_check(&mut self, now: Instant) {
        let mut out = Vec::with_capacity(128);
        let username = format!("{}:{}", self.remote.ufrag, self.ice.ufrag);
        write_binding_request(
            &mut out,
            &random_bytes::<12>(),
            &username,
            &self.remote.pwd,
            true,
        );
        self.transmits.push_back(out);
        let interval = if self.phase == Phase::Checking {
            CHECK_INTERVAL
        } else {
            CONSENT_INTERVAL
        };
        self.next_check = now + interval;
    }

    /// Runs timers: ICE checks, consent, DTLS retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_check && self.phase != Phase::Failed {
            self.send_check(now);
        }
        if self.dtls.poll_timeout().is_some_and(|t| t <= now)
            && self.handshake_step(|e| e.dtls.handle_timeout(now)).is_err()
        {
            self.phase = Phase::Failed;
        }
        self.drain_dtls();
    }

    /// Takes a datagram from the server. Returns RTP and RTCP (still
    /// protected) for the caller.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        from: std::net::SocketAddr,
        datagram: &'a [u8],
    ) -> Option<&'a [u8]> {
        if std::env::var_os("LOADGEN_DEBUG").is_some() {
            eprintln!(
                "rx {:?} {} bytes in {:?}",
                classify(datagram),
                datagram.len(),
                self.phase
            );
        }
        match classify(datagram) {
            PacketKind::Stun => {
                // Some SFUs check the pair themselves even as ICE-lite
                // agents (libnice does): answer their checks.
                if let Ok(check) = BindingRequest::read(datagram) {
                    if check.local_ufrag == self.ice.ufrag && check.verify(&self.ice.pwd).is_ok() {
                        let mut out = Vec::with_capacity(96);
                        check.write_success(from, &self.ice.pwd, &mut out);
                        self.transmits.push_back(out);
                    }
                    return None;
                }
                let ok = StunMessage::new_checked(datagram).is_ok_and(|m| {
                    m.message_type() == message_type::BINDING_SUCCESS
                        && m.integrity_ok(self.remote.pwd.as_bytes())
                });
                if ok && self.phase == Phase::Checking {
                    self.phase = Phase::Handshaking;
                    self.next_check = now + CONSENT_INTERVAL;
                    if self.handshake_step(|e| e.dtls.start(now)).is_err() {
                        self.phase = Phase::Failed;
                    }
                    self.drain_dtls();
                }
                None
            }
            PacketKind::Dtls => {
                self.handshake_step(|e| e.handle_dtls(now, datagram));
                self.drain_dtls();
                None
            }
            PacketKind::Rtp | PacketKind::Rtcp => Some(datagram),
            _ => None,
        }
    }

    fn handle_dtls(&mut self, now: Instant, datagram: &[u8]) {
        match self.dtls.handle_datagram(now, datagram) {
            Ok(Some(keys)) => match SrtpSession::new(&keys) {
                Ok(srtp) => {
                    self.srtp = Some(srtp);
                    self.phase = Phase::Connected;
                    self.connected_at = Some(now);
                }
                Err(_) => self.phase = Phase::Failed,
            },
            Ok(None) => {}
            Err(_) => self.phase = Phase::Failed,
        }
    }

    fn drain_dtls(&mut self) {
        while let Some(d) = self.dtls.poll_transmit() {
            self.transmits.push_back(d.to_vec());
        }
    }

    /// Sends one SCTP packet (data channels) as DTLS application data.
    pub fn send_application_data(&mut self, now: Instant, packet: &[u8]) -> bool {
        let sent = self.dtls.send_application_data(now, packet).is_ok();
        self.drain_dtls();
        sent
    }

    /// The next SCTP packet the server sent (data channels).
    pub fn poll_application_data(&mut self) -> Option<bytes::BytesMut> {
        self.dtls.poll_application_data()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// Protects an RTP packet for sending (None before SRTP is ready).
    pub fn protect(&mut self, rtp: &[u8]) -> Option<Vec<u8>> {
        self.srtp
            .as_mut()?
            .protect_rtp(rtp)
            .ok()
            .map(|b| b.to_vec())
    }

    /// Protects an RTCP compound packet for sending.
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Option<Vec<u8>> {
        self.srtp
            .as_mut()?
            .protect_rtcp(rtcp)
            .ok()
            .map(|b| b.to_vec())
    }

    /// Unprotects a received SRTCP packet.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Option<Vec<u8>> {
        self.srtp
            .as_mut()?
            .unprotect_rtcp(srtcp)
            .ok()
            .map(|b| b.to_vec())
    }

    /// Unprotects a received SRTP packet.
    pub fn unprotect(&mut self, srtp: &[u8]) -> Option<Vec<u8>> {
        self.srtp
            .as_mut()?
            .unprotect_rtp(srtp)
            .ok()
            .map(|b| b.to_vec())
    }
}
