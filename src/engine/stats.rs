//! A snapshot of one session's media state for the per-session stats
//! route: what the worker that owns the session knows (round trip,
//! bandwidth estimate, reception per SSRC it pushes, sending per SSRC it
//! pulls). Taken on the worker when the control thread asks
//! ([`super::messages::WorkerCommand::Stats`]); never on the packet path.

use std::time::Duration;

use crate::ids::{Mid, SessionKey};
use crate::simulcast::Layer;

use super::Engine;

/// One session's media, as its worker sees it.
#[derive(Debug, Clone, Default)]
pub struct SessionStats {
    /// Smoothed round-trip time, once measured (RTCP echoes).
    pub rtt: Option<Duration>,
    /// Bandwidth estimate towards the client, bit/s (transport-cc), while
    /// it pulls tracks and sends feedback.
    pub estimate: Option<u64>,
    /// Its video is paused (the estimate cannot carry it).
    pub video_paused: bool,
    /// What it pushes, per SSRC.
    pub inbound: Vec<InboundStats>,
    /// What it pulls, per SSRC we send it.
    pub outbound: Vec<OutboundStats>,
}

/// One SSRC a session pushes.
#[derive(Debug, Clone)]
pub struct InboundStats {
    /// The SSRC.
    pub ssrc: u32,
    /// The transceiver it arrives on.
    pub mid: Mid,
    /// Its simulcast layer, when the track is simulcast.
    pub layer: Option<Layer>,
    /// Packets received.
    pub packets: u64,
    /// Packets lost (expected minus received).
    pub lost: i64,
    /// Interarrival jitter.
    pub jitter: Duration,
}

/// One SSRC we send a session.
#[derive(Debug, Clone)]
pub struct OutboundStats {
    /// Our SSRC.
    pub ssrc: u32,
    /// Packets sent (wrapping at 2³², as in sender reports).
    pub packets: u32,
    /// Payload octets sent (likewise).
    pub octets: u32,
    /// The simulcast layer forwarded now, for a simulcast pull.
    pub layer: Option<Layer>,
}

impl Engine {
    /// The snapshot of session `key`; None when it is not on this worker.
    pub(super) fn session_stats(&self, key: SessionKey) -> Option<SessionStats> {
        let s = self.sessions.get(&key)?;
        let inbound = s
            .inbound
            .iter()
            .filter_map(|(ssrc, r)| {
                let route = s.media.inbound.get(r.route)?;
                let (packets, lost, jitter) = r.totals();
                Some(InboundStats {
                    ssrc: *ssrc,
                    mid: route.mid.clone(),
                    layer: s.layers.get(ssrc).copied(),
                    packets,
                    lost,
                    jitter,
                })
            })
            .collect();
        let outbound = s
            .outbound
            .iter()
            .map(|(ssrc, o)| OutboundStats {
                ssrc: *ssrc,
                packets: o.packets,
                octets: o.octets,
                layer: o.layers.as_ref().and_then(|l| l.current()),
            })
            .collect();
        Some(SessionStats {
            rtt: s.rtt.measured(),
            estimate: s.estimate.as_ref().map(|e| e.bwe.estimate()),
            video_paused: s.estimate.as_ref().is_some_and(|e| e.paused),
            inbound,
            outbound,
        })
    }
}
