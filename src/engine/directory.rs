//! The ICE directory: which session a username fragment belongs to, and its
//! password. Filled by the control thread when a session is created; read
//! by workers on STUN checks only (never per media packet).

use std::collections::HashMap;
use std::sync::RwLock;

use crate::ids::SessionKey;

/// One session's credentials as checks are verified against them.
#[derive(Debug)]
struct Entry {
    key: SessionKey,
    pwd: String,
    /// The client's ufrag from its SDP, once known: a check's USERNAME
    /// must be `ours:theirs` exactly.
    remote_ufrag: Option<String>,
}

/// ufrag → (session, ice-pwd, the client's ufrag).
#[derive(Debug, Default)]
pub struct IceDirectory {
    entries: RwLock<HashMap<String, Entry>>,
}

impl IceDirectory {
    /// Registers a session's credentials.
    pub fn insert(&self, ufrag: &str, key: SessionKey, pwd: &str) {
        if let Ok(mut e) = self.entries.write() {
            let entry = Entry {
                key,
                pwd: pwd.to_owned(),
                remote_ufrag: None,
            };
            e.insert(ufrag.to_owned(), entry);
        }
    }

    /// Records the client's ufrag for our `ufrag`.
    pub fn set_remote_ufrag(&self, ufrag: &str, remote: &str) {
        // Called after every negotiation: the write lock (which holds off
        // the workers' check lookups) only when something changes.
        let known = self.entries.read().is_ok_and(|e| {
            e.get(ufrag)
                .is_none_or(|x| x.remote_ufrag.as_deref() == Some(remote))
        });
        if known {
            return;
        }
        if let Ok(mut e) = self.entries.write()
            && let Some(entry) = e.get_mut(ufrag)
            && entry.remote_ufrag.as_deref() != Some(remote)
        {
            entry.remote_ufrag = Some(remote.to_owned());
        }
    }

    /// Forgets a ufrag.
    pub fn remove(&self, ufrag: &str) {
        if let Ok(mut e) = self.entries.write() {
            e.remove(ufrag);
        }
    }

    /// Looks a ufrag up, calling `f` with the session, its password and
    /// the client's ufrag (when known).
    pub fn with<R>(
        &self,
        ufrag: &str,
        f: impl FnOnce(SessionKey, &str, Option<&str>) -> R,
    ) -> Option<R> {
        let e = self.entries.read().ok()?;
        let entry = e.get(ufrag)?;
        Some(f(entry.key, &entry.pwd, entry.remote_ufrag.as_deref()))
    }
}
