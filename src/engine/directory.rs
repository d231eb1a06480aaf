//! The ICE directory: which session a username fragment belongs to, and its
//! password. Filled by the control thread when a session is created; read
//! by workers on STUN checks only (never per media packet).

use std::collections::HashMap;
use std::sync::RwLock;

use crate::ids::SessionKey;

/// ufrag → (session, ice-pwd).
#[derive(Debug, Default)]
pub struct IceDirectory {
    entries: RwLock<HashMap<String, (SessionKey, String)>>,
}

impl IceDirectory {
    /// Registers a session's credentials.
    pub fn insert(&self, ufrag: &str, key: SessionKey, pwd: &str) {
        if let Ok(mut e) = self.entries.write() {
            e.insert(ufrag.to_owned(), (key, pwd.to_owned()));
        }
    }

    /// Forgets a ufrag.
    pub fn remove(&self, ufrag: &str) {
        if let Ok(mut e) = self.entries.write() {
            e.remove(ufrag);
        }
    }

    /// Looks a ufrag up, calling `f` with the session and password.
    pub fn with<R>(&self, ufrag: &str, f: impl FnOnce(SessionKey, &str) -> R) -> Option<R> {
        let e = self.entries.read().ok()?;
        let (key, pwd) = e.get(ufrag)?;
        Some(f(*key, pwd))
    }
}
