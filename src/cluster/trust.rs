//! What a node believes of the directory: Redis is trusted for routing, not
//! for authority. Anyone who can write Redis can delete or garble records
//! (an outage), but cannot make a node call an address no node announced,
//! nor move a session to another node: every record a node reads it first
//! checks against a MAC keyed from the cluster secret.
//!
//! Keys, all HMAC-SHA256, derived from the cluster secret and never sent:
//! - the directory key, HMAC(secret, "switchboard directory"), seals node
//!   and session records;
//! - the call key, HMAC(secret, "switchboard node calls"), signs calls
//!   between nodes (`node_call`).
//!
//! A MAC covers a record's key and value as a list of fields, each written
//! as its length (4 bytes, big endian) and its bytes, so that no two lists
//! make one message:
//! - node record: `"node"`, node id, API URL, media address, time written
//!   (Unix ms, decimal);
//! - session record: `"session"`, app id, session id, node id.
//!
//! Where it sits: beside `store`, which writes what this seals and returns
//! what this opens. Sans-IO: the time is an argument.

use std::time::Duration;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

use crate::config::peers::{ApiUrl, Peers};

/// How long a node stays in the directory after its last heartbeat.
pub const NODE_TTL: Duration = Duration::from_secs(3);

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

/// How far another node's clock may be from ours (node records and node
/// calls carry the time they were made).
pub const CLOCK_TOLERANCE: Duration = Duration::from_secs(30);

/// The keys a node derives from the cluster secret.
pub struct Keys {
    directory: hmac::Key,
    calls: hmac::Key,
}

/// Why a record read from the directory is not believed. Each is counted
/// (`switchboard_cluster_distrusted_total{reason}`) and answers 503
/// `cluster_unavailable`: the record is unknown, not proof that its session
/// is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Distrust {
    /// Not the JSON a node writes.
    #[error("malformed record")]
    Malformed,
    /// Its MAC does not verify: written by someone without the secret, or
    /// moved to another key.
    #[error("record MAC does not verify")]
    Mac,
    /// A node record written longer ago than a live node's could have been
    /// (a genuine record kept or replayed).
    #[error("stale node record")]
    Stale,
    /// A node record whose API URL is not `http://host:port`.
    #[error("node API URL refused")]
    Url,
    /// A node record whose API address is outside `--cluster-peers`.
    #[error("node API address outside the allowed peers")]
    Peers,
}

impl Distrust {
    /// Every reason, in the order of [`Distrust::index`].
    pub const ALL: [Distrust; 5] = [
        Distrust::Malformed,
        Distrust::Mac,
        Distrust::Stale,
        Distrust::Url,
        Distrust::Peers,
    ];

    /// Its metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Distrust::Malformed => "malformed",
            Distrust::Mac => "mac",
            Distrust::Stale => "stale",
            Distrust::Url => "url",
            Distrust::Peers => "peers",
        }
    }

    /// Its place in [`Distrust::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// HMAC-SHA256 of `message` under `key` (RFC 2104, as RFC 4231 tests it).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), message);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Writes `fields` as one message, each as its length and its bytes.
