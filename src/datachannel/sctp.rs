//! One session's SCTP association (RFC 9260 over DTLS, RFC 8261), sans-IO,
//! with its data channels: in-band opens (DCEP, RFC 8832) answered and
//! announced, negotiated channels opened by id, and messages with their
//! kind (string or binary, empty or not) and the channel's delivery policy.
//!
//! Where it sits: between a session's DTLS association (each SCTP packet is
//! one DTLS application-data record) and the channel fan-out, on the thread
//! that owns the DTLS association, never on a media worker.
//!
//! Call contract: [`SctpTransport::start`] once DTLS connected (as DTLS
//! client we send the INIT); [`handle_packet`](SctpTransport::handle_packet)
//! with each SCTP packet DTLS decrypted; [`handle_timeout`]
//! (SctpTransport::handle_timeout) when [`poll_timeout`]
//! (SctpTransport::poll_timeout) is due; after each input, drain
//! [`poll_transmit`](SctpTransport::poll_transmit) (packets for DTLS to
//! send) and [`poll_event`](SctpTransport::poll_event).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rtc_sctp::{
    Association, AssociationHandle, ClientConfig, DatagramEvent, Endpoint, EndpointConfig,
    EndpointEvent, Event, Payload, PayloadProtocolIdentifier, ReliabilityType, ServerConfig,
    StreamEvent, TransportConfig,
};

use super::dcep::{self, Dcep, MessageKind, Open};
use super::policy::{DeliveryPolicy, Reliability};
use super::sctp_check::{self, TsnWindow};
use crate::dtls::DtlsRole;

/// The largest message we take, and the `a=max-message-size` we announce.
pub const MAX_MESSAGE_SIZE: usize = 256 * 1024;
/// The peer's limit when its SDP names none (RFC 8841 §6.1).
pub const DEFAULT_REMOTE_MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Streams each way (the API's ids are 0–65534).
const MAX_STREAMS: u16 = u16::MAX;
/// The association's one peer, as far as SCTP knows: DTLS carries it, so
/// the address only has to be fixed and have a port.
const PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 9);

/// What the association tells the channel layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SctpEvent {
    /// The association is up: channels can be opened and used.
    Connected,
    /// The peer opened a channel in band on stream `id`; it was answered
    /// with DATA_CHANNEL_ACK.
    ChannelOpened { id: u16, open: Open },
    /// The peer accepted the channel we opened in band on stream `id`.
    ChannelAcked { id: u16 },
    /// A whole message on channel `id`.
    Message {
        id: u16,
        kind: MessageKind,
        bytes: Vec<u8>,
    },
    /// A message on `id` was dropped: larger than [`MAX_MESSAGE_SIZE`], or
    /// with an identifier data channels do not use.
    MessageDropped { id: u16 },
    /// Channel `id` was closed (its stream reset, by either side).
    ChannelClosed { id: u16 },
    /// An SCTP packet was dropped unread: its chunks do not lie inside it,
    /// or reading it failed the association (which is then closed).
    PacketDropped,
    /// The association failed or the peer closed it.
    Closed,
}

/// Why a send or an open was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SctpError {
    /// The association is not up (yet, or any more).
    #[error("the SCTP association is not connected")]
    NotConnected,
    /// Larger than the peer takes.
    #[error("message of {size} bytes exceeds the peer's maximum of {max}")]
    TooLarge { size: usize, max: usize },
    /// SCTP refused it (an unknown or closed stream, a full buffer).
    #[error("SCTP: {0}")]
    Sctp(String),
}

/// One session's SCTP association and its channels.
pub struct SctpTransport {
    role: DtlsRole,
    endpoint: Endpoint,
    association: Option<(AssociationHandle, Association)>,
    connected: bool,
    closed: bool,
    /// Channels we opened in band, unacknowledged: sent ordered until the
    /// peer's ACK or first message (RFC 8832 §6), then with their policy.
    unacked: HashMap<u16, DeliveryPolicy>,
    /// The peer's `a=max-message-size`.
    remote_max_message_size: usize,
    events: VecDeque<SctpEvent>,
    /// SCTP packets to send, split out of the association's batches.
    transmits: VecDeque<Bytes>,
    /// The peer's TSNs the association can still acknowledge.
    tsn_window: TsnWindow,
}

