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

mod bindings;
pub mod control_budget;
pub mod counters;
pub mod directory;
mod estimate;
pub mod fixture;
mod gso;
mod handoff_pool;
mod handover;
pub mod messages;
pub mod off_path;
mod repair;
mod retransmit;
pub mod run;
pub mod stats;
pub mod stun_limit;

pub use handover::MovedSession;

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::bwe::feedback;
use crate::codec::Codec;
use crate::fanout::TrackFanout;
use crate::ice::BindingRequest;
use crate::ids::{SessionKey, TrackKey, WorkerId};
use crate::session::SessionMedia;
use crate::session::egress::OutboundStream;
use crate::session::ingress::ReceptionStats;
use crate::session::resend::ResendLimiter;
use crate::session::rtt::{self, RoundTrip};
use crate::session::twcc::{FEEDBACK_INTERVAL, TwccReceiver};
use crate::simulcast::{Admit, Estimate, Layer, LayerSwitch, switch::FRAME_TICKS};
use crate::srtp::SrtpSession;
use crate::srtp::gcm::{self, GcmReceiver, GcmSender};
use crate::srtp::gcm_rtcp::GcmRtcpReceiver;
use crate::wire::rtcp::{self, SenderInfo};
use crate::wire::rtp::{self, Rewrite, RtpHeader};
use crate::wire::{PacketKind, classify};
use bindings::Bindings;
use counters::{Counters, DropReason};
use directory::IceDirectory;
use estimate::{SubscriberEstimate, can_probe, release};
use gso::Coalescer;
use handoff_pool::HandoffPool;
use messages::{EngineEvent, Handoff, HandoffPayload, WorkerCommand};
use off_path::OffPath;
use repair::{Repairs, Verdict};
use retransmit::{Histories, Subscriber};
use rtc_srtp::protection_profile::ProtectionProfile;
use run::{Inbox, PacketRun, RunHeader};

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
/// The RTP clock of video.
const VIDEO_CLOCK: u32 = 90_000;
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

/// What fans out to a track's subscribers.
#[derive(Clone, Copy)]
enum Forwarded<'a> {
    /// RTP packets of the track, unprotected.
    Rtp(PacketRun<'a>),
    /// The publisher's sender info, and the simulcast layer it is of.
    SenderReport(SenderInfo, Option<Layer>),
}

/// An unprotected packet: decrypted in place (its plaintext length), or
/// into a new buffer.
enum Plain {
    InPlace(usize),
    Owned(BytesMut),
}

impl Plain {
    /// The plaintext: in `datagram`, or owned.
    fn bytes<'a>(&'a self, datagram: &'a [u8]) -> &'a [u8] {
        match self {
            Plain::InPlace(n) => &datagram[..*n],
            Plain::Owned(b) => b,
        }
    }
}

/// Who sent a protected datagram, as [`Engine::unprotect`] found.
enum Sender<'s> {
    /// The session, the plaintext, and the session's key when the address
    /// is not its media path (but passed its ICE checks).
    Session(&'s mut MediaSession, Plain, Option<SessionKey>),
    /// An address checked for this session, which lives on another worker
    /// (counted as unbound here).
    Elsewhere(SessionKey),
    /// Dropped (counted).
    Dropped,
}

/// One session on the worker that owns its transport.
struct MediaSession {
    addr: SocketAddr,
    srtp: Option<SrtpSession>,
    /// In-place protect of forwarded RTP when the profile is AEAD_AES_128_GCM.
    gcm: Option<GcmSender>,
    /// In-place unprotect of received RTP, same profile.
    gcm_rx: Option<(GcmReceiver, GcmRtcpReceiver)>,
    media: Arc<SessionMedia>,
    /// SSRC → reception stats (and route index).
    inbound: HashMap<u32, ReceptionStats>,
    /// Our SSRC towards the client → outbound stream. Keyed by SSRC, not by
    /// source track, so that re-pointing an outlet continues its sequence.
    outbound: HashMap<u32, OutboundStream>,
    /// Arrivals of its transport-wide sequence numbers, while negotiated.
    twcc: Option<TwccReceiver>,
    /// How much its NACKs may make us resend.
    resend: ResendLimiter,
    /// The gaps of what it pushes, NACKed to it.
    repairs: Repairs,
    /// Its round-trip time, from the reports it echoes.
    rtt: RoundTrip,
    /// When authentic media last came on its path.
    last_on_path: Option<Instant>,
    /// The next transport-wide sequence number of what we send it.
    twcc_seq: u16,
    /// Its bandwidth estimate: made at its first transport-cc feedback,
    /// while it pulls tracks.
    estimate: Option<Box<SubscriberEstimate>>,
    /// SSRC → simulcast layer of what it pushes (media and RTX streams),
    /// learned from the rid header extensions.
    layers: HashMap<u32, Layer>,
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
    probing: Vec<SessionKey>,
    next_probe: Option<Instant>,
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
    arena: BytesMut,
    /// Exhausted arena blocks, reused once every datagram split from them
    /// has been sent (in steady state nothing is allocated).
    spare: VecDeque<BytesMut>,
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

/// Bytes of one arena block.
const ARENA_BYTES: usize = 256 * 1024;
/// Blocks kept for reuse.
const SPARE_BLOCKS: usize = 8;

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
            probing: Vec::new(),
            next_probe: None,
            statuses: Vec::new(),
            scratch: Vec::with_capacity(1500),
            arena: BytesMut::new(),
            spare: VecDeque::with_capacity(SPARE_BLOCKS + 1),
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

