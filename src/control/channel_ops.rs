//! The Calls API's data-channel operations (calls-api.md, "Data channels"):
//! establish, new (publish and subscribe), update (canReply), close, and
//! what the DTLS threads report of the associations. Each change is kept
//! in the registry ([`super::channel_state`]) and sent to the DTLS thread of
//! every session it touches.

use std::time::Instant;

use crate::calls::CallsError;
use crate::calls::types::{
    DataChannelObject, DataChannelsRequest, DataChannelsResponse, EstablishRequest,
    EstablishResponse,
};
use crate::datachannel::channels::{ChannelRef, SERVER_EVENTS, SERVER_EVENTS_ID};
use crate::datachannel::ops::{ChannelEvent, ChannelOp};
use crate::datachannel::policy::DeliveryPolicy;
use crate::dtls_threads::Job;
use crate::ids::{AppId, SessionKey};

use super::channel_state::{DataChannel, Publisher};
use super::negotiate::{self, parse_description};
use super::operations::{answer_json, offer_json};
use super::{Control, State, limits};

impl Control {
    /// Sends `op` to the DTLS thread of `key`, once it runs the session
    /// (before, the whole state is replayed when it starts).
    fn channel_op(&self, st: &State, key: SessionKey, op: ChannelOp) {
        if st.reg.session(key).is_some_and(|s| s.dtls.is_open()) {
            self.handshakes.send(Job::Channel { key, op });
        }
    }

