//! The TURN server beside switchboard (`--turn-*`, docs/deploy.md "TURN"):
//! where clients reach it, the realm and shared secret its credentials are
//! made with, the user store (Redis) it reads them from, and the TURN key
//! applications ask for credentials with.

use super::ConfigError;
use super::flags::{FileConfig, ServeArgs};

/// The TURN server the API hands out credentials for (`crate::turn`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// The host name or address clients reach the TURN server at.
    pub host: String,
    /// Its STUN/TURN port (UDP and TCP).
    pub port: u16,
    /// Its TURN-over-TLS port, if it has one.
    pub tls_port: Option<u16>,
    /// Its realm.
    pub realm: String,
    /// The secret credentials are signed with.
    pub secret: String,
    /// The Redis URL of its user store.
    pub redis: String,
    /// The TURN key's id (the `{keyId}` of the keys API).
    pub key_id: String,
    /// The TURN key's bearer token.
    pub key_token: String,
}

/// `--turn-host` turns TURN on; it then needs the secret, the user store
/// and the key.
pub(super) fn resolve(
    args: &ServeArgs,
    file: &FileConfig,
) -> Result<Option<TurnConfig>, ConfigError> {
    let Some(host) = args.turn_host.clone().or(file.turn_host.clone()) else {
        return Ok(None);
    };
    let need = |flag: &'static str, v: Option<String>| {
        v.filter(|v| !v.is_empty())
            .ok_or(ConfigError::TurnNeeds(flag))
    };
    Ok(Some(TurnConfig {
        host,
        port: args.turn_port.or(file.turn_port).unwrap_or(3478),
        tls_port: match args.turns_port.or(file.turns_port).unwrap_or(5349) {
            0 => None,
            p => Some(p),
        },
        realm: args
            .turn_realm
            .clone()
            .or(file.turn_realm.clone())
            .unwrap_or_else(|| "switchboard".into()),
        secret: need(
            "--turn-secret",
            args.turn_secret.clone().or(file.turn_secret.clone()),
        )?,
        redis: need(
            "--turn-redis",
            args.turn_redis.clone().or(file.turn_redis.clone()),
        )?,
        key_id: need(
            "--turn-key-id",
            args.turn_key_id.clone().or(file.turn_key_id.clone()),
        )?,
        key_token: need(
            "--turn-key-token",
            args.turn_key_token.clone().or(file.turn_key_token.clone()),
        )?,
    }))
}
