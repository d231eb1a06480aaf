//! Tells the media workers what the registry now says: each session's
//! routes and outlets (`SessionMedia`) to the worker that owns it, and each
//! pushed track's fan-out table.
//!
//! Work follows the change, not the app: an operation names the sessions it
//! changed; only their media is recomputed (and sent if it differs), and a
//! fan-out table is rebuilt only when its subscribers or its state changed,
//! from that track's own subscriber lists. Tables are marked here and
//! stored by [`Synced::flush`], once per control-loop turn, so that many
//! pulls of one track in one turn make one swap.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::codec::Codec;
use crate::engine::messages::WorkerCommand;
use crate::engine::session_media::{InboundRoute, Outlet, RtxStream, SessionMedia, SimulcastPull};
use crate::fanout::FanoutTable;
use crate::ids::{SessionKey, TrackKey};
use crate::sdp::{Extmap, MediaKind, extension};
use crate::simulcast::Preferences;
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
            nack: p
                .codecs
                .iter()
                .any(|c| c.rtcp_fb.iter().any(|f| f == "nack")),
            rtx: session
                .transceiver(&p.mid)
                .map(|t| {
                    t.codecs
                        .iter()
                        .filter_map(|c| c.rtx_of().map(|apt| (c.pt, apt)))
                        .collect()
                })
                .unwrap_or_default(),
            formats: if p.rids.is_empty() {
                Vec::new()
            } else {
                p.codecs
                    .iter()
                    .map(|c| (c.pt, Codec::from_name(&c.name)))
                    .collect()
            },
            rids: p.rids.clone(),
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
            let mut simulcast = None;
            if let Some((publisher, track)) = reg.track_owner(s.track) {
                simulcast = (!track.rids.is_empty()).then(|| SimulcastPull {
                    rids: track.rids.clone(),
                    preferences: s
                        .simulcast
                        .as_ref()
                        .map_or_else(Preferences::automatic, Preferences::from_api),
                });
                for e in &track.extmaps {
                    if let Some(ours) = t.extmaps.iter().find(|x| x.uri == e.uri) {
                        extensions[usize::from(e.id & 15)] = ours.id;
                    }
                }
                // The publisher's transport-wide number's place carries ours.
                let ours = t.extmaps.iter().find(|x| x.uri == extension::TRANSPORT_CC);
                if let (Some(theirs), Some(ours)) = (publisher.twcc_extension(), ours) {
                    extensions[usize::from(theirs & 15)] = ours.id;
                }
            }
            let send = t.send.as_ref()?;
            let rtx_types: Vec<(u8, u8)> = t
                .codecs
                .iter()
                .filter_map(|c| c.rtx_of().map(|apt| (apt, c.pt)))
                .collect();
            let rtx = send
                .rtx_ssrc
                .filter(|_| !rtx_types.is_empty())
                .map(|ssrc| RtxStream {
                    ssrc,
                    payload_types: rtx_types,
                });
            Some(Outlet {
                rtx,
                simulcast,
                nack: t
                    .codecs
                    .iter()
                    .any(|c| c.rtcp_fb.iter().any(|f| f == "nack")),
                track: s.track,
                video: t.kind == MediaKind::Video,
                ssrc: send.ssrc,
                payload_types: s.payload_types.clone(),
                extensions,
            })
        })
        .collect();
    SessionMedia {
        mid_extension: session.mid_extension(),
        twcc_extension: session.twcc_extension(),
        rid_extensions: (
            session.extension_id(extension::RTP_STREAM_ID),
            session.extension_id(extension::REPAIRED_RTP_STREAM_ID),
        ),
        rtcp_ssrc: session.rtcp_ssrc,
        inbound,
        outlets,
    }
}

/// What was last sent to workers, to send only changes.
#[derive(Default)]
pub struct Synced {
    sessions: FxHashMap<SessionKey, SyncedSession>,
    /// Per track: its connected subscribers, by worker, each list sorted:
    /// what its fan-out table holds while the track is active.
    tables: FxHashMap<TrackKey, Vec<Vec<SessionKey>>>,
    /// Tracks whose table [`Synced::flush`] must store.
    dirty: FxHashSet<TrackKey>,
    /// What was sent, for tests and metrics.
    pub counts: SyncCounts,
}

/// What the workers were told about one session.
#[derive(Default)]
struct SyncedSession {
    /// The media last sent to its worker; `None` when none was, or after a
    /// Detach (a re-attach resends it).
    media: Option<Arc<SessionMedia>>,
    /// The worker whose fan-out lists hold it, and the tracks it is listed
    /// under (it is listed while connected).
    listed: Option<(usize, Vec<TrackKey>)>,
    /// Its pushed tracks as last seen: key, active, forwarded extensions.
    pushed: Vec<(TrackKey, bool, Vec<Extmap>)>,
}

/// Counts of what the sync did since the start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncCounts {
    /// Sessions whose media was recomputed.
    pub sessions_examined: u64,
    /// `WorkerCommand::Media` sent.
    pub media_commands: u64,
    /// Fan-out tables swapped in.
    pub table_swaps: u64,
}

