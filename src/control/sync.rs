//! Tells the media workers what the registry now says: each session's
//! routes and outlets (`SessionMedia`) to the worker that owns it, and each
//! pushed track's fan-out table. Sends only what changed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::messages::WorkerCommand;
use crate::fanout::FanoutTable;
use crate::ids::{AppId, SessionKey, TrackKey};
use crate::session::{InboundRoute, Outlet, SessionMedia};
use crate::worker::WorkerHandle;

use super::registry::Registry;
use super::session::Session;

/// The media a session's worker needs.
pub fn session_media(session: &Session, reg: &Registry) -> SessionMedia {
    let inbound = session
        .pushed
        .iter()
        .filter(|p| p.active)
        .map(|p| InboundRoute {
            mid: p.mid.clone(),
            ssrcs: p.ssrcs.clone(),
            payload_types: p.codecs.iter().map(|c| c.pt).collect(),
            clock_rate: p.codecs.first().map_or(90000, |c| c.clock_rate),
            fanout: p.fanout.clone(),
        })
        .collect();
    let outlets = session
        .transceivers
        .iter()
        .filter(|t| !t.stopped)
        .filter_map(|t| {
            let s = t.subscription.as_ref().filter(|s| s.active)?;
            // Forwarded extensions negotiated on both sides: ids remapped.
            let mut extensions = [0u8; 16];
            if let Some((_, track)) = reg.track_owner(s.track) {
                for e in &track.extmaps {
                    if let Some(ours) = t.extmaps.iter().find(|x| x.uri == e.uri) {
                        extensions[usize::from(e.id & 15)] = ours.id;
                    }
                }
            }
            Some(Outlet {
                track: s.track,
                ssrc: t.send.as_ref()?.ssrc,
                payload_types: s.payload_types.clone(),
                extensions,
            })
        })
        .collect();
    SessionMedia {
        mid_extension: session.mid_extension(),
        rtcp_ssrc: session.rtcp_ssrc,
        inbound,
        outlets,
    }
}

/// What was last sent to workers, to send only changes.
#[derive(Default)]
pub struct Synced {
    media: HashMap<SessionKey, Arc<SessionMedia>>,
}

impl Synced {
    /// Forgets a session (after Detach), so that a re-attach resends its media.
    pub fn forget(&mut self, key: SessionKey) {
        self.media.remove(&key);
    }

    /// Brings the workers up to date for every session and track of `app`.
    pub fn sync_app(&mut self, reg: &Registry, app: &AppId, workers: &[WorkerHandle]) {
        let keys = reg.app_sessions(app);
        let mut tables: HashMap<TrackKey, FanoutTable> = HashMap::new();
        for key in &keys {
            let Some(session) = reg.session(*key) else {
                continue;
            };
            for p in &session.pushed {
                tables.entry(p.key()).or_insert_with(|| FanoutTable {
                    per_worker: vec![Vec::new(); workers.len()],
                });
            }
            let Some(binding) = session.transport else {
                continue;
            };
            let media = session_media(session, reg);
            if session.is_connected() {
                for o in &media.outlets {
                    let table = tables.entry(o.track).or_insert_with(|| FanoutTable {
                        per_worker: vec![Vec::new(); workers.len()],
                    });
                    if let Some(list) = table.per_worker.get_mut(binding.worker.0)
                        && !list.contains(key)
                    {
                        list.push(*key);
                    }
                }
            }
            let changed = self.media.get(key).is_none_or(|m| **m != media);
            if changed {
                let media = Arc::new(media);
                self.media.insert(*key, media.clone());
                if let Some(w) = workers.get(binding.worker.0) {
                    w.send(WorkerCommand::Media { key: *key, media });
                }
            }
        }
        for key in &keys {
            let Some(session) = reg.session(*key) else {
                continue;
            };
            for p in &session.pushed {
                let mut table = tables.remove(&p.key()).unwrap_or_default();
                if !p.active {
                    table = FanoutTable::default();
                }
                for list in &mut table.per_worker {
                    list.sort();
                }
                p.fanout.store(table);
            }
        }
    }
}
