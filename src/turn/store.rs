//! The TURN server's user store: coturn's Redis user database
//! (`redis-userdb`), where each issued username's long-term key is written
//! with the username's expiry, and deleted on revoke; coturn looks a
//! username's key up there for every new allocation, so a deleted one is
//! refused from then on (coturn keeps the key of an allocation it already
//! granted). `SET … EXAT` needs Redis 6.2 or later.
//!
//! Where it sits: under [`super::Turn`], on the API's runtime. Every
//! command is bounded in time ([`OPERATION_TIMEOUT`]).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The longest one command may take, connecting included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

/// The user store could not be reached or refused a command.
#[derive(Debug, thiserror::Error)]
#[error("TURN user store: {0}")]
pub struct StoreError(pub String);

/// coturn's key for a user's long-term key (coturn's `redis-userdb`
/// schema: `turn/realm/<realm>/user/<username>/key`, value lowercase hex).
pub fn user_key(realm: &str, username: &str) -> String {
    format!("turn/realm/{realm}/user/{username}/key")
}

/// A Redis user store.
pub struct UserStore {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    realm: String,
}

impl UserStore {
    /// The store at `url` for `realm`; connects on first use.
    pub fn open(url: &str, realm: &str) -> Result<UserStore, StoreError> {
        Ok(UserStore {
            client: redis::Client::open(url).map_err(|e| StoreError(e.to_string()))?,
            connection: tokio::sync::Mutex::new(None),
            realm: realm.to_owned(),
        })
    }

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
        let c = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, StoreError> {
        let work = async {
            let mut c = self.connection().await?;
            cmd.query_async::<T>(&mut c)
                .await
                .map_err(|e| StoreError(e.to_string()))
        };
        tokio::time::timeout(2 * OPERATION_TIMEOUT, work)
            .await
            .map_err(|_| StoreError("timed out".into()))?
    }

    /// Admits `username` with long-term key `key` (hex) until `expiry`
    /// (Unix seconds), when Redis forgets it.
    pub async fn admit(&self, username: &str, key: &str, expiry: u64) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(user_key(&self.realm, username))
            .arg(key)
            .arg("EXAT")
            .arg(expiry);
        self.run::<()>(cmd).await
    }

    /// Refuses `username` from now on; whether it was admitted.
    pub async fn revoke(&self, username: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(user_key(&self.realm, username));
        Ok(self.run::<u64>(cmd).await? > 0)
    }
}
