//! The control thread's state and operations: the registry of apps,
//! sessions and tracks, the Calls API operations on it, and the transport
//! events from media workers (ICE bindings, DTLS records, keyframe
//! requests). Everything here runs under one mutex, held only for the
//! duration of one operation and never across an await; the control thread
//! is a single-threaded runtime, so it is uncontended.

mod channel_ops;
pub mod channel_state;
pub mod check_targets;
pub mod codecs;
pub mod consent;
mod consent_checks;
pub mod describe;
mod end_session;
mod expiry;
#[cfg(test)]
mod handover_tests;
mod keyframes;
pub mod limits;
mod memory;
pub mod mirrors;
pub mod mlines;
pub mod negotiate;
mod operations;
pub mod path;
mod path_move;
pub mod path_probe;
pub mod peer_checks;
pub mod pulls;
pub mod rate_window;
pub mod recordable;
pub mod registry;
#[cfg(test)]
mod scale_tests;
pub mod session;
pub mod session_dtls;
pub mod signalling;
pub mod stats;
pub mod sync;
mod third_party;
pub mod track_changes;
pub mod transceiver;
mod transport;

pub use operations::Admitted;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::calls::CallsError;
use crate::config::Limits;
use crate::dtls::DtlsIdentity;
use crate::dtls_threads::HandshakePool;
use crate::engine::ice_directory::IceDirectory;
use crate::ids::{AppId, SessionKey, TrackKey};
use crate::simulcast::Layer;
use crate::worker::WorkerHandle;

use registry::Registry;
use sync::Synced;

/// What a bearer token granted: the whole app, or one scope of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The app's secret (or another node's signed call for its client).
    AppSecret,
    /// A token derived for the scope asked ([`crate::ids::scoped_token`]).
    Scoped,
}

/// The control plane shared by the HTTP handlers and the event loop.
pub struct Control {
    state: Mutex<State>,
    workers: Vec<WorkerHandle>,
    identity: Arc<DtlsIdentity>,
    handshakes: HandshakePool,
    directory: Arc<IceDirectory>,
    candidates: Vec<SocketAddr>,
    /// Caps on apps and sessions, and the never-connected timeout.
    limits: Limits,
    /// Set when fan-out tables wait for a flush.
    flush_due: tokio::sync::Notify,
    /// Where sessions created and removed are told (a cluster's directory).
    session_feed: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<mirrors::SessionChange>>,
}

struct State {
    reg: Registry,
    synced: Synced,
    /// Per track (and simulcast layer, or all its streams): when the last
    /// PLI went upstream, and whether one waits.
    keyframes: HashMap<(TrackKey, Option<Layer>), (Instant, bool)>,
    /// Requests that wait for the end of their window (the tick looks only
    /// at these).
    keyframes_waiting: std::collections::HashSet<(TrackKey, Option<Layer>)>,
    /// Per track: when media last arrived.
    media_seen: HashMap<TrackKey, Instant>,
    /// Tracks marked inactive for lack of media (media events for other
    /// tracks need no look at the registry).
    idle_tracks: std::collections::HashSet<TrackKey>,
    /// The last worker event handled: when the worker saw it, and when the
    /// control thread handled it.
    last_event: Option<(Instant, Instant)>,
    /// When consent and idle tracks are judged next.
    next_liveness: Instant,
    /// sessions/new per client address, when limited.
    new_sessions: rate_window::AddressRate,
    /// Sessions whose media state is on its way between workers
    /// (`engine::handover`), and whether a new handshake replaced their
    /// keys meanwhile.
    handovers: HashMap<SessionKey, bool>,
    /// When freed heap is next given back.
    trim: memory::Trim,
    /// Third-party sessions: we send their ICE checks.
    third_party: std::collections::HashSet<SessionKey>,
    /// Copies of sessions of other nodes (a cluster's relays).
    mirrors: mirrors::Mirrors,
    /// The active pushed tracks of each session, as last told to the
    /// session feed (a cluster's directory).
    told_tracks: HashMap<SessionKey, Vec<String>>,
    /// Tracks and subscriptions, as last counted (once a second).
    population: Population,
    /// Consent checks sent and answered, and consents lost.
    consent: consent::ConsentCounters,
}

/// What the registry holds, counted for the metrics' gauges.
#[derive(Debug, Default, Clone, Copy)]
struct Population {
    /// Active pushed tracks.
    tracks: usize,
    /// Pulls on live transceivers.
    subscriptions: usize,
}