impl SctpTransport {
    /// The association of a session whose DTLS role is `role`, whose peer
    /// announced `remote_max_message_size` (None: it announced none).
    pub fn new(role: DtlsRole, remote_max_message_size: Option<usize>) -> Self {
        let remote_max_message_size = match remote_max_message_size {
            // 0: the peer takes messages of any size (RFC 8841 §6).
            Some(0) => usize::MAX,
            Some(n) => n,
            None => DEFAULT_REMOTE_MAX_MESSAGE_SIZE,
        };
        let server = (role == DtlsRole::Server)
            .then(|| Arc::new(ServerConfig::new(transport_config(remote_max_message_size))));
        SctpTransport {
            role,
            endpoint: Endpoint::new(
                PEER,
                rtc_shared::TransportProtocol::UDP,
                Arc::new(EndpointConfig::new()),
                server,
            ),
            association: None,
            connected: false,
            closed: false,
            unacked: HashMap::new(),
            remote_max_message_size,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            tsn_window: TsnWindow::default(),
        }
    }

    /// DTLS connected: as DTLS client we start the association (RFC 8832
    /// §6: the DTLS client sends the INIT); as server we wait for it.
    pub fn start(&mut self, now: Instant) {
        if self.role != DtlsRole::Client || self.association.is_some() {
            return;
        }
        let config = ClientConfig::new(transport_config(self.remote_max_message_size));
        match self.endpoint.connect(now, config, PEER) {
            Ok(association) => self.association = Some(association),
            Err(e) => {
                tracing::debug!(error = %e, "SCTP connect");
                self.events.push_back(SctpEvent::Closed);
            }
        }
        self.pump(now);
    }

