//! Which session each client address is bound to on this worker (by a
//! valid ICE check, a check answered, or the control thread's attach), and
//! the reverse: a session's bound addresses, oldest first. Removing a
//! session costs its own few addresses, not a scan of every binding, and
//! one session holds at most [`MAX_PER_SESSION`] addresses (a client with
//! its ice-pwd can send valid checks from any number of ports).
//!
//! Where it sits: in the engine, looked up for every datagram that is not
//! STUN (the lookup is one hash probe, as before); written on checks and
//! commands only.

use std::net::SocketAddr;

use rustc_hash::FxHashMap as HashMap;

use crate::ids::SessionKey;

/// Addresses one session may have bound at once; binding another forgets
/// the one checked least recently.
pub const MAX_PER_SESSION: usize = 8;

/// The bindings of one worker.
#[derive(Debug, Default)]
pub struct Bindings {
    by_addr: HashMap<SocketAddr, SessionKey>,
    by_session: HashMap<SessionKey, Vec<SocketAddr>>,
}

impl Bindings {
    /// The session `addr` is bound to.
    pub fn get(&self, addr: &SocketAddr) -> Option<SessionKey> {
        self.by_addr.get(addr).copied()
    }

    /// Binds `addr` to `key` (taking it from another session if it had
    /// it); it becomes `key`'s most recent address. `attached`, the
    /// session's media path, is never the one unbound to make room.
    pub fn bind(&mut self, addr: SocketAddr, key: SessionKey, attached: Option<SocketAddr>) {
        if let Some(previous) = self.by_addr.insert(addr, key)
            && previous != key
        {
            self.drop_from(previous, addr);
        }
        let addrs = self.by_session.entry(key).or_default();
        match addrs.iter().position(|a| *a == addr) {
            Some(i) => {
                addrs.remove(i);
                addrs.push(addr);
            }
            None => {
                addrs.push(addr);
                if addrs.len() > MAX_PER_SESSION {
                    let oldest = addrs.iter().position(|a| Some(*a) != attached).unwrap_or(0);
                    let oldest = addrs.remove(oldest);
                    self.by_addr.remove(&oldest);
                }
            }
        }
    }

    /// Unbinds `addr` if it is bound to `key`.
    pub fn unbind(&mut self, addr: SocketAddr, key: SessionKey) {
        if self.by_addr.get(&addr) == Some(&key) {
            self.by_addr.remove(&addr);
            self.drop_from(key, addr);
        }
    }

    /// Unbinds every address of `key`.
    pub fn forget(&mut self, key: SessionKey) {
        for addr in self.by_session.remove(&key).unwrap_or_default() {
            if self.by_addr.get(&addr) == Some(&key) {
                self.by_addr.remove(&addr);
            }
        }
    }

    /// Addresses bound.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    /// Whether none is bound.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }

    fn drop_from(&mut self, key: SessionKey, addr: SocketAddr) {
        if let Some(addrs) = self.by_session.get_mut(&key) {
            addrs.retain(|a| *a != addr);
            if addrs.is_empty() {
                self.by_session.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    #[test]
    fn a_session_holds_a_few_addresses_and_forgetting_it_frees_them() {
        let (a, b) = (SessionKey(1), SessionKey(2));
        let mut bindings = Bindings::default();
        bindings.bind(addr(1), b, None);
        for port in 100..10_100 {
            bindings.bind(addr(port), a, None);
            bindings.bind(addr(1), b, None); // b keeps checking
        }
        assert_eq!(bindings.len(), MAX_PER_SESSION + 1);
        assert_eq!(bindings.get(&addr(10_099)), Some(a), "the newest stays");
        assert_eq!(bindings.get(&addr(100)), None, "the oldest went");
        assert_eq!(bindings.get(&addr(1)), Some(b));
        bindings.forget(a);
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings.get(&addr(1)), Some(b));
    }

    #[test]
    fn an_address_moves_between_sessions_and_unbinds_only_its_own() {
        let (a, b) = (SessionKey(1), SessionKey(2));
        let mut bindings = Bindings::default();
        bindings.bind(addr(5), a, None);
        bindings.bind(addr(5), b, None);
        assert_eq!(bindings.get(&addr(5)), Some(b));
        bindings.unbind(addr(5), a);
        assert_eq!(bindings.get(&addr(5)), Some(b), "not a's to unbind");
        bindings.forget(a);
        assert_eq!(bindings.get(&addr(5)), Some(b));
        bindings.unbind(addr(5), b);
        assert!(bindings.is_empty());
    }

    #[test]
    fn the_attached_address_is_never_the_one_unbound() {
        let a = SessionKey(1);
        let mut bindings = Bindings::default();
        bindings.bind(addr(1), a, None);
        for port in 2..=(MAX_PER_SESSION as u16 * 3) {
            bindings.bind(addr(port), a, Some(addr(1)));
        }
        assert_eq!(
            bindings.get(&addr(1)),
            Some(a),
            "the media path stays bound"
        );
        assert_eq!(bindings.len(), MAX_PER_SESSION);
    }

    #[test]
    fn a_checked_address_is_kept_over_older_ones() {
        let a = SessionKey(1);
        let mut bindings = Bindings::default();
        bindings.bind(addr(1), a, None);
        for port in 2..=(MAX_PER_SESSION as u16 + 4) {
            bindings.bind(addr(port), a, None);
            bindings.bind(addr(1), a, None); // consent checks on the pair in use
        }
        assert_eq!(bindings.get(&addr(1)), Some(a));
        assert_eq!(bindings.len(), MAX_PER_SESSION);
    }
}
