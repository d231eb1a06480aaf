//! Keeping this node's part of the directory: three tasks on the control
//! thread's runtime, so that none waits on another's calls.
//! - the heartbeat lists the node every [`HEARTBEAT`] (its entry lives
//!   [`store::NODE_TTL`]), and finds out when the directory may have lost
//!   this node's records: an error, a beat later than the entry's life, the
//!   entry or the directory's marker gone;
//! - the feed writes the control plane's session changes, and all of the
//!   node's sessions when the directory may have lost them (start, outage,
//!   late beat, lost records, failed write) and every [`REWRITE`];
//! - the upkeep closes relays whose node left and relays nobody uses.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::control::mirrors::SessionChange;
use crate::ids::AppId;

use super::store::{self, StoreError};
use super::{Cluster, HEARTBEAT, REWRITE};

impl Cluster {
    /// Starts the heartbeat, the feed of `changes` and the relays' upkeep;
    /// they run as long as the node does.
    pub fn spawn(self: &Arc<Self>, changes: tokio::sync::mpsc::UnboundedReceiver<SessionChange>) {
        tokio::spawn(self.clone().heartbeats());
        tokio::spawn(self.clone().feed(changes));
        tokio::spawn(self.clone().upkeep());
    }

    async fn heartbeats(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first outage is logged even at a start without Redis.
        let mut warned = false;
        let mut last_beat: Option<Instant> = None;
        loop {
            tick.tick().await;
            let left = self.left.lock().await;
            if *left {
                return;
            }
            let result = self.store.heartbeat(&self.node).await;
            drop(left);
            let now = Instant::now();
            let mut up_since = self.up_since.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(beat) => {
                    up_since.get_or_insert(now);
                    // Our record may have expired before this beat (a
                    // stall longer than its TTL), or the directory lost
                    // what we wrote: write everything again.
                    let late = last_beat
                        .is_some_and(|t| now.saturating_duration_since(t) >= store::NODE_TTL);
                    if !beat.was_listed || !beat.marker_kept || late {
                        self.in_sync.store(false, Relaxed);
                        if last_beat.is_some() {
                            tracing::warn!(
                                late,
                                listed = beat.was_listed,
                                marker = beat.marker_kept,
                                "cluster directory: this node's records may be gone; writing them all again"
                            );
                        }
                    }
                    last_beat = Some(now);
                    if self.counters.directory_up.swap(1, Relaxed) == 0 {
                        tracing::info!(node = %self.node.id, api = %self.node.api, "cluster directory reachable; this node is listed");
                    }
                }
                Err(e) => {
                    *up_since = None;
                    self.in_sync.store(false, Relaxed);
                    // Once per outage (and at a start without Redis).
                    let was_up = self.counters.directory_up.swap(0, Relaxed) == 1;
                    if was_up || !warned {
                        warned = true;
                        tracing::warn!(error = %e, "cluster directory unreachable: forwarding goes on, calls that need it answer 503");
                    }
                }
            }
        }
    }

    async fn feed(
        self: Arc<Self>,
        mut changes: tokio::sync::mpsc::UnboundedReceiver<SessionChange>,
    ) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_rewrite = Instant::now();
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { return };
                    if self.in_sync.load(Relaxed) && let Err(e) = self.record(&change).await {
                        tracing::warn!(error = %e, "cluster directory: a session change was not recorded");
                        self.in_sync.store(false, Relaxed);
                    }
                }
                _ = tick.tick() => {
                    let up = self.counters.directory_up.load(Relaxed) == 1;
                    let due = !self.in_sync.load(Relaxed) || Instant::now() >= next_rewrite;
                    if up && due {
                        // In sync from here: changes made while it writes
                        // are recorded after it.
                        self.in_sync.store(true, Relaxed);
                        self.counters.resyncs.fetch_add(1, Relaxed);
                        match self.store.record_all(&self.node.id, &self.control.own_sessions()).await {
                            Ok(()) => next_rewrite = Instant::now() + REWRITE,
                            Err(e) => {
                                tracing::warn!(error = %e, "cluster directory: sessions not written again yet");
                                self.in_sync.store(false, Relaxed);
                            }
                        }
                    }
                }
            }
        }
    }

    async fn upkeep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            // A node's absence means it left only once every node had the
            // time to heartbeat (a directory that restarted empty lists
            // nobody yet).
            let settled = self
                .up_since
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|t| now.saturating_duration_since(t) >= store::NODE_TTL);
            self.upkeep_relays(now, settled).await;
        }
    }

    /// Records a session this node just created, before its creator hears
    /// of it (its next call may reach another node). Without the directory
    /// the session still works on this node; it is written with all the
    /// others once the directory is back.
    pub async fn record_new_session(&self, app: &AppId, id: &str) {
        if self.counters.directory_up.load(Relaxed) == 1
            && let Ok(()) = self.store.record_session(&app.0, id, &self.node.id).await
        {
            return;
        }
        self.in_sync.store(false, Relaxed);
    }

    async fn record(&self, change: &SessionChange) -> Result<(), StoreError> {
        match change {
            SessionChange::Removed(app, id) => self.store.forget_session(&app.0, &id.0).await,
            SessionChange::Tracks(app, id, names) => {
                self.store.record_tracks(&app.0, &id.0, names).await
            }
        }
    }
}
