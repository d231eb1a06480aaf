//! The cluster's directory in Redis: which nodes are alive (a key per node
//! with a time to live, refreshed by a heartbeat) and which node owns each
//! session. Only the control thread's cluster task and API calls that must
//! find another node's session touch it; nothing in the media path does, so
//! a Redis outage stops no forwarding already set up.
//!
//! Keys (`{app}` and `{session}` are the API's ids); records are sealed
//! (`trust`), and a record that does not open is not believed:
//! - `switchboard:node:{node}`: JSON `{"api": URL, "media": "ip:port",
//!   "at": ms, "mac": hex}`, expires [`NODE_TTL`] after the node's last
//!   heartbeat.
//! - `switchboard:session:{app}:{session}`: JSON `{"node": id, "mac":
//!   hex}`; written when the session is created, deleted by its node when
//!   it is removed, written again for every live session after an outage,
//!   after the directory lost them and every 20 minutes, and expiring after
//!   [`SESSION_TTL`].
//! - `switchboard:tracks:{app}:{session}`: JSON array of the names of the
//!   session's active pushed tracks (absent when none), kept likewise; no
//!   node reads it.
//! - `switchboard:directory`: present while the directory holds what the
//!   nodes wrote; the first heartbeat that finds it gone (a `FLUSHALL`, a
//!   Redis that restarted empty) writes it again, with
//!   `switchboard:directory:rebuilding` for [`REBUILD`]. While the marker is
//!   missing or rebuilding lives, a missing record means "not written again
//!   yet", not "gone".
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::trust::{Distrust, Keys};
pub use super::trust::{NODE_TTL, Node};
use crate::config::peers::Peers;

/// How long a session's keys live unless its node writes them again (it
/// does every `cluster::REWRITE`): a crashed node's keys go by themselves.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// How long after the directory was found empty a missing record is not
/// believed: every live node heartbeats within [`NODE_TTL`], finds itself
/// missing and writes all its sessions again at its next turn.
pub const REBUILD: Duration = Duration::from_secs(5);
/// How long one directory operation may take before it counts as an outage.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(1000);

const MARKER: &str = "switchboard:directory";
const REBUILDING: &str = "switchboard:directory:rebuilding";

/// The heartbeat, in one step: lists the node (`KEYS[1]`, `ARGV[1]` for
/// `ARGV[2]` ms), and writes the marker (`KEYS[2]`) and the rebuilding key
/// (`KEYS[3]`, for `ARGV[3]` ms) when the marker is gone. Answers whether
/// the node was listed and whether the marker was there.
const HEARTBEAT_SCRIPT: &str = r"
local listed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local kept = redis.call('EXISTS', KEYS[2])
if kept == 0 then
  redis.call('SET', KEYS[2], '1')
  redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
end
return {listed, kept}
";

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is unreachable, or answered an error.
    #[error("cluster directory (Redis): {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("cluster directory (Redis) did not answer within {0:?}")]
    Timeout(Duration),
    /// A list of tracks could not be written as JSON.
    #[error("cluster directory: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeat {
    /// This node's record was there (it is not after a start, a gap longer
    /// than [`NODE_TTL`], or a directory that lost its records).
    pub was_listed: bool,
    /// The directory's marker was there (it is not after a `FLUSHALL` or a
    /// Redis that restarted empty).
    pub marker_kept: bool,
}

/// Why the directory's answer is not an answer (503, never 410).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsure {
    /// A record was not believed.
    #[error("a directory record was not believed: {0}")]
    Distrusted(Distrust),
    /// The session's node has no live record (it may be rejoining).
    #[error("the node that owns the session is not listed")]
    NodeMissing,
    /// The directory lost its records and the nodes are writing them again.
    #[error("the directory is being written again")]
    Rebuilding,
}

/// Who owns a session, as the directory says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This live node.
    Node(Node),
    /// The node that asked (which knows its own sessions).
    This,
    /// No node recorded it: an unknown session.
    Nobody,
    /// Not sure.
    Unsure(Unsure),
}

/// Whether a node is in the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presence {
    /// Listed, its record believed.
    Live(Node),
    /// Not listed, in a directory that has not lost its records.
    Gone,
    /// Not sure.
    Unsure(Unsure),
}