impl Population {
    /// Counts what `reg` holds.
    fn of(reg: &Registry) -> Self {
        let mut p = Population::default();
        for (_, session) in reg.sessions.values() {
            p.tracks += session.pushed.iter().filter(|t| t.active).count();
            p.subscriptions += session
                .transceivers
                .iter()
                .filter(|t| !t.stopped && t.subscription.is_some())
                .count();
        }
        p
    }
}

/// The control thread is behind the workers when the event it handled last
/// (within this long) had waited longer than this in the queue.
const EVENT_LAG: std::time::Duration = std::time::Duration::from_secs(1);

impl State {
    /// The state of a control plane over `reg`, starting at `now`.
    fn new(reg: Registry, now: Instant) -> Self {
        State {
            reg,
            synced: Synced::default(),
            keyframes: HashMap::new(),
            keyframes_waiting: Default::default(),
            media_seen: HashMap::new(),
            idle_tracks: Default::default(),
            last_event: None,
            next_liveness: now,
            new_sessions: Default::default(),
            handovers: HashMap::new(),
            trim: memory::Trim::new(now),
            third_party: Default::default(),
            mirrors: Default::default(),
            told_tracks: HashMap::new(),
            population: Population::default(),
            consent: Default::default(),
        }
    }

    /// Records that an event the worker saw at `at` was handled at `now`.
    fn note_event(&mut self, at: Instant, now: Instant) {
        self.last_event = Some((at, now));
    }

    /// Whether worker events are still queued behind a stall: liveness must
    /// not be judged until they are handled.
    fn behind_workers(&self, now: Instant) -> bool {
        self.last_event.is_some_and(|(at, handled)| {
            now.saturating_duration_since(handled) < EVENT_LAG
                && handled.saturating_duration_since(at) > EVENT_LAG
        })
    }
}

