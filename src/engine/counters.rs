//! Per-worker counters: packets in and out, drops by reason, batch sizes
//! and ring occupancy. Written only by the owning worker (relaxed atomics,
//! no contention), read by anyone.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum DropReason {
    /// First byte matches no protocol (RFC 7983).
    UnknownProtocol,
    /// Malformed STUN, or not a binding request.
    BadStun,
    /// STUN from a source past its rate (checks a second).
    StunRate,
    /// STUN for a ufrag no session has.
    UnknownUfrag,
    /// STUN whose MESSAGE-INTEGRITY fails.
    BadIntegrity,
    /// STUN whose USERNAME names another client ufrag than the session's
    /// SDP (`ours:theirs` must match exactly).
    WrongUsername,
    /// DTLS, RTP or RTCP from an address no ICE check bound.
    UnboundAddress,
    /// RTP or RTCP before SRTP keys were installed, or on a non-owner worker.
    NotReady,
    /// SRTP or SRTCP authentication or replay check failed.
    SrtpFailure,
    /// Malformed RTP or RTCP after decryption.
    Malformed,
    /// RTP on an SSRC no pushed track claims.
    UnknownSsrc,
    /// RTP of a simulcast track on an SSRC whose layer is not known yet
    /// (no rid extension seen on it), or one too many learned.
    UnknownRid,
    /// RTP on one SSRC too many for its track (those its SDP declares plus
    /// a few learned, for simulcast layers and RTX).
    SsrcLimit,
    /// A payload type the subscriber did not negotiate.
    UnmappedPayloadType,
    /// A hand-off ring to another worker was full.
    HandoffFull,
    /// The socket refused a send.
    SendFailed,
    /// A DTLS record or ICE binding for a session that already sent the
    /// control thread its budget of events for this second.
    ControlBudget,
    /// An event for the control thread while its queue was full.
    ControlQueueFull,
    /// A data-channel record (DTLS application data) of a session past its
    /// budget for this second.
    DataBudget,
    /// A data-channel record while its DTLS thread's queue was full.
    DataQueueFull,
    /// A NACKed packet no longer (or never) in the track's history, or of
    /// a stream without NACK.
    NackUnavailable,
    /// A NACKed packet past its subscriber's resend budget.
    ResendBudget,
    /// A publisher's packet received twice (a late repair), or RTX padding.
    Duplicate,
    /// A NACKed packet of a frame before a keyframe the subscriber asked
    /// for (the keyframe replaces it).
    Superseded,
    /// A NACKed packet resent as often as allowed already: the subscriber
    /// is asked a keyframe for instead.
    ResendsExhausted,
}

impl DropReason {
    /// Every reason, in order.
    pub const ALL: [DropReason; 25] = [
        DropReason::UnknownProtocol,
        DropReason::BadStun,
        DropReason::StunRate,
        DropReason::UnknownUfrag,
        DropReason::BadIntegrity,
        DropReason::WrongUsername,
        DropReason::UnboundAddress,
        DropReason::NotReady,
        DropReason::SrtpFailure,
        DropReason::Malformed,
        DropReason::UnknownSsrc,
        DropReason::UnknownRid,
        DropReason::SsrcLimit,
        DropReason::UnmappedPayloadType,
        DropReason::HandoffFull,
        DropReason::SendFailed,
        DropReason::ControlBudget,
        DropReason::ControlQueueFull,
        DropReason::DataBudget,
        DropReason::DataQueueFull,
        DropReason::NackUnavailable,
        DropReason::ResendBudget,
        DropReason::Duplicate,
        DropReason::Superseded,
        DropReason::ResendsExhausted,
    ];

    /// A metric label.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::UnknownProtocol => "unknown_protocol",
            DropReason::BadStun => "bad_stun",
            DropReason::StunRate => "stun_rate",
            DropReason::UnknownUfrag => "unknown_ufrag",
            DropReason::BadIntegrity => "bad_integrity",
            DropReason::WrongUsername => "wrong_username",
            DropReason::UnboundAddress => "unbound_address",
            DropReason::NotReady => "not_ready",
            DropReason::SrtpFailure => "srtp_failure",
            DropReason::Malformed => "malformed",
            DropReason::UnknownSsrc => "unknown_ssrc",
            DropReason::UnknownRid => "unknown_rid",
            DropReason::SsrcLimit => "ssrc_limit",
            DropReason::UnmappedPayloadType => "unmapped_payload_type",
            DropReason::HandoffFull => "handoff_full",
            DropReason::SendFailed => "send_failed",
            DropReason::ControlBudget => "control_budget",
            DropReason::ControlQueueFull => "control_queue_full",
            DropReason::DataBudget => "data_channel_budget",
            DropReason::DataQueueFull => "data_channel_queue_full",
            DropReason::NackUnavailable => "nack_unavailable",
            DropReason::ResendBudget => "resend_budget",
            DropReason::Duplicate => "duplicate",
            DropReason::Superseded => "superseded",
            DropReason::ResendsExhausted => "resends_exhausted",
        }
    }
}