    fn handle_stun(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if !self.stun_limit.allow(from, now) {
            self.counters.count_drop(DropReason::StunRate);
            return;
        }
        let check = match BindingRequest::read(datagram) {
            Ok(check) => check,
            Err(crate::ice::IceError::NotBindingRequest) => {
                return self.handle_stun_response(now, from, datagram);
            }
            Err(_) => {
                self.counters.count_drop(DropReason::BadStun);
                return;
            }
        };
        let mut out = BytesMut::new();
        let found = self.directory.with(check.local_ufrag, |key, pwd, remote| {
            if remote.is_some_and(|r| r != check.remote_ufrag) {
                return Err(DropReason::WrongUsername);
            }
            check.verify(pwd).map_err(|_| DropReason::BadIntegrity)?;
            let mut buf = Vec::with_capacity(64);
            check.write_success(from, pwd, &mut buf);
            out.extend_from_slice(&buf);
            Ok(key)
        });
        match found {
            None => self.counters.count_drop(DropReason::UnknownUfrag),
            Some(Err(reason)) => self.counters.count_drop(reason),
            // Answered neither: a flood of valid checks costs the control
            // thread nothing past the budget.
            Some(Ok(key)) if !self.within_budget(key, now) => {}
            Some(Ok(key)) => {
                self.transmits.push_back(Transmit::single(from, out));
                // Every valid check is reported: it binds the 5-tuple and
                // refreshes consent (RFC 7675). Checks are a few per second
                // per session at most.
                let attached = self.sessions.get(&key).map(|s| s.addr);
                self.bindings.bind(from, key, attached);
                self.events.push_back(EngineEvent::Bound {
                    key,
                    worker: self.id,
                    addr: from,
                    nominated: check.use_candidate,
                    txid: check.transaction_id(),
                    at: now,
                });
            }
        }
    }

    /// A STUN message other than a request: the success response to a
    /// check we sent (a third-party session's, `control::peer_checks`) binds
    /// the pair as a peer's check would; anything else is a counted drop.
    fn handle_stun_response(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let key = crate::ice::BindingResponse::read(datagram)
            .ok()
            .and_then(|r| {
                let txid = r.transaction_id();
                self.directory
                    .answered_check(&txid, |pwd| r.verify(pwd))
                    .map(|key| (key, txid))
            });
        let Some((key, txid)) = key else {
            self.counters.count_drop(DropReason::BadStun);
            return;
        };
        if self.within_budget(key, now) {
            let attached = self.sessions.get(&key).map(|s| s.addr);
            self.bindings.bind(from, key, attached);
            self.events.push_back(EngineEvent::Bound {
                key,
                worker: self.id,
                addr: from,
                nominated: true,
                txid,
                at: now,
            });
        }
    }

    /// Whether a DTLS datagram is data-channel traffic: application data
    /// (content type 23, RFC 6347 §4.1). It goes straight to the session's
    /// DTLS thread, not through the control thread. (A session with data
    /// channels only has no media state on any worker, so this cannot wait
    /// for its SRTP keys; a client sends application data only after our
    /// last flight, which leaves once the handshake is done.)
    fn is_data_channel_record(datagram: &[u8]) -> bool {
        datagram.first() == Some(&DTLS_APPLICATION_DATA)
    }

