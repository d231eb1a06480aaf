//! Everything one media worker owns, sans-IO: the sessions whose 5-tuples
//! it owns, their SRTP contexts and stream state, and the forwarding of
//! packets to subscribers (locally or by hand-off to the worker that owns
//! them).
//!
//! Call contract. Inputs: [`Engine::handle_datagram`] for each received
//! datagram, [`Engine::handle_handoff`] for each run of packets another
//! worker handed over, [`Engine::handle_command`] for each control command,
//! [`Engine::handle_timeout`] when [`Engine::poll_timeout`] is due. Outputs,
//! to drain after every batch of inputs: [`Engine::poll_transmit`]
//! (datagrams to send), [`Engine::poll_handoff`] (packets for other
//! workers), [`Engine::poll_event`] (events for the control thread). The
//! engine never reads the clock: `now` is an argument.
//!
//! Batching. Received RTP is unprotected at once but fanned out when the
//! outputs are polled (or the inbox fills): the packets of one batch are
//! grouped by track, and each subscriber gets a track's packets back to
//! back, in one UDP GSO transmit where they have one size.
//!
//! This file is the dispatcher: each input goes to the stage that owns it,
//! a file of its own, and returns here once. A datagram is classified
//! (RFC 7983) into `stun` (checks), `receive` (SRTP unprotect, route,
//! layer learning, NACK bookkeeping, the inbox) or `feedback` (RTCP); the
//! inbox leaves through `forward` (fan-out, per-subscriber rewrite and
//! protect, GSO). `media_session` is one session as its worker keeps it;
//! `nack` answers and sends NACKs; `probes` pauses and probes video;
//! `handover` moves a session to another worker.

mod arena;
mod bindings;
pub mod control_budget;
pub mod counters;
mod feedback;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixture;
mod forward;
mod gso;
mod handoff_pool;
mod handover;
pub mod ice_directory;
mod media_session;
pub mod messages;
pub mod off_path;
mod probes;
mod receive;
pub mod session_media;

pub mod nack;
pub mod packet_run;
pub mod stats;
mod stun;
pub mod stun_limit;

pub use media_session::MovedSession;

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::ids::{SessionKey, TrackKey, WorkerId};
use crate::streams::twcc::FEEDBACK_INTERVAL;
use crate::wire::{PacketKind, classify};
use arena::Arena;
use bindings::Bindings;
use counters::{Counters, DropReason};
use forward::Forwarded;
use handoff_pool::HandoffPool;
use ice_directory::IceDirectory;
use media_session::MediaSession;
use media_session::release;
use messages::{EngineEvent, Handoff, HandoffPayload, WorkerCommand};
use nack::responder::Histories;
use off_path::OffPath;
use packet_run::Inbox;
use probes::Probing;
use receive::{Plain, Sender};

/// How often receiver reports go out.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// Transport-cc feedback packets read from one compound RTCP packet; more
/// are skipped.
const MAX_FEEDBACK_PER_DATAGRAM: usize = 2;
/// SSRCs a pushed track may use beyond those its SDP declares (simulcast
/// layers and their RTX, learned from the first packets).
const LEARNED_SSRCS: usize = 8;
/// The reception state of an SSRC silent this long is freed.
const SSRC_TIMEOUT: Duration = Duration::from_secs(10);
/// Receiver reports are sent in SRTCP packets of at most this many bytes.
const REPORT_MTU: usize = 1200;
/// Simulcast layers' SSRCs (media and RTX) a session may have learned.
const LEARNED_LAYER_SSRCS: usize = 64;
/// At most one MediaReceived event per track per this long.
const MEDIA_EVENT_INTERVAL: Duration = Duration::from_secs(1);
/// How long a track's last media event is remembered.
const MEDIA_EVENT_MEMORY: Duration = Duration::from_secs(10);

/// Datagrams to send to one destination.
#[derive(Debug)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// One datagram, or several back to back (see `segment_size`).
    pub bytes: BytesMut,
    /// With several datagrams: the size of each, the last possibly
    /// shorter (one UDP GSO send).
    pub segment_size: Option<usize>,
}

impl Transmit {
    /// One datagram.
    pub fn single(to: SocketAddr, bytes: BytesMut) -> Self {
        Transmit {
            to,
            bytes,
            segment_size: None,
        }
    }

    /// The datagrams it carries.
    pub fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        let size = self.segment_size.unwrap_or(self.bytes.len()).max(1);
        self.bytes.chunks(size)
    }

    /// How many datagrams it carries.
    pub fn count(&self) -> usize {
        match self.segment_size {
            Some(size) if size > 0 => self.bytes.len().div_ceil(size),
            _ => 1,
        }
    }
}

