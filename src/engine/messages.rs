//! What crosses thread boundaries around a media worker: commands from the
//! control thread, events to it, and packets handed off between workers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::media_session::MovedSession;
use super::packet_run::OwnedRun;
use crate::engine::session_media::SessionMedia;
use crate::fanout::TrackFanout;
use crate::ids::{SessionKey, TrackKey, WorkerId};
use crate::simulcast::Layer;
use crate::srtp::SrtpKeys;
use crate::wire::rtcp::SenderInfo;

/// From the control thread to one worker.
#[derive(Debug)]
pub enum WorkerCommand {
    /// This worker now owns the session's transport, at `addr`.
    Attach {
        /// The session.
        key: SessionKey,
        /// The client's address (the nominated 5-tuple).
        addr: SocketAddr,
    },
    /// SRTP keys from the completed DTLS handshake.
    Keys {
        /// The session.
        key: SessionKey,
        /// The keys.
        keys: SrtpKeys,
    },
    /// The session's negotiated media changed.
    Media {
        /// The session.
        key: SessionKey,
        /// The new media.
        media: Arc<SessionMedia>,
    },
    /// The session is gone.
    Detach {
        /// The session.
        key: SessionKey,
    },
    /// The session's path moved to worker `to`: let it go and report its
    /// state ([`EngineEvent::HandedOver`]).
    HandOver {
        /// The session.
        key: SessionKey,
        /// Its new worker.
        to: WorkerId,
    },
    /// This worker now owns the session's transport, at `addr`, with the
    /// state another worker handed over.
    Adopt {
        /// The session.
        key: SessionKey,
        /// The client's address (the nominated 5-tuple).
        addr: SocketAddr,
        /// Its state.
        session: MovedSession,
    },
    /// Send a datagram as is (DTLS records).
    Send {
        /// Destination.
        to: SocketAddr,
        /// The datagram.
        bytes: BytesMut,
    },
    /// Stop the worker.
    Shutdown,
    /// The stats route asks for a snapshot of a session's media (None
    /// when the session is not on this worker).
    Stats {
        /// The session.
        key: SessionKey,
        /// Where the snapshot goes.
        reply: tokio::sync::oneshot::Sender<Option<super::stats::SessionStats>>,
    },
    /// Authenticate a datagram another worker received off the session's
    /// path (see `off_path`); authentic, it is reported back as
    /// [`EngineEvent::OffPath`] without bytes.
    Verify {
        /// The session.
        key: SessionKey,
        /// The worker that received it.
        worker: WorkerId,
        /// Where it came from.
        addr: SocketAddr,
        /// The protected datagram.
        bytes: Vec<u8>,
    },
    /// Ask the publisher for a keyframe of one of its tracks (PLI).
    RequestKeyframe {
        /// The publisher's session.
        key: SessionKey,
        /// The track.
        track: TrackKey,
        /// One simulcast layer of it, or all its streams.
        layer: Option<Layer>,
    },
}

/// From a worker to the control thread.
#[derive(Debug)]
pub enum EngineEvent {
    /// A valid ICE check arrived from `addr` for a session (binding and consent).
    Bound {
        /// The session.
        key: SessionKey,
        /// The worker that received it.
        worker: WorkerId,
        /// The client's address.
        addr: SocketAddr,
        /// USE-CANDIDATE was set.
        nominated: bool,
        /// Its STUN transaction id (replays are told apart by it).
        txid: [u8; 12],
        /// When the worker received it (consent is judged on this, not on
        /// when the control thread gets to the event).
        at: Instant,
    },
    /// SRTP or SRTCP of a session from an address that passed its ICE
    /// checks but is not its media path: authenticated by the session's
    /// worker (`bytes` is `None`), or, received by a worker the session
    /// does not live on, to be authenticated there.
    OffPath {
        /// The session.
        key: SessionKey,
        /// The worker that received it.
        worker: WorkerId,
        /// The client's address.
        addr: SocketAddr,
        /// When it was received.
        at: Instant,
        /// The datagram, when not authenticated yet.
        bytes: Option<Vec<u8>>,
    },
    /// A DTLS record for a session.
    Dtls {
        /// The session.
        key: SessionKey,
        /// The worker that received it.
        worker: WorkerId,
        /// The client's address.
        addr: SocketAddr,
        /// The record(s).
        bytes: Vec<u8>,
    },
    /// A session let go on [`WorkerCommand::HandOver`], with its state
    /// (`None` when it was not on this worker).
    HandedOver {
        /// The session.
        key: SessionKey,
        /// Its new worker.
        to: WorkerId,
        /// Its state.
        session: Option<MovedSession>,
    },
    /// A subscriber asked for a keyframe of a track (PLI or FIR).
    KeyframeRequest {
        /// The track.
        track: TrackKey,
        /// One simulcast layer of it, or all its streams.
        layer: Option<Layer>,
    },
    /// A session sent more DTLS records and ICE checks this second than its
    /// budget (once per window in which it does).
    Flooding {
        /// The session.
        key: SessionKey,
        /// When the worker saw it.
        at: Instant,
    },
    /// Media arrived on a pushed track (sent at most once a second per track).
    MediaReceived {
        /// The track.
        track: TrackKey,
        /// When the worker received it.
        at: Instant,
    },
    /// From a handshake thread (not a worker): a session's DTLS handshake
    /// ended, with its SRTP keys or why it failed.
    Handshake {
        /// The session.
        key: SessionKey,
        /// The worker and client address of the record that ended it.
        from: (WorkerId, SocketAddr),
        /// The keys, or the reason.
        result: Result<Box<SrtpKeys>, String>,
        /// With the keys: our last flight, to send (through `from`) once
        /// they are installed.
        flight: Vec<BytesMut>,
    },
    /// From a handshake thread: the state of a session's data channels.
    DataChannels {
        /// The session.
        key: SessionKey,
        /// What happened.
        event: crate::datachannel::ops::ChannelEvent,
    },
}

/// Plaintext packets handed from the publisher's worker to the workers that
/// own some of the track's subscribers: one, shared by all of them.
#[derive(Debug)]
pub struct Handoff {
    /// The track it belongs to; the receiving worker reads its own
    /// subscribers from the track's fan-out table.
    pub fanout: Arc<TrackFanout>,
    /// What it is.
    pub payload: HandoffPayload,
}

/// The contents of a [`Handoff`].
#[derive(Debug)]
pub enum HandoffPayload {
    /// A run of RTP packets of the track, unprotected.
    Rtp(OwnedRun),
    /// The publisher's sender info, for subscribers' sender reports, and
    /// the simulcast layer it is of.
    SenderReport(SenderInfo, Option<Layer>),
}
