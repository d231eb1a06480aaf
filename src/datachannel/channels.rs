//! One session's data channels as the Calls API wires them: which of its
//! SCTP streams publishes a channel, which receives another session's
//! channel (with `waitForAck` and `canReply`), and where each message the
//! client sends goes.
//!
//! Where it sits: on the DTLS thread that owns the session, above its
//! [`SctpTransport`]. A message the client sends on a published channel
//! comes out as [`Output::Forward`] to the channel's subscribers; one a
//! subscriber holding `canReply` sends, to the publisher. The thread hands
//! each forward to the threads of the target sessions, whose
//! [`SessionChannels::deliver`] sends it. Nothing here blocks: a
//! subscriber whose SCTP send buffer is full, or holds more than it drains
//! in 0.5 s ([`super::queue_delay`]), loses the message (counted), the
//! publisher and the others do not wait; the thread itself sheds a share
//! when short of CPU ([`super::overload`], through
//! [`SessionChannels::shed`]).
//!
//! Call contract: as [`SctpTransport`] (`start` once DTLS connected,
//! `handle_packet`, `handle_timeout` when `poll_timeout` is due, then drain
//! `poll_transmit`), and [`SessionChannels::poll_output`] after each input.
//! Channels may be published or subscribed before the association is up:
//! they open (negotiated, by id) once it is.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustc_hash::FxHashMap;

use super::budget::Budget;
use super::dcep::MessageKind;
use super::policy::DeliveryPolicy;
use super::queue_delay::QueueDelay;
use super::sctp::{SctpError, SctpEvent, SctpTransport};
use crate::dtls::DtlsRole;
use crate::ids::SessionKey;

/// The reserved channel of `datachannels/establish`.
pub const SERVER_EVENTS: &str = "server-events";
/// Its stream id.
pub const SERVER_EVENTS_ID: u16 = 0;
/// How long `waitForAck` holds a subscriber's messages at most; then they
/// go whether it answered or not.
pub const WAIT_FOR_ACK_LIMIT: Duration = Duration::from_secs(30);
/// Messages held for one waiting subscriber at most (more are dropped).
pub const HELD_MESSAGES: usize = 1024;
/// Bytes held for one waiting subscriber at most.
pub const HELD_BYTES: usize = 4 * 1024 * 1024;
/// Bytes queued in one channel's SCTP send buffer past which a delivered
/// message is dropped: a slow subscriber loses messages, nobody waits.
/// Large enough that a burst from a fast publisher (a few MB from Chromium
/// on loopback) is carried whole to subscribers that keep up. A channel
/// whose drain rate is known holds less: half a second of it
/// ([`super::queue_delay`]).
pub const SEND_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// A channel of some session: where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelRef {
    /// The session.
    pub session: SessionKey,
    /// Its stream id there.
    pub id: u16,
}

/// One message, shared by every delivery of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// A string (else binary).
    pub is_string: bool,
    /// Its bytes (possibly none).
    pub bytes: Bytes,
}

/// What the channels tell the thread that runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The association is up: the session's channels are open.
    Connected,
    /// The association ended: every channel of the session is gone.
    Closed,
    /// Deliver `message` to each of `to`.
    Forward {
        /// The channels it goes to.
        to: Arc<[ChannelRef]>,
        /// The message.
        message: Message,
    },
    /// The client closed channel `id` (reset its stream).
    ChannelClosed {
        /// The channel.
        id: u16,
    },
}

/// Messages dropped, by reason.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drops {
    /// On a stream no channel of the API is on.
    pub unknown_channel: u64,
    /// From a subscriber without `canReply`.
    pub no_reply_right: u64,
    /// For a subscriber whose `waitForAck` queue was full.
    pub held_full: u64,
    /// For a channel whose send buffer was full (a slow subscriber).
    pub send_buffer_full: u64,
    /// For a channel whose queue would wait longer than half a second at
    /// the rate it drains (a slow subscriber).
    pub queue_delay: u64,
    /// By a DTLS thread short of CPU (`overload`).
    pub overload: u64,
    /// For a channel whose association is not up.
    pub not_connected: u64,
    /// Refused by SCTP (larger than the peer takes, a closed stream).
    pub refused: u64,
    /// SCTP packets dropped unread (malformed; see `SctpEvent::PacketDropped`).
    pub malformed: u64,
}

