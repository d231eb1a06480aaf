//! How a node proves a call to another node's API is a node's: a MAC over
//! the request in one header, never a secret. A node reached through an
//! address that Redis names learns nothing it could use elsewhere: not the
//! cluster secret, not an app's secret, not a client's bearer token.
//!
//! `x-switchboard-node: v1 <time> <nonce> <mac>`:
//! - time: Unix ms when it was signed; refused beyond
//!   [`CLOCK_TOLERANCE`] either way;
//! - nonce: 16 random bytes (hex), so that two identical calls differ;
//! - mac: hex HMAC-SHA256 under the call key (`trust`) of the fields
//!   `"node call"`, the called node's id, method, path and query, SHA-256
//!   of the body, time, nonce.
//!
//! A MAC is accepted once: the nonces of the last [`CLOCK_TOLERANCE`] × 2
//! are kept (at most [`REPLAYS_KEPT`]; past that the oldest go first, and
//! a replay of one of those within its window would pass: it needs someone
//! on the nodes' network during a flood of more genuine calls than that in
//! a minute). A caller that is not a node cannot sign; one that records a
//! node's call cannot send it to another node (the id is signed), change
//! it, or send it again.
//!
//! Where it sits: `forward` and `relay` sign their calls; the API's cluster
//! middleware verifies them and then serves the call as the app of its path
//! (the calling node authorized its client first). Sans-IO: time and nonce
//! are arguments.

use std::collections::{HashSet, VecDeque};

use aws_lc_rs::digest;

use super::trust::{CLOCK_TOLERANCE, Keys, unhex};

/// The header that carries a node's MAC.
pub const HEADER: &str = "x-switchboard-node";
/// Nonces kept against replays.
pub const REPLAYS_KEPT: usize = 65_536;

/// What a call is, for its MAC.
pub struct Call<'a> {
    /// The called node's id.
    pub to: &'a str,
    /// Its method.
    pub method: &'a str,
    /// Its path and query, as sent.
    pub path_and_query: &'a str,
    /// Its body.
    pub body: &'a [u8],
}

/// Why a node call is refused (each counted,
/// `switchboard_cluster_node_calls_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The header is not `v1 <time> <nonce> <mac>`.
    #[error("malformed node header")]
    Malformed,
    /// Signed too long ago or too far ahead (clocks more than the
    /// tolerance apart, or a call kept and sent later).
    #[error("node call outside the clock tolerance")]
    Time,
    /// The MAC does not verify: not signed by a node of this cluster, or
    /// changed, or meant for another node.
    #[error("node call MAC does not verify")]
    Mac,
    /// Its nonce was seen already.
    #[error("node call replayed")]
    Replay,
}

/// Every refusal, in the order of [`Refusal::index`].
pub const REFUSALS: [Refusal; 4] = [
    Refusal::Malformed,
    Refusal::Time,
    Refusal::Mac,
    Refusal::Replay,
];

impl Refusal {
    /// Its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Time => "time",
            Refusal::Mac => "mac",
            Refusal::Replay => "replay",
        }
    }

    /// Its place in [`REFUSALS`].
    pub fn index(self) -> usize {
        self as usize
    }
}

fn fields<'a>(call: &'a Call, body_digest: &'a [u8], at: &'a str, nonce: &'a str) -> [&'a [u8]; 7] {
    [
        b"node call",
        call.to.as_bytes(),
        call.method.as_bytes(),
        call.path_and_query.as_bytes(),
        body_digest,
        at.as_bytes(),
        nonce.as_bytes(),
    ]
}

impl Keys {
    /// The header value that signs `call`, made at `now_ms` with `nonce`.
    pub fn sign_call(&self, call: &Call, now_ms: u64, nonce: [u8; 16]) -> String {
        let digest = digest::digest(&digest::SHA256, call.body);
        let (at, nonce) = (now_ms.to_string(), crate::ids::hex(&nonce));
        let mac = self.call_mac(&fields(call, digest.as_ref(), &at, &nonce));
        format!("v1 {at} {nonce} {}", crate::ids::hex(mac.as_ref()))
    }
}

/// Verifies node calls and remembers their nonces.
#[derive(Default)]
pub struct Verifier {
    seen: HashSet<[u8; 16]>,
    /// Nonces in the order seen, with when they may be forgotten (ms).
    order: VecDeque<(u64, [u8; 16])>,
}

