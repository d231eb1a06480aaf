//! A cluster of nodes behind one API URL (architecture.md, "Scaling out"):
//! any node answers any API call, and a session on one node pulls a track
//! pushed on another.
//!
//! Where it sits: on the control thread, beside the API. Nothing here runs
//! per packet.
//! - [`store`]: the directory in Redis (live nodes, which node owns which
//!   session), fed by the control plane's session changes.
//! - [`forward`]: an API call for another node's session goes to that node
//!   (with the cluster secret) and its answer comes back as it is.
//! - [`relay`]: the cascade. The first local pull of a remote track makes
//!   a *mirror* of the remote session here (`control::cluster`), fed by one
//!   relay: a third-party session of ours on the owning node that pulls the
//!   track through that node's own API. Local subscribers pull the mirror;
//!   NACKs and keyframe requests go up the relay like any subscriber's.
//! - [`http`]: the calls between nodes.
//!
//! A single node has none of this: without `--cluster-redis` no cluster
//! exists and no Redis is needed.

pub mod forward;
pub mod http;
pub mod relay;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use crate::control::Control;
use crate::control::cluster::SessionChange;
use crate::ids::AppId;

use store::{Node, Store, StoreError};

/// The header that carries the cluster secret on calls between nodes.
pub const SECRET_HEADER: &str = "x-switchboard-cluster";
/// How often the node's heartbeat and the relays' upkeep run.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Held while one remote session's relay is set up or extended.
type RelayLock = Arc<tokio::sync::Mutex<()>>;

/// This node's membership.
pub struct Cluster {
    /// This node.
    pub node: Node,
    secret: String,
    store: Store,
    control: Arc<Control>,
    /// App secrets: a relay is set up through the owner's API as the app.
    apps: HashMap<AppId, String>,
    /// One relay set-up at a time per remote session.
    relay_locks: Mutex<HashMap<(AppId, String), RelayLock>>,
    /// What it did (for metrics).
    pub counters: Counters,
    /// The directory's first outage was logged.
    warned: std::sync::atomic::AtomicBool,
}

/// Counts of the cluster's work.
#[derive(Debug, Default)]
pub struct Counters {
    /// API calls forwarded to the owning node.
    pub forwarded: std::sync::atomic::AtomicU64,
    /// Relays set up (mirrors created).
    pub relays_opened: std::sync::atomic::AtomicU64,
    /// Relays closed (unused, or their node left).
    pub relays_closed: std::sync::atomic::AtomicU64,
    /// Whether the directory answered the last heartbeat (0 or 1).
    pub directory_up: std::sync::atomic::AtomicU64,
}

impl Cluster {
    /// Joins the cluster whose directory is at `redis` as `node`.
    pub fn new(
        redis: &str,
        secret: String,
        node: Node,
        apps: Vec<(AppId, String)>,
        control: Arc<Control>,
    ) -> Result<Arc<Cluster>, StoreError> {
        Ok(Arc::new(Cluster {
            node,
            secret,
            store: Store::open(redis)?,
            control,
            apps: apps.into_iter().collect(),
            relay_locks: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            warned: Default::default(),
        }))
    }

    /// Whether a call carries the cluster secret (compared in constant
    /// time): it comes from another node and is served here, never
    /// forwarded again.
    pub fn is_internal(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers.get(SECRET_HEADER) else {
            return false;
        };
        let digest = |b: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
        let (given, expected) = (digest(given.as_bytes()), digest(self.secret.as_bytes()));
        aws_lc_rs::constant_time::verify_slices_are_equal(given.as_ref(), expected.as_ref()).is_ok()
    }

    /// The heartbeat, the directory feed and the relays' upkeep, for as
    /// long as the node runs.
    pub async fn run(
        self: Arc<Self>,
        mut changes: tokio::sync::mpsc::UnboundedReceiver<SessionChange>,
    ) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Whether the directory holds this node's sessions: false at the
        // start and after an outage, until all are written again.
        let mut in_sync = false;
        // Since when the directory has answered without a break: a node's
        // absence means it left only once every node had the time to
        // heartbeat (a directory that restarted empty lists nobody yet).
        let mut up_since: Option<Instant> = None;
        loop {
            tokio::select! {
                change = changes.recv() => {
                    let Some(change) = change else { return };
                    if in_sync && let Err(e) = self.record(&change).await {
                        tracing::warn!(error = %e, "cluster directory: a session change was not recorded");
                        in_sync = false;
                    }
                }
                _ = tick.tick() => {
                    in_sync = self.heartbeat(in_sync).await;
                    let now = Instant::now();
                    up_since = if in_sync { Some(up_since.unwrap_or(now)) } else { None };
                    let settled = up_since.is_some_and(|t| now.saturating_duration_since(t) >= store::NODE_TTL);
                    self.upkeep_relays(now, settled).await;
                }
            }
        }
    }

    /// Refreshes this node's entry, and writes every session again after
    /// an outage; whether the directory is in sync.
    async fn heartbeat(&self, in_sync: bool) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        if let Err(e) = self.store.heartbeat(&self.node).await {
            // Once per outage (and at a start without Redis).
            let was_up = self.counters.directory_up.swap(0, Relaxed) == 1;
            let first = !self.warned.swap(true, Relaxed);
            if was_up || first {
                tracing::warn!(error = %e, "cluster directory unreachable: forwarding goes on, new cross-node pulls fail");
            }
            return false;
        }
        if in_sync {
            return true;
        }
        for (app, id, tracks) in self.control.own_sessions() {
            let written = async {
                self.store
                    .record_session(&app.0, &id.0, &self.node.id)
                    .await?;
                self.store.record_tracks(&app.0, &id.0, &tracks).await
            };
            if let Err(e) = written.await {
                tracing::warn!(error = %e, "cluster directory: sessions not written again yet");
                return false;
            }
        }
        self.counters.directory_up.store(1, Relaxed);
        tracing::info!(node = %self.node.id, api = %self.node.api, "cluster directory reachable; this node is listed");
        true
    }

    async fn record(&self, change: &SessionChange) -> Result<(), StoreError> {
        match change {
            SessionChange::Created(app, id) => {
                self.store
                    .record_session(&app.0, &id.0, &self.node.id)
                    .await
            }
            SessionChange::Removed(app, id) => self.store.forget_session(&app.0, &id.0).await,
            SessionChange::Tracks(app, id, names) => {
                self.store.record_tracks(&app.0, &id.0, names).await
            }
        }
    }

    /// Leaves the directory (a graceful stop); the heartbeat's expiry does
    /// it otherwise.
    pub async fn leave(&self) {
        let _ = self.store.leave(&self.node.id).await;
    }
}