/// One media worker's state.
pub struct Engine {
    id: WorkerId,
    workers: usize,
    epoch: Instant,
    directory: Arc<IceDirectory>,
    counters: Arc<Counters>,
    /// 5-tuples bound by ICE checks on this worker.
    bindings: Bindings,
    sessions: HashMap<SessionKey, MediaSession>,
    /// Reports of media off a session's path.
    off_path: OffPath,
    /// Sessions with probe packets to send, and when the next is due.
    probing: Probing,
    /// Scratch for the statuses of a transport-cc feedback packet.
    statuses: Vec<crate::bwe::feedback::Status>,
    transmits: VecDeque<Transmit>,
    handoffs: VecDeque<(WorkerId, Arc<Handoff>)>,
    events: VecDeque<EngineEvent>,
    media_events: HashMap<TrackKey, Instant>,
    control_budget: control_budget::ControlBudget,
    /// Data-channel records per session per second.
    data_budget: control_budget::ControlBudget,
    /// Data-channel records for the DTLS threads.
    data_records: VecDeque<(SessionKey, SocketAddr, Vec<u8>)>,
    stun_limit: stun_limit::StunLimit,
    next_report: Instant,
    next_feedback: Instant,
    /// The latest time the engine was given (for what is stored without one).
    clock: Instant,
    /// Retransmission histories of the tracks NACK-capable subscribers here receive.
    histories: Histories,
    scratch: Vec<u8>,
    /// Outgoing packets are written here and split off: one allocation
    /// serves many datagrams.
    arena: Arena,
    /// Received RTP waiting to be fanned out with the rest of its batch.
    inbox: Inbox,
    /// Hand-offs to other workers, recycled.
    pool: HandoffPool,
}

/// The DTLS content type of application data.
const DTLS_APPLICATION_DATA: u8 = 23;
/// Data-channel records one session may send its DTLS thread per second
/// (a 1 KiB message each: 80 Mbit/s).
const DATA_RECORDS_PER_WINDOW: u32 = 10_000;

impl Engine {
    /// Worker `id` of `workers`, sharing the ICE directory.
    pub fn new(
        id: WorkerId,
        workers: usize,
        directory: Arc<IceDirectory>,
        counters: Arc<Counters>,
        now: Instant,
    ) -> Self {
        Engine {
            id,
            workers,
            epoch: now,
            directory,
            counters,
            bindings: Bindings::default(),
            sessions: HashMap::default(),
            transmits: VecDeque::new(),
            handoffs: VecDeque::new(),
            events: VecDeque::new(),
            media_events: HashMap::default(),
            control_budget: Default::default(),
            data_budget: control_budget::ControlBudget::with_limit(DATA_RECORDS_PER_WINDOW),
            data_records: VecDeque::new(),
            stun_limit: stun_limit::StunLimit::new(now),
            next_report: now + REPORT_INTERVAL,
            next_feedback: now + FEEDBACK_INTERVAL,
            clock: now,
            histories: Histories::default(),
            off_path: OffPath::default(),
            probing: Probing::default(),
            statuses: Vec::new(),
            scratch: Vec::with_capacity(1500),
            arena: Arena::new(),
            inbox: Inbox::new(),
            pool: HandoffPool::default(),
        }
    }