fn message(fields: &[&[u8]]) -> Vec<u8> {
    let len = fields.iter().map(|f| 4 + f.len()).sum();
    let mut out = Vec::with_capacity(len);
    for f in fields {
        // Fields are bounded far below 4 GiB (URLs, ids, digests).
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// The hex digits of `bytes`, parsed; `None` unless exactly `N` bytes.
pub(super) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (o, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A node record as stored.
#[derive(Serialize, Deserialize)]
struct NodeRecord {
    api: String,
    media: String,
    /// When it was written (Unix ms).
    at: u64,
    /// Hex HMAC-SHA256.
    mac: String,
}

/// A session record as stored.
#[derive(Serialize, Deserialize)]
struct SessionRecord {
    node: String,
    /// Hex HMAC-SHA256.
    mac: String,
}

impl Keys {
    /// The keys of the cluster whose secret is `secret`.
    pub fn derive(secret: &[u8]) -> Keys {
        let key =
            |label: &str| hmac::Key::new(hmac::HMAC_SHA256, &hmac_sha256(secret, label.as_bytes()));
        Keys {
            directory: key("switchboard directory"),
            calls: key("switchboard node calls"),
        }
    }

    /// The directory MAC of `fields`.
    fn directory_mac(&self, fields: &[&[u8]]) -> hmac::Tag {
        hmac::sign(&self.directory, &message(fields))
    }

    /// Whether `mac` (hex) is the directory MAC of `fields` (compared in
    /// constant time).
    fn directory_verifies(&self, fields: &[&[u8]], mac: &str) -> bool {
        unhex::<32>(mac)
            .is_some_and(|m| hmac::verify(&self.directory, &message(fields), &m).is_ok())
    }

    /// The call MAC of `fields`.
    pub(super) fn call_mac(&self, fields: &[&[u8]]) -> hmac::Tag {
        hmac::sign(&self.calls, &message(fields))
    }

    /// Whether `mac` is the call MAC of `fields` (in constant time).
    pub(super) fn call_verifies(&self, fields: &[&[u8]], mac: &[u8]) -> bool {
        hmac::verify(&self.calls, &message(fields), mac).is_ok()
    }

    /// The value of `node`'s record, written at `now_ms` (Unix ms).
    pub fn seal_node(&self, node: &Node, now_ms: u64) -> String {
        let at = now_ms.to_string();
        let fields: [&[u8]; 5] = [
            b"node",
            node.id.as_bytes(),
            node.api.as_bytes(),
            node.media.as_bytes(),
            at.as_bytes(),
        ];
        let record = NodeRecord {
            api: node.api.clone(),
            media: node.media.clone(),
            at: now_ms,
            mac: crate::ids::hex(self.directory_mac(&fields).as_ref()),
        };
        // A struct of strings and a number always serializes.
        serde_json::to_string(&record).unwrap_or_default()
    }

    /// The node `id` from its record `value`, read at `now_ms`, if it is
    /// believed: sealed by a node, written within the node's lifetime in
    /// the directory and the clocks' tolerance, and naming an API address
    /// that `peers` admits.
    pub fn open_node(
        &self,
        id: &str,
        value: &str,
        now_ms: u64,
        peers: &Peers,
    ) -> Result<Node, Distrust> {
        let r: NodeRecord = serde_json::from_str(value).map_err(|_| Distrust::Malformed)?;
        let at = r.at.to_string();
        let fields: [&[u8]; 5] = [
            b"node",
            id.as_bytes(),
            r.api.as_bytes(),
            r.media.as_bytes(),
            at.as_bytes(),
        ];
        if !self.directory_verifies(&fields, &r.mac) {
            return Err(Distrust::Mac);
        }
        let max_age = (NODE_TTL + CLOCK_TOLERANCE).as_millis() as u64;
        if now_ms.abs_diff(r.at) > max_age {
            return Err(Distrust::Stale);
        }
        let url = ApiUrl::parse(&r.api).map_err(|_| Distrust::Url)?;
        if !peers.admits(&url) {
            return Err(Distrust::Peers);
        }
        Ok(Node {
            id: id.to_owned(),
            api: r.api,
            media: r.media,
        })
    }

    /// The value of the record that `node` owns `session` of `app`.
    pub fn seal_session(&self, app: &str, session: &str, node: &str) -> String {
        let fields: [&[u8]; 4] = [
            b"session",
            app.as_bytes(),
            session.as_bytes(),
            node.as_bytes(),
        ];
        let record = SessionRecord {
            node: node.to_owned(),
            mac: crate::ids::hex(self.directory_mac(&fields).as_ref()),
        };
        serde_json::to_string(&record).unwrap_or_default()
    }

    /// The owning node's id from the record `value` of `session` of `app`,
    /// if a node sealed it for this very session.
    pub fn open_session(&self, app: &str, session: &str, value: &str) -> Result<String, Distrust> {
        let r: SessionRecord = serde_json::from_str(value).map_err(|_| Distrust::Malformed)?;
        let fields: [&[u8]; 4] = [
            b"session",
            app.as_bytes(),
            session.as_bytes(),
            r.node.as_bytes(),
        ];
        if !self.directory_verifies(&fields, &r.mac) {
            return Err(Distrust::Mac);
        }
        Ok(r.node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of_hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 §4.2, §4.3 and §4.7 (a key longer than the block), HMAC-SHA-256.
    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let cases: [(Vec<u8>, &[u8], &str); 3] = [
            (
                vec![0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, data, expected) in cases {
            assert_eq!(hmac_sha256(&key, data).to_vec(), bytes_of_hex(expected));
        }
    }

    #[test]
    fn keys_are_derived_per_purpose() {
        let secret = b"a cluster secret";
        let keys = Keys::derive(secret);
        let directory = hmac_sha256(secret, b"switchboard directory");
        let expected = hmac_sha256(&directory, &message(&[b"x"]));
        assert_eq!(keys.directory_mac(&[b"x"]).as_ref(), expected);
        assert_ne!(keys.call_mac(&[b"x"]).as_ref(), expected);
    }

    #[test]
    fn fields_are_length_prefixed() {
        assert_eq!(message(&[b"ab", b""]), b"\0\0\0\x02ab\0\0\0\0");
        assert_ne!(message(&[b"ab", b"c"]), message(&[b"a", b"bc"]));
    }

    fn node() -> Node {
        Node {
            id: "node-a".into(),
            api: "http://10.0.0.1:8080".into(),
            media: "10.0.0.1:40000".into(),
        }
    }

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn a_sealed_node_record_opens() {
        let keys = Keys::derive(b"s");
        let value = keys.seal_node(&node(), NOW);
        let opened = keys.open_node("node-a", &value, NOW + 2_000, &Peers::any());
        assert_eq!(opened, Ok(node()));
    }

    #[test]
    fn a_tampered_node_record_is_distrusted() {
        let keys = Keys::derive(b"s");
        let value = keys.seal_node(&node(), NOW);
        let any = Peers::any();
        // Another API address, another node's key, another secret.
        let repointed = value.replace("10.0.0.1:8080", "10.0.0.9:8080");
        assert_eq!(
            keys.open_node("node-a", &repointed, NOW, &any),
            Err(Distrust::Mac)
        );
        assert_eq!(
            keys.open_node("node-b", &value, NOW, &any),
            Err(Distrust::Mac)
        );
        let forged = Keys::derive(b"guess").seal_node(&node(), NOW);
        assert_eq!(
            keys.open_node("node-a", &forged, NOW, &any),
            Err(Distrust::Mac)
        );
        // A later time written without the MAC following it.
        let later = value.replace(&NOW.to_string(), &(NOW + 60_000).to_string());
        assert_eq!(
            keys.open_node("node-a", &later, NOW + 60_000, &any),
            Err(Distrust::Mac)
        );
        assert_eq!(
            keys.open_node("node-a", "node-b", NOW, &any),
            Err(Distrust::Malformed)
        );
    }

    #[test]
    fn an_old_node_record_is_stale() {
        let keys = Keys::derive(b"s");
        let value = keys.seal_node(&node(), NOW);
        let any = Peers::any();
        assert!(keys.open_node("node-a", &value, NOW + 33_000, &any).is_ok());
        assert_eq!(
            keys.open_node("node-a", &value, NOW + 33_001, &any),
            Err(Distrust::Stale)
        );
        assert_eq!(
            keys.open_node("node-a", &value, NOW - 33_001, &any),
            Err(Distrust::Stale)
        );
    }

    #[test]
    fn a_sealed_node_outside_the_peers_or_with_a_bad_url_is_distrusted() {
        let keys = Keys::derive(b"s");
        let peers = Peers::parse(&["10.0.1.0/24".to_owned()]).unwrap();
        let value = keys.seal_node(&node(), NOW);
        assert_eq!(
            keys.open_node("node-a", &value, NOW, &peers),
            Err(Distrust::Peers)
        );
        let mut bad = node();
        bad.api = "http://10.0.0.1:8080/admin".into();
        let value = keys.seal_node(&bad, NOW);
        assert_eq!(
            keys.open_node("node-a", &value, NOW, &Peers::any()),
            Err(Distrust::Url)
        );
    }

    #[test]
    fn a_session_record_binds_app_session_and_node() {
        let keys = Keys::derive(b"s");
        let value = keys.seal_session("app1", "sess1", "node-a");
        assert_eq!(
            keys.open_session("app1", "sess1", &value),
            Ok("node-a".into())
        );
        // Moved to another session or app, or re-pointed at another node.
        assert_eq!(
            keys.open_session("app1", "sess2", &value),
            Err(Distrust::Mac)
        );
        assert_eq!(
            keys.open_session("app2", "sess1", &value),
            Err(Distrust::Mac)
        );
        let repointed = value.replace("node-a", "node-b");
        assert_eq!(
            keys.open_session("app1", "sess1", &repointed),
            Err(Distrust::Mac)
        );
        // The bare node id a node of an older version wrote.
        assert_eq!(
            keys.open_session("app1", "sess1", "node-a"),
            Err(Distrust::Malformed)
        );
        let mut flipped = value.into_bytes();
        let last_hex = flipped.len() - 3;
        flipped[last_hex] = if flipped[last_hex] == b'0' {
            b'1'
        } else {
            b'0'
        };
        let flipped = String::from_utf8(flipped).unwrap();
        assert_eq!(
            keys.open_session("app1", "sess1", &flipped),
            Err(Distrust::Mac)
        );
    }
}
