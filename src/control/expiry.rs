//! The control thread's tick: sessions that never connected expire, consent
//! and idle tracks are judged once a second, and sessions past their
//! reconnect window are removed with their tracks.

use std::time::{Duration, Instant};

use crate::engine::messages::WorkerCommand;
use crate::ids::{SessionKey, TrackKey};
use crate::simulcast::Layer;

use super::keyframes::KEYFRAME_INTERVAL;
use super::{Control, State};
use crate::dtls_threads::Job;

/// After losing consent, the session may come back within this long; then
/// it and its tracks are gone.
const RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// Never-connected sessions removed per control tick (20 ms) at most, so
/// that a burst of expiries never holds the control thread for long.
const EXPIRE_PER_TICK: usize = 500;
/// Consent and idle tracks are judged this often (a scan of the sessions).
const LIVENESS_INTERVAL: Duration = Duration::from_secs(1);
/// A pushed track with no media for this long becomes inactive.
const TRACK_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Control {
    /// Timers: deferred keyframe requests, expiry, liveness (DTLS
    /// retransmissions run on the handshake threads).
    pub fn handle_tick(&self, now: Instant) {
        let mut st = self.lock();
        let waiting: Vec<(TrackKey, Option<Layer>)> = st
            .keyframes_waiting
            .iter()
            .copied()
            .filter(|t| {
                st.keyframes
                    .get(t)
                    .is_none_or(|(at, _)| now.saturating_duration_since(*at) >= KEYFRAME_INTERVAL)
            })
            .collect();
        for (track, layer) in waiting {
            st.keyframes_waiting.remove(&(track, layer));
            if st
                .keyframes
                .get(&(track, layer))
                .is_some_and(|(_, pending)| *pending)
            {
                self.request_keyframe_of(&mut st, track, layer, now);
            }
        }
        self.send_peer_checks(&mut st, now);
        let expired = self.never_connected_due(&mut st, now);
        self.remove_sessions(&mut st, expired);
        if now >= st.next_liveness {
            st.next_liveness = now + LIVENESS_INTERVAL;
            self.check_liveness(&mut st, now);
            self.send_consent_checks(&mut st, now);
            st.population = super::Population::of(&st.reg);
        }
        let sessions = st.reg.sessions.len();
        let trim = st.trim.due(now, sessions);
        drop(st);
        if trim {
            super::memory::release_freed_heap();
        }
    }

    /// Sessions that never connected and are past their time, oldest
    /// first, at most [`EXPIRE_PER_TICK`]: only the front of the creation
    /// queue is looked at, so the cost follows what expires.
    pub(super) fn never_connected_due(&self, st: &mut State, now: Instant) -> Vec<SessionKey> {
        let mut due = Vec::new();
        while due.len() < EXPIRE_PER_TICK {
            let Some(&(created, key)) = st.reg.created.front() else {
                break;
            };
            if now.saturating_duration_since(created) <= self.limits.never_connected_timeout {
                break;
            }
            st.reg.created.pop_front();
            if st.reg.session(key).is_some_and(|s| !s.is_connected()) {
                due.push(key);
            }
        }
        due
    }

    /// Consent freshness and idle tracks: a connected session with no valid
    /// ICE check for 30 s stops receiving media, and is removed 30 s later;
    /// a pushed track with no media for 30 s becomes inactive.
    pub(super) fn check_liveness(&self, st: &mut State, now: Instant) {
        if st.behind_workers(now) {
            // Events wait in the queue (the control thread stalled): what
            // they say is newer than what the registry says. Judge later.
            return;
        }
        let mut lost = Vec::new();
        let mut gone = Vec::new();
        let mut idle = Vec::new();
        for (key, (_, s)) in &st.reg.sessions {
            let (Some(connected_at), Some(consent)) = (s.dtls.connected_at(), &s.consent) else {
                continue;
            };
            let silent = consent.silent_for(now);
            if silent > consent.timeout() + RECONNECT_WINDOW {
                gone.push(*key);
            } else if silent > consent.timeout() && s.transport.is_some() {
                lost.push(*key);
            }
            for p in s.pushed.iter().filter(|p| p.active) {
                let last = st
                    .media_seen
                    .get(&p.key())
                    .copied()
                    .unwrap_or(connected_at)
                    .max(connected_at);
                if now.saturating_duration_since(last) > TRACK_IDLE_TIMEOUT {
                    idle.push((*key, p.key()));
                }
            }
        }
        for key in &gone {
            tracing::info!(session = key.0, "session expired after losing consent");
        }
        self.remove_sessions(st, gone);
        let mut changed: Vec<SessionKey> = Vec::new();
        for key in lost {
            let Some(session) = st.reg.session_mut(key) else {
                continue;
            };
            tracing::info!(session = %session.id, "consent lost: our checks went unanswered");
            st.consent.lost += 1;
            if let Some(t) = session.transport.take() {
                self.workers[t.worker.0].send(WorkerCommand::Detach { key });
            }
            changed.push(key);
            st.synced.forget(key);
        }
        for (key, track) in idle {
            if let Some(session) = st.reg.session_mut(key) {
                for p in session.pushed.iter_mut().filter(|p| p.key() == track) {
                    tracing::info!(session = %session.id, track = %p.name, "track idle for 30 s: inactive");
                    p.active = false;
                    p.idle = true;
                    st.idle_tracks.insert(track);
                }
            }
            changed.push(key);
        }
        self.sync_now(st, &changed);
    }

    /// Removes sessions, then tells the workers: their fan-out entries go,
    /// nothing else is looked at.
    pub(super) fn remove_sessions(&self, st: &mut State, keys: Vec<SessionKey>) {
        let removed: Vec<SessionKey> = keys
            .into_iter()
            .filter(|key| self.remove_unsynced(st, *key))
            .collect();
        self.sync_now(st, &removed);
    }

    /// Removes a session without telling the sync; whether it existed.
    pub(super) fn remove_unsynced(&self, st: &mut State, key: SessionKey) -> bool {
        self.close_all_channels(st, key);
        let Some((app, session)) = st.reg.remove_session(key) else {
            return false;
        };
        st.told_tracks.remove(&key);
        if st.mirrors.remove(&key).is_none() {
            self.note_session(super::mirrors::SessionChange::Removed(
                app,
                session.id.clone(),
            ));
        }
        self.directory.remove(&session.ice.ufrag);
        // Every worker may hold bindings of its 5-tuples, not only the owner.
        for w in &self.workers {
            w.send(WorkerCommand::Detach { key });
        }
        for p in &session.pushed {
            p.fanout.store(Default::default());
            st.keyframes.retain(|(t, _), _| *t != p.key());
            st.keyframes_waiting.retain(|(t, _)| *t != p.key());
            st.media_seen.remove(&p.key());
            st.idle_tracks.remove(&p.key());
        }
        self.handshakes.send(Job::Close { key });
        st.synced.forget(key);
        st.third_party.remove(&key);
        true
    }
}
