//! Transport events from the media workers, on the control thread: ICE
//! bindings choose the worker that owns a session; DTLS records drive the
//! handshake, whose keys are then installed there; media off a session's
//! path and floods are judged. Keyframe requests are in `keyframes`,
//! timers and expiry in `expiry`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::engine::MovedSession;
use crate::engine::messages::{EngineEvent, WorkerCommand};
use crate::ids::{SessionKey, TrackKey, WorkerId};
use crate::simulcast::Layer;

use super::consent::Consent;
use super::keyframes::KEYFRAME_INTERVAL;
use super::path::PathDecision;
use super::session::TransportBinding;
use super::{Control, State};
use crate::dtls_threads::Job;

/// The keys a session has when its path moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keys {
    /// Those of its DTLS association so far.
    Same,
    /// Those of a handshake that just completed on the new path.
    New,
}

/// A session that floods (past its event budget) this many seconds in a
/// row is closed.
const FLOOD_WINDOWS: u32 = 5;
/// Flooding reports further apart than this start a new streak.
const FLOOD_GAP: Duration = Duration::from_millis(2500);

impl Control {
    /// Handles one event from a media worker.
    pub fn handle_event(&self, event: EngineEvent, now: Instant) {
        let mut st = self.lock();
        match event {
            EngineEvent::Bound {
                key,
                worker,
                addr,
                nominated,
                txid,
                at,
            } => {
                st.note_event(at, now);
                let binding = TransportBinding {
                    worker,
                    addr,
                    nominated,
                };
                self.handle_bound(&mut st, key, binding, txid, at, now)
            }
            EngineEvent::Dtls {
                key,
                worker,
                addr,
                bytes,
            } => self.handle_dtls(&mut st, key, worker, addr, bytes),
            EngineEvent::OffPath {
                key,
                worker,
                addr,
                at,
                bytes,
            } => self.handle_off_path(&mut st, key, (worker, addr), at, bytes, now),
            EngineEvent::Handshake {
                key,
                from,
                result,
                flight,
            } => {
                self.handle_handshake(&mut st, key, from, result, now);
                // The client learns that the handshake is done only now.
                for bytes in flight {
                    self.workers[from.0.0].send(WorkerCommand::Send { to: from.1, bytes });
                }
            }
            EngineEvent::HandedOver { key, to, session } => {
                self.handle_handed_over(&mut st, key, to, session)
            }
            EngineEvent::DataChannels { key, event } => {
                self.handle_channel_event(&mut st, key, event)
            }
            EngineEvent::KeyframeRequest { track, layer } => {
                self.request_keyframe_of(&mut st, track, layer, now)
            }
            EngineEvent::Flooding { key, at } => {
                st.note_event(at, now);
                self.handle_flooding(&mut st, key, at);
            }
            EngineEvent::MediaReceived { track, at } => {
                st.note_event(at, now);
                let seen = st.media_seen.entry(track).or_insert(at);
                *seen = (*seen).max(at);
                self.reactivate_if_idle(&mut st, track);
            }
        }
    }

