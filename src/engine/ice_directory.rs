//! The ICE directory: which session a username fragment belongs to, and its
//! password. Filled by the control thread when a session is created; read
//! by workers on STUN checks only (never per media packet).

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

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

/// ufrag → (session, ice-pwd, the client's ufrag); and the checks we sent
/// (third-party sessions), by transaction id, to know their responses.
#[derive(Debug, Default)]
pub struct IceDirectory {
    entries: RwLock<HashMap<String, Entry>>,
    checks: Mutex<SentChecks>,
}

/// The checks we sent, and when those past their timeout were last
/// forgotten (at most once a second: a scan per check would grow with the
/// number of third-party sessions).
#[derive(Debug, Default)]
struct SentChecks {
    by_id: HashMap<[u8; 12], SentCheck>,
    pruned: Option<Instant>,
}

/// A Binding request we sent (`control::peer_checks`).
#[derive(Debug)]
struct SentCheck {
    key: SessionKey,
    /// The peer's password: its response is signed with it.
    remote_pwd: String,
    sent: Instant,
}

/// How long a check we sent waits for its response.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Records a check we sent for `key`; checks older than
    /// [`CHECK_TIMEOUT`] are forgotten.
    pub fn sent_check(&self, txid: [u8; 12], key: SessionKey, remote_pwd: &str, now: Instant) {
        if let Ok(mut c) = self.checks.lock() {
            if c.pruned
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
            {
                c.by_id
                    .retain(|_, s| now.saturating_duration_since(s.sent) < CHECK_TIMEOUT);
                c.pruned = Some(now);
            }
            let check = SentCheck {
                key,
                remote_pwd: remote_pwd.to_owned(),
                sent: now,
            };
            c.by_id.insert(txid, check);
        }
    }

    /// The response to a check we sent: its session, when `txid` is ours and
    /// `authentic` holds for the peer's password. The check is forgotten.
    pub fn answered_check(
        &self,
        txid: &[u8; 12],
        authentic: impl FnOnce(&str) -> bool,
    ) -> Option<SessionKey> {
        let mut c = self.checks.lock().ok()?;
        let sent = c.by_id.get(txid)?;
        if !authentic(&sent.remote_pwd) {
            return None;
        }
        c.by_id.remove(txid).map(|s| s.key)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_we_sent_is_answered_once_with_the_peer_password_and_forgotten_after_its_timeout() {
        let d = IceDirectory::default();
        let t0 = Instant::now();
        d.sent_check([1; 12], SessionKey(7), "peer-pwd", t0);
        assert_eq!(d.answered_check(&[2; 12], |_| true), None, "not ours");
        assert_eq!(
            d.answered_check(&[1; 12], |pwd| pwd == "wrong"),
            None,
            "forged"
        );
        assert_eq!(
            d.answered_check(&[1; 12], |pwd| pwd == "peer-pwd"),
            Some(SessionKey(7))
        );
        assert_eq!(d.answered_check(&[1; 12], |_| true), None, "answered once");

        d.sent_check([3; 12], SessionKey(8), "p", t0);
        // Sending a later check forgets those past their timeout.
        d.sent_check(
            [4; 12],
            SessionKey(8),
            "p",
            t0 + CHECK_TIMEOUT + Duration::from_millis(1),
        );
        assert_eq!(d.answered_check(&[3; 12], |_| true), None);
        assert_eq!(d.answered_check(&[4; 12], |_| true), Some(SessionKey(8)));
    }
}
