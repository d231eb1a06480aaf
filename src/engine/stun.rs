//! The STUN stage of a datagram's walk: ICE connectivity checks from
//! clients (answered here, within the STUN rate limit, binding the 5-tuple
//! once the check authenticates) and the responses to the checks the
//! control thread sends for third-party and consent purposes.

use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;

use super::counters::DropReason;
use super::messages::EngineEvent;
use super::{Engine, Transmit};
use crate::ice::BindingRequest;
use crate::ids::SessionKey;

impl Engine {
    pub(super) fn handle_stun(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if !self.stun_limit.allow(from, now) {
            self.counters.count_drop(DropReason::StunRate);
            return;
        }
        let check = match BindingRequest::read(datagram) {
            Ok(check) => check,
            Err(crate::ice::IceError::NotBindingRequest) => {
                return self.handle_stun_response(now, from, datagram);
            }
            Err(_) => {
                self.counters.count_drop(DropReason::BadStun);
                return;
            }
        };
        let mut out = BytesMut::new();
        let found = self.directory.with(check.local_ufrag, |key, pwd, remote| {
            if remote.is_some_and(|r| r != check.remote_ufrag) {
                return Err(DropReason::WrongUsername);
            }
            check.verify(pwd).map_err(|_| DropReason::BadIntegrity)?;
            let mut buf = Vec::with_capacity(64);
            check.write_success(from, pwd, &mut buf);
            out.extend_from_slice(&buf);
            Ok(key)
        });
        match found {
            None => self.counters.count_drop(DropReason::UnknownUfrag),
            Some(Err(reason)) => self.counters.count_drop(reason),
            // Answered neither: a flood of valid checks costs the control
            // thread nothing past the budget.
            Some(Ok(key)) if !self.within_budget(key, now) => {}
            Some(Ok(key)) => {
                self.transmits.push_back(Transmit::single(from, out));
                // Every valid check is reported: it binds the 5-tuple and
                // refreshes consent (RFC 7675). Checks are a few per second
                // per session at most.
                self.bind_checked(from, key, check.use_candidate, check.transaction_id(), now);
            }
        }
    }

    /// A STUN message other than a request: the success response to a
    /// check we sent (a third-party session's, `control::peer_checks`) binds
    /// the pair as a peer's check would; anything else is a counted drop.
    pub(super) fn handle_stun_response(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let key = crate::ice::BindingResponse::read(datagram)
            .ok()
            .and_then(|r| {
                let txid = r.transaction_id();
                self.directory
                    .answered_check(&txid, |pwd| r.verify(pwd))
                    .map(|key| (key, txid))
            });
        let Some((key, txid)) = key else {
            self.counters.count_drop(DropReason::BadStun);
            return;
        };
        if self.within_budget(key, now) {
            self.bind_checked(from, key, true, txid, now);
        }
    }

    /// `from` passed a connectivity check of `key` (transaction `txid`):
    /// it is bound on this worker (beside the session's media path, if it
    /// has one), and the control thread hears of it.
    fn bind_checked(
        &mut self,
        from: SocketAddr,
        key: SessionKey,
        nominated: bool,
        txid: [u8; 12],
        now: Instant,
    ) {
        let attached = self.sessions.get(&key).map(|s| s.addr);
        self.bindings.bind(from, key, attached);
        self.events.push_back(EngineEvent::Bound {
            key,
            worker: self.id,
            addr: from,
            nominated,
            txid,
            at: now,
        });
    }
}