/// What one of the session's channels is.
#[derive(Debug)]
enum Role {
    /// The session publishes on it; its messages go to `subscribers`.
    Published {
        policy: DeliveryPolicy,
        subscribers: Arc<[ChannelRef]>,
    },
    /// The session receives `publisher`'s messages on it.
    Subscribed {
        publisher: ChannelRef,
        policy: DeliveryPolicy,
        can_reply: bool,
        /// `waitForAck`: messages held until the client's first message.
        held: Option<Held>,
    },
    /// `server-events`: the server's own channel; what the client sends
    /// on it goes nowhere.
    ServerEvents,
}

impl Role {
    fn policy(&self) -> DeliveryPolicy {
        match self {
            Role::Published { policy, .. } | Role::Subscribed { policy, .. } => *policy,
            Role::ServerEvents => DeliveryPolicy::default(),
        }
    }
}

/// A waiting subscriber's held messages.
#[derive(Debug)]
struct Held {
    since: Instant,
    messages: VecDeque<Message>,
    bytes: usize,
}

/// What a session's channels counted since [`SessionChannels::take_counts`]
/// was last called.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Messages the client sent.
    pub received: u64,
    /// Messages handed to SCTP for the client.
    pub delivered: u64,
    /// Messages dropped.
    pub drops: Drops,
}

/// One session's channels and their SCTP association.
pub struct SessionChannels {
    sctp: SctpTransport,
    /// The session's DTLS role and its client's limit, to make the
    /// association again.
    role: DtlsRole,
    remote_max_message_size: Option<usize>,
    roles: FxHashMap<u16, Role>,
    outputs: VecDeque<Output>,
    /// Drops since the channels were made.
    drops: Drops,
    /// Counts not yet taken.
    counts: Counts,
    /// Bytes queued and held for the client, against the session's and
    /// the server's budgets.
    budget: Budget,
    /// Each channel's drain rate, to shed what would wait too long.
    delay: QueueDelay,
}

impl SessionChannels {
    /// The channels of a session whose DTLS role is `role` and whose
    /// client announced `remote_max_message_size`.
    pub fn new(role: DtlsRole, remote_max_message_size: Option<usize>) -> Self {
        SessionChannels {
            sctp: SctpTransport::new(role, remote_max_message_size),
            role,
            remote_max_message_size,
            roles: FxHashMap::default(),
            outputs: VecDeque::new(),
            drops: Drops::default(),
            counts: Counts::default(),
            budget: Budget::default(),
            delay: QueueDelay::default(),
        }
    }

    /// DTLS connected: the association starts (see [`SctpTransport::start`]).
    pub fn start(&mut self, now: Instant) {
        self.sctp.start(now);
        self.pump(now);
    }

    /// The client's `a=max-message-size` (None: it named none), learned
    /// from its SDP. It takes effect for an association not yet begun; one
    /// already running keeps the limit it began with.
    pub fn set_remote_max_message_size(&mut self, max: Option<usize>) {
        self.remote_max_message_size = max;
        if !self.sctp.has_association() {
            self.sctp = SctpTransport::new(self.role, max);
        }
    }

    /// A new DTLS association replaced the one the SCTP association ran in
    /// (the client made a second handshake): the client starts a new SCTP
    /// association in it, so ours starts over too; the channels stay and
    /// open again once it is up.
    pub fn restart(&mut self, now: Instant) {
        if !self.sctp.is_connected() {
            return;
        }
        self.sctp = SctpTransport::new(self.role, self.remote_max_message_size);
        self.delay = QueueDelay::default();
        self.sctp.start(now);
        self.pump(now);
    }

