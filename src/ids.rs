//! Identifiers and units of the domain as newtypes: the API's ids and names,
//! the RFCs' SSRC and payload type, and the compact keys that media workers
//! index by.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }
    };
}

string_id!(
    /// An application: the unit of auth and of track visibility.
    AppId
);
string_id!(
    /// A session (one PeerConnection): 32 lowercase hex characters, 128 random bits.
    SessionId
);
string_id!(
    /// A track's name, unique within its publishing session.
    TrackName
);
string_id!(
    /// A media section's identification tag (RFC 8843).
    Mid
);
string_id!(
    /// An RTP stream id (RFC 8851): one simulcast layer of a pushed track.
    Rid
);

impl SessionId {
    /// A fresh unguessable id.
    pub fn random() -> Self {
        SessionId(hex(&random_bytes::<16>()))
    }
}

/// A synchronisation source (RFC 3550).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// An RTP payload type (7 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PayloadType(pub u8);

/// A session's compact index, used by media workers instead of its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey(pub u32);

/// A pushed track's compact index, unique in the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey(pub u64);

/// A media worker's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub usize);

/// Bytes from the system's secure random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system random source failing is not recoverable for a server
    // that must hand out unguessable ids.
    aws_lc_rs::rand::fill(&mut out).expect("system random source");
    out
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a secret someone gave equals the expected one, in constant time:
/// both are hashed first, so that the comparison's time does not even
/// depend on their lengths (API bearer tokens).
pub fn secrets_equal(given: &[u8], expected: &[u8]) -> bool {
    let digest = |b: &[u8]| aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    let (given, expected) = (digest(given), digest(expected));
    aws_lc_rs::constant_time::verify_slices_are_equal(given.as_ref(), expected.as_ref()).is_ok()
}

/// A token derived from an app's secret for one scope (a WHIP stream's
/// `whip:{stream}`, a WHEP stream's `whep:{stream}`): lowercase hex of
/// HMAC-SHA256(secret, scope). Whoever holds the secret can make it; it
/// grants only its scope (docs/calls-api.md, "WHIP and WHEP").
pub fn scoped_token(secret: &[u8], scope: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    hex(aws_lc_rs::hmac::sign(&key, scope.as_bytes()).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoped_tokens_follow_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            scoped_token(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(scoped_token(b"s", "whip:a"), scoped_token(b"s", "whep:a"));
    }

    #[test]
    fn session_ids_are_32_lowercase_hex_and_distinct() {
        let a = SessionId::random();
        let b = SessionId::random();
        assert_eq!(a.as_str().len(), 32);
        assert!(
            a.as_str()
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(a, b);
    }
}
