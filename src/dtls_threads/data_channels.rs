//! The data channels a DTLS thread hosts: SCTP (`crate::datachannel`)
//! inside each connected session's DTLS association. Application data
//! comes in from DTLS, goes out through it, and a message for channels of
//! sessions on other threads goes there as a bounded [`super::Job::Deliver`]
//! (`super::jobs`), shed under overload.

use std::time::Instant;

use super::Route;
use super::thread::Handshaker;
use crate::datachannel::channels::{ChannelRef, Drops, Message, Output, SessionChannels};
use crate::datachannel::ops::{ChannelEvent, ChannelOp};
use crate::engine::messages::EngineEvent;
use crate::ids::SessionKey;

impl Handshaker {
    /// Applies a change to the session's data channels (the first makes
    /// them); they start once DTLS is connected.
    pub(super) fn channel_op(&mut self, key: SessionKey, op: ChannelOp, now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        let channels = h
            .channels
            .get_or_insert_with(|| SessionChannels::new(h.dtls.role(), None));
        op.apply(channels, now);
        if h.dtls.is_connected() {
            channels.start(now);
        }
        self.drain_channels(key, None, now);
    }

    /// Passes the SCTP packets DTLS decrypted to the session's channels
    /// (dropped while none were negotiated); what answers goes back the way
    /// the record came.
    pub(super) fn take_application_data(&mut self, key: SessionKey, from: Route, now: Instant) {
        let Some(h) = self.sessions.get_mut(&key) else {
            return;
        };
        while let Some(packet) = h.dtls.poll_application_data() {
            if let Some(channels) = h.channels.as_mut() {
                channels.handle_packet(now, &packet);
            }
        }
        self.drain_channels(key, Some(from), now);
    }

    /// After an input to a session's channels: their packets go into DTLS
    /// (and out `via`, else along the path), their forwards to the target
    /// sessions' threads, their state to the control thread.
    pub(super) fn drain_channels(&mut self, key: SessionKey, via: Option<Route>, now: Instant) {
        let mut forwards = Vec::new();
        let mut events = Vec::new();
        if let Some(h) = self.sessions.get_mut(&key)
            && let Some(channels) = h.channels.as_mut()
        {
            while let Some(packet) = channels.poll_transmit() {
                if let Err(e) = h.dtls.send_application_data(now, &packet) {
                    tracing::debug!(session = key.0, error = %e, "SCTP packet not sent");
                }
            }
            let counts = channels.take_counts();
            self.counters
                .add(counts.received, counts.delivered, &counts.drops);
            while let Some(output) = channels.poll_output() {
                match output {
                    Output::Forward { to, message } => forwards.push((to, message)),
                    Output::Connected => events.push(ChannelEvent::Connected),
                    Output::Closed => events.push(ChannelEvent::Closed),
                    Output::ChannelClosed { id } => events.push(ChannelEvent::ChannelClosed { id }),
                }
            }
        }
        self.flush(key, via);
        for event in events {
            let _ = self
                .events
                .blocking_send(EngineEvent::DataChannels { key, event });
        }
        for (to, message) in forwards {
            self.forward(&to, message, now);
        }
    }

    /// Sends a message on a channel of one of this thread's sessions.
    pub(super) fn deliver(&mut self, target: ChannelRef, message: &Message, now: Instant) {
        if let Some(channels) = self
            .sessions
            .get_mut(&target.session)
            .and_then(|h| h.channels.as_mut())
        {
            if self.overload.sheds() {
                channels.shed();
                return;
            }
            channels.deliver(now, target.id, message);
            self.drain_channels(target.session, None, now);
        }
    }

    /// Delivers a message to channels of this thread's sessions, and hands
    /// it to the other threads for theirs.
    /// (Nothing is allocated when every target is on this thread.)
    pub(super) fn forward(&mut self, to: &[ChannelRef], message: Message, now: Instant) {
        let mut elsewhere: Vec<(usize, Vec<ChannelRef>)> = Vec::new();
        for target in to {
            let thread = self.queues.thread_of(target.session);
            if thread == self.thread {
                self.deliver(*target, &message, now);
                continue;
            }
            match elsewhere.iter_mut().find(|(t, _)| *t == thread) {
                Some((_, targets)) => targets.push(*target),
                None => elsewhere.push((thread, vec![*target])),
            }
        }
        let mut shed = Drops::default();
        for (thread, targets) in elsewhere {
            let n = targets.len() as u64;
            if !self.queues.deliver(thread, targets, message.clone()) {
                shed.overload += n;
            }
        }
        if shed.overload > 0 {
            self.counters.add(0, 0, &shed);
        }
    }
}