impl Synced {
    /// Forgets what a session's worker was told (after a Detach), so that
    /// the next sync resends its media.
    pub fn forget(&mut self, key: SessionKey) {
        if let Some(s) = self.sessions.get_mut(&key) {
            s.media = None;
        }
    }

    /// Whether fan-out tables wait for [`Synced::flush`].
    pub fn has_dirty_tables(&self) -> bool {
        !self.dirty.is_empty()
    }

    /// Brings the workers up to date for the sessions in `changed` (present
    /// or removed), and for the subscribers of any of their tracks whose
    /// forwarded extensions changed. Keeps the registry's track index.
    pub fn sync(&mut self, reg: &mut Registry, changed: &[SessionKey], workers: &[WorkerHandle]) {
        let mut queue: Vec<SessionKey> = changed.to_vec();
        while let Some(key) = queue.pop() {
            self.counts.sessions_examined += 1;
            match reg.session(key) {
                None => self.removed(key),
                Some(session) => {
                    let media = session_media(session, reg);
                    let pushed: Vec<(TrackKey, bool, Vec<Extmap>)> = session
                        .pushed
                        .iter()
                        .map(|p| (p.key(), p.active, p.extmaps.clone()))
                        .collect();
                    let binding = session.transport;
                    let listed = binding
                        .filter(|_| session.is_connected())
                        .map(|b| (b.worker.0, listed_tracks(&media)));
                    for (track, _, _) in &pushed {
                        reg.tracks.insert(*track, key);
                    }
                    let prev = self.sessions.entry(key).or_default();
                    for (track, active, extmaps) in &pushed {
                        let old = prev.pushed.iter().find(|(t, _, _)| t == track);
                        if old.is_none_or(|(_, a, _)| a != active) {
                            self.dirty.insert(*track);
                        }
                        if old.is_some_and(|(_, _, e)| e != extmaps) {
                            // Its subscribers map its extensions anew.
                            for list in self.tables.get(track).into_iter().flatten() {
                                queue.extend(list.iter().copied());
                            }
                        }
                        self.tables
                            .entry(*track)
                            .or_insert_with(|| vec![Vec::new(); workers.len()]);
                    }
                    prev.pushed = pushed;
                    if let Some(binding) = binding
                        && prev.media.as_deref() != Some(&media)
                    {
                        let media = Arc::new(media);
                        prev.media = Some(media.clone());
                        if let Some(w) = workers.get(binding.worker.0) {
                            self.counts.media_commands += 1;
                            w.send(WorkerCommand::Media { key, media });
                        }
                    }
                    self.relist(key, listed);
                }
            }
        }
    }

    /// A session gone from the registry: out of every fan-out list, its own
    /// tracks forgotten (their tables were emptied by the removal).
    fn removed(&mut self, key: SessionKey) {
        self.relist(key, None);
        if let Some(s) = self.sessions.remove(&key) {
            for (track, _, _) in s.pushed {
                self.tables.remove(&track);
                self.dirty.remove(&track);
            }
        }
    }

    /// Moves a session's entries in the fan-out lists from where they were
    /// to `listed`, marking the tables that change.
    fn relist(&mut self, key: SessionKey, listed: Option<(usize, Vec<TrackKey>)>) {
        let prev = self
            .sessions
            .get_mut(&key)
            .map(|s| std::mem::replace(&mut s.listed, listed.clone()))
            .unwrap_or_default();
        if prev == listed {
            return;
        }
        if let Some((worker, tracks)) = &prev {
            for track in tracks {
                let unchanged = listed
                    .as_ref()
                    .is_some_and(|(w, t)| w == worker && t.contains(track));
                if unchanged {
                    continue;
                }
                if let Some(list) = self.tables.get_mut(track).and_then(|l| l.get_mut(*worker))
                    && let Ok(i) = list.binary_search(&key)
                {
                    list.remove(i);
                    self.dirty.insert(*track);
                }
            }
        }
        if let Some((worker, tracks)) = &listed {
            for track in tracks {
                // A track whose publisher is gone has no table.
                if let Some(list) = self.tables.get_mut(track).and_then(|l| l.get_mut(*worker))
                    && let Err(i) = list.binary_search(&key)
                {
                    list.insert(i, key);
                    self.dirty.insert(*track);
                }
            }
        }
    }

    /// Stores the fan-out tables marked since the last flush: each copies
    /// that track's subscriber lists once. Returns how many were swapped.
    pub fn flush(&mut self, reg: &Registry) -> usize {
        let mut swaps = 0;
        for track in self.dirty.drain() {
            let Some((_, pushed)) = reg.track_owner(track) else {
                continue;
            };
            let table = match self.tables.get(&track) {
                Some(lists) if pushed.active => FanoutTable {
                    per_worker: lists.clone(),
                },
                _ => FanoutTable::default(),
            };
            if pushed.fanout.store(table) {
                swaps += 1;
            }
        }
        self.counts.table_swaps += swaps as u64;
        swaps
    }
}

/// The tracks a session's outlets receive, each once.
fn listed_tracks(media: &SessionMedia) -> Vec<TrackKey> {
    let mut tracks: Vec<TrackKey> = media.outlets.iter().map(|o| o.track).collect();
    tracks.sort_unstable();
    tracks.dedup();
    tracks
}
