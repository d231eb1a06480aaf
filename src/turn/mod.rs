//! TURN credentials from the HTTP API (calls-api.md, "TURN credentials"),
//! for a real TURN server beside switchboard (coturn; docs/deploy.md
//! "TURN"): each request issues a time-limited username and HMAC credential
//! ([`credentials`]), admits it in the TURN server's user store
//! ([`store`]), and answers the ICE servers a client configures; revoke
//! deletes it there, and the TURN server refuses new allocations with it
//! from then on.
//!
//! Where it sits: under the TURN keys routes (`crate::api::turn`) and the
//! WHIP/WHEP `Link` headers; nothing here touches media.

pub mod credentials;
pub mod store;

use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

use crate::config::TurnConfig;
use crate::control::rate_window::RateWindow;
use credentials::{Credentials, Refused};
use store::{StoreError, UserStore};

/// Most credentials one TURN key may issue per second (each is a user
/// store entry that lives up to 48 h).
pub const ISSUED_PER_SECOND: u32 = 20;

/// One ICE server entry (RTCIceServer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// Its URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// Why credentials were not issued or revoked.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    /// The request is out of bounds (ttl, identifier, username).
    #[error("{0}")]
    Invalid(String),
    /// The key issued its share for this minute.
    #[error("more than {ISSUED_PER_SECOND} credentials a second")]
    RateLimited,
    /// The user store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Refused> for TurnError {
    fn from(r: Refused) -> Self {
        TurnError::Invalid(r.0)
    }
}

/// The TURN credentials service.
pub struct Turn {
    config: TurnConfig,
    store: UserStore,
    window: Mutex<RateWindow>,
}

impl Turn {
    /// The service for `config` (connects to the user store on first use).
    pub fn new(config: TurnConfig) -> Result<Turn, StoreError> {
        Ok(Turn {
            store: UserStore::open(&config.redis, &config.realm)?,
            config,
            window: Mutex::new(RateWindow::new(Instant::now())),
        })
    }

    /// Whether `key_id` and `token` are this server's TURN key (the token
    /// compared in constant time).
    pub fn key_matches(&self, key_id: &str, token: Option<&str>) -> KeyCheck {
        if key_id != self.config.key_id {
            return KeyCheck::UnknownKey;
        }
        match token.filter(|t| !t.is_empty()) {
            Some(t)
                if crate::ids::secrets_equal(t.as_bytes(), self.config.key_token.as_bytes()) =>
            {
                KeyCheck::Ok
            }
            _ => KeyCheck::WrongToken,
        }
    }

    /// The TURN server's URLs: STUN, TURN over UDP and TCP, TURN over TLS.
    pub fn urls(&self) -> (String, Vec<String>) {
        let TurnConfig { host, port, .. } = &self.config;
        let host = match host.parse::<std::net::Ipv6Addr>() {
            Ok(_) => format!("[{host}]"),
            Err(_) => host.clone(),
        };
        let mut turn = vec![
            format!("turn:{host}:{port}?transport=udp"),
            format!("turn:{host}:{port}?transport=tcp"),
        ];
        if let Some(tls) = self.config.tls_port {
            turn.push(format!("turns:{host}:{tls}?transport=tcp"));
        }
        (format!("stun:{host}:{port}"), turn)
    }

    /// Issues credentials valid for `ttl` seconds and admits them in the
    /// user store: the STUN entry and the TURN entry with them. Counted
    /// against the key's [`ISSUED_PER_SECOND`].
    pub async fn issue(
        &self,
        ttl: u64,
        identifier: Option<&str>,
        now: Instant,
        now_unix: u64,
    ) -> Result<[IceServer; 2], TurnError> {
        let c = self.credentials(ttl, identifier, now_unix)?;
        self.count_issue(now)?;
        self.admit(c).await
    }

    /// Counts one issue against the key's rate.
    fn count_issue(&self, now: Instant) -> Result<(), TurnError> {
        self.window
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .count(ISSUED_PER_SECOND, now)
            .map_err(|_| TurnError::RateLimited)
    }

    /// The same for a WHIP/WHEP session's `Link` headers: not counted
    /// against the key (each is one session, under the app's session caps).
    pub async fn issue_for_session(
        &self,
        ttl: u64,
        now_unix: u64,
    ) -> Result<[IceServer; 2], TurnError> {
        let c = self.credentials(ttl, None, now_unix)?;
        self.admit(c).await
    }

    fn credentials(
        &self,
        ttl: u64,
        identifier: Option<&str>,
        now_unix: u64,
    ) -> Result<Credentials, TurnError> {
        let nonce = crate::ids::hex(&crate::ids::random_bytes::<8>());
        Ok(Credentials::issue(
            self.config.secret.as_bytes(),
            now_unix,
            ttl,
            identifier,
            &nonce,
        )?)
    }

    async fn admit(&self, c: Credentials) -> Result<[IceServer; 2], TurnError> {
        self.store
            .admit(&c.username, &c.key(&self.config.realm), c.expiry)
            .await?;
        let (stun, turn) = self.urls();
        Ok([
            IceServer {
                urls: vec![stun],
                username: None,
                credential: None,
            },
            IceServer {
                urls: turn,
                username: Some(c.username),
                credential: Some(c.credential),
            },
        ])
    }

    /// Revokes `username`: the TURN server refuses its new allocations
    /// from now on (one it already granted runs until its client leaves).
    pub async fn revoke(&self, username: &str) -> Result<bool, TurnError> {
        if !credentials::valid_username(username) {
            return Err(TurnError::Invalid(
                "not a username this server issued".into(),
            ));
        }
        Ok(self.store.revoke(username).await?)
    }
}

/// The outcome of [`Turn::key_matches`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyCheck {
    /// The key and its token.
    Ok,
    /// No such key: 404.
    UnknownKey,
    /// The key, without its token: 401.
    WrongToken,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn turn(host: &str, tls_port: Option<u16>) -> Turn {
        Turn::new(TurnConfig {
            host: host.into(),
            port: 3478,
            tls_port,
            realm: "r".into(),
            secret: "s".into(),
            redis: "redis://127.0.0.1:1/0".into(),
            key_id: "k".into(),
            key_token: "t".into(),
        })
        .unwrap()
    }

    #[test]
    fn the_key_issues_its_share_a_second() {
        let t = turn("h", None);
        let t0 = Instant::now();
        for _ in 0..ISSUED_PER_SECOND {
            assert!(t.count_issue(t0).is_ok());
        }
        assert!(t.count_issue(t0 + Duration::from_millis(999)).is_err());
        assert!(t.count_issue(t0 + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn urls_follow_the_service() {
        let (stun, turns) = turn("turn.example.com", Some(5349)).urls();
        assert_eq!(stun, "stun:turn.example.com:3478");
        assert_eq!(
            turns,
            [
                "turn:turn.example.com:3478?transport=udp",
                "turn:turn.example.com:3478?transport=tcp",
                "turns:turn.example.com:5349?transport=tcp",
            ]
        );
        let (stun, turns) = turn("2001:db8::1", None).urls();
        assert_eq!(stun, "stun:[2001:db8::1]:3478");
        assert_eq!(turns.len(), 2);
    }

    #[test]
    fn keys_are_checked_by_id_then_token() {
        let t = turn("h", None);
        assert_eq!(t.key_matches("k", Some("t")), KeyCheck::Ok);
        assert_eq!(t.key_matches("k", Some("x")), KeyCheck::WrongToken);
        assert_eq!(t.key_matches("k", None), KeyCheck::WrongToken);
        assert_eq!(t.key_matches("x", Some("t")), KeyCheck::UnknownKey);
    }
}
