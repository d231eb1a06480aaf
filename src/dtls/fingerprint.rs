//! Certificate fingerprints (RFC 8122 §5, RFC 4572 hash names): ours, in
//! every SDP we write (sha-256), and the peer's, read from its SDP and
//! checked against the certificate it presents in the DTLS handshake.
//!
//! A peer may list several `a=fingerprint` lines, at session and media
//! level, with different hash functions; its certificate must match at
//! least one whose hash function we support (RFC 8122 §5).

use aws_lc_rs::digest;

/// The hash functions of the "Hash Function Textual Names" registry that
/// switchboard can check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashFunction {
    /// `sha-1` (RFC 4572; still sent by older stacks).
    Sha1,
    /// `sha-224`.
    Sha224,
    /// `sha-256`: what every browser sends and what we send.
    Sha256,
    /// `sha-384`.
    Sha384,
    /// `sha-512`.
    Sha512,
}

impl HashFunction {
    /// From the SDP name (case-insensitive); `None` for a hash we cannot check.
    pub fn parse(name: &str) -> Option<Self> {
        const NAMES: [(&str, HashFunction); 5] = [
            ("sha-1", HashFunction::Sha1),
            ("sha-224", HashFunction::Sha224),
            ("sha-256", HashFunction::Sha256),
            ("sha-384", HashFunction::Sha384),
            ("sha-512", HashFunction::Sha512),
        ];
        NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, h)| *h)
    }

    /// The SDP name.
    pub fn as_str(&self) -> &'static str {
        match self {
            HashFunction::Sha1 => "sha-1",
            HashFunction::Sha224 => "sha-224",
            HashFunction::Sha256 => "sha-256",
            HashFunction::Sha384 => "sha-384",
            HashFunction::Sha512 => "sha-512",
        }
    }

    fn algorithm(&self) -> &'static digest::Algorithm {
        match self {
            HashFunction::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
            HashFunction::Sha224 => &digest::SHA224,
            HashFunction::Sha256 => &digest::SHA256,
            HashFunction::Sha384 => &digest::SHA384,
            HashFunction::Sha512 => &digest::SHA512,
        }
    }
}

/// One certificate fingerprint: a hash function and its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The hash function.
    pub hash: HashFunction,
    /// The digest of the DER certificate.
    pub digest: Vec<u8>,
}

impl Fingerprint {
    /// The sha-256 fingerprint of a DER certificate.
    pub fn of(der: &[u8]) -> Self {
        Self::with_hash(HashFunction::Sha256, der)
    }

    /// The fingerprint of a DER certificate with `hash`.
    pub fn with_hash(hash: HashFunction, der: &[u8]) -> Self {
        Fingerprint {
            hash,
            digest: digest::digest(hash.algorithm(), der).as_ref().to_vec(),
        }
    }

    /// Whether a DER certificate has this fingerprint.
    pub fn matches(&self, der: &[u8]) -> bool {
        digest::digest(self.hash.algorithm(), der).as_ref() == self.digest.as_slice()
    }

    /// Parses the value of `a=fingerprint:sha-256 AB:CD:…` (hash name and
    /// hex case-insensitive). `None` for an unsupported hash function or a
    /// digest of the wrong length.
    pub fn parse(value: &str) -> Option<Self> {
        let (name, hex) = value.trim().split_once(' ')?;
        let hash = HashFunction::parse(name)?;
        let digest = hex
            .trim()
            .split(':')
            .map(|part| {
                (part.len() == 2)
                    .then(|| u8::from_str_radix(part, 16).ok())
                    .flatten()
            })
            .collect::<Option<Vec<u8>>>()?;
        (digest.len() == hash.algorithm().output_len()).then_some(Fingerprint { hash, digest })
    }

    /// The SDP form: `sha-256 AB:CD:…`.
    pub fn to_sdp(&self) -> String {
        let hex: Vec<String> = self.digest.iter().map(|b| format!("{b:02X}")).collect();
        format!("{} {}", self.hash.as_str(), hex.join(":"))
    }
}

/// Whether a DER certificate matches any of the peer's fingerprints.
pub fn matches_any(fingerprints: &[Fingerprint], der: &[u8]) -> bool {
    fingerprints.iter().any(|f| f.matches(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_and_print() {
        let f = Fingerprint::of(b"certificate");
        let sdp = f.to_sdp();
        assert!(sdp.starts_with("sha-256 "));
        assert_eq!(Fingerprint::parse(&sdp), Some(f.clone()));
        assert_eq!(Fingerprint::parse(&sdp.to_lowercase()), Some(f));
        assert_eq!(Fingerprint::parse("sha-1 AB:CD"), None);
        assert_eq!(Fingerprint::parse("sha-256 AB:CD"), None);
        assert_eq!(Fingerprint::parse("sha-256 zz"), None);
        assert_eq!(Fingerprint::parse("md5 AB:CD"), None);
        assert_eq!(Fingerprint::parse("sha-256 "), None);
        assert_eq!(Fingerprint::parse("sha-1 ABC:D"), None);
    }

    /// Known digests of "abc" (FIPS 180-4 examples) in the SDP form.
    #[test]
    fn every_hash_function_matches_the_fips_vectors() {
        let vectors = [
            ("sha-1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
            (
                "sha-224",
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                "sha-256",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                "sha-384",
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                "sha-512",
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
        ];
        for (name, hex) in vectors {
            let pairs: Vec<String> = hex
                .as_bytes()
                .chunks(2)
                .map(|c| String::from_utf8_lossy(c).to_uppercase())
                .collect();
            let sdp = format!("{} {}", name.to_uppercase(), pairs.join(":"));
            let f = Fingerprint::parse(&sdp).unwrap_or_else(|| panic!("{name} parses"));
            assert_eq!(f.hash.as_str(), name);
            assert!(f.matches(b"abc"), "{name}");
            assert!(!f.matches(b"abd"), "{name}");
            assert_eq!(Fingerprint::with_hash(f.hash, b"abc"), f);
        }
    }

    #[test]
    fn any_listed_fingerprint_may_match() {
        let cert = b"the peer's certificate";
        let listed = [
            Fingerprint::with_hash(HashFunction::Sha512, b"another certificate"),
            Fingerprint::with_hash(HashFunction::Sha384, cert),
        ];
        assert!(matches_any(&listed, cert));
        assert!(!matches_any(&listed[..1], cert));
        assert!(!matches_any(&[], cert));
    }
}