    /// A session past its budget of events: one that floods for
    /// [`FLOOD_WINDOWS`] windows in a row is closed (its address unbound,
    /// its tracks gone), with one WARN line.
    fn handle_flooding(&self, st: &mut State, key: SessionKey, at: Instant) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        let (last, streak) = session.flooding.get_or_insert((at, 0));
        *streak = if at.saturating_duration_since(*last) <= FLOOD_GAP {
            *streak + 1
        } else {
            1
        };
        *last = at;
        if *streak >= FLOOD_WINDOWS {
            tracing::warn!(session = %session.id, seconds = FLOOD_WINDOWS, "session closed: it flooded the server with DTLS records or ICE checks");
            self.remove_session(st, key);
        }
    }

    fn handle_bound(
        &self,
        st: &mut State,
        key: SessionKey,
        seen: TransportBinding,
        txid: [u8; 12],
        at: Instant,
        now: Instant,
    ) {
        let Some(session) = st
            .reg
            .session_mut(key)
            .filter(|s| s.dtls.failure().is_none())
        else {
            return;
        };
        if let Some(moved) = session.path.probe.answered(&txid, seen.worker, seen.addr) {
            tracing::info!(session = %session.id, to = %seen.addr, "media path moved: the new address answered our check");
            if let Some(consent) = session.consent.as_mut() {
                consent.proven(at);
            }
            self.switch_path(st, key, moved, Keys::Same, now);
            return;
        }
        let current = session.transport;
        let on_path = current.is_some_and(|t| t.addr == seen.addr);
        if on_path
            && session
                .consent
                .as_mut()
                .is_some_and(|c| c.answered(&txid, seen.addr, at))
        {
            // The client answered a consent check of ours: its path is alive.
            session.path.proven(seen.addr, at);
            st.consent.answers += 1;
            return;
        }
        let decision =
            session
                .path
                .handle_check(current, txid, seen.worker, seen.addr, seen.nominated, at);
        let new = match decision {
            // The client's checks refresh no consent (`consent`: anyone who
            // forges its address could send them); they nominate.
            PathDecision::Replay | PathDecision::Elsewhere => return,
            PathDecision::Current { nominated } => {
                if nominated {
                    if let Some(t) = session.transport.as_mut() {
                        t.nominated = true;
                    }
                    // The client now sends its media on this pair (after an
                    // ICE restart it may have used the old one until now):
                    // what was lost on the way is repaired by keyframes.
                    self.request_keyframes_around(st, key, now);
                }
                return;
            }
            PathDecision::Switch(new) => new,
        };
        self.move_path(st, key, new, now);
    }

    /// Media of `key` from `from`, an address its ICE checks bound that is
    /// not its path: authenticated already (`bytes` is `None`), it may move
    /// the path; else the worker that holds the session's SRTP context
    /// authenticates it first.
    fn handle_off_path(
        &self,
        st: &mut State,
        key: SessionKey,
        from: (WorkerId, SocketAddr),
        at: Instant,
        bytes: Option<Vec<u8>>,
        now: Instant,
    ) {
        let Some(session) = st
            .reg
            .session_mut(key)
            .filter(|s| s.dtls.failure().is_none())
        else {
            return;
        };
        let Some(current) = session.transport else {
            return;
        };
        let (worker, addr) = from;
        if let Some(bytes) = bytes {
            if current.worker != worker {
                self.workers[current.worker.0].send(WorkerCommand::Verify {
                    key,
                    worker,
                    addr,
                    bytes,
                });
            }
            return;
        }
        if let Some(new) = session.path.handle_media(Some(current), worker, addr, at) {
            tracing::debug!(session = %session.id, from = %current.addr, to = %addr, "the client sends media from its newly nominated address");
            self.move_path(st, key, new, now);
        }
    }

    /// Moves a session's media to `new`. Within one DTLS association
    /// ([`Keys::Same`]) its state moves with it from worker to worker
    /// (`engine::handover`); after a new handshake ([`Keys::New`]) the
    /// worker that owns the path starts afresh with the new keys.
    pub(super) fn switch_path(
        &self,
        st: &mut State,
        key: SessionKey,
        new: TransportBinding,
        keys_now: Keys,
        now: Instant,
    ) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        let current = session.transport;
        let TransportBinding { worker, addr, .. } = new;
        session.transport = Some(new);
        if let Some(keys_replaced) = st.handovers.get_mut(&key) {
            // Its state is in flight: it lands where the path is then. New
            // keys meanwhile go with it once it lands.
            *keys_replaced |= keys_now == Keys::New;
        } else {
            match current.filter(|c| c.worker != worker) {
                Some(old) if keys_now == Keys::Same => {
                    // Attached once the old worker reports its state.
                    st.handovers.insert(key, false);
                    self.workers[old.worker.0].send(WorkerCommand::HandOver { key, to: worker });
                }
                old => {
                    if let Some(old) = old {
                        self.workers[old.worker.0].send(WorkerCommand::Detach { key });
                    }
                    self.attach(st, key, worker, addr);
                }
            }
        }
        st.synced.forget(key);
        // Retransmissions follow the path; as DTLS client, the handshake
        // starts once ICE found it.
        if st.reg.session(key).is_some_and(|s| s.dtls.is_open()) {
            self.handshakes.send(Job::Path {
                key,
                path: (worker, addr),
            });
        }
        self.sync_now(st, &[key]);
        if current.is_some() {
            // Packets were lost while the path moved (no NACK yet).
            self.request_keyframes_around(st, key, now);
        }
    }

    /// A fresh media state for `key` on `worker`, at `addr`, with the
    /// session's keys when it has them.
    pub(super) fn attach(&self, st: &State, key: SessionKey, worker: WorkerId, addr: SocketAddr) {
        let w = &self.workers[worker.0];
        w.send(WorkerCommand::Attach { key, addr });
        if let Some(keys) = st.reg.session(key).and_then(|s| s.dtls.keys().cloned()) {
            w.send(WorkerCommand::Keys { key, keys });
        }
    }

    /// A worker let `key` go to worker `to` with its state: the worker that
    /// owns its path now takes it (with the keys of a handshake completed
    /// meanwhile), or a fresh one when the old worker had none; a session
    /// closed meanwhile is let go there too.
    fn handle_handed_over(
        &self,
        st: &mut State,
        key: SessionKey,
        to: WorkerId,
        moved: Option<MovedSession>,
    ) {
        let keys_replaced = st.handovers.remove(&key).unwrap_or(false);
        let session = st.reg.session(key);
        let path = session.and_then(|s| s.transport);
        let keys = session.and_then(|s| s.dtls.keys().cloned());
        match (path, moved) {
            (Some(t), Some(session)) => {
                let w = &self.workers[t.worker.0];
                w.send(WorkerCommand::Adopt {
                    key,
                    addr: t.addr,
                    session,
                });
                if let Some(keys) = keys.filter(|_| keys_replaced) {
                    w.send(WorkerCommand::Keys { key, keys });
                }
            }
            (Some(t), None) => self.attach(st, key, t.worker, t.addr),
            (None, Some(session)) => {
                let w = &self.workers[to.0];
                let addr = session.addr();
                w.send(WorkerCommand::Adopt { key, addr, session });
                w.send(WorkerCommand::Detach { key });
            }
            (None, None) => {}
        }
        // Its media and fan-out places, to the worker that has it now.
        st.synced.forget(key);
        self.sync_now(st, &[key]);
    }

    /// A DTLS record: to the session's handshake thread, or kept until its
    /// client's fingerprint is known.
    fn handle_dtls(
        &self,
        st: &mut State,
        key: SessionKey,
        worker: WorkerId,
        addr: SocketAddr,
        bytes: Vec<u8>,
    ) {
        let Some(session) = st
            .reg
            .session_mut(key)
            .filter(|s| s.dtls.failure().is_none())
        else {
            return;
        };
        if !session.dtls.is_open() {
            tracing::debug!(
                session = key.0,
                "DTLS record before the fingerprint is known"
            );
            session.dtls.hold((worker, addr), bytes);
            return;
        }
        self.handshakes.send(Job::Record {
            key,
            from: (worker, addr),
            bytes,
        });
    }

    /// A handshake thread finished a session's handshake.
    pub(super) fn handle_handshake(
        &self,
        st: &mut State,
        key: SessionKey,
        (worker, addr): (WorkerId, SocketAddr),
        result: Result<Box<crate::srtp::SrtpKeys>, String>,
        now: Instant,
    ) {
        if st
            .reg
            .session(key)
            .is_none_or(|s| s.dtls.failure().is_some())
        {
            return;
        }
        let keys = match result {
            Ok(keys) => keys,
            Err(reason) => return self.fail_session(st, key, reason),
        };
        // A second handshake completed from another address (a client that
        // replaced its transport): the client's own certificate proves it
        // is there; its media moves with it.
        let moved = st.reg.session_mut(key).and_then(|s| {
            let cur = s.transport?;
            let again = s.dtls.keys().is_some() && cur.addr != addr;
            again.then(|| s.path.proven(addr, now))
        });
        if moved.is_some() {
            let new = TransportBinding {
                worker,
                addr,
                nominated: true,
            };
            self.switch_path(st, key, new, Keys::New, now);
        }
        self.on_connected(st, key, *keys, now)
    }

    /// A session whose transport failed for good before it ever connected
    /// (its DTLS handshake was refused, e.g. a certificate matching none of
    /// its fingerprints): it stops receiving and sending media, its tracks
    /// become inactive, its ICE credentials are forgotten, its API calls
    /// answer 410 with the reason, and it expires as any unconnected
    /// session. Other sessions are untouched.
    pub(super) fn fail_session(&self, st: &mut State, key: SessionKey, reason: String) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        if !session.dtls.fail(reason.clone()) {
            // A connected association is never failed by a later record:
            // whoever can send from its 5-tuple must not end it.
            tracing::debug!(session = %session.id, reason = %reason, "DTLS record refused");
            return;
        }
        tracing::warn!(session = %session.id, reason = %reason, "session transport failed");
        self.handshakes.send(Job::Close { key });
        session.transport = None;
        for p in &mut session.pushed {
            p.active = false;
            p.idle = false;
        }
        self.directory.remove(&session.ice.ufrag);
        for w in &self.workers {
            w.send(WorkerCommand::Detach { key });
        }
        st.synced.forget(key);
        self.sync_now(st, &[key]);
    }

    /// Hands the session's handshake to its handshake thread once the
    /// client's fingerprint is known, with the records that came before.
    pub(super) fn ensure_dtls(&self, st: &mut State, key: SessionKey) {
        let Some(session) = st.reg.session_mut(key) else {
            return;
        };
        let Some(backlog) = session.dtls.open() else {
            return;
        };
        self.handshakes.send(Job::Open {
            key,
            fingerprints: session.dtls.remote_fingerprints.clone(),
            role: session.dtls.role,
            path: session.transport.map(|t| (t.worker, t.addr)),
            backlog,
        });
        self.replay_channels(st, key);
    }

    pub(super) fn on_connected(
        &self,
        st: &mut State,
        key: SessionKey,
        keys: crate::srtp::SrtpKeys,
        now: Instant,
    ) {
        let Some((app, session)) = st.reg.sessions.get_mut(&key) else {
            return;
        };
        let again = session.dtls.connected(keys.clone(), now);
        tracing::info!(session = %session.id, profile = ?keys.profile, again, "DTLS connected");
        let first = !again;
        // The handshake came from the session's address: consent is fresh.
        match session.consent.as_mut() {
            Some(consent) => consent.proven(now),
            None => session.consent = Some(Consent::new(self.limits.consent_timeout, now)),
        }
        if let Some(t) = session.transport {
            self.workers[t.worker.0].send(WorkerCommand::Keys { key, keys });
        }
        if let Some(keys_replaced) = st.handovers.get_mut(&key) {
            *keys_replaced = true; // sent again once its state lands
        }
        if first {
            let app = app.clone();
            st.reg.count_connected(&app);
        }
        // Its media starts at once: the keyframe asked for below must find
        // it in the fan-out tables.
        self.sync_now(st, &[key]);
        if again {
            // New keys (a new handshake): what was in flight is lost.
            self.request_keyframes_around(st, key, now);
        } else {
            // Forwarding starts now: ask each source for a keyframe.
            self.request_new_keyframes(st, key, now);
        }
    }

    /// Keyframes for every active pull of a connected session. (A pull of
    /// a simulcast track asks for its own layer's keyframe on its worker,
    /// when it starts or changes layer: asking every layer would cost the
    /// publisher a keyframe on each.)
    pub(super) fn request_new_keyframes(&self, st: &mut State, key: SessionKey, now: Instant) {
        let Some(session) = st.reg.session(key).filter(|s| s.is_connected()) else {
            return;
        };
        let tracks: Vec<TrackKey> = session
            .active_pulls()
            .into_iter()
            .filter(|t| {
                st.reg
                    .track_owner(*t)
                    .is_some_and(|(_, p)| p.rids.is_empty())
            })
            .collect();
        for track in tracks {
            self.request_keyframe(st, track, now);
        }
    }

    /// Sends a PLI upstream for every stream of `track`, at most once per
    /// 500 ms; a request inside the window is sent when it ends.
    pub(super) fn request_keyframe(&self, st: &mut State, track: TrackKey, now: Instant) {
        self.request_keyframe_of(st, track, None, now);
    }

    /// Sends a PLI upstream for `track`'s simulcast `layer` (or all its
    /// streams), at most once per 500 ms per layer; a request inside the
    /// window is sent when it ends.
    pub(super) fn request_keyframe_of(
        &self,
        st: &mut State,
        track: TrackKey,
        layer: Option<Layer>,
        now: Instant,
    ) {
        let id = (track, layer);
        if let Some(entry) = st.keyframes.get_mut(&id)
            && now.saturating_duration_since(entry.0) < KEYFRAME_INTERVAL
        {
            entry.1 = true;
            st.keyframes_waiting.insert(id);
            return;
        }
        st.keyframes.insert(id, (now, false));
        let Some((publisher, _)) = st.reg.track_owner(track) else {
            return;
        };
        if let Some(t) = publisher.transport {
            self.workers[t.worker.0].send(WorkerCommand::RequestKeyframe {
                key: publisher.key,
                track,
                layer,
            });
        }
    }

    /// Removes a session: its ICE credentials, its worker state, its tracks.
    pub(super) fn remove_session(&self, st: &mut State, key: SessionKey) {
        self.remove_sessions(st, vec![key]);
    }
}
