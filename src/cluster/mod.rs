//! A cluster of nodes behind one API URL (architecture.md, "Scaling out"):
//! any node answers any API call, and a session on one node pulls a track
//! pushed on another.
//!
//! Where it sits: on the control thread, beside the API. Nothing here runs
//! per packet.
//! - [`store`]: the directory in Redis (live nodes, which node owns which
//!   session), fed by the control plane's session changes.
//! - [`forward`]: an API call for another node's session goes to that node
//!   (signed as a node's, [`node_call`]) and its answer comes back as it is.
//! - [`relay`]: the cascade. The first local pull of a track of another
//!   node makes a *mirror* of that node here (`control::mirrors`), fed by
//!   one relay: a third-party session of ours on the owning node that pulls
//!   the tracks through that node's own API. Local subscribers pull the
//!   mirror's tracks by their names on their node; NACKs and keyframe
//!   requests go up the relay like any subscriber's.
//! - [`http`]: the calls between nodes.
//! - [`trust`], [`node_call`], [`crate::config::peers`]: Redis is trusted for routing, not
//!   for authority. Directory records are sealed with a key derived from
//!   the cluster secret, calls between nodes carry a MAC instead of any
//!   secret, and a node calls only `http://host:port` URLs (within
//!   `--cluster-peers` when set).
//!
//! A single node has none of this: without `--cluster-redis` no cluster
//! exists and no Redis is needed.

mod directory;
pub mod forward;
pub mod http;
pub mod node_call;

pub mod relay;
pub mod store;
pub mod trust;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderValue;

use crate::control::Control;
use crate::ids::AppId;

use crate::config::peers::Peers;
use node_call::{Call, Refusal, Verifier};
use store::{Node, Store, StoreError};
use trust::{Distrust, Keys};
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
    /// Derived from the cluster secret (which is kept nowhere else).
    keys: Arc<Keys>,
    /// Node calls' nonces seen.
    verifier: Mutex<Verifier>,
    store: Store,
    control: Arc<Control>,
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
    /// Times this node wrote all its sessions: at its start, when the
    /// directory may have lost them (outage, late heartbeat, lost records)
    /// and every [`REWRITE`].
    pub resyncs: AtomicU64,
    /// Calls signed as a node's that were refused, by
    /// [`Refusal`] (in the order of [`node_call::REFUSALS`]).
    pub node_calls_refused: [AtomicU64; node_call::REFUSALS.len()],
}

impl Cluster {
    /// Joins the cluster whose directory is at `redis`, and whose nodes
    /// share `secret`, as `node`; other nodes' API addresses must be within
    /// `peers`.
    pub fn new(
        redis: &str,
        secret: &str,
        node: Node,
        peers: Peers,
        control: Arc<Control>,
    ) -> Result<Arc<Cluster>, StoreError> {
        let keys = Arc::new(Keys::derive(secret.as_bytes()));
        Ok(Arc::new(Cluster {
            node,
            store: Store::open(redis, keys.clone(), peers)?,
            keys,
            verifier: Mutex::default(),
            control,
            relay_locks: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            in_sync: Default::default(),
            up_since: Mutex::new(None),
            left: tokio::sync::Mutex::new(false),
        }))
    }

    /// Accepts a call signed as another node's (`header`, the value of
    /// [`node_call::HEADER`]) to this node: it is then served here as the
    /// app of its path, never forwarded again. A refusal is counted.
    pub fn verify_call(
        &self,
        header: &str,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<(), Refusal> {
        let call = Call {
            to: &self.node.id,
            method,
            path_and_query,
            body,
        };
        let mut verifier = self.verifier.lock().unwrap_or_else(|e| e.into_inner());
        let verified = verifier.verify(&self.keys, header, &call, store::unix_ms());
        if let Err(refusal) = verified {
            // Logged the 1st, 2nd, 4th, 8th… time for each reason.
            let n = self.counters.node_calls_refused[refusal.index()].fetch_add(1, Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(method, path = path_and_query, why = %refusal, times = n, "a call signed as a node's was refused");
            }
        }
        verified
    }

    /// The header value that signs a call to node `to`.
    fn sign_call(&self, to: &str, method: &str, path_and_query: &str, body: &[u8]) -> HeaderValue {
        let call = Call {
            to,
            method,
            path_and_query,
            body,
        };
        let value = self
            .keys
            .sign_call(&call, store::unix_ms(), crate::ids::random_bytes());
        // Digits, hex and spaces.
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("v1"))
    }

    /// Directory records not believed so far, by reason.
    pub fn distrusted(&self) -> impl Iterator<Item = (Distrust, u64)> + '_ {
        self.store.distrusted()
    }

    /// Leaves the directory (a graceful stop); the heartbeat's expiry does
    /// it otherwise. A heartbeat under way is waited for, and none follows.
    pub async fn leave(&self) {
        let mut left = self.left.lock().await;
        *left = true;
        let _ = self.store.leave(&self.node.id).await;
    }
}