    /// Sends the session's whole channel state to its DTLS thread (which
    /// just learned of the session).
    pub(super) fn replay_channels(&self, st: &mut State, key: SessionKey) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        session.channels.announced = session.channels.negotiated;
        for op in session.channels.replay() {
            self.handshakes.send(Job::Channel { key, op });
        }
    }

    /// After a negotiation: a session whose SDP now has `m=application`
    /// gets its association on its DTLS thread.
    pub(super) fn enable_channels(&self, st: &mut State, key: SessionKey) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        let c = &mut session.channels;
        if session.dtls.is_open() && c.negotiated && !c.announced {
            c.announced = true;
            let op = ChannelOp::Enable {
                remote_max_message_size: c.remote_max_message_size,
            };
            self.handshakes.send(Job::Channel { key, op });
        }
    }

    /// Tells the publisher's thread the subscribers of its channel `id`.
    fn send_subscribers(&self, st: &State, key: SessionKey, id: u16) {
        let Some(c) = st
            .reg
            .session(key)
            .and_then(|s| s.channels.channels.iter().find(|c| c.id == id && !c.closed))
        else {
            return;
        };
        let to = c.subscribers.clone().into();
        self.channel_op(st, key, ChannelOp::Subscribers { id, to });
    }

    /// POST datachannels/establish: the `server-events` channel, and an
    /// `m=application` in our offer (or in our answer to the client's).
    pub fn datachannels_establish(
        &self,
        app: &AppId,
        session_id: &str,
        req: EstablishRequest,
        now: Instant,
    ) -> Result<EstablishResponse, CallsError> {
        let name = req
            .data_channel
            .as_ref()
            .and_then(|c| c.data_channel_name.as_deref());
        if name != Some(SERVER_EVENTS) {
            return Err(CallsError::invalid_params(format!(
                "datachannels/establish takes only the {SERVER_EVENTS:?} channel"
            )));
        }
        let offer = req
            .session_description
            .as_ref()
            .map(|sd| parse_description(&sd.kind, "offer", &sd.sdp, self.limits.tracks_per_session))
            .transpose()?;
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        let ctx = self.context(now);
        let (requires, description) = match offer {
            Some(offer) => {
                let sdp = negotiate::apply_offer(
                    &mut st.reg,
                    app,
                    key,
                    &offer,
                    &mut Vec::new(),
                    false,
                    &ctx,
                )?;
                (false, answer_json(sdp))
            }
            None => {
                Self::ensure_no_pending(&st, key, now)?;
                let session = st
                    .reg
                    .session_mut(key)
                    .ok_or_else(CallsError::session_gone)?;
                negotiate::add_data_channel_mline(session);
                (true, offer_json(negotiate::write_offer(session, &ctx)))
            }
        };
        let session = st
            .reg
            .session_mut(key)
            .ok_or_else(CallsError::session_gone)?;
        if !session
            .channels
            .channels
            .iter()
            .any(|c| c.is_server_events() && !c.closed)
        {
            let c = DataChannel::published(
                SERVER_EVENTS_ID,
                SERVER_EVENTS.into(),
                DeliveryPolicy::default(),
            );
            session.channels.channels.push(c);
            self.channel_op(&st, key, ChannelOp::ServerEvents);
        }
        self.finish(&mut st, key);
        Ok(EstablishResponse {
            requires_immediate_renegotiation: requires,
            data_channel: DataChannelObject {
                data_channel_name: Some(SERVER_EVENTS.into()),
                id: Some(u32::from(SERVER_EVENTS_ID)),
                ..DataChannelObject::default()
            },
            session_description: description,
        })
    }

    /// POST datachannels/new: publish (`local`) or subscribe (`remote`).
    pub fn datachannels_new(
        &self,
        app: &AppId,
        session_id: &str,
        mut req: DataChannelsRequest,
        now: Instant,
    ) -> Result<DataChannelsResponse, CallsError> {
        limits::check_items(req.data_channels.len(), "dataChannels")?;
        limits::check_channel_names(&req.data_channels)?;
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        let session = st.reg.session(key).ok_or_else(CallsError::session_gone)?;
        if !session.channels.has_room(req.data_channels.len()) {
            return Err(CallsError::invalid_params(format!(
                "a session has at most {} data channels",
                super::channel_state::MAX_CHANNELS_PER_SESSION
            )));
        }
        for item in &mut req.data_channels {
            match item.location.as_deref() {
                Some("local") => self.publish(&mut st, key, item),
                Some("remote") => self.subscribe(&mut st, app, key, item),
                _ => item.fail("invalid_params", "location must be \"local\" or \"remote\""),
            }
        }
        self.finish(&mut st, key);
        Ok(DataChannelsResponse {
            data_channels: req.data_channels,
        })
    }

    fn publish(&self, st: &mut State, key: SessionKey, item: &mut DataChannelObject) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        let Some(name) = item.data_channel_name.clone().filter(|n| !n.is_empty()) else {
            return item.fail(
                "empty_track_error",
                "A data channel needs its dataChannelName",
            );
        };
        let policy = match DeliveryPolicy::from_api(
            item.ordered,
            item.max_retransmits,
            item.max_packet_life_time,
        ) {
            Ok(p) => p,
            Err(e) => return item.fail("invalid_params", e.to_string()),
        };
        if name == SERVER_EVENTS || session.channels.published(&name).is_some() {
            return item.fail(
                "repeated_local_track_error",
                "A data channel with this name is already published by this session",
            );
        }
        let Some(id) = session.channels.next_id(session.dtls.role) else {
            return item.fail("invalid_params", "No stream id left on this session");
        };
        let c = DataChannel::published(id, name, policy);
        let op = c.op();
        session.channels.channels.push(c);
        item.id = Some(u32::from(id));
        self.channel_op(st, key, op);
    }

    fn subscribe(
        &self,
        st: &mut State,
        app: &AppId,
        key: SessionKey,
        item: &mut DataChannelObject,
    ) {
        let publisher = item.session_id.as_deref().and_then(|sid| {
            let pkey = st.reg.session_key(app, sid)?;
            let name = item.data_channel_name.as_deref()?;
            let c = st.reg.session(pkey)?.channels.published(name)?;
            Some((pkey, sid.to_owned(), c.id, c.policy))
        });
        let Some((pkey, psid, pid, policy)) = publisher else {
            return item.fail(
                "not_found_track_error",
                "Data channel not found on remote peer (unknown session or dataChannelName)",
            );
        };
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        let Some(id) = session.channels.next_id(session.dtls.role) else {
            return item.fail("invalid_params", "No stream id left on this session");
        };
        let can_reply = item.can_reply == Some(true);
        let c = DataChannel {
            id,
            name: item.data_channel_name.clone().unwrap_or_default(),
            publisher: Some(Publisher {
                key: pkey,
                session_id: psid,
                id: pid,
            }),
            policy,
            wait_for_ack: item.wait_for_ack == Some(true),
            can_reply,
            subscribers: Vec::new(),
            closed: false,
        };
        let op = c.op();
        session.channels.channels.push(c);
        item.id = Some(u32::from(id));
        self.channel_op(st, key, op);
        let me = ChannelRef { session: key, id };
        if let Some(pc) = st
            .reg
            .session_mut(pkey)
            .and_then(|s| s.channels.open_mut(pid))
        {
            pc.subscribers.push(me);
        }
        self.send_subscribers(st, pkey, pid);
        if can_reply {
            self.move_reply_right(st, pkey, pid, me);
        }
    }

    /// `canReply` granted to `holder`: every other subscriber of the
    /// publisher's channel loses it (one holder at a time).
    fn move_reply_right(&self, st: &mut State, pkey: SessionKey, pid: u16, holder: ChannelRef) {
        let subscribers = st
            .reg
            .session(pkey)
            .and_then(|s| {
                s.channels
                    .channels
                    .iter()
                    .find(|c| c.id == pid && !c.closed)
            })
            .map(|c| c.subscribers.clone())
            .unwrap_or_default();
        for sub in subscribers.into_iter().filter(|s| *s != holder) {
            if let Some(c) = st
                .reg
                .session_mut(sub.session)
                .and_then(|s| s.channels.open_mut(sub.id))
                .filter(|c| c.can_reply)
            {
                c.can_reply = false;
                self.channel_op(
                    st,
                    sub.session,
                    ChannelOp::CanReply {
                        id: sub.id,
                        allowed: false,
                    },
                );
            }
        }
    }

    /// Runs `each` on every item of a data-channel call on one session.
    fn for_each_item(
        &self,
        app: &AppId,
        session_id: &str,
        mut req: DataChannelsRequest,
        now: Instant,
        mut each: impl FnMut(&Self, &mut State, SessionKey, &mut DataChannelObject),
    ) -> Result<DataChannelsResponse, CallsError> {
        limits::check_items(req.data_channels.len(), "dataChannels")?;
        limits::check_channel_names(&req.data_channels)?;
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        for item in &mut req.data_channels {
            each(self, &mut st, key, item);
        }
        Ok(DataChannelsResponse {
            data_channels: req.data_channels,
        })
    }

    /// PUT datachannels/update: `canReply` of subscriptions, named by the
    /// publisher's `sessionId` and `dataChannelName`.
    pub fn datachannels_update(
        &self,
        app: &AppId,
        session_id: &str,
        req: DataChannelsRequest,
        now: Instant,
    ) -> Result<DataChannelsResponse, CallsError> {
        self.for_each_item(app, session_id, req, now, Self::update_item)
    }

    fn update_item(&self, st: &mut State, key: SessionKey, item: &mut DataChannelObject) {
        let found = st.reg.session_mut(key).and_then(|s| {
            s.channels.channels.iter_mut().find(|c| {
                !c.closed
                    && c.publisher
                        .as_ref()
                        .is_some_and(|p| Some(p.session_id.as_str()) == item.session_id.as_deref())
                    && Some(c.name.as_str()) == item.data_channel_name.as_deref()
            })
        });
        let Some(c) = found else {
            return item.fail(
                "update_track_error",
                "No subscribed data channel with this sessionId and dataChannelName",
            );
        };
        let allowed = item.can_reply.unwrap_or(c.can_reply);
        c.can_reply = allowed;
        let id = c.id;
        let publisher = c.publisher.clone();
        item.id = Some(u32::from(id));
        item.can_reply = Some(allowed);
        self.channel_op(st, key, ChannelOp::CanReply { id, allowed });
        if let (true, Some(p)) = (allowed, publisher) {
            self.move_reply_right(st, p.key, p.id, ChannelRef { session: key, id });
        }
    }

    /// PUT datachannels/close: channels by id.
    pub fn datachannels_close(
        &self,
        app: &AppId,
        session_id: &str,
        req: DataChannelsRequest,
        now: Instant,
    ) -> Result<DataChannelsResponse, CallsError> {
        self.for_each_item(app, session_id, req, now, |this, st, key, item| {
            let id = item.id.and_then(|id| u16::try_from(id).ok());
            if !id.is_some_and(|id| this.close_channel(st, key, id)) {
                item.fail(
                    "close_track_error",
                    "Data channel doesn't exist or was already closed",
                );
            }
        })
    }

    /// Closes channel `id` of `key`: a published one takes its
    /// subscriptions with it; a subscription leaves its publisher's list.
    /// Returns whether it was open.
    fn close_channel(&self, st: &mut State, key: SessionKey, id: u16) -> bool {
        let Some(c) = st
            .reg
            .session_mut(key)
            .and_then(|s| s.channels.open_mut(id))
        else {
            return false;
        };
        c.closed = true;
        let subscribers = std::mem::take(&mut c.subscribers);
        let publisher = c.publisher.clone();
        self.channel_op(st, key, ChannelOp::Close { id });
        for sub in subscribers {
            self.close_channel(st, sub.session, sub.id);
        }
        if let Some(p) = publisher
            && let Some(pc) = st
                .reg
                .session_mut(p.key)
                .and_then(|s| s.channels.open_mut(p.id))
        {
            pc.subscribers
                .retain(|s| *s != ChannelRef { session: key, id });
            self.send_subscribers(st, p.key, p.id);
        }
        true
    }

    /// Closes every channel of a session that goes (its subscribers' and
    /// publishers' ends follow).
    pub(super) fn close_all_channels(&self, st: &mut State, key: SessionKey) {
        let open: Vec<u16> = st
            .reg
            .session(key)
            .map(|s| {
                s.channels
                    .channels
                    .iter()
                    .filter(|c| !c.closed)
                    .map(|c| c.id)
                    .collect()
            })
            .unwrap_or_default();
        for id in open {
            self.close_channel(st, key, id);
        }
    }

    /// What a DTLS thread reports of a session's association.
    pub(super) fn handle_channel_event(
        &self,
        st: &mut State,
        key: SessionKey,
        event: ChannelEvent,
    ) {
        match event {
            ChannelEvent::Connected => {
                if let Some(s) = st.reg.session_mut(key) {
                    s.channels.connected = true;
                }
            }
            ChannelEvent::Closed => {
                if let Some(s) = st.reg.session_mut(key) {
                    s.channels.connected = false;
                }
                self.close_all_channels(st, key);
            }
            ChannelEvent::ChannelClosed { id } => {
                self.close_channel(st, key, id);
            }
        }
    }
}