    /// Queues a data-channel record for the session's DTLS thread, within
    /// its budget ([`DATA_RECORDS_PER_WINDOW`]); past it, dropped and
    /// counted (SCTP retransmits).
    fn handle_data_record(
        &mut self,
        now: Instant,
        key: SessionKey,
        from: SocketAddr,
        datagram: &[u8],
    ) {
        if self.data_budget.allow(key, now).allows() {
            self.data_records.push_back((key, from, datagram.to_vec()));
        } else {
            self.counters.count_drop(DropReason::DataBudget);
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

    /// The session whose ICE checks bound `from` on this worker, and the
    /// datagram unprotected with its SRTP context; drops are counted.
    /// Takes the fields it needs, so that the caller keeps using the others.
    fn unprotect<'s>(
        bindings: &Bindings,
        sessions: &'s mut HashMap<SessionKey, MediaSession>,
        counters: &Counters,
        from: SocketAddr,
        datagram: &mut [u8],
        kind: PacketKind,
    ) -> Sender<'s> {
        let Some(key) = bindings.get(&from) else {
            counters.count_drop(DropReason::UnboundAddress);
            return Sender::Dropped;
        };
        let Some(session) = sessions.get_mut(&key) else {
            // Dropped here: at most a sample goes on to be authenticated
            // where the session lives.
            counters.count_drop(DropReason::UnboundAddress);
            return Sender::Elsewhere(key);
        };
        let off_path = (session.addr != from).then_some(key);
        let Some(srtp) = session.srtp.as_mut() else {
            counters.count_drop(DropReason::NotReady);
            return Sender::Dropped;
        };
        let plain = match (kind, session.gcm_rx.as_mut()) {
            // AEAD_AES_128_GCM: in place, no allocation.
            (PacketKind::Rtcp, Some((_, rx))) => rx.unprotect(datagram).ok().map(Plain::InPlace),
            (PacketKind::Rtcp, None) => srtp.unprotect_rtcp(datagram).map(Plain::Owned).ok(),
            (_, Some((rx, _))) => {
                // AEAD_AES_128_GCM: in place, no allocation.
                let header_len = rtp::header_len(datagram);
                header_len
                    .and_then(|h| rx.unprotect(datagram, h).ok())
                    .map(Plain::InPlace)
            }
            (_, None) => srtp.unprotect_rtp(datagram).map(Plain::Owned).ok(),
        };
        match plain {
            Some(plain) => Sender::Session(session, plain, off_path),
            None => {
                counters.count_drop(DropReason::SrtpFailure);
                Sender::Dropped
            }
        }
    }

    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        let epoch = self.epoch;
        let counters = &self.counters;
        let found = Self::unprotect(
            &self.bindings,
            &mut self.sessions,
            counters,
            from,
            datagram,
            PacketKind::Rtp,
        );
        let at = (self.id, from);
        let events = &mut self.events;
        let Some((session, unprotected)) =
            off_path::settle(found, &mut self.off_path, at, datagram, now, events)
        else {
            return;
        };
        let plain = unprotected.bytes(datagram);
        let Ok(header) = RtpHeader::new_checked(plain) else {
            counters.count_drop(DropReason::Malformed);
            return;
        };
        // Every packet that carries a transport-wide number counts, media,
        // retransmissions and padding alike.
        if let (Some(id), Some(twcc)) = (session.media.twcc_extension, session.twcc.as_mut())
            && let Some(&[hi, lo, ..]) = header.extension(id)
        {
            twcc.record(u16::from_be_bytes([hi, lo]), now);
        }
        let ssrc = header.ssrc();
        let known = session.inbound.get(&ssrc).map(|stats| stats.route);
        let route = known.or_else(|| find_route(&session.media, &header));
        let Some(route_index) = route else {
            counters.count_drop(DropReason::UnknownSsrc);
            return;
        };
        let Some(route) = session.media.inbound.get(route_index) else {
            counters.count_drop(DropReason::UnknownSsrc);
            return;
        };
        if known.is_none() {
            // A new SSRC: within the track's allowance (a publisher that
            // sends a random SSRC per packet keeps no state for each).
            let used = session
                .inbound
                .values()
                .filter(|s| s.route == route_index)
                .count();
            if used >= route.ssrcs.len() + LEARNED_SSRCS {
                counters.count_drop(DropReason::SsrcLimit);
                return;
            }
        }
        let layer = if route.rids.is_empty() {
            None
        } else {
            let Some(layer) = learn_layer(&mut session.layers, &session.media, route, &header)
            else {
                counters.count_drop(DropReason::UnknownRid);
                return;
            };
            Some(layer)
        };
        let verdict = session.repairs.check(
            route_index,
            route,
            layer,
            &header,
            plain,
            now,
            &mut self.scratch,
        );
        let (header, plain) = match verdict {
            Verdict::Drop => {
                counters.count_drop(DropReason::Duplicate);
                return;
            }
            Verdict::Forward => (header, plain),
            Verdict::Repaired => {
                Counters::add(&counters.upstream_recovered, 1);
                (header, plain)
            }
            Verdict::Unwrapped => {
                Counters::add(&counters.upstream_recovered, 1);
                let Ok(h) = RtpHeader::new_checked(&self.scratch) else {
                    return;
                };
                (h, &self.scratch[..])
            }
        };
        let ssrc = header.ssrc();
        let track = route.fanout.key;
        let mut run_header = RunHeader::of(&header);
        if layer.is_some() {
            let pt = header.payload_type();
            let codec = route
                .formats
                .iter()
                .find(|(p, _)| *p == pt)
                .map_or(Codec::Other, |(_, c)| *c);
            run_header.layer = layer;
            run_header.codec = codec;
            run_header.keyframe = codec.starts_keyframe(&plain[header.payload_offset()..]);
        }
        self.inbox.push(&route.fanout, run_header, plain);
        let clock_rate = route.clock_rate;
        session
            .inbound
            .entry(ssrc)
            .or_insert_with(|| {
                ReceptionStats::new(route_index, clock_rate, header.sequence_number())
            })
            .handle_packet(epoch, now, header.sequence_number(), header.timestamp());
        self.note_media(now, track);
        if self.inbox.is_full() {
            self.forward_inbox();
        }
    }

    /// Fans out the received packets waiting in the inbox, a run per track.
    fn forward_inbox(&mut self) {
        if self.inbox.is_empty() {
            return;
        }
        let mut inbox = std::mem::take(&mut self.inbox);
        inbox.drain_runs(|fanout, run| self.fan_out(fanout, Forwarded::Rtp(run)));
        self.inbox = inbox;
    }

    /// Sends a packet of a track to its subscribers on this worker, and hands
    /// one shared copy to each other worker that has subscribers.
    fn fan_out(&mut self, fanout: &Arc<TrackFanout>, packet: Forwarded<'_>) {
        let table = fanout.load();
        let mut shared: Option<Arc<Handoff>> = None;
        for (w, subscribers) in table.per_worker.iter().enumerate() {
            if subscribers.is_empty() {
                continue;
            }
            if w == self.id.0 {
                self.deliver(subscribers, fanout.key, packet);
            } else if w < self.workers {
                let handoff = shared
                    .get_or_insert_with(|| match packet {
                        Forwarded::Rtp(run) => self.pool.rtp(fanout, run),
                        Forwarded::SenderReport(info, layer) => Arc::new(Handoff {
                            fanout: fanout.clone(),
                            payload: HandoffPayload::SenderReport(info, layer),
                        }),
                    })
                    .clone();
                self.handoffs.push_back((WorkerId(w), handoff));
            }
        }
    }

    /// Sends a packet of `track` to `subscribers`, all on this worker.
    fn deliver(&mut self, subscribers: &[SessionKey], track: TrackKey, packet: Forwarded<'_>) {
        match packet {
            Forwarded::Rtp(run) => {
                self.histories.store(track, run, self.clock);
                for &sub in subscribers {
                    self.forward_run(sub, track, run);
                }
            }
            Forwarded::SenderReport(info, layer) => {
                for &sub in subscribers {
                    self.forward_sender_report(sub, track, &info, layer);
                }
            }
        }
    }

    /// Forgets when tracks silent for [`MEDIA_EVENT_MEMORY`] last made an
    /// event (tracks come and go; the map must not keep them all): the next
    /// packet of such a track is news again.
    fn forget_silent_tracks(&mut self, now: Instant) {
        self.media_events
            .retain(|_, last| now.saturating_duration_since(*last) < MEDIA_EVENT_MEMORY);
    }

    fn note_media(&mut self, now: Instant, track: TrackKey) {
        let due = self
            .media_events
            .get(&track)
            .is_none_or(|last| now.saturating_duration_since(*last) >= MEDIA_EVENT_INTERVAL);
        if due {
            self.media_events.insert(track, now);
            self.events
                .push_back(EngineEvent::MediaReceived { track, at: now });
        }
    }

    /// Sends a run of plaintext RTP packets of `track` to subscriber `sub`
    /// on this worker: rewritten and protected back to back into the arena,
    /// queued as few GSO transmits.
    fn forward_run(&mut self, sub: SessionKey, track: TrackKey, run: PacketRun<'_>) {
        let counters = &self.counters;
        let Some(s) = self.sessions.get_mut(&sub) else {
            counters.count_drops(DropReason::NotReady, run.len());
            return;
        };
        let Some(srtp) = s.srtp.as_mut() else {
            counters.count_drops(DropReason::NotReady, run.len());
            return;
        };
        let mut forwarded = 0;
        let clock = self.clock;
        let twcc = s.media.twcc_extension;
        // A session may pull the same track into several transceivers.
        for outlet in s.media.outlets.iter().filter(|o| o.track == track) {
            let paused = outlet.video && s.estimate.as_ref().is_some_and(|e| e.paused);
            let stream = s.outbound.entry(outlet.ssrc).or_default();
            // A simulcast pull sees every layer go by, paused or not.
            let mut layers = outlet.simulcast.as_ref().map(|pull| {
                stream.layers.take().unwrap_or_else(|| {
                    Box::new(LayerSwitch::new(pull.preferences.clone(), &pull.rids))
                })
            });
            if paused && layers.is_none() {
                continue;
            }
            // The whole run fits in one block, so its datagrams are contiguous.
            let need = run.bytes() + run.len() * gcm::TAG_LEN;
            if self.arena.capacity() < need {
                Self::next_arena(&mut self.arena, &mut self.spare, need);
            }
            let estimate = layers
                .as_ref()
                .and(s.estimate.as_ref())
                .and_then(|e| e.for_layers(clock));
            let mut group = Coalescer::new(s.addr);
            for (plain, header) in run.packets() {
                if let Some(sw) = layers.as_deref_mut()
                    && !admit_layer(
                        sw,
                        stream,
                        header,
                        plain.len(),
                        clock,
                        estimate,
                        paused,
                        counters,
                    )
                {
                    continue;
                }
                let Some(pt) = outlet.map_payload_type(header.payload_type) else {
                    counters.count_drop(DropReason::UnmappedPayloadType);
                    continue;
                };
                let (seq, ts) = stream.translate(
                    header.ssrc,
                    header.sequence_number,
                    header.timestamp,
                    plain.len() - header.layout.payload_offset,
                );
                let packet = &mut self.arena;
                packet.extend_from_slice(plain);
                let number = s.twcc_seq;
                let stamped = rtp::rewrite_in_place(
                    packet,
                    header.layout,
                    Rewrite {
                        ssrc: outlet.ssrc,
                        payload_type: pt,
                        extensions: &outlet.extensions,
                        transport_cc: twcc.map(|id| (id, number)),
                    },
                );
                if stamped {
                    s.twcc_seq = number.wrapping_add(1);
                }
                if let Some(e) = s.estimate.as_deref_mut() {
                    if stamped {
                        e.bwe.sent(number, plain.len() + gcm::TAG_LEN, clock, None);
                    }
                    if outlet.video {
                        e.note_video(plain.len());
                    }
                }
                rtp::set_sequence_number(packet, seq);
                rtp::set_timestamp(packet, ts);
                if let Some(sw) = layers.as_deref_mut() {
                    sent_layer(sw, packet, header);
                }
                let protected = match s.gcm.as_mut() {
                    Some(g) => g
                        .protect(packet, header.layout.payload_offset)
                        .map(|()| packet.split())
                        .ok(),
                    None => {
                        let p = srtp.protect_rtp(packet).ok();
                        packet.clear();
                        p
                    }
                };
                match protected {
                    Some(bytes) => {
                        forwarded += 1;
                        group.push(bytes, &mut self.transmits);
                    }
                    None => counters.count_drop(DropReason::SrtpFailure),
                }
            }
            group.finish(&mut self.transmits);
            if let Some(mut sw) = layers {
                sw.retarget(clock, estimate);
                if let Some(rate) = sw.poll_probe(clock, estimate)
                    && let Some(e) = s.estimate.as_deref_mut()
                {
                    e.bwe.request_probe(rate, estimate::PROBE_LENGTH, clock);
                }
                if let Some(layer) = sw.poll_keyframe_request(clock) {
                    self.events.push_back(EngineEvent::KeyframeRequest {
                        track,
                        layer: Some(layer),
                    });
                }
                stream.layers = Some(sw);
            }
        }
        Counters::add(&counters.rtp_forwarded, forwarded);
        if let Some(e) = s.estimate.as_deref_mut()
            && e.can_probe
            && !e.listed
            && e.bwe.probe_at().is_some()
        {
            e.listed = true;
            self.probing.push(sub);
            self.next_probe = Some(clock);
        }
    }

    /// Replaces an exhausted arena block by a spare one whose datagrams have
    /// all been sent, or by a new block.
    fn next_arena(arena: &mut BytesMut, spare: &mut VecDeque<BytesMut>, need: usize) {
        spare.push_back(std::mem::take(arena));
        for _ in 0..spare.len() {
            let Some(mut block) = spare.pop_front() else {
                break;
            };
            if block.try_reclaim(ARENA_BYTES.max(need)) {
                *arena = block;
                return;
            }
            spare.push_back(block);
        }
        if spare.len() > SPARE_BLOCKS {
            spare.pop_front();
        }
        *arena = BytesMut::with_capacity(ARENA_BYTES.max(need));
    }

    /// Sends a sender report for `track` to subscriber `sub` on this worker.
    /// Of a simulcast track, each layer's report is kept (to map timestamps
    /// at a switch) and only the layer being sent is reported.
    fn forward_sender_report(
        &mut self,
        sub: SessionKey,
        track: TrackKey,
        info: &SenderInfo,
        layer: Option<Layer>,
    ) {
        let Some(s) = self.sessions.get_mut(&sub) else {
            return;
        };
        let (Some(srtp), Some(outlet)) = (
            s.srtp.as_mut(),
            s.media.outlets.iter().find(|o| o.track == track),
        ) else {
            return;
        };
        let Some(stream) = s.outbound.get_mut(&outlet.ssrc) else {
            return;
        };
        if let Some(sw) = stream.layers.as_deref_mut() {
            let Some(layer) = layer else {
                return;
            };
            sw.handle_sender_report(layer, info.ntp, info.rtp_timestamp);
            if sw.timeline() != Some(layer) {
                return;
            }
        }
        self.scratch.clear();
        let report = stream.sender_report(outlet.ssrc, info);
        rtcp::write_sr(&mut self.scratch, &report);
        s.rtt.sent(report.ntp, self.clock);
        if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
            self.transmits.push_back(Transmit::single(s.addr, bytes));
        }
    }

    /// Reads at most [`MAX_FEEDBACK_PER_DATAGRAM`] transport-cc feedback
    /// packets of one compound packet (a client sends one; a datagram
    /// holds about 40 of the smallest).
    fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, datagram: &mut [u8]) {
        let found = Self::unprotect(
            &self.bindings,
            &mut self.sessions,
            &self.counters,
            from,
            datagram,
            PacketKind::Rtcp,
        );
        let at = (self.id, from);
        let events = &mut self.events;
        let Some((session, unprotected)) =
            off_path::settle(found, &mut self.off_path, at, datagram, now, events)
        else {
            return;
        };
        let plain = unprotected.bytes(datagram);
        let mut keyframe_tracks: Vec<(TrackKey, Option<Layer>)> = Vec::new();
        let mut reports: Vec<(Arc<TrackFanout>, SenderInfo, Option<Layer>)> = Vec::new();
        let mut feedback_left = MAX_FEEDBACK_PER_DATAGRAM;
        for packet in rtcp::packets(plain) {
            let media = &session.media;
            let echoes = rtcp::report_blocks(&packet)
                .filter(|b| media.outlets.iter().any(|o| o.ssrc == b.ssrc))
                .map(|b| (b.last_sr, b.delay_since_last_sr))
                .chain(
                    packet
                        .dlrr()
                        .filter(|d| d.ssrc == media.rtcp_ssrc)
                        .map(|d| (d.last_rr, d.delay)),
                );
            for (last, delay) in echoes {
                if let Some(sample) = session.rtt.echoed(last, delay, now) {
                    self.counters
                        .rtt
                        .observe(sample.as_micros().div_ceil(1000) as u64);
                }
            }
            if let Some((media_ssrc, lost)) = packet.nack() {
                if let Some(srtp) = session.srtp.as_mut() {
                    let sub = Subscriber {
                        addr: session.addr,
                        media: &session.media,
                        outbound: &mut session.outbound,
                        srtp,
                        gcm: session.gcm.as_mut(),
                        limiter: &mut session.resend,
                        rtt: session.rtt.get(),
                        twcc_seq: &mut session.twcc_seq,
                        estimate: session.estimate.as_deref_mut().map(|e| &mut e.bwe),
                    };
                    let unrepaired = self.histories.answer_nack(
                        sub,
                        media_ssrc,
                        lost,
                        now,
                        &mut self.transmits,
                        &self.counters,
                    );
                    keyframe_tracks.extend(unrepaired.map(|t| (t, None)));
                }
            } else if feedback::is_feedback(packet.count, packet.packet_type) {
                if feedback_left == 0 {
                    continue;
                }
                feedback_left -= 1;
                if session.estimate.is_none()
                    && session.media.twcc_extension.is_some()
                    && !session.media.outlets.is_empty()
                {
                    let mut e = SubscriberEstimate::new(now);
                    e.can_probe = can_probe(&session.media);
                    session.estimate = Some(Box::new(e));
                }
                if let Some(e) = session.estimate.as_deref_mut() {
                    let rtt = session.rtt.get();
                    e.bwe
                        .on_feedback(packet.bytes, now, rtt, &mut self.statuses);
                }
            } else if let Some(media_ssrc) = packet.keyframe_request_ssrc() {
                if let Some(o) = session.media.outlets.iter().find(|o| o.ssrc == media_ssrc) {
                    // No resends of the frames the keyframe replaces.
                    let mut layer = None;
                    if let Some(stream) = session.outbound.get_mut(&media_ssrc) {
                        stream.keyframe_requested();
                        layer = stream.layers.as_ref().and_then(|l| l.current());
                    }
                    keyframe_tracks.push((o.track, layer));
                }
            } else if let Some(info) = packet.sender_info()
                && let Some(stats) = session.inbound.get_mut(&info.ssrc)
            {
                stats.handle_sender_report(now, info.ntp);
                if let Some(route) = session.media.inbound.get(stats.route) {
                    let layer = session.layers.get(&info.ssrc).copied();
                    reports.push((route.fanout.clone(), info, layer));
                }
            }
        }
        for (track, layer) in keyframe_tracks {
            self.events
                .push_back(EngineEvent::KeyframeRequest { track, layer });
        }
        for (fanout, info, layer) in reports {
            self.fan_out(&fanout, Forwarded::SenderReport(info, layer));
        }
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
                    Some(s) => {
                        // A new nominated 5-tuple (ICE restart, network
                        // change) releases the old one.
                        let old = std::mem::replace(&mut s.addr, addr);
                        if old != addr {
                            self.bindings.unbind(old, key);
                        }
                    }
                    None => {
                        self.sessions.insert(
                            key,
                            MediaSession {
                                addr,
                                srtp: None,
                                gcm: None,
                                gcm_rx: None,
                                media: Arc::default(),
                                inbound: HashMap::default(),
                                outbound: HashMap::default(),
                                twcc: None,
                                resend: ResendLimiter::new(self.clock),
                                repairs: Repairs::default(),
                                rtt: RoundTrip::new(self.clock),
                                last_on_path: None,
                                twcc_seq: 0,
                                estimate: None,
                                layers: HashMap::default(),
                            },
                        );
                    }
                }
            }
            WorkerCommand::Keys { key, keys } => {
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.srtp = SrtpSession::new(&keys).ok();
                    let gcm = matches!(keys.profile, ProtectionProfile::AeadAes128Gcm);
                    s.gcm = gcm
                        .then(|| GcmSender::new(&keys.local.0, &keys.local.1).ok())
                        .flatten();
                    let (key, salt) = (&keys.remote.0, &keys.remote.1);
                    s.gcm_rx = gcm
                        .then(|| {
                            let rtp = GcmReceiver::new(key, salt).ok()?;
                            Some((rtp, GcmRtcpReceiver::new(key, salt).ok()?))
                        })
                        .flatten();
                }
            }
            WorkerCommand::Media { key, media } => {
                if let Some(s) = self.sessions.get_mut(&key) {
                    // Learned SSRCs stay only if their route still exists
                    // with the same mid.
                    let old = std::mem::replace(&mut s.media, media);
                    self.histories.follow(&old, &s.media, self.clock);
                    s.inbound.retain(|_, stats| {
                        let mid = old.inbound.get(stats.route).map(|r| &r.mid);
                        match s.media.inbound.iter().position(|r| Some(&r.mid) == mid) {
                            Some(i) => {
                                stats.route = i;
                                true
                            }
                            None => false,
                        }
                    });
                    let inbound = &s.inbound;
                    s.repairs
                        .remap(|ssrc| inbound.get(&ssrc).map(|st| st.route));
                    let live: Vec<u32> = s.media.outlets.iter().map(|o| o.ssrc).collect();
                    s.outbound.retain(|ssrc, _| live.contains(ssrc));
                    for o in &s.media.outlets {
                        let Some(stream) = s.outbound.get_mut(&o.ssrc) else {
                            continue;
                        };
                        let before = old.outlets.iter().find(|b| b.ssrc == o.ssrc);
                        match (&o.simulcast, before) {
                            // New preferences (tracks/update): chosen again.
                            (Some(pull), Some(b)) if b.track == o.track => {
                                if b.simulcast.as_ref() != Some(pull)
                                    && let Some(sw) = stream.layers.as_deref_mut()
                                {
                                    // Chosen now, so that the next keyframe
                                    // of the new target is not missed.
                                    sw.set_preferences(pull.preferences.clone(), &pull.rids);
                                    let estimate =
                                        s.estimate.as_ref().and_then(|e| e.for_layers(self.clock));
                                    sw.retarget(self.clock, estimate);
                                    if let Some(layer) = sw.poll_keyframe_request(self.clock) {
                                        self.events.push_back(EngineEvent::KeyframeRequest {
                                            track: o.track,
                                            layer: Some(layer),
                                        });
                                    }
                                }
                            }
                            // Re-pointed to another track: a new choice.
                            _ => stream.layers = None,
                        }
                    }
                    // Arrivals are recorded for what it pushes.
                    let receives = !s.media.inbound.is_empty();
                    match (s.media.twcc_extension.filter(|_| receives), &s.twcc) {
                        (Some(_), None) => s.twcc = Some(TwccReceiver::new(self.epoch)),
                        (None, Some(_)) => s.twcc = None,
                        _ => {}
                    }
                    // The estimate lasts while it pulls with transport-cc.
                    if s.media.twcc_extension.is_none() || s.media.outlets.is_empty() {
                        release(s.estimate.take(), &self.counters);
                    } else if let Some(e) = s.estimate.as_deref_mut() {
                        e.can_probe = can_probe(&s.media);
                    }
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

    /// Asks publisher `key` for a keyframe of `track` (of one of its
    /// simulcast layers, or of all its streams).
    fn send_pli(&mut self, key: SessionKey, track: TrackKey, layer: Option<Layer>) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(srtp) = s.srtp.as_mut() else {
            return;
        };
        let route = s.media.inbound.iter().position(|r| r.fanout.key == track);
        let mut ssrcs: Vec<u32> = s
            .inbound
            .iter()
            .filter(|(_, st)| Some(st.route) == route)
            .map(|(ssrc, _)| *ssrc)
            .filter(|ssrc| layer.is_none() || s.layers.get(ssrc).copied() == layer)
            .collect();
        if ssrcs.is_empty()
            && layer.is_none()
            && let Some(r) = route.and_then(|i| s.media.inbound.get(i))
        {
            ssrcs.extend(r.ssrcs.iter().take(1));
        }
        for ssrc in ssrcs {
            self.scratch.clear();
            rtcp::write_pli(&mut self.scratch, s.media.rtcp_ssrc, ssrc);
            if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
                self.transmits.push_back(Transmit::single(s.addr, bytes));
            }
        }
    }

    /// When [`Engine::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Instant {
        let next = self.next_report.min(self.next_feedback);
        self.next_probe.map_or(next, |p| p.min(next))
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
        if self.next_probe.is_some_and(|t| now >= t) {
            self.send_probes(now);
        }
    }

    /// The feedback due to publishers every [`FEEDBACK_INTERVAL`], in one
    /// pass over the sessions: transport-cc reports of what arrived, and
    /// NACKs for the gaps in what they push (with keyframe requests for
    /// gaps given up).
    fn send_feedback(&mut self, now: Instant) {
        let mut changes = Vec::new();
        for (&key, s) in self.sessions.iter_mut() {
            let Some(srtp) = s.srtp.as_mut() else {
                continue;
            };
            let mut send = |bytes: &[u8]| {
                if let Ok(bytes) = srtp.protect_rtcp(bytes) {
                    self.transmits.push_back(Transmit::single(s.addr, bytes));
                }
            };
            if let Some(twcc) = s.twcc.as_mut() {
                let media_ssrc = s.inbound.keys().next().copied().unwrap_or(0);
                loop {
                    self.scratch.clear();
                    if !twcc.poll_feedback(s.media.rtcp_ssrc, media_ssrc, &mut self.scratch) {
                        break;
                    }
                    send(&self.scratch);
                }
            }
            let (nacked, given_up) =
                s.repairs
                    .poll(now, s.rtt.get(), s.media.rtcp_ssrc, &mut self.scratch);
            Counters::add(&self.counters.upstream_nacked, nacked as u64);
            Counters::add(&self.counters.upstream_unrecovered, given_up as u64);
            if !self.scratch.is_empty() {
                send(&self.scratch);
            }
            if let Some(e) = s.estimate.as_deref_mut() {
                let judged = e.judged;
                if let Some(change) = e.judge(now) {
                    changes.push((key, change));
                }
                if e.judged != judged {
                    self.counters.estimates.observe(e.bwe.estimate() / 1000);
                }
                if e.can_probe && !e.listed && e.bwe.probe_at().is_some() {
                    e.listed = true;
                    self.probing.push(key);
                    self.next_probe = Some(now);
                }
            }
        }
        for (key, change) in changes {
            self.apply(key, change);
        }
    }

    /// Sends receiver reports for every inbound stream.
    fn send_reports(&mut self, now: Instant) {
        self.next_report = now + REPORT_INTERVAL;
        for s in self.sessions.values_mut() {
            let Some(srtp) = s.srtp.as_mut() else {
                continue;
            };
            // Streams that stopped are forgotten.
            s.inbound
                .retain(|_, stats| !stats.is_silent(now, SSRC_TIMEOUT));
            if s.inbound.is_empty() {
                continue;
            }
            let blocks: Vec<_> = s
                .inbound
                .iter_mut()
                .map(|(ssrc, stats)| stats.report_block(now, *ssrc))
                .collect();
            // Up to 31 blocks per RR, RRs joined while they fit the MTU.
            self.scratch.clear();
            for chunk in blocks.chunks(31) {
                let before = self.scratch.len();
                rtcp::write_rr(&mut self.scratch, s.media.rtcp_ssrc, chunk);
                if self.scratch.len() > REPORT_MTU && before > 0 {
                    let last = self.scratch.split_off(before);
                    if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
                        self.transmits.push_back(Transmit::single(s.addr, bytes));
                    }
                    self.scratch = last;
                }
            }
            // A reference time the publisher answers (DLRR): its RTT.
            let ntp = rtt::ntp_since(self.epoch, now);
            rtcp::write_rrtr(&mut self.scratch, s.media.rtcp_ssrc, ntp);
            s.rtt.sent(ntp, now);
            if let Ok(bytes) = srtp.protect_rtcp(&self.scratch) {
                self.transmits.push_back(Transmit::single(s.addr, bytes));
            }
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

/// Whether a packet of a simulcast track goes to this pull (`sw`), after
/// `sw` saw it go by; a switch to its layer re-bases `stream` on it. Kept
/// out of line: the forwarding loop of tracks that are not simulcast stays
/// small.
#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn admit_layer(
    sw: &mut LayerSwitch,
    stream: &mut OutboundStream,
    header: &RunHeader,
    len: usize,
    now: Instant,
    estimate: Option<Estimate>,
    paused: bool,
    counters: &Counters,
) -> bool {
    let Some(layer) = header.layer else {
        return false;
    };
    sw.handle_packet(now, layer, len);
    if sw.target().is_none() {
        // The first packets: a target at once, so that a keyframe among
        // them is not missed.
        sw.retarget(now, estimate);
    }
    if paused {
        return false;
    }
    let timeline = sw.timeline();
    match sw.admit(layer, header.keyframe) {
        Admit::Skip => false,
        Admit::Forward => true,
        Admit::Switch => {
            switch_stream(stream, sw, timeline, layer, header);
            Counters::add(&counters.layer_switches, 1);
            true
        }
    }
}