    /// This worker's counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Takes one received datagram.
    /// The datagram is decrypted in place where the profile allows it.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        Counters::add(&self.counters.packets_in, 1);
        self.clock = self.clock.max(now);
        match classify(datagram) {
            PacketKind::Stun => self.handle_stun(now, from, datagram),
            PacketKind::Dtls => match self.bindings.get(&from) {
                Some(key) if Self::is_data_channel_record(datagram) => {
                    self.handle_data_record(now, key, from, datagram)
                }
                Some(key) if self.within_budget(key, now) => {
                    self.events.push_back(EngineEvent::Dtls {
                        key,
                        worker: self.id,
                        addr: from,
                        bytes: datagram.to_vec(),
                    })
                }
                Some(_) => {}
                None => self.counters.count_drop(DropReason::UnboundAddress),
            },
            PacketKind::Rtp => self.handle_rtp(now, from, datagram),
            PacketKind::Rtcp => self.handle_rtcp(now, from, datagram),
            PacketKind::Unknown => self.counters.count_drop(DropReason::UnknownProtocol),
        }
    }

    /// The next data-channel record for a DTLS thread.
    pub fn poll_data_record(&mut self) -> Option<(SessionKey, SocketAddr, Vec<u8>)> {
        self.data_records.pop_front()
    }

    /// Whether `key` may send the control thread one more event; past its
    /// budget the event is counted as dropped and, once per window, the
    /// control thread hears that the session floods.
    fn within_budget(&mut self, key: SessionKey, now: Instant) -> bool {
        match self.control_budget.allow(key, now) {
            control_budget::Budget::Within => return true,
            control_budget::Budget::JustSpent => self
                .events
                .push_back(EngineEvent::Flooding { key, at: now }),
            control_budget::Budget::Spent => {}
        }
        self.counters.count_drop(DropReason::ControlBudget);
        false
    }

    /// Takes a packet another worker handed over: forwards it to this
    /// worker's subscribers of its track.
    pub fn handle_handoff(&mut self, handoff: &Handoff) {
        let table = handoff.fanout.load();
        let track = handoff.fanout.key;
        let Some(subscribers) = table.per_worker.get(self.id.0) else {
            return;
        };
        let packet = match &handoff.payload {
            HandoffPayload::Rtp(run) => Forwarded::Rtp(run.as_run()),
            HandoffPayload::SenderReport(info, layer) => Forwarded::SenderReport(*info, *layer),
        };
        self.deliver(subscribers, track, packet);
    }

    /// Takes a command from the control thread.
    pub fn handle_command(&mut self, command: WorkerCommand) {
        // Packets received before the command are forwarded as before it.
        self.forward_inbox();
        match command {
            WorkerCommand::Attach { key, addr } => {
                self.bindings.bind(addr, key, Some(addr));
                match self.sessions.get_mut(&key) {
                    // A new nominated 5-tuple (ICE restart, network
                    // change) releases the old one.
                    Some(s) => {
                        if let Some(old) = s.move_to(addr) {
                            self.bindings.unbind(old, key);
                        }
                    }
                    None => {
                        self.sessions
                            .insert(key, MediaSession::new(addr, self.clock));
                    }
                }
            }
            WorkerCommand::Keys { key, keys } => {
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.install_keys(&keys);
                }
            }
            WorkerCommand::Media { key, media } => {
                if let Some(s) = self.sessions.get_mut(&key) {
                    let events = &mut self.events;
                    let old = s.remap(
                        media,
                        self.epoch,
                        self.clock,
                        &self.counters,
                        |track, layer| {
                            events.push_back(EngineEvent::KeyframeRequest {
                                track,
                                layer: Some(layer),
                            })
                        },
                    );
                    self.histories.follow(&old, &s.media, self.clock);
                }
            }
            WorkerCommand::Detach { key } => {
                if let Some(s) = self.let_go(key) {
                    release(s.estimate, &self.counters);
                }
            }
            WorkerCommand::HandOver { key, to } => self.hand_over(key, to),
            WorkerCommand::Adopt { key, addr, session } => self.adopt(key, addr, session),
            WorkerCommand::Send { to, bytes } => {
                self.transmits.push_back(Transmit::single(to, bytes));
            }
            WorkerCommand::RequestKeyframe { key, track, layer } => {
                self.send_pli(key, track, layer)
            }
            WorkerCommand::Verify {
                key,
                worker,
                addr,
                mut bytes,
            } => self.verify(key, worker, addr, &mut bytes),
            WorkerCommand::Stats { key, reply } => {
                // The asker may have given up waiting.
                let _ = reply.send(self.session_stats(key));
            }
            WorkerCommand::Shutdown => {}
        }
    }

    /// When [`Engine::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let next = self.next_report.min(self.next_feedback);
        self.probing.next().map_or(next, |p| p.min(next))
    }

    /// Sends transport-cc feedback and receiver reports when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.clock = self.clock.max(now);
        if now >= self.next_feedback {
            self.next_feedback = now + FEEDBACK_INTERVAL;
            self.send_feedback(now);
        }
        if now >= self.next_report {
            self.send_reports(now);
            self.forget_silent_tracks(now);
        }
        if self.probing.next().is_some_and(|t| now >= t) {
            self.send_probes(now);
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.forward_inbox();
        self.transmits.pop_front()
    }

    /// The next packet for another worker.
    pub fn poll_handoff(&mut self) -> Option<(WorkerId, Arc<Handoff>)> {
        self.forward_inbox();
        self.handoffs.pop_front()
    }

    /// The next event for the control thread.
    pub fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod simulcast_tests;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fixture::{self, PUBLISHER_SSRC};
    use super::messages::EngineEvent;

    /// Tracks come and go for months: the worker's note of when each last
    /// made a media event must not keep them all.
    #[test]
    fn silent_tracks_are_forgotten_and_news_again_when_they_return() {
        let (mut engine, publisher, mut srtp) = fixture::fan_out(1);
        let t0 = engine.clock;
        let mut send = |engine: &mut super::Engine, seq: u16, at| {
            let plain = fixture::rtp_packet(seq, PUBLISHER_SSRC);
            let mut packet = srtp.protect_rtp(&plain).expect("protect").to_vec();
            engine.handle_datagram(at, publisher, &mut packet);
            let events = std::iter::from_fn(|| engine.poll_event());
            events
                .filter(|e| matches!(e, EngineEvent::MediaReceived { .. }))
                .count()
        };
        assert_eq!(send(&mut engine, 1, t0), 1, "the first packet is news");
        assert_eq!(engine.media_events.len(), 1);
        let later = t0 + Duration::from_secs(11);
        engine.handle_timeout(later);
        assert!(
            engine.media_events.is_empty(),
            "forgotten after 10 s of silence"
        );
        assert_eq!(send(&mut engine, 2, later), 1, "news again");
    }
}
