//! One session's data channels as the control thread keeps them: whether
//! its SDP negotiated `m=application`, whether its SCTP association is up,
//! and the channels the API gave it (published, subscribed, server-events)
//! with their ids, options and subscribers, as GET lists them.
//!
//! Where it sits: in the registry, beside the transceivers. Every change is
//! also sent as a [`ChannelOp`] to the DTLS thread that runs the session's
//! channels; [`SessionChannelState::replay`] gives the whole state to a
//! thread that learns of the session only later.

use crate::calls::types::DataChannelObject;
use crate::datachannel::channels::{ChannelRef, SERVER_EVENTS, SERVER_EVENTS_ID};
use crate::datachannel::dcep::is_ours;
use crate::datachannel::ops::ChannelOp;
use crate::datachannel::policy::DeliveryPolicy;
use crate::dtls::DtlsRole;
use crate::ids::SessionKey;

/// Channels one session may have, open or closed (our rule; 406
/// `invalid_params` past it).
pub const MAX_CHANNELS_PER_SESSION: usize = 256;
/// The highest stream id (calls-api.md: ids are 0–65534).
const MAX_ID: u16 = 65534;

/// The publisher's end of a subscribed channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publisher {
    /// Its session.
    pub key: SessionKey,
    /// Its session id, as the API names it.
    pub session_id: String,
    /// Its stream id there.
    pub id: u16,
}

/// One channel of the session.
#[derive(Debug, Clone)]
pub struct DataChannel {
    /// Its stream id on this session.
    pub id: u16,
    /// Its name (the publisher's, for a subscription).
    pub name: String,
    /// For a subscription: where it comes from (None: published here, or
    /// server-events).
    pub publisher: Option<Publisher>,
    /// The publisher's delivery policy.
    pub policy: DeliveryPolicy,
    /// Subscription: delivery held until the client's first message.
    pub wait_for_ack: bool,
    /// Subscription: its messages go to the publisher.
    pub can_reply: bool,
    /// Published: the subscribed channels of other sessions.
    pub subscribers: Vec<ChannelRef>,
    /// Closed (by the API, the client, or the publisher): listed inactive.
    pub closed: bool,
}

impl DataChannel {
    /// A channel this session publishes.
    pub fn published(id: u16, name: String, policy: DeliveryPolicy) -> Self {
        DataChannel {
            id,
            name,
            publisher: None,
            policy,
            wait_for_ack: false,
            can_reply: false,
            subscribers: Vec::new(),
            closed: false,
        }
    }

    /// Whether this session publishes it.
    pub fn is_local(&self) -> bool {
        self.publisher.is_none() && !self.is_server_events()
    }

    /// Whether it is the reserved server-events channel.
    pub fn is_server_events(&self) -> bool {
        self.publisher.is_none() && self.id == SERVER_EVENTS_ID && self.name == SERVER_EVENTS
    }

    /// What makes it on the DTLS thread.
    pub fn op(&self) -> ChannelOp {
        match &self.publisher {
            _ if self.is_server_events() => ChannelOp::ServerEvents,
            None => ChannelOp::Publish {
                id: self.id,
                policy: self.policy,
            },
            Some(p) => ChannelOp::Subscribe {
                id: self.id,
                publisher: ChannelRef {
                    session: p.key,
                    id: p.id,
                },
                policy: self.policy,
                wait_for_ack: self.wait_for_ack,
                can_reply: self.can_reply,
            },
        }
    }

    /// The API item describing it, with `status`.
    pub fn item(&self, connected: bool) -> DataChannelObject {
        let status = if self.closed {
            "inactive"
        } else if connected {
            "active"
        } else {
            "initializing"
        };
        DataChannelObject {
            location: Some(if self.is_local() { "local" } else { "remote" }.into()),
            session_id: self.publisher.as_ref().map(|p| p.session_id.clone()),
            data_channel_name: Some(self.name.clone()),
            id: Some(u32::from(self.id)),
            status: Some(status.into()),
            ..DataChannelObject::default()
        }
    }
}

/// A session's data channels.
#[derive(Debug, Default)]
pub struct SessionChannelState {
    /// Its SDP negotiated `m=application`.
    pub negotiated: bool,
    /// The client's `a=max-message-size`.
    pub remote_max_message_size: Option<usize>,
    /// Its DTLS thread was told of the negotiation.
    pub announced: bool,
    /// Its SCTP association is up.
    pub connected: bool,
    /// Its channels, open and closed, in the order made.
    pub channels: Vec<DataChannel>,
}

impl SessionChannelState {
    /// The open channel with stream id `id`.
    pub fn open_mut(&mut self, id: u16) -> Option<&mut DataChannel> {
        self.channels.iter_mut().find(|c| c.id == id && !c.closed)
    }

    /// The open channel this session publishes under `name`.
    pub fn published(&self, name: &str) -> Option<&DataChannel> {
        self.channels
            .iter()
            .find(|c| !c.closed && c.is_local() && c.name == name)
    }

    /// The lowest free stream id on our side of the split (RFC 8832 §6:
    /// even for the DTLS client, odd for the server), so that channels
    /// the client opens in band never take it; None when none is left.
    pub fn next_id(&self, role: DtlsRole) -> Option<u16> {
        (1..=MAX_ID)
            .find(|&id| is_ours(id, role) && !self.channels.iter().any(|c| c.id == id && !c.closed))
    }

    /// Room for `added` more channels.
    pub fn has_room(&self, added: usize) -> bool {
        self.channels.len() + added <= MAX_CHANNELS_PER_SESSION
    }

    /// Everything a DTLS thread needs to run these channels from scratch.
    pub fn replay(&self) -> Vec<ChannelOp> {
        let mut ops = Vec::new();
        if self.negotiated || !self.channels.is_empty() {
            ops.push(ChannelOp::Enable {
                remote_max_message_size: self.remote_max_message_size,
            });
        }
        for c in self.channels.iter().filter(|c| !c.closed) {
            ops.push(c.op());
            if c.is_local() {
                ops.push(ChannelOp::Subscribers {
                    id: c.id,
                    to: c.subscribers.clone().into(),
                });
            }
        }
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_stay_on_our_side_and_are_reused_once_closed() {
        let mut s = SessionChannelState::default();
        assert_eq!(s.next_id(DtlsRole::Server), Some(1));
        assert_eq!(s.next_id(DtlsRole::Client), Some(2));
        s.channels.push(DataChannel::published(
            1,
            "a".into(),
            DeliveryPolicy::default(),
        ));
        assert_eq!(s.next_id(DtlsRole::Server), Some(3));
        s.channels[0].closed = true;
        assert_eq!(s.next_id(DtlsRole::Server), Some(1));
        let item = s.channels[0].item(true);
        assert_eq!(item.status.as_deref(), Some("inactive"));
        assert_eq!(item.location.as_deref(), Some("local"));
    }

    #[test]
    fn a_replay_makes_every_open_channel() {
        let mut s = SessionChannelState {
            negotiated: true,
            ..Default::default()
        };
        s.channels.push(DataChannel::published(
            1,
            "a".into(),
            DeliveryPolicy::default(),
        ));
        let mut closed = DataChannel::published(3, "b".into(), DeliveryPolicy::default());
        closed.closed = true;
        s.channels.push(closed);
        let ops = s.replay();
        assert_eq!(ops.len(), 3, "{ops:?}");
        assert!(matches!(ops[1], ChannelOp::Publish { id: 1, .. }));
    }
}
