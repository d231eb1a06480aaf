//! What the adapters did, for `/metrics`: adapters open and opened by
//! kind, messages and bytes each way, drops and closes by reason, and the
//! time a video frame takes to become a picture.
//!
//! Where it sits: written by the adapter tasks (relaxed atomics), read by
//! the metrics route.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The three kinds of adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A pulled track's audio to the endpoint as PCM.
    PcmEgress,
    /// A pulled track's video to the endpoint as JPEG.
    JpegEgress,
    /// PCM from the endpoint, published as an Opus track.
    PcmIngest,
}

impl Kind {
    /// Every kind, in metric order.
    pub const ALL: [Kind; 3] = [Kind::PcmEgress, Kind::JpegEgress, Kind::PcmIngest];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Kind::PcmEgress => "pcm_egress",
            Kind::JpegEgress => "jpeg_egress",
            Kind::PcmIngest => "pcm_ingest",
        }
    }
}

/// Why an adapter closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// `adapters/websocket/close`.
    Api,
    /// The endpoint closed or failed, and (egress) did not come back
    /// within the reconnect window; or (ingest) its audio was played out.
    EndpointGone,
    /// The endpoint took nothing for a while with messages waiting.
    Stuck,
    /// The endpoint sent a message that is not a `Packet`, or too large.
    Garbage,
    /// The adapter's WebRTC client lost its connection, or the pulled
    /// track's publisher left.
    MediaGone,
}

impl CloseReason {
    /// Every reason, in metric order.
    pub const ALL: [CloseReason; 5] = [
        CloseReason::Api,
        CloseReason::EndpointGone,
        CloseReason::Stuck,
        CloseReason::Garbage,
        CloseReason::MediaGone,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::Api => "api",
            CloseReason::EndpointGone => "endpoint_gone",
            CloseReason::Stuck => "stuck",
            CloseReason::Garbage => "garbage",
            CloseReason::MediaGone => "media_gone",
        }
    }
}

/// Messages dropped or held back, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drop {
    /// Egress: the backlog for a slow or absent endpoint was full; the
    /// oldest message went.
    Backlog,
    /// Egress audio: a packet came after its frame was played.
    Late,
    /// Egress video: a frame that did not decode.
    Undecodable,
    /// Egress audio: the jitter buffer was full; its oldest frame went.
    JitterOverflow,
    /// Ingest: the 60 s buffer was full; reading paused (nothing lost).
    IngestPaused,
}

impl Drop {
    /// Every reason, in metric order.
    pub const ALL: [Drop; 5] = [
        Drop::Backlog,
        Drop::Late,
        Drop::Undecodable,
        Drop::JitterOverflow,
        Drop::IngestPaused,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Drop::Backlog => "backlog",
            Drop::Late => "late",
            Drop::Undecodable => "undecodable",
            Drop::JitterOverflow => "jitter_overflow",
            Drop::IngestPaused => "ingest_paused",
        }
    }
}

/// Upper bounds (µs) of the picture-time histogram's buckets.
pub const PICTURE_BUCKETS_US: [u64; 8] =
    [500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000];

/// The counters.
#[derive(Debug, Default)]
pub struct AdapterCounters {
    // Indexed by the enums' discriminants, which follow their `ALL` order.
    open: [AtomicU64; Kind::ALL.len()],
    opened: [AtomicU64; Kind::ALL.len()],
    closed: [AtomicU64; CloseReason::ALL.len()],
    drops: [AtomicU64; Drop::ALL.len()],
    /// Messages sent to endpoints.
    pub messages_out: AtomicU64,
    /// Bytes sent to endpoints (payloads).
    pub bytes_out: AtomicU64,
    /// Messages read from endpoints.
    pub messages_in: AtomicU64,
    /// Bytes read from endpoints (payloads).
    pub bytes_in: AtomicU64,
    /// Egress reconnects that succeeded.
    pub reconnects: AtomicU64,
    /// Egress audio frames concealed (loss) or made from FEC.
    pub concealed_frames: AtomicU64,
    picture_buckets: [AtomicU64; 9],
    picture_sum_us: AtomicU64,
}

impl AdapterCounters {
    /// An adapter of `kind` opened.
    pub fn opened(&self, kind: Kind) {
        self.opened[kind as usize].fetch_add(1, Relaxed);
        self.open[kind as usize].fetch_add(1, Relaxed);
    }

    /// An adapter of `kind` closed for `reason`.
    pub fn closed(&self, kind: Kind, reason: CloseReason) {
        self.open[kind as usize].fetch_sub(1, Relaxed);
        self.closed[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts `n` drops for `reason`.
    pub fn dropped(&self, reason: Drop, n: u64) {
        self.drops[reason as usize].fetch_add(n, Relaxed);
    }

    /// A picture took `us` from frame to JPEG.
    pub fn picture_time(&self, us: u64) {
        let bucket = PICTURE_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(PICTURE_BUCKETS_US.len());
        self.picture_buckets[bucket].fetch_add(1, Relaxed);
        self.picture_sum_us.fetch_add(us, Relaxed);
    }

    /// Adapters open now, by kind.
    pub fn open(&self, kind: Kind) -> u64 {
        self.open[kind as usize].load(Relaxed)
    }

    /// Adapters opened so far, by kind.
    pub fn opened_total(&self, kind: Kind) -> u64 {
        self.opened[kind as usize].load(Relaxed)
    }

    /// Adapters closed so far, by reason.
    pub fn closed_total(&self, reason: CloseReason) -> u64 {
        self.closed[reason as usize].load(Relaxed)
    }

    /// Drops so far, by reason.
    pub fn drops(&self, reason: Drop) -> u64 {
        self.drops[reason as usize].load(Relaxed)
    }

    /// The picture-time histogram: cumulative counts per bucket bound
    /// (the last is +Inf), the sum in µs.
    pub fn picture_histogram(&self) -> (Vec<(Option<u64>, u64)>, u64) {
        let mut cumulative = 0;
        let mut out = Vec::new();
        for (i, b) in self.picture_buckets.iter().enumerate() {
            cumulative += b.load(Relaxed);
            out.push((PICTURE_BUCKETS_US.get(i).copied(), cumulative));
        }
        (out, self.picture_sum_us.load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_enum_lists_its_variants_in_discriminant_order() {
        assert!(Kind::ALL.iter().enumerate().all(|(i, k)| *k as usize == i));
        assert!(
            CloseReason::ALL
                .iter()
                .enumerate()
                .all(|(i, r)| *r as usize == i)
        );
        assert!(Drop::ALL.iter().enumerate().all(|(i, d)| *d as usize == i));
    }
}