/// A packet of a simulcast pull is about to be protected: its VP8
/// numbering continued, its end of frame noted.
#[inline(never)]
fn sent_layer(sw: &mut LayerSwitch, packet: &mut [u8], header: &RunHeader) {
    if header.codec == Codec::Vp8
        && let Some(payload) = packet.get_mut(header.layout.payload_offset..)
    {
        sw.vp8.apply(payload);
    }
    sw.sent(header.marker);
}

/// Re-bases `stream` on a keyframe of `layer` (a simulcast switch, `sw`
/// now on it): the same layer after a pause continues its own numbers;
/// another layer continues the stream at the keyframe's time on the
/// previous layer's clock (through both layers' sender reports), or one
/// frame after the last one sent when that time is unknown or not later.
fn switch_stream(
    stream: &mut OutboundStream,
    sw: &mut LayerSwitch,
    timeline: Option<Layer>,
    layer: Layer,
    header: &RunHeader,
) {
    sw.vp8.switched();
    if timeline == Some(layer) {
        stream.rebase();
        return;
    }
    let last = stream.last_timestamp();
    let mapped = timeline
        .and_then(|from| sw.switch_timestamp(from, layer, header.timestamp, VIDEO_CLOCK))
        .map(|ts| stream.sent_as(0, ts).1)
        .filter(|at| (at.wrapping_sub(last) as i32) > 0);
    let at = mapped.unwrap_or(last.wrapping_add(FRAME_TICKS));
    let skip = !sw.frame_complete();
    stream.switch_source(
        header.ssrc,
        header.sequence_number,
        header.timestamp,
        at,
        skip,
    );
}

