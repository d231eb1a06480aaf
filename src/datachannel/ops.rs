//! What the control thread asks of a session's data channels, and what it
//! hears back: the API's wiring (publish, subscribe, subscribers, canReply,
//! close) travels as [`ChannelOp`]s to the DTLS thread that owns the
//! session, which applies them to its [`SessionChannels`]; the
//! association's state comes back as [`ChannelEvent`]s, for GET's status
//! and for closing subscribers when a publisher's channel goes.

use std::sync::Arc;
use std::time::Instant;

use super::channels::{ChannelRef, SessionChannels};
use super::policy::DeliveryPolicy;

/// One change to a session's channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOp {
    /// The session negotiated `m=application`: its SCTP association comes
    /// up once DTLS is connected. Its client takes messages up to
    /// `remote_max_message_size` (None: it named no limit).
    Enable {
        /// The client's `a=max-message-size`.
        remote_max_message_size: Option<usize>,
    },
    /// The reserved `server-events` channel.
    ServerEvents,
    /// The session publishes on `id`.
    Publish {
        /// Its stream id.
        id: u16,
        /// Its delivery policy.
        policy: DeliveryPolicy,
    },
    /// The session receives `publisher`'s messages on `id`.
    Subscribe {
        /// Its stream id.
        id: u16,
        /// The publisher's channel.
        publisher: ChannelRef,
        /// The publisher's policy.
        policy: DeliveryPolicy,
        /// Hold delivery until the client's first message.
        wait_for_ack: bool,
        /// Its messages go to the publisher.
        can_reply: bool,
    },
    /// The subscribers of published channel `id`, all of them.
    Subscribers {
        /// The published channel.
        id: u16,
        /// Where its messages go.
        to: Arc<[ChannelRef]>,
    },
    /// Gives or takes subscribed channel `id`'s right to reply.
    CanReply {
        /// The subscribed channel.
        id: u16,
        /// Whether it may.
        allowed: bool,
    },
    /// Closes channel `id`.
    Close {
        /// The channel.
        id: u16,
    },
}

impl ChannelOp {
    /// Applies the op to a session's channels.
    pub fn apply(self, channels: &mut SessionChannels, now: Instant) {
        match self {
            ChannelOp::Enable {
                remote_max_message_size,
            } => channels.set_remote_max_message_size(remote_max_message_size),
            ChannelOp::ServerEvents => channels.server_events(now),
            ChannelOp::Publish { id, policy } => channels.publish(now, id, policy),
            ChannelOp::Subscribe {
                id,
                publisher,
                policy,
                wait_for_ack,
                can_reply,
            } => channels.subscribe(now, id, publisher, policy, wait_for_ack, can_reply),
            ChannelOp::Subscribers { id, to } => channels.set_subscribers(id, to),
            ChannelOp::CanReply { id, allowed } => channels.set_can_reply(id, allowed),
            ChannelOp::Close { id } => channels.close(now, id),
        }
    }
}

/// What the control thread hears of a session's channels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelEvent {
    /// The association is up: its channels are active.
    Connected,
    /// The association ended: its channels are gone.
    Closed,
    /// The client closed channel `id`.
    ChannelClosed {
        /// The channel.
        id: u16,
    },
}