    /// Takes one SCTP packet from the client.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.sctp.handle_packet(now, packet);
        self.pump(now);
        // What it acknowledged leaves the send buffers.
        let (sctp, delay) = (&mut self.sctp, &mut self.delay);
        self.budget.refresh(|id| {
            let queued = sctp.buffered_amount(id);
            delay.drained_to(id, now, queued);
            queued
        });
    }

    /// When [`Self::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let held = self.roles.values().filter_map(|r| match r {
            Role::Subscribed { held: Some(h), .. } => Some(h.since + WAIT_FOR_ACK_LIMIT),
            _ => None,
        });
        self.sctp.poll_timeout().into_iter().chain(held).min()
    }

    /// Runs the association's timers, and releases what `waitForAck` held
    /// past its limit.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.sctp.poll_timeout().is_some_and(|t| t <= now) {
            self.sctp.handle_timeout(now);
        }
        let expired: Vec<u16> = self
            .roles
            .iter()
            .filter_map(|(id, r)| match r {
                Role::Subscribed { held: Some(h), .. }
                    if now.saturating_duration_since(h.since) >= WAIT_FOR_ACK_LIMIT =>
                {
                    Some(*id)
                }
                _ => None,
            })
            .collect();
        for id in expired {
            self.release(now, id);
        }
        self.pump(now);
    }

    /// The next SCTP packet to send.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.sctp.poll_transmit()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Whether the association is up.
    pub fn is_connected(&self) -> bool {
        self.sctp.is_connected()
    }

    /// Messages dropped so far.
    pub fn drops(&self) -> Drops {
        self.drops
    }

    /// What was counted since the last call.
    pub fn take_counts(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// Channel `id` publishes: the client's messages on it go to
    /// `subscribers` (see [`Self::set_subscribers`]).
    pub fn publish(&mut self, now: Instant, id: u16, policy: DeliveryPolicy) {
        let subscribers = match self.remove_role(id) {
            Some(Role::Published { subscribers, .. }) => subscribers,
            _ => Arc::from([]),
        };
        self.open(
            now,
            id,
            Role::Published {
                policy,
                subscribers,
            },
        );
    }

    /// The subscribers of published channel `id`.
    pub fn set_subscribers(&mut self, id: u16, to: Arc<[ChannelRef]>) {
        if let Some(Role::Published { subscribers, .. }) = self.roles.get_mut(&id) {
            *subscribers = to;
        }
    }

    /// Channel `id` receives `publisher`'s messages, sent with the
    /// publisher's `policy`; with `wait_for_ack` they are held until the
    /// client's first message on it (consumed) or [`WAIT_FOR_ACK_LIMIT`].
    pub fn subscribe(
        &mut self,
        now: Instant,
        id: u16,
        publisher: ChannelRef,
        policy: DeliveryPolicy,
        wait_for_ack: bool,
        can_reply: bool,
    ) {
        let held = wait_for_ack.then(|| Held {
            since: now,
            messages: VecDeque::new(),
            bytes: 0,
        });
        self.open(
            now,
            id,
            Role::Subscribed {
                publisher,
                policy,
                can_reply,
                held,
            },
        );
    }

    /// Gives or takes subscribed channel `id`'s right to reply.
    pub fn set_can_reply(&mut self, id: u16, allowed: bool) {
        if let Some(Role::Subscribed { can_reply, .. }) = self.roles.get_mut(&id) {
            *can_reply = allowed;
        }
    }

    /// The reserved `server-events` channel (id 0).
    pub fn server_events(&mut self, now: Instant) {
        self.open(now, SERVER_EVENTS_ID, Role::ServerEvents);
    }

    /// Closes channel `id` (its stream is reset).
    pub fn close(&mut self, now: Instant, id: u16) {
        if self.remove_role(id).is_some() {
            self.sctp.close_channel(now, id);
            self.pump(now);
        }
    }

    /// Sends `message` on channel `id` (from its publisher, or a reply to
    /// a publisher): held while the subscriber has not answered
    /// (`waitForAck`), dropped (counted) when the channel cannot take it.
    pub fn deliver(&mut self, now: Instant, id: u16, message: &Message) {
        match self.roles.get_mut(&id) {
            None => self.drop(|d| &mut d.unknown_channel),
            Some(Role::Subscribed { held: Some(h), .. }) => {
                let full = h.messages.len() >= HELD_MESSAGES
                    || h.bytes + message.bytes.len() > HELD_BYTES
                    || !self.budget.hold(message.bytes.len());
                if !full {
                    h.bytes += message.bytes.len();
                    h.messages.push_back(message.clone());
                } else {
                    self.drop(|d| &mut d.held_full);
                }
            }
            Some(_) => {
                self.send(now, id, message);
                self.pump(now);
            }
        }
    }

    /// A message for one of the channels dropped by its thread, short of CPU
    /// ([`super::overload`]).
    pub fn shed(&mut self) {
        self.drop(|d| &mut d.overload);
    }

    /// Counts one dropped message under the reason `field` picks.
    fn drop(&mut self, field: fn(&mut Drops) -> &mut u64) {
        *field(&mut self.drops) += 1;
        *field(&mut self.counts.drops) += 1;
    }

    fn send(&mut self, now: Instant, id: u16, message: &Message) {
        if !self.sctp.is_connected() {
            self.drop(|d| &mut d.not_connected);
            return;
        }
        let queued = self.sctp.buffered_amount(id);
        self.budget.set_queued(id, queued);
        self.delay.drained_to(id, now, queued);
        let len = message.bytes.len();
        if queued > SEND_BUFFER_BYTES || !self.budget.admits_queue(len) {
            self.drop(|d| &mut d.send_buffer_full);
            return;
        }
        if !self.delay.admits(id, now, queued, SEND_BUFFER_BYTES) {
            self.drop(|d| &mut d.queue_delay);
            return;
        }
        match self.sctp.send(now, id, message.is_string, &message.bytes) {
            Ok(()) => {
                self.counts.delivered += 1;
                let queued = self.sctp.buffered_amount(id);
                self.budget.set_queued(id, queued);
                self.delay.queued(id, now, queued);
            }
            Err(SctpError::NotConnected) => self.drop(|d| &mut d.not_connected),
            Err(e) => {
                tracing::debug!(error = %e, id, "data channel send refused");
                self.drop(|d| &mut d.refused);
            }
        }
    }

    /// Records channel `id`'s role and opens its stream if the association
    /// is up (else it opens on [`SctpEvent::Connected`]).
    fn open(&mut self, now: Instant, id: u16, role: Role) {
        let policy = role.policy();
        if let Some(Role::Subscribed { held: Some(h), .. }) = self.roles.insert(id, role) {
            self.budget.release_held(h.bytes);
        }
        if self.sctp.is_connected() {
            self.open_stream(now, id, policy);
            self.pump(now);
        }
    }

    fn open_stream(&mut self, now: Instant, id: u16, policy: DeliveryPolicy) {
        if let Err(e) = self.sctp.open_channel(now, id, policy, None) {
            tracing::debug!(error = %e, id, "data channel open");
        }
    }

    /// Takes channel `id`'s role; what it held is given back to the budget.
    fn remove_role(&mut self, id: u16) -> Option<Role> {
        let role = self.roles.remove(&id);
        self.delay.forget(id);
        if let Some(Role::Subscribed { held: Some(h), .. }) = &role {
            self.budget.release_held(h.bytes);
        }
        role
    }

    /// Sends what `waitForAck` held on channel `id`, and stops holding.
    fn release(&mut self, now: Instant, id: u16) {
        let Some(Role::Subscribed { held, .. }) = self.roles.get_mut(&id) else {
            return;
        };
        let Some(h) = held.take() else {
            return;
        };
        self.budget.release_held(h.bytes);
        for message in &h.messages {
            self.send(now, id, message);
        }
    }

    /// Turns the association's events into outputs.
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.sctp.poll_event() {
            match event {
                SctpEvent::Connected => {
                    let open: Vec<(u16, DeliveryPolicy)> =
                        self.roles.iter().map(|(id, r)| (*id, r.policy())).collect();
                    for (id, policy) in open {
                        self.open_stream(now, id, policy);
                    }
                    self.outputs.push_back(Output::Connected);
                }
                SctpEvent::Closed => self.outputs.push_back(Output::Closed),
                SctpEvent::ChannelClosed { id } => {
                    if self.remove_role(id).is_some() {
                        self.outputs.push_back(Output::ChannelClosed { id });
                    }
                }
                SctpEvent::Message { id, kind, bytes } => self.received(now, id, kind, bytes),
                SctpEvent::MessageDropped { .. } => self.drop(|d| &mut d.refused),
                SctpEvent::PacketDropped => self.drop(|d| &mut d.malformed),
                // In-band opens are answered by the association; they are
                // not channels of the API (server-events aside, on id 0).
                SctpEvent::ChannelOpened { .. } | SctpEvent::ChannelAcked { .. } => {}
            }
        }
    }

    /// A message the client sent on channel `id`.
    fn received(&mut self, now: Instant, id: u16, kind: MessageKind, bytes: Vec<u8>) {
        self.counts.received += 1;
        let message = Message {
            is_string: matches!(kind, MessageKind::String { .. }),
            bytes: Bytes::from(bytes),
        };
        match self.roles.get_mut(&id) {
            Some(Role::Published { subscribers, .. }) => {
                if !subscribers.is_empty() {
                    self.outputs.push_back(Output::Forward {
                        to: subscribers.clone(),
                        message,
                    });
                }
            }
            Some(Role::Subscribed { held: Some(_), .. }) => {
                // The subscriber's first message: its acknowledgement.
                self.release(now, id);
            }
            Some(Role::Subscribed {
                publisher,
                can_reply: true,
                ..
            }) => self.outputs.push_back(Output::Forward {
                to: Arc::from([*publisher]),
                message,
            }),
            Some(Role::Subscribed { .. }) => self.drop(|d| &mut d.no_reply_right),
            Some(Role::ServerEvents) | None => self.drop(|d| &mut d.unknown_channel),
        }
    }
}

#[cfg(test)]
#[path = "channels_tests.rs"]
mod tests;
