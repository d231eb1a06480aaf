//! The cluster's directory in Redis: which nodes are alive (a key per node
//! with a time to live, refreshed by a heartbeat) and which node owns each
//! session. Only the control thread's cluster task and API calls that must
//! find another node's session touch it; nothing in the media path does, so
//! a Redis outage stops no forwarding already set up.
//!
//! Keys (`{app}` and `{session}` are the API's ids):
//! - `switchboard:node:{node}`: JSON `{"api": URL, "media": "ip:port"}`,
//!   expires [`NODE_TTL`] after the node's last heartbeat.
//! - `switchboard:session:{app}:{session}`: the owning node's id; written
//!   when the session is created, deleted when it is removed (or when a
//!   lookup finds its node gone), written again for every live session
//!   after an outage and every 20 minutes, and expiring after
//!   [`SESSION_TTL`].
//! - `switchboard:tracks:{app}:{session}`: JSON array of the names of the
//!   session's active pushed tracks (absent when none), kept likewise.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

/// How long a node stays in the directory after its last heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(3);
/// How long a session's keys live unless its node writes them again (it
/// does every `cluster::REWRITE`): a crashed node's keys go by themselves.
pub const SESSION_TTL: Duration = Duration::from_secs(3600);
/// How long one directory operation may take before it counts as an outage.
const OPERATION_TIMEOUT: Duration = Duration::from_millis(1000);

/// A node as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Its id.
    #[serde(skip)]
    pub id: String,
    /// Its API base URL (`http://host:port`).
    pub api: String,
    /// Its media address.
    pub media: String,
}

/// Why the directory could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is unreachable, or answered an error.
    #[error("cluster directory (Redis): {0}")]
    Redis(#[from] redis::RedisError),
    /// Redis did not answer in time.
    #[error("cluster directory (Redis) did not answer within {0:?}")]
    Timeout(Duration),
    /// A node record is not the JSON we write.
    #[error("cluster directory: malformed node record: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// The directory.
pub struct Store {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
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

impl Store {
    /// A directory at `url` (`redis://host:port`); connects on first use.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            client: redis::Client::open(url)?,
            connection: tokio::sync::Mutex::new(None),
        })
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

    /// Lists (or refreshes) this node for [`NODE_TTL`].
    pub async fn heartbeat(&self, node: &Node) -> Result<(), StoreError> {
        let record = serde_json::to_string(node)?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(node_key(&node.id))
            .arg(record)
            .arg("PX")
            .arg(NODE_TTL.as_millis() as u64);
        self.query::<()>(&cmd).await
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
        add_session(&mut pipe, app, session, node);
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
                add_session(&mut pipe, &app.0, &id.0, node);
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

    /// A live node by id, `None` once its heartbeat expired.
    pub async fn node(&self, id: &str) -> Result<Option<Node>, StoreError> {
        let record: Option<String> = self.query(redis::cmd("GET").arg(node_key(id))).await?;
        record
            .map(|r| {
                let mut n: Node = serde_json::from_str(&r)?;
                n.id = id.to_owned();
                Ok(n)
            })
            .transpose()
    }

    /// The live node that owns a session; `None` when no node recorded it
    /// or its node's heartbeat expired.
    pub async fn owner(&self, app: &str, session: &str) -> Result<Option<Node>, StoreError> {
        let node: Option<String> = self
            .query(redis::cmd("GET").arg(session_key(app, session)))
            .await?;
        let Some(id) = node else {
            return Ok(None);
        };
        let owner = self.node(&id).await?;
        if owner.is_none() {
            // Its node is gone, and so is the session: nobody else would
            // delete the keys before they expire.
            self.forget_session(app, session).await?;
        }
        Ok(owner)
    }
}

/// Adds the writing of a session's owner to `pipe`.
fn add_session(pipe: &mut redis::Pipeline, app: &str, session: &str, node: &str) {
    pipe.cmd("SET")
        .arg(session_key(app, session))
        .arg(node)
        .arg("EX")
        .arg(SESSION_TTL.as_secs())
        .ignore();
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