    /// Takes one SCTP packet (a DTLS application-data record). A packet
    /// that fails the checks of [`sctp_check`] (chunks that do not fit, or
    /// hide others; TSNs further ahead than a SACK reaches) is dropped;
    /// should the association's library panic on one all the same, the
    /// association is closed, not the thread.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        if !(sctp_check::chunks_fit(packet) && self.tsn_window.admits(packet)) {
            self.events.push_back(SctpEvent::PacketDropped);
            return;
        }
        self.tsn_window.received(packet, self.connected);
        self.guarded(|t| t.read_packet(now, packet));
    }

    /// Runs `step` on the association; a panic inside it (a library fault
    /// that a peer's input can reach) drops the association and is counted.
    fn guarded(&mut self, step: impl FnOnce(&mut Self)) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(self)));
        if outcome.is_err() {
            // Counted (`malformed_sctp`); a peer can repeat it, so not a warning.
            tracing::debug!("SCTP association failed on a peer's packet: closed");
            let events = std::mem::take(&mut self.events);
            *self = SctpTransport::new(self.role, Some(self.remote_max_message_size));
            self.closed = true;
            self.events = events;
            self.events.push_back(SctpEvent::PacketDropped);
            self.events.push_back(SctpEvent::Closed);
        }
    }

    fn read_packet(&mut self, now: Instant, packet: &[u8]) {
        let Some((handle, event)) =
            self.endpoint
                .handle(now, PEER, None, Bytes::copy_from_slice(packet))
        else {
            return; // malformed, or for no association
        };
        match event {
            DatagramEvent::NewAssociation(association) => {
                // The peer's INIT again (our INIT-ACK was lost): the newest
                // one stands until connected; once connected, no other.
                if self.connected {
                    self.endpoint.handle_event(handle, EndpointEvent::drained());
                } else if let Some((old, _)) = self.association.replace((handle, association)) {
                    self.endpoint.handle_event(old, EndpointEvent::drained());
                }
            }
            DatagramEvent::AssociationEvent(event) => {
                if let Some((h, association)) = self.association.as_mut()
                    && *h == handle
                {
                    association.handle_event(event);
                }
            }
            _ => {}
        }
        self.pump(now);
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.association.as_ref()?.1.poll_timeout()
    }

    /// Runs the association's timers (retransmissions, acknowledgements).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.guarded(|t| {
            if let Some((_, association)) = t.association.as_mut() {
                association.handle_timeout(now);
            }
            t.pump(now);
        });
    }

    /// The next SCTP packet for DTLS to send.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SctpEvent> {
        self.events.pop_front()
    }

    /// Whether an association exists (started by us, or by the peer's INIT).
    pub fn has_association(&self) -> bool {
        self.association.is_some()
    }

    /// Whether the association is up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Bytes queued on channel `id` not yet acknowledged by the peer.
    pub fn buffered_amount(&mut self, id: u16) -> usize {
        self.association
            .as_mut()
            .and_then(|(_, a)| a.stream(id).ok()?.buffered_amount().ok())
            .unwrap_or(0)
    }

    /// Opens channel `id` with `policy`. With `in_band`, the peer learns
    /// of it by a DATA_CHANNEL_OPEN (label, protocol) and answers with an
    /// ACK; without, both sides opened it by id (`negotiated: true`).
    pub fn open_channel(
        &mut self,
        now: Instant,
        id: u16,
        policy: DeliveryPolicy,
        in_band: Option<Open>,
    ) -> Result<(), SctpError> {
        let (_, association) = self.connected_association()?;
        let mut stream = if association.stream(id).is_ok() {
            association.stream(id).map_err(sctp_error)?
        } else {
            association
                .open_stream(id, PayloadProtocolIdentifier::Binary)
                .map_err(sctp_error)?
        };
        match in_band {
            Some(open) => {
                // DCEP is sent ordered and reliable whatever the channel's
                // policy, and so are messages until the peer answers.
                let mut message = Vec::new();
                Dcep::Open(Open { policy, ..open }).write(&mut message);
                stream
                    .write_with_ppi(now, &message, PayloadProtocolIdentifier::Dcep)
                    .map_err(sctp_error)?;
                self.unacked.insert(id, policy);
            }
            None => apply(&mut stream, policy)?,
        }
        self.pump(now);
        Ok(())
    }

    /// Sends one message on channel `id`: a string or binary, empty or not.
    pub fn send(
        &mut self,
        now: Instant,
        id: u16,
        is_string: bool,
        bytes: &[u8],
    ) -> Result<(), SctpError> {
        if bytes.len() > self.remote_max_message_size {
            return Err(SctpError::TooLarge {
                size: bytes.len(),
                max: self.remote_max_message_size,
            });
        }
        let ppi = PayloadProtocolIdentifier::from(MessageKind::ppid(is_string, bytes.len()));
        let (_, association) = self.connected_association()?;
        let mut stream = association.stream(id).map_err(sctp_error)?;
        // SCTP carries no empty message: one byte goes, the PPID says empty.
        let payload: &[u8] = if bytes.is_empty() { &[0] } else { bytes };
        stream
            .write_with_ppi(now, payload, ppi)
            .map_err(sctp_error)?;
        self.pump(now);
        Ok(())
    }

    /// Closes channel `id` (an outgoing stream reset, RFC 8831 §6.7).
    pub fn close_channel(&mut self, now: Instant, id: u16) {
        if let Some((_, association)) = self.association.as_mut()
            && let Ok(mut stream) = association.stream(id)
            && let Err(e) = stream.close(now)
        {
            tracing::debug!(error = %e, id, "SCTP stream close");
        }
        self.pump(now);
    }

    fn connected_association(
        &mut self,
    ) -> Result<&mut (AssociationHandle, Association), SctpError> {
        if !self.connected {
            return Err(SctpError::NotConnected);
        }
        self.association.as_mut().ok_or(SctpError::NotConnected)
    }

    /// Drains the association after an input: its events, the endpoint's
    /// bookkeeping and the packets to send.
    fn pump(&mut self, now: Instant) {
        let Some((handle, association)) = self.association.as_mut() else {
            return;
        };
        let handle = *handle;
        while let Some(event) = association.poll() {
            match event {
                Event::Connected => {
                    self.connected = true;
                    self.events.push_back(SctpEvent::Connected);
                }
                // Stream resets are reported as "lost" streams too; the
                // association is gone only when it says it is closed.
                Event::AssociationLost { id, .. } if !association.is_closed() => {
                    self.unacked.remove(&id);
                    self.events.push_back(SctpEvent::ChannelClosed { id });
                }
                Event::HandshakeFailed { .. } | Event::AssociationLost { .. } => {
                    self.connected = false;
                    if !std::mem::replace(&mut self.closed, true) {
                        self.events.push_back(SctpEvent::Closed);
                    }
                }
                Event::Stream(StreamEvent::Opened { .. }) => {
                    // Streams the peer opened are read by id; the queue of
                    // new ones is not needed.
                    while association.accept_stream().is_some() {}
                }
                Event::Stream(StreamEvent::Readable { id }) => {
                    read_stream(association, now, id, &mut self.unacked, &mut self.events);
                }
                _ => {}
            }
        }
        while let Some(event) = association.poll_endpoint_event() {
            self.endpoint.handle_event(handle, event);
        }
        while let Some(transmit) = association.poll_transmit(now) {
            if let Payload::RawEncode(packets) = transmit.message {
                for packet in &packets {
                    self.tsn_window.sent(packet);
                }
                self.transmits.extend(packets);
            }
        }
    }
}