impl Control {
    /// The control plane over running workers.
    pub fn new(
        apps: Vec<(AppId, String)>,
        workers: Vec<WorkerHandle>,
        identity: Arc<DtlsIdentity>,
        handshakes: HandshakePool,
        directory: Arc<IceDirectory>,
        candidates: Vec<SocketAddr>,
        limits: Limits,
    ) -> Arc<Self> {
        Arc::new(Control {
            state: Mutex::new(State::new(Registry::new(apps), Instant::now())),
            workers,
            identity,
            handshakes,
            directory,
            candidates,
            limits,
            flush_due: tokio::sync::Notify::new(),
            session_feed: std::sync::OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the registry is still
        // the best state there is, so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The worker that owns a session's transport and the client's
    /// address, once ICE bound it.
    pub fn session_transport(&self, session_id: &str) -> Option<(usize, SocketAddr)> {
        let st = self.lock();
        st.reg
            .sessions
            .values()
            .find(|(_, s)| s.id.0 == session_id)
            .and_then(|(_, s)| s.transport.map(|t| (t.worker.0, t.addr)))
    }

    /// How many sessions exist.
    pub fn session_count(&self) -> usize {
        self.lock().reg.sessions.len()
    }

    /// Sessions (now), pushed tracks (not closed) and subscriptions (pulls
    /// of live transceivers) as last counted, for the metrics' gauges: the
    /// control timers count them once a second, so `/metrics` costs the
    /// same whatever the number of sessions and however often it is read.
    pub fn population(&self) -> (usize, usize, usize) {
        let st = self.lock();
        (
            st.reg.sessions.len(),
            st.population.tracks,
            st.population.subscriptions,
        )
    }

    /// Consent checks sent and answered, and sessions that lost consent,
    /// since the start (RFC 7675; `consent`).
    pub fn consent_counters(&self) -> consent::ConsentCounters {
        self.lock().consent
    }

    /// Ends the handshake threads.
    pub fn shutdown(&self) {
        self.handshakes.shutdown();
    }

    /// How long first DTLS handshakes took (for metrics).
    pub fn handshake_time(
        &self,
    ) -> &crate::engine::counters::Histogram<crate::engine::counters::Milliseconds> {
        &self.handshakes.handshake_time
    }

    /// What the data channels counted (for metrics).
    pub fn data_channel_counters(&self) -> &crate::datachannel::counters::DataChannelCounters {
        &self.handshakes.counters
    }

    /// The worker handles (for metrics).
    pub fn workers(&self) -> &[WorkerHandle] {
        &self.workers
    }

    /// Checks the bearer token for `app`: 404 for an unknown app, 401 for a
    /// missing or wrong token (compared in constant time).
    pub fn authorize(&self, app: &str, bearer: Option<&str>) -> Result<AppId, CallsError> {
        self.check_token(app, bearer, None).map(|(id, _)| id)
    }

    /// Like [`Control::authorize`], but also accepts the token derived from
    /// the app's secret for `scope` ([`crate::ids::scoped_token`]); says
    /// which of the two it was.
    pub fn authorize_scoped(
        &self,
        app: &str,
        bearer: Option<&str>,
        scope: &str,
    ) -> Result<(AppId, Grant), CallsError> {
        self.check_token(app, bearer, Some(scope))
    }

    fn check_token(
        &self,
        app: &str,
        bearer: Option<&str>,
        scope: Option<&str>,
    ) -> Result<(AppId, Grant), CallsError> {
        let st = self.lock();
        let id = AppId(app.to_owned());
        let a = st
            .reg
            .apps
            .get(&id)
            .ok_or_else(|| CallsError::not_found("Unknown app"))?;
        // No token, or an empty one, never authorizes (whatever the app's
        // secret: the configuration refuses empty ones too).
        let given = bearer
            .filter(|b| !b.is_empty())
            .ok_or_else(CallsError::unauthorized)?;
        let secret = a.secret.as_bytes();
        let scoped = scope.map(|s| crate::ids::scoped_token(secret, s));
        if crate::ids::secrets_equal(given.as_bytes(), secret) {
            return Ok((id, Grant::AppSecret));
        }
        if scoped.is_some_and(|t| crate::ids::secrets_equal(given.as_bytes(), t.as_bytes())) {
            return Ok((id, Grant::Scoped));
        }
        Err(CallsError::unauthorized())
    }

    /// `app`, for a call another node of the cluster signed (that node
    /// checked its client's token): 404 for an unknown app.
    pub fn known_app(&self, app: &str) -> Result<AppId, CallsError> {
        let id = AppId(app.to_owned());
        if !self.lock().reg.apps.contains_key(&id) {
            return Err(CallsError::not_found("Unknown app"));
        }
        Ok(id)
    }

    /// A session of `app` by id, counting the request against its rate.
    fn session_key(
        &self,
        st: &mut State,
        app: &AppId,
        id: &str,
        now: Instant,
    ) -> Result<SessionKey, CallsError> {
        let key = st
            .reg
            .session_key(app, id)
            .ok_or_else(CallsError::session_gone)?;
        let session = st
            .reg
            .session_mut(key)
            .ok_or_else(CallsError::session_gone)?;
        if let Some(reason) = session.dtls.failure() {
            return Err(CallsError::session_failed(reason));
        }
        session
            .rate_window
            .count(self.limits.requests_per_second, now)?;
        Ok(key)
    }

    /// Tells the workers what changed for these sessions; their fan-out
    /// tables follow at the end of this control-loop turn.
    fn sync(&self, st: &mut State, changed: &[SessionKey]) {
        self.note_tracks(st, changed);
        let State { reg, synced, .. } = st;
        synced.sync(reg, changed, &self.workers);
        if synced.has_dirty_tables() {
            self.flush_due.notify_one();
        }
    }

    /// Like [`Control::sync`], with the fan-out tables stored at once: for
    /// changes that detach a session from a worker, so that no table lists
    /// it where its state is gone.
    fn sync_now(&self, st: &mut State, changed: &[SessionKey]) {
        self.note_tracks(st, changed);
        let State { reg, synced, .. } = st;
        synced.sync(reg, changed, &self.workers);
        synced.flush(reg);
    }

    /// Stores the fan-out tables that changed since the last flush.
    pub fn flush_fanout(&self) -> usize {
        let mut st = self.lock();
        let State { reg, synced, .. } = &mut *st;
        synced.flush(reg)
    }

    /// Flushes fan-out tables whenever a sync marked some, after the tasks
    /// ready in the same turn (e.g. many pulls of one track) have run.
    pub async fn run_fanout_flush(self: Arc<Self>) {
        loop {
            self.flush_due.notified().await;
            tokio::task::yield_now().await;
            self.flush_fanout();
        }
    }

    /// What the sync sent so far.
    pub fn sync_counts(&self) -> sync::SyncCounts {
        self.lock().synced.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_waits_while_worker_events_are_queued_behind_a_stall() {
        let t0 = Instant::now();
        let mut st = State::new(Registry::new(Vec::new()), t0);
        assert!(!st.behind_workers(t0), "no events yet");
        // A check seen by a worker at t0 handled 5 s later: behind.
        let t5 = t0 + std::time::Duration::from_secs(5);
        st.note_event(t0, t5);
        assert!(st.behind_workers(t5));
        // Caught up: an event handled as soon as it was seen.
        st.note_event(t5, t5);
        assert!(!st.behind_workers(t5));
        // A stale lag with nothing handled since (the queue is empty).
        st.note_event(t0, t5);
        assert!(!st.behind_workers(t5 + EVENT_LAG));
    }
}
