//! TURN credentials in coturn's REST scheme ("TURN REST API",
//! draft-uberti-behave-turn-rest-00): a username `{expiry}:{id}` whose
//! first field is the Unix time it stops working, and a credential that is
//! base64(HMAC-SHA1(shared secret, username)); and the long-term key a TURN
//! server's user store holds for it (RFC 8489 §9.2.2: MD5 of
//! `username:realm:password`).
//!
//! Where it sits: under the TURN keys routes; sans-IO (the time is given).

use aws_lc_rs::hmac;
use base64::Engine;
use md5::Digest;

/// The longest lifetime a credential may have (calls-api.md: 48 h).
pub const MAX_TTL_SECONDS: u64 = 48 * 3600;

/// Longest `customIdentifier`.
pub const MAX_IDENTIFIER_LEN: usize = 64;

/// Why a request for credentials is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

/// One TURN username and its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `{expiry}:{id}`.
    pub username: String,
    /// base64(HMAC-SHA1(secret, username)).
    pub credential: String,
    /// The Unix time it stops working.
    pub expiry: u64,
}

/// Whether `id` may be part of a username: 1–64 of `A-Z a-z 0-9 _ . -`.
pub fn valid_identifier(id: &str) -> bool {
    (1..=MAX_IDENTIFIER_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

impl Credentials {
    /// Credentials valid for `ttl` seconds from `now_unix`. `nonce` makes
    /// two usernames of one second and identifier differ (random in the
    /// server); `identifier` is the caller's `customIdentifier`.
    pub fn issue(
        secret: &[u8],
        now_unix: u64,
        ttl: u64,
        identifier: Option<&str>,
        nonce: &str,
    ) -> Result<Credentials, Refused> {
        if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(Refused(format!(
                "ttl must be 1 to {MAX_TTL_SECONDS} seconds"
            )));
        }
        if let Some(id) = identifier
            && !valid_identifier(id)
        {
            return Err(Refused(format!(
                "customIdentifier must be 1 to {MAX_IDENTIFIER_LEN} of A-Z a-z 0-9 _ . -"
            )));
        }
        let expiry = now_unix + ttl;
        let username = match identifier {
            Some(id) => format!("{expiry}:{id}.{nonce}"),
            None => format!("{expiry}:{nonce}"),
        };
        Ok(Credentials {
            credential: rest_credential(secret, &username),
            username,
            expiry,
        })
    }

    /// The long-term key of these credentials in `realm`, as lowercase hex
    /// (what coturn's user store holds).
    pub fn key(&self, realm: &str) -> String {
        long_term_key(&self.username, realm, &self.credential)
    }
}

/// base64(HMAC-SHA1(secret, username)): the REST scheme's password.
pub fn rest_credential(secret: &[u8], username: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    base64::engine::general_purpose::STANDARD.encode(hmac::sign(&key, username.as_bytes()))
}

/// MD5(`username:realm:password`) as lowercase hex (RFC 8489 §9.2.2).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> String {
    let digest = md5::Md5::digest(format!("{username}:{realm}:{password}").as_bytes());
    crate::ids::hex(&digest)
}

/// Whether `username` has the shape [`Credentials::issue`] gives (a
/// revoke's path segment, before it reaches the user store).
pub fn valid_username(username: &str) -> bool {
    let Some((expiry, rest)) = username.split_once(':') else {
        return false;
    };
    let plain = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    };
    (1..=20).contains(&expiry.len())
        && expiry.bytes().all(|b| b.is_ascii_digit())
        && (1..=MAX_IDENTIFIER_LEN + 40).contains(&rest.len())
        && plain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha1_matches_rfc_2202() {
        // RFC 2202 test case 2: key "Jefe", data "what do ya want for
        // nothing?", HMAC-SHA1 effcdf6ae5eb2fa2d27416d5f184df9c259a7c79.
        let expected = base64::engine::general_purpose::STANDARD.encode([
            0xef, 0xfc, 0xdf, 0x6a, 0xe5, 0xeb, 0x2f, 0xa2, 0xd2, 0x74, 0x16, 0xd5, 0xf1, 0x84,
            0xdf, 0x9c, 0x25, 0x9a, 0x7c, 0x79,
        ]);
        assert_eq!(
            rest_credential(b"Jefe", "what do ya want for nothing?"),
            expected
        );
    }

    #[test]
    fn md5_matches_rfc_1321() {
        // RFC 1321 A.5: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72;
        // "a:b:c" is what long_term_key hashes for user a, realm b, pass c.
        assert_eq!(
            crate::ids::hex(&md5::Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            long_term_key("a", "b", "c"),
            crate::ids::hex(&md5::Md5::digest(b"a:b:c"))
        );
    }

    #[test]
    fn usernames_carry_expiry_and_identifier() {
        let c = Credentials::issue(b"s", 1_000, 600, Some("alice"), "9f").unwrap();
        assert_eq!(c.username, "1600:alice.9f");
        assert_eq!(c.expiry, 1_600);
        assert_eq!(c.credential, rest_credential(b"s", "1600:alice.9f"));
        assert!(valid_username(&c.username));
        let anon = Credentials::issue(b"s", 1_000, 600, None, "00ff").unwrap();
        assert_eq!(anon.username, "1600:00ff");
    }

    #[test]
    fn bounds_ttl_identifier_and_usernames() {
        assert!(Credentials::issue(b"s", 0, 0, None, "n").is_err());
        assert!(Credentials::issue(b"s", 0, MAX_TTL_SECONDS + 1, None, "n").is_err());
        assert!(Credentials::issue(b"s", 0, MAX_TTL_SECONDS, None, "n").is_ok());
        for bad in ["", "a:b", "a b", "ä", &"a".repeat(MAX_IDENTIFIER_LEN + 1)] {
            assert!(
                Credentials::issue(b"s", 0, 60, Some(bad), "n").is_err(),
                "{bad:?}"
            );
        }
        for bad in [
            "",
            "123",
            ":abc",
            "x1:abc",
            "1:a/b",
            "1:a:b",
            "1:",
            "1:a\r\nDEL x",
        ] {
            assert!(!valid_username(bad), "{bad:?}");
        }
    }
}