/// The simulcast layer of a packet of a simulcast route: known for its
/// SSRC, else read from its `rtp-stream-id` (or, for RTX,
/// `repaired-rtp-stream-id`) extension and remembered, within
/// [`LEARNED_LAYER_SSRCS`].
fn learn_layer(
    layers: &mut HashMap<u32, Layer>,
    media: &SessionMedia,
    route: &crate::session::InboundRoute,
    header: &RtpHeader<'_>,
) -> Option<Layer> {
    let ssrc = header.ssrc();
    if let Some(&layer) = layers.get(&ssrc) {
        return Some(layer);
    }
    let (rid, repaired) = media.rid_extensions;
    let named = rid
        .and_then(|id| header.extension(id))
        .or_else(|| repaired.and_then(|id| header.extension(id)))?;
    let index = route
        .rids
        .iter()
        .position(|r| r.as_str().as_bytes() == named)?;
    if layers.len() >= LEARNED_LAYER_SSRCS {
        return None;
    }
    let layer = Layer(index as u8);
    layers.insert(ssrc, layer);
    Some(layer)
}

/// The route of a packet on an SSRC not seen before: a signalled SSRC, else
/// the MID header extension, else the only route of a matching payload type.
fn find_route(media: &SessionMedia, header: &RtpHeader<'_>) -> Option<usize> {
    let ssrc = header.ssrc();
    if let Some(i) = media.inbound.iter().position(|r| r.ssrcs.contains(&ssrc)) {
        return Some(i);
    }
    if let Some(mid) = media.mid_extension.and_then(|id| header.extension(id))
        && let Some(i) = media
            .inbound
            .iter()
            .position(|r| r.mid.as_str().as_bytes() == mid)
    {
        return Some(i);
    }
    let pt = header.payload_type();
    let mut candidates = media
        .inbound
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ssrcs.is_empty() && r.payload_types.contains(&pt));
    match (candidates.next(), candidates.next()) {
        (Some((i, _)), None) => Some(i),
        _ => None,
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
