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
//! - [`relay`]: the cascade. The first local pull of a track of another
//!   node makes a *mirror* of that node here (`control::cluster`), fed by
//!   one relay: a third-party session of ours on the owning node that pulls
//!   the tracks through that node's own API. Local subscribers pull the
//!   mirror's tracks by their names on their node; NACKs and keyframe
//!   requests go up the relay like any subscriber's.
//! - [`http`]: the calls between nodes.
//!
//! A single node has none of this: without `--cluster-redis` no cluster
//! exists and no Redis is needed.

mod directory;
pub mod forward;
pub mod http;
pub mod relay;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};

use crate::control::Control;
use crate::ids::AppId;

use store::{Node, Store, StoreError};

/// The header that carries the cluster secret on calls between nodes.
pub const SECRET_HEADER: &str = "x-switchboard-cluster";
/// How often the node's heartbeat and the relays' upkeep run.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often the node writes all its sessions again (their keys expire
/// after [`store::SESSION_TTL`], so a crashed node's go by themselves).
pub const REWRITE: Duration = Duration::from_secs(20 * 60);

/// Held while the relay from one node is set up or extended.
type RelayLock = Arc<tokio::sync::Mutex<()>>;

/// This node's membership.
pub struct Cluster {
    /// This node.
    pub node: Node,
    secret: HeaderValue,
    store: Store,
    control: Arc<Control>,
    /// App secrets: a relay is set up through the owner's API as the app.
    apps: HashMap<AppId, String>,
    /// One relay set-up at a time per (app, owning node).
    relay_locks: Mutex<HashMap<(AppId, String), RelayLock>>,
    /// What it did (for metrics).
    pub counters: Counters,
    /// Whether the directory holds all of this node's sessions: false at
    /// the start, after an outage and after a failed write, until all are
    /// written again.
    in_sync: std::sync::atomic::AtomicBool,
    /// Since when the directory has answered every heartbeat.
    up_since: Mutex<Option<Instant>>,
    /// Held by a heartbeat while it writes; true once the node left, so
    /// that no heartbeat lists it again after [`Cluster::leave`].
    left: tokio::sync::Mutex<bool>,
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
        secret: HeaderValue,
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
            in_sync: Default::default(),
            up_since: Mutex::new(None),
            left: tokio::sync::Mutex::new(false),
        }))
    }

    /// Whether a call carries the cluster secret (compared in constant
    /// time): it comes from another node and is served here, never
    /// forwarded again.
    pub fn is_internal(&self, headers: &HeaderMap) -> bool {
        headers.get(SECRET_HEADER).is_some_and(|given| {
            crate::ids::secrets_equal(given.as_bytes(), self.secret.as_bytes())
        })
    }

    /// Leaves the directory (a graceful stop); the heartbeat's expiry does
    /// it otherwise. A heartbeat under way is waited for, and none follows.
    pub async fn leave(&self) {
        let mut left = self.left.lock().await;
        *left = true;
        let _ = self.store.leave(&self.node.id).await;
    }
}