/// One worker's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams received.
    pub packets_in: AtomicU64,
    /// Datagrams sent.
    pub packets_out: AtomicU64,
    /// RTP packets forwarded to subscribers.
    pub rtp_forwarded: AtomicU64,
    /// Sequence numbers subscribers reported lost (generic NACK).
    pub nacked_packets: AtomicU64,
    /// RTP packets sent again in answer to a NACK.
    pub rtp_retransmitted: AtomicU64,
    /// Sequence numbers NACKed to publishers (each try counted).
    pub upstream_nacked: AtomicU64,
    /// Publishers' lost packets repaired (in their stream or by RTX).
    pub upstream_recovered: AtomicU64,
    /// Publishers' lost packets given up (a keyframe request instead).
    pub upstream_unrecovered: AtomicU64,
    /// Runs of packets handed to other workers.
    pub handoffs: AtomicU64,
    /// `recvmmsg` calls that returned datagrams (packets_in / this: the
    /// mean receive batch).
    pub receive_calls: AtomicU64,
    /// Batches of transmits sent (packets_out / this: the mean send batch).
    pub send_calls: AtomicU64,
    /// Messages that carried several datagrams (UDP GSO).
    pub gso_sends: AtomicU64,
    /// Hand-offs waiting in this worker's inbound rings, last seen.
    pub ring_occupancy: AtomicU64,
    /// Round-trip times measured for its sessions.
    pub rtt: Histogram<Milliseconds>,
    /// Subscribers' bandwidth estimates, sampled once a second each.
    pub estimates: Histogram<Kilobits>,
    /// Subscribers whose video is paused (their estimate cannot carry it).
    pub paused_video: AtomicU64,
    /// Times a subscriber's video was paused.
    pub video_pauses: AtomicU64,
    /// Probe packets sent.
    pub probe_packets: AtomicU64,
    /// Simulcast layer switches (at a keyframe of the new layer).
    pub layer_switches: AtomicU64,
    /// Per received batch: from the read's return to the end of the sends
    /// it caused on this worker (the in-server forwarding latency of the
    /// batch's packets; copies handed to other workers are sent there).
    pub forwarding: Histogram<Microseconds>,
    /// Per wake-up of the worker: how long it was busy before it polled
    /// again.
    pub loop_busy: Histogram<Microseconds>,
    drops: [AtomicU64; DropReason::ALL.len()],
}

/// The buckets of a [`Histogram`]: upper bounds in whole units, and what
/// one unit is in the metric's base unit (seconds, bits per second).
pub trait Bounds {
    /// Upper bounds (then +Inf), at most [`MAX_BUCKETS`].
    const BOUNDS: &'static [u64];
    /// One unit in the base unit.
    const UNIT: f64;
}

/// Buckets a histogram has at most.
pub const MAX_BUCKETS: usize = 12;

/// Round-trip times, in milliseconds.
#[derive(Debug, Default)]
pub struct Milliseconds;

impl Bounds for Milliseconds {
    const BOUNDS: &'static [u64] = &[5, 10, 25, 50, 100, 250, 500, 1000, 2500];
    const UNIT: f64 = 1e-3;
}

/// Short durations on the data path, in microseconds.
#[derive(Debug, Default)]
pub struct Microseconds;

impl Bounds for Microseconds {
    const BOUNDS: &'static [u64] = &[10, 25, 50, 100, 250, 500, 1000, 2500, 10_000, 50_000];
    const UNIT: f64 = 1e-6;
}

/// Bandwidth estimates, in kbit/s.
#[derive(Debug, Default)]
pub struct Kilobits;

impl Bounds for Kilobits {
    const BOUNDS: &'static [u64] = &[100, 250, 500, 1000, 1500, 2500, 4000, 8000, 16000];
    const UNIT: f64 = 1e3;
}

/// A histogram (Prometheus style: cumulative at read time).
#[derive(Debug, Default)]
pub struct Histogram<B: Bounds> {
    buckets: [AtomicU64; MAX_BUCKETS],
    count: AtomicU64,
    sum: AtomicU64,
    bounds: std::marker::PhantomData<B>,
}

impl<B: Bounds> Histogram<B> {
    /// Counts one observation of `value` units.
    pub fn observe(&self, value: u64) {
        if let Some(i) = B::BOUNDS.iter().position(|&b| value <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// (bound in base units, observations at or below it) for each
    /// bucket, then the total count and the sum in base units.
    pub fn read(&self) -> (Vec<(f64, u64)>, u64, f64) {
        // Dividing by a whole number of units per base unit keeps bounds
        // such as 0.05 s exact (50,000 × 1e-6 would be 0.049999…).
        let base = |units: u64| {
            if B::UNIT < 1.0 {
                units as f64 / (1.0 / B::UNIT).round()
            } else {
                units as f64 * B::UNIT
            }
        };
        let mut acc = 0;
        let buckets = B::BOUNDS
            .iter()
            .zip(&self.buckets)
            .map(|(b, n)| {
                acc += n.load(Ordering::Relaxed);
                (base(*b), acc)
            })
            .collect();
        let sum = base(self.sum.load(Ordering::Relaxed));
        (buckets, self.count.load(Ordering::Relaxed), sum)
    }
}

impl Counters {
    /// Counts a drop.
    pub fn count_drop(&self, reason: DropReason) {
        self.drops[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `n` drops.
    pub fn count_drops(&self, reason: DropReason, n: usize) {
        self.drops[reason as usize].fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Drops so far for a reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize].load(Ordering::Relaxed)
    }

    /// Adds to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