/// Reads every whole message waiting on stream `id`: DCEP is answered and
/// announced, messages are passed on with their kind. The peer's ACK or
/// first message on a channel we opened in band gives it its policy.
fn read_stream(
    association: &mut Association,
    now: Instant,
    id: u16,
    unacked: &mut HashMap<u16, DeliveryPolicy>,
    events: &mut VecDeque<SctpEvent>,
) {
    let Ok(mut stream) = association.stream(id) else {
        return;
    };
    while let Ok(Some(chunks)) = stream.read_sctp() {
        if let Some(policy) = unacked.remove(&id) {
            let _ = apply(&mut stream, policy);
        }
        let ppid = chunks.ppi as u32;
        let Ok(bytes) = chunks.to_payload(MAX_MESSAGE_SIZE) else {
            events.push_back(SctpEvent::MessageDropped { id });
            continue;
        };
        if ppid == dcep::PPID_DCEP {
            match Dcep::parse(&bytes) {
                Ok(Dcep::Open(open)) => {
                    let mut ack = Vec::new();
                    Dcep::Ack.write(&mut ack);
                    let acked = stream
                        .write_with_ppi(now, &ack, PayloadProtocolIdentifier::Dcep)
                        .is_ok();
                    if acked && apply(&mut stream, open.policy).is_ok() {
                        events.push_back(SctpEvent::ChannelOpened { id, open });
                    }
                }
                Ok(Dcep::Ack) => events.push_back(SctpEvent::ChannelAcked { id }),
                Err(e) => tracing::debug!(error = %e, id, "DCEP message refused"),
            }
            continue;
        }
        match MessageKind::of(ppid) {
            Some(kind) => {
                let bytes = if kind.is_empty() {
                    Vec::new()
                } else {
                    bytes.to_vec()
                };
                events.push_back(SctpEvent::Message { id, kind, bytes });
            }
            None => events.push_back(SctpEvent::MessageDropped { id }),
        }
    }
}

/// Sets a stream's ordering and partial reliability to `policy`.
fn apply(stream: &mut rtc_sctp::Stream<'_>, policy: DeliveryPolicy) -> Result<(), SctpError> {
    let (kind, value) = match policy.reliability {
        Reliability::Reliable => (ReliabilityType::Reliable, 0),
        Reliability::MaxRetransmits(n) => (ReliabilityType::Rexmit, n),
        Reliability::MaxPacketLifeTime(ms) => (ReliabilityType::Timed, ms),
    };
    stream
        .set_reliability_params(!policy.ordered, kind, value)
        .map_err(sctp_error)
}

fn sctp_error(e: impl std::fmt::Display) -> SctpError {
    SctpError::Sctp(e.to_string())
}

/// Our limits: messages up to the peer's size on the way out (the crate
/// checks sends against it), [`MAX_MESSAGE_SIZE`] on the way in (checked
/// when read), every stream id.
fn transport_config(remote_max_message_size: usize) -> TransportConfig {
    TransportConfig::default()
        .with_max_message_size(remote_max_message_size.min(u32::MAX as usize) as u32)
        .with_max_num_inbound_streams(MAX_STREAMS)
        .with_max_num_outbound_streams(MAX_STREAMS)
}

#[cfg(test)]
#[path = "sctp_tests.rs"]
pub(crate) mod tests;