/// The directory.
pub struct Store {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    keys: Arc<Keys>,
    peers: Peers,
    /// Records not believed, by [`Distrust::index`].
    distrusted: [AtomicU64; Distrust::ALL.len()],
}

fn node_key(id: &str) -> String {
    format!("switchboard:node:{id}")
}

fn session_key(app: &str, session: &str) -> String {
    format!("switchboard:session:{app}:{session}")
}

fn tracks_key(app: &str, session: &str) -> String {
    format!("switchboard:tracks:{app}:{session}")
}

/// Unix time in ms (records and calls carry it; 0 on a clock before 1970).
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    /// A directory at `url` (`redis://host:port`), whose records are
    /// sealed with `keys` and name API addresses `peers` admits; connects
    /// on first use.
    pub fn open(url: &str, keys: Arc<Keys>, peers: Peers) -> Result<Store, StoreError> {
        Ok(Store {
            client: redis::Client::open(url)?,
            connection: tokio::sync::Mutex::new(None),
            keys,
            peers,
            distrusted: Default::default(),
        })
    }

    /// Records not believed so far, by reason.
    pub fn distrusted(&self) -> impl Iterator<Item = (Distrust, u64)> + '_ {
        Distrust::ALL
            .iter()
            .map(|d| (*d, self.distrusted[d.index()].load(Relaxed)))
    }

    /// Counts a record not believed (logged the 1st, 2nd, 4th, 8th… time
    /// for each reason: whoever writes Redis must not flood the log).
    fn distrust(&self, why: Distrust, key: &str) -> Unsure {
        let n = self.distrusted[why.index()].fetch_add(1, Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(key, why = %why, times = n, "cluster directory: a record is not believed (written by someone without the cluster secret?)");
        }
        Unsure::Distrusted(why)
    }

    /// The connection (reconnecting by itself once made).
    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(OPERATION_TIMEOUT)
            .set_response_timeout(OPERATION_TIMEOUT)
            .set_number_of_retries(1)
            .set_max_delay(500);
        let c = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs one command within the bound: [`OPERATION_TIMEOUT`] to
    /// connect, as much to answer.
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        self.bounded(async |c| cmd.query_async(c).await).await
    }

    /// Runs a pipeline of commands within the same bound.
    async fn run_pipeline(&self, pipe: &redis::Pipeline) -> Result<(), StoreError> {
        self.bounded(async |c| pipe.query_async(c).await).await
    }

    /// Runs `op` on the connection within twice [`OPERATION_TIMEOUT`].
    async fn bounded<T>(
        &self,
        op: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let run = async {
            let mut c = self.connection().await?;
            Ok::<T, StoreError>(op(&mut c).await?)
        };
        tokio::time::timeout(OPERATION_TIMEOUT * 2, run)
            .await
            .map_err(|_| StoreError::Timeout(OPERATION_TIMEOUT * 2))?
    }

    /// Lists (or refreshes) this node for [`NODE_TTL`], and marks the
    /// directory when its marker is gone; what it found.
    pub async fn heartbeat(&self, node: &Node) -> Result<Heartbeat, StoreError> {
        let record = self.keys.seal_node(node, unix_ms());
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(HEARTBEAT_SCRIPT)
            .arg(3)
            .arg(node_key(&node.id))
            .arg(MARKER)
            .arg(REBUILDING)
            .arg(record)
            .arg(NODE_TTL.as_millis() as u64)
            .arg(REBUILD.as_millis() as u64);
        let (listed, kept): (u8, u8) = self.query(&cmd).await?;
        Ok(Heartbeat {
            was_listed: listed == 1,
            marker_kept: kept == 1,
        })
    }

    /// Takes this node off the list (a graceful stop).
    pub async fn leave(&self, node: &str) -> Result<(), StoreError> {
        self.query::<()>(redis::cmd("DEL").arg(node_key(node)))
            .await
    }

    /// Records that `node` owns a session.
    pub async fn record_session(
        &self,
        app: &str,
        session: &str,
        node: &str,
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        self.add_session(&mut pipe, app, session, node);
        self.run_pipeline(&pipe).await
    }

    /// Records all of a node's sessions (app, id, active pushed tracks), in
    /// pipelines of a thousand.
    pub async fn record_all(
        &self,
        node: &str,
        sessions: &[(crate::ids::AppId, crate::ids::SessionId, Vec<String>)],
    ) -> Result<(), StoreError> {
        for chunk in sessions.chunks(1000) {
            let mut pipe = redis::pipe();
            for (app, id, tracks) in chunk {
                self.add_session(&mut pipe, &app.0, &id.0, node);
                add_tracks(&mut pipe, &app.0, &id.0, tracks)?;
            }
            self.run_pipeline(&pipe).await?;
        }
        Ok(())
    }

    /// Forgets a session (and its tracks).
    pub async fn forget_session(&self, app: &str, session: &str) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(session_key(app, session))
            .arg(tracks_key(app, session));
        self.query::<()>(&cmd).await
    }

    /// Records a session's active pushed tracks.
    pub async fn record_tracks(
        &self,
        app: &str,
        session: &str,
        names: &[String],
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        add_tracks(&mut pipe, app, session, names)?;
        self.run_pipeline(&pipe).await
    }

    /// `key`'s value with whether the directory may have lost records
    /// (its marker gone or rebuilding), in one round trip. A key of
    /// another type than a string reads as absent.
    async fn read_with_marker(&self, key: &str) -> Result<(Option<String>, bool), StoreError> {
        let mut cmd = redis::cmd("MGET");
        cmd.arg(key).arg(MARKER).arg(REBUILDING);
        let (value, marker, rebuilding): (Option<String>, Option<String>, Option<String>) =
            self.query(&cmd).await?;
        Ok((value, marker.is_none() || rebuilding.is_some()))
    }

    /// Whether node `id` is listed.
    pub async fn node(&self, id: &str) -> Result<Presence, StoreError> {
        let key = node_key(id);
        let (record, losing) = self.read_with_marker(&key).await?;
        Ok(match record {
            Some(r) => match self.keys.open_node(id, &r, unix_ms(), &self.peers) {
                Ok(node) => Presence::Live(node),
                Err(why) => Presence::Unsure(self.distrust(why, &key)),
            },
            None if losing => Presence::Unsure(Unsure::Rebuilding),
            None => Presence::Gone,
        })
    }

    /// The live node that owns a session, asked by node `this`. A record
    /// that is not believed, or whose node is not listed, is
    /// [`Owner::Unsure`] (and stays: the node may be rejoining; the key
    /// expires by itself).
    pub async fn owner(&self, app: &str, session: &str, this: &str) -> Result<Owner, StoreError> {
        let key = session_key(app, session);
        let (record, losing) = self.read_with_marker(&key).await?;
        let Some(record) = record else {
            return Ok(if losing {
                Owner::Unsure(Unsure::Rebuilding)
            } else {
                Owner::Nobody
            });
        };
        let id = match self.keys.open_session(app, session, &record) {
            Ok(id) => id,
            Err(why) => return Ok(Owner::Unsure(self.distrust(why, &key))),
        };
        if id == this {
            return Ok(Owner::This);
        }
        Ok(match self.node(&id).await? {
            Presence::Live(node) => Owner::Node(node),
            Presence::Gone => Owner::Unsure(Unsure::NodeMissing),
            Presence::Unsure(why) => Owner::Unsure(why),
        })
    }

    /// Adds the writing of a session's owner to `pipe`.
    fn add_session(&self, pipe: &mut redis::Pipeline, app: &str, session: &str, node: &str) {
        pipe.cmd("SET")
            .arg(session_key(app, session))
            .arg(self.keys.seal_session(app, session, node))
            .arg("EX")
            .arg(SESSION_TTL.as_secs())
            .ignore();
    }
}

/// Adds the writing of a session's tracks to `pipe` (a deletion when none).
fn add_tracks(
    pipe: &mut redis::Pipeline,
    app: &str,
    session: &str,
    names: &[String],
) -> Result<(), StoreError> {
    if names.is_empty() {
        pipe.cmd("DEL").arg(tracks_key(app, session)).ignore();
    } else {
        pipe.cmd("SET")
            .arg(tracks_key(app, session))
            .arg(serde_json::to_string(names)?)
            .arg("EX")
            .arg(SESSION_TTL.as_secs())
            .ignore();
    }
    Ok(())
}