impl Verifier {
    /// Accepts `call`, signed by `header`, at `now_ms`; each nonce once.
    pub fn verify(
        &mut self,
        keys: &Keys,
        header: &str,
        call: &Call,
        now_ms: u64,
    ) -> Result<(), Refusal> {
        let mut parts = header.split(' ');
        let (Some("v1"), Some(at), Some(nonce_hex), Some(mac), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(Refusal::Malformed);
        };
        let signed_at: u64 = at
            .parse()
            .ok()
            .filter(|_| at.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(Refusal::Malformed)?;
        let nonce = unhex::<16>(nonce_hex).ok_or(Refusal::Malformed)?;
        let mac = unhex::<32>(mac).ok_or(Refusal::Malformed)?;
        let tolerance = CLOCK_TOLERANCE.as_millis() as u64;
        if now_ms.abs_diff(signed_at) > tolerance {
            return Err(Refusal::Time);
        }
        let digest = digest::digest(&digest::SHA256, call.body);
        if !keys.call_verifies(&fields(call, digest.as_ref(), at, nonce_hex), &mac) {
            return Err(Refusal::Mac);
        }
        self.forget_expired(now_ms);
        if !self.seen.insert(nonce) {
            return Err(Refusal::Replay);
        }
        if self.order.len() >= REPLAYS_KEPT
            && let Some((_, oldest)) = self.order.pop_front()
        {
            self.seen.remove(&oldest);
        }
        // Past this its time is refused anyway.
        self.order.push_back((signed_at + tolerance, nonce));
        Ok(())
    }

    fn forget_expired(&mut self, now_ms: u64) {
        while let Some((until, nonce)) = self.order.front().copied() {
            if until >= now_ms {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&nonce);
        }
    }

    /// Nonces remembered.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn call<'a>(path: &'a str, body: &'a [u8]) -> Call<'a> {
        Call {
            to: "node-b",
            method: "POST",
            path_and_query: path,
            body,
        }
    }

    #[test]
    fn a_signed_call_verifies_once() {
        let keys = Keys::derive(b"s");
        let c = call("/v1/apps/a/sessions/s/tracks/new", b"{}");
        let header = keys.sign_call(&c, NOW, [7; 16]);
        assert!(header.starts_with(&format!("v1 {NOW} 0707")), "{header}");
        let mut v = Verifier::default();
        assert_eq!(v.verify(&keys, &header, &c, NOW + 1_000), Ok(()));
        assert_eq!(
            v.verify(&keys, &header, &c, NOW + 2_000),
            Err(Refusal::Replay)
        );
        // Another nonce is another call.
        let again = keys.sign_call(&c, NOW, [8; 16]);
        assert_eq!(v.verify(&keys, &again, &c, NOW + 2_000), Ok(()));
    }

    #[test]
    fn a_changed_call_does_not_verify() {
        let keys = Keys::derive(b"s");
        let c = call("/v1/apps/a/sessions/s/tracks/new", b"{}");
        let header = keys.sign_call(&c, NOW, [1; 16]);
        let mut v = Verifier::default();
        let changed = [
            call("/v1/apps/a/sessions/t/tracks/new", b"{}"),
            call("/v1/apps/a/sessions/s/tracks/new", b"{ }"),
            call("/v1/apps/a/sessions/s/tracks/new?x=1", b"{}"),
            Call {
                method: "PUT",
                ..call("/v1/apps/a/sessions/s/tracks/new", b"{}")
            },
            Call {
                to: "node-c",
                ..call("/v1/apps/a/sessions/s/tracks/new", b"{}")
            },
        ];
        for c in &changed {
            assert_eq!(v.verify(&keys, &header, c, NOW), Err(Refusal::Mac));
        }
        let other = Keys::derive(b"t");
        assert_eq!(v.verify(&other, &header, &c, NOW), Err(Refusal::Mac));
        let later = header.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(v.verify(&keys, &later, &c, NOW), Err(Refusal::Mac));
        assert_eq!(v.remembered(), 0, "refused calls leave no nonce");
        for bad in [
            "",
            "v1",
            "v2 1 00 00",
            &header.replace("v1 ", "v1  "),
            &format!("{header} x"),
        ] {
            assert_eq!(
                v.verify(&keys, bad, &c, NOW),
                Err(Refusal::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn calls_outside_the_tolerance_are_refused() {
        let keys = Keys::derive(b"s");
        let c = call("/p", b"");
        let mut v = Verifier::default();
        let header = keys.sign_call(&c, NOW, [2; 16]);
        assert_eq!(
            v.verify(&keys, &header, &c, NOW + 30_001),
            Err(Refusal::Time)
        );
        assert_eq!(
            v.verify(&keys, &header, &c, NOW - 30_001),
            Err(Refusal::Time)
        );
        assert_eq!(v.verify(&keys, &header, &c, NOW + 30_000), Ok(()));
    }

    #[test]
    fn nonces_are_forgotten_once_their_time_is_refused_anyway() {
        let keys = Keys::derive(b"s");
        let c = call("/p", b"");
        let mut v = Verifier::default();
        for i in 0..10u8 {
            let header = keys.sign_call(&c, NOW, [i; 16]);
            assert_eq!(v.verify(&keys, &header, &c, NOW), Ok(()));
        }
        assert_eq!(v.remembered(), 10);
        let header = keys.sign_call(&c, NOW + 31_000, [99; 16]);
        assert_eq!(v.verify(&keys, &header, &c, NOW + 31_000), Ok(()));
        assert_eq!(v.remembered(), 1);
    }

    #[test]
    fn at_most_replays_kept_nonces_are_remembered() {
        let keys = Keys::derive(b"s");
        let c = call("/p", b"");
        let mut v = Verifier::default();
        for i in 0..(REPLAYS_KEPT as u32 + 10) {
            let mut nonce = [0u8; 16];
            nonce[..4].copy_from_slice(&i.to_be_bytes());
            let header = keys.sign_call(&c, NOW, nonce);
            assert_eq!(v.verify(&keys, &header, &c, NOW), Ok(()));
        }
        assert_eq!(v.remembered(), REPLAYS_KEPT);
    }
}
