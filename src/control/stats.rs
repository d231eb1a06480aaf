//! The per-session stats route (`GET …/sessions/{id}/stats`, our
//! extension of the API): the control thread names what the session
//! pushes and pulls, asks the worker that owns the session for its media
//! snapshot ([`crate::engine::stats`]), and the HTTP handler waits for it
//! (at most [`STATS_WAIT`]) without holding the control lock, then joins
//! the two into JSON.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::calls::CallsError;
use crate::engine::messages::WorkerCommand;
use crate::engine::stats::SessionStats;
use crate::ids::{AppId, Mid, Rid};

use super::Control;

/// The longest wait for the worker's snapshot.
pub const STATS_WAIT: Duration = Duration::from_millis(1000);

/// A pushed track, by the transceiver it arrives on.
struct Pushed {
    mid: Mid,
    name: String,
    active: bool,
    rids: Vec<Rid>,
}

/// A pull, by the SSRC we send it on.
struct Pulled {
    mid: Mid,
    ssrc: Option<u32>,
    session_id: String,
    name: String,
    active: bool,
    rids: Vec<Rid>,
}

/// What the control thread knows of a session, and the worker's answer
/// to come.
pub struct StatsRequest {
    session_id: String,
    pushed: Vec<Pushed>,
    pulled: Vec<Pulled>,
    reply: Option<oneshot::Receiver<Option<SessionStats>>>,
}

impl Control {
    /// Names the session's tracks and asks its worker for a snapshot.
    pub fn stats_request(
        &self,
        app: &AppId,
        session_id: &str,
        now: Instant,
    ) -> Result<StatsRequest, CallsError> {
        let mut st = self.lock();
        let key = self.session_key(&mut st, app, session_id, now)?;
        let session = st.reg.session(key).ok_or_else(CallsError::session_gone)?;
        let pushed = session
            .pushed
            .iter()
            .map(|p| Pushed {
                mid: p.mid.clone(),
                name: p.name.0.clone(),
                active: p.active,
                rids: p.rids.clone(),
            })
            .collect();
        let pulled = session
            .transceivers
            .iter()
            .filter(|t| !t.stopped)
            .filter_map(|t| {
                let s = t.subscription.as_ref()?;
                let source = st.reg.track_owner(s.track).map(|(_, p)| p);
                Some(Pulled {
                    mid: t.mid.clone(),
                    ssrc: t.send.as_ref().map(|send| send.ssrc),
                    session_id: s.session_id.0.clone(),
                    name: s.track_name.0.clone(),
                    active: s.active && source.is_some_and(|p| p.active),
                    rids: source.map(|p| p.rids.clone()).unwrap_or_default(),
                })
            })
            .collect();
        let reply = session.transport.as_ref().map(|t| {
            let (tx, rx) = oneshot::channel();
            self.workers[t.worker.0].send(WorkerCommand::Stats { key, reply: tx });
            rx
        });
        Ok(StatsRequest {
            session_id: session.id.0.clone(),
            pushed,
            pulled,
            reply,
        })
    }
}

impl StatsRequest {
    /// Waits for the worker's snapshot and writes the route's JSON. A
    /// session with no media path (not connected, or consent lost) has
    /// `connected: false` and no media figures.
    pub async fn into_json(self) -> Result<Value, CallsError> {
        let media = match self.reply {
            Some(rx) => match tokio::time::timeout(STATS_WAIT, rx).await {
                Ok(Ok(media)) => media,
                // The worker stopped, or moved the session meanwhile.
                Ok(Err(_)) => None,
                Err(_) => {
                    return Err(CallsError::temporarily_unavailable(
                        "the session's media worker did not answer in time",
                    ));
                }
            },
            None => None,
        };
        let rid = |rids: &[Rid], layer: Option<crate::simulcast::Layer>| {
            layer
                .and_then(|l| rids.get(l.index()))
                .map(|r| r.as_str().to_owned())
        };
        let m = media.clone().unwrap_or_default();
        let mut tracks = Vec::new();
        for p in &self.pushed {
            let mut streams: Vec<&crate::engine::stats::InboundStats> =
                m.inbound.iter().filter(|i| i.mid == p.mid).collect();
            streams.sort_by_key(|i| (i.layer.map(|l| l.0), i.ssrc));
            let packets: u64 = streams.iter().map(|i| i.packets).sum();
            let lost: i64 = streams.iter().map(|i| i.lost).sum();
            let streams: Vec<Value> = streams
                .iter()
                .map(|i| {
                    json!({
                        "ssrc": i.ssrc,
                        "rid": rid(&p.rids, i.layer),
                        "packetsReceived": i.packets,
                        "packetsLost": i.lost,
                        "jitterMs": i.jitter.as_secs_f64() * 1e3,
                    })
                })
                .collect();
            tracks.push(json!({
                "location": "local",
                "mid": p.mid.0,
                "trackName": p.name,
                "status": if p.active { "active" } else { "inactive" },
                "packetsReceived": packets,
                "packetsLost": lost,
                "streams": streams,
            }));
        }
        for p in &self.pulled {
            let sent = p
                .ssrc
                .and_then(|ssrc| m.outbound.iter().find(|o| o.ssrc == ssrc));
            tracks.push(json!({
                "location": "remote",
                "mid": p.mid.0,
                "sessionId": p.session_id,
                "trackName": p.name,
                "status": if p.active { "active" } else { "inactive" },
                "ssrc": p.ssrc,
                "packetsSent": sent.map_or(0, |o| o.packets),
                "bytesSent": sent.map_or(0, |o| o.octets),
                "rid": rid(&p.rids, sent.and_then(|o| o.layer)),
            }));
        }
        Ok(json!({
            "sessionId": self.session_id,
            "connected": media.is_some(),
            "rttMs": m.rtt.map(|d| d.as_secs_f64() * 1e3),
            "estimateBitsPerSecond": m.estimate,
            "videoPaused": m.video_paused,
            "tracks": tracks,
        }))
    }
}
