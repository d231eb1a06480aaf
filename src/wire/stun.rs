//! STUN messages (RFC 5389) as ICE-lite needs them: read a Binding request,
//! check its MESSAGE-INTEGRITY and FINGERPRINT, and write a Binding success
//! response with XOR-MAPPED-ADDRESS.
//!
//! Where it sits: a media worker classifies a datagram as STUN and passes it
//! here; `crate::ice` decides what to do with it.

use std::net::{IpAddr, SocketAddr};

use aws_lc_rs::hmac;

/// The magic cookie in every RFC 5389 header.
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const HEADER_LEN: usize = 20;
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// Message types (method and class combined).
pub mod message_type {
    /// Binding request.
    pub const BINDING_REQUEST: u16 = 0x0001;
    /// Binding success response.
    pub const BINDING_SUCCESS: u16 = 0x0101;
    /// Binding error response.
    pub const BINDING_ERROR: u16 = 0x0111;
}

/// Attribute types used by ICE.
pub mod attr {
    /// MAPPED-ADDRESS.
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// USERNAME.
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY.
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE.
    pub const ERROR_CODE: u16 = 0x0009;
    /// XOR-MAPPED-ADDRESS.
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PRIORITY (RFC 8445).
    pub const PRIORITY: u16 = 0x0024;
    /// USE-CANDIDATE (RFC 8445).
    pub const USE_CANDIDATE: u16 = 0x0025;
    /// SOFTWARE.
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT.
    pub const FINGERPRINT: u16 = 0x8028;
    /// ICE-CONTROLLED (RFC 8445).
    pub const ICE_CONTROLLED: u16 = 0x8029;
    /// ICE-CONTROLLING (RFC 8445).
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// Why a datagram is not a well-formed STUN message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StunError {
    /// Shorter than the 20-byte header, or the length field overruns it.
    #[error("truncated STUN message")]
    Truncated,
    /// The top two bits are set or the magic cookie is wrong.
    #[error("not a STUN message")]
    NotStun,
    /// The length is not a multiple of 4 or an attribute overruns the message.
    #[error("malformed STUN attributes")]
    Malformed,
}

/// A checked, read-only view of one STUN message.
#[derive(Debug, Clone, Copy)]
pub struct StunMessage<'a> {
    buf: &'a [u8],
}

/// One attribute: its type, its value, and its offset in the message.
#[derive(Debug, Clone, Copy)]
pub struct Attribute<'a> {
    /// Attribute type.
    pub kind: u16,
    /// Value, without padding.
    pub value: &'a [u8],
    /// Offset of the attribute header from the start of the message.
    pub offset: usize,
}

impl<'a> StunMessage<'a> {
    /// Checks the header and that every attribute lies inside the message.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, StunError> {
        if buf.len() < HEADER_LEN {
            return Err(StunError::Truncated);
        }
        if buf[0] & 0xC0 != 0 || be32(&buf[4..8]) != MAGIC_COOKIE {
            return Err(StunError::NotStun);
        }
        let len = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
        if len % 4 != 0 {
            return Err(StunError::Malformed);
        }
        if HEADER_LEN + len > buf.len() {
            return Err(StunError::Truncated);
        }
        let msg = StunMessage {
            buf: &buf[..HEADER_LEN + len],
        };
        let mut at = HEADER_LEN;
        while at < msg.buf.len() {
            if at + 4 > msg.buf.len() {
                return Err(StunError::Malformed);
            }
            let vlen = usize::from(u16::from_be_bytes([msg.buf[at + 2], msg.buf[at + 3]]));
            at += 4 + padded(vlen);
            if at > msg.buf.len() {
                return Err(StunError::Malformed);
            }
        }
        Ok(msg)
    }

    /// The message type (method and class).
    pub fn message_type(&self) -> u16 {
        u16::from_be_bytes([self.buf[0], self.buf[1]])
    }

    /// The 96-bit transaction id.
    pub fn transaction_id(&self) -> [u8; 12] {
        let mut id = [0; 12];
        id.copy_from_slice(&self.buf[8..20]);
        id
    }

    /// The whole message.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.buf
    }

    /// The attributes in order.
    pub fn attributes(&self) -> impl Iterator<Item = Attribute<'a>> + 'a {
        let buf = self.buf;
        let mut at = HEADER_LEN;
        std::iter::from_fn(move || {
            if at + 4 > buf.len() {
                return None;
            }
            let kind = u16::from_be_bytes([buf[at], buf[at + 1]]);
            let vlen = usize::from(u16::from_be_bytes([buf[at + 2], buf[at + 3]]));
            let attribute = Attribute {
                kind,
                value: &buf[at + 4..at + 4 + vlen],
                offset: at,
            };
            at += 4 + padded(vlen);
            Some(attribute)
        })
    }

    /// The first attribute of a type.
    pub fn attribute(&self, kind: u16) -> Option<Attribute<'a>> {
        self.attributes().find(|a| a.kind == kind)
    }

    /// USERNAME as text, if present and UTF-8.
    pub fn username(&self) -> Option<&'a str> {
        std::str::from_utf8(self.attribute(attr::USERNAME)?.value).ok()
    }

    /// Whether USE-CANDIDATE is present.
    pub fn has_use_candidate(&self) -> bool {
        self.attribute(attr::USE_CANDIDATE).is_some()
    }

    /// Whether FINGERPRINT is absent or correct (RFC 5389 §15.5).
    pub fn fingerprint_ok(&self) -> bool {
        match self.attribute(attr::FINGERPRINT) {
            None => true,
            Some(a) if a.value.len() == 4 => fingerprint(self.buf, a.offset) == be32(a.value),
            Some(_) => false,
        }
    }

    /// Whether MESSAGE-INTEGRITY is present and matches `key` (the ICE password
    /// for short-term credentials, RFC 5389 §15.4).
    pub fn integrity_ok(&self, key: &[u8]) -> bool {
        let Some(mi) = self.attribute(attr::MESSAGE_INTEGRITY) else {
            return false;
        };
        if mi.value.len() != 20 {
            return false;
        }
        let expected = integrity(self.buf, mi.offset, key);
        aws_lc_rs::constant_time::verify_slices_are_equal(expected.as_ref(), mi.value).is_ok()
    }

    /// XOR-MAPPED-ADDRESS, decoded.
    pub fn xor_mapped_address(&self) -> Option<SocketAddr> {
        let v = self.attribute(attr::XOR_MAPPED_ADDRESS)?.value;
        if v.len() < 8 {
            return None;
        }
        let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
        let ip = match v[1] {
            0x01 => {
                let x = be32(&v[4..8]) ^ MAGIC_COOKIE;
                IpAddr::from(x.to_be_bytes())
            }
            0x02 if v.len() >= 20 => {
                let mut mask = [0u8; 16];
                mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                mask[4..].copy_from_slice(&self.buf[8..20]);
                let mut ip = [0u8; 16];
                for i in 0..16 {
                    ip[i] = v[4 + i] ^ mask[i];
                }
                IpAddr::from(ip)
            }
            _ => return None,
        };
        Some(SocketAddr::new(ip, port))
    }
}

/// Writes one STUN message into a caller-owned buffer: header first, then
/// attributes, then MESSAGE-INTEGRITY and FINGERPRINT, which close it.
pub struct StunWriter<'b> {
    out: &'b mut Vec<u8>,
    start: usize,
}

impl<'b> StunWriter<'b> {
    /// Starts a message of `message_type` with `transaction_id` at the end of `out`.
    pub fn new(out: &'b mut Vec<u8>, message_type: u16, transaction_id: &[u8; 12]) -> Self {
        let start = out.len();
        out.extend_from_slice(&message_type.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(transaction_id);
        StunWriter { out, start }
    }

    /// Appends an attribute, zero-padded to four bytes.
    pub fn attribute(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        self.out.extend_from_slice(&kind.to_be_bytes());
        self.out
            .extend_from_slice(&(value.len() as u16).to_be_bytes());
        self.out.extend_from_slice(value);
        self.out
            .resize(self.out.len() + padded(value.len()) - value.len(), 0);
        self.set_length();
        self
    }

    /// Appends XOR-MAPPED-ADDRESS for `addr`.
    pub fn xor_mapped_address(&mut self, addr: SocketAddr) -> &mut Self {
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let mut v = [0u8; 20];
        v[2..4].copy_from_slice(&port.to_be_bytes());
        let len = match addr.ip() {
            IpAddr::V4(ip) => {
                v[1] = 0x01;
                v[4..8].copy_from_slice(&(u32::from(ip) ^ MAGIC_COOKIE).to_be_bytes());
                8
            }
            IpAddr::V6(ip) => {
                v[1] = 0x02;
                let mut mask = [0u8; 16];
                mask[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                mask[4..].copy_from_slice(&self.out[self.start + 8..self.start + 20]);
                for (i, b) in ip.octets().iter().enumerate() {
                    v[4 + i] = b ^ mask[i];
                }
                20
            }
        };
        self.attribute(attr::XOR_MAPPED_ADDRESS, &v[..len])
    }

    /// Appends MESSAGE-INTEGRITY computed with `key`.
    pub fn message_integrity(&mut self, key: &[u8]) -> &mut Self {
        let offset = self.out.len() - self.start;
        self.attribute(attr::MESSAGE_INTEGRITY, &[0; 20]);
        let tag = integrity(&self.out[self.start..], offset, key);
        let at = self.start + offset + 4;
        self.out[at..at + 20].copy_from_slice(tag.as_ref());
        self
    }

    /// Appends FINGERPRINT; the message is complete after this.
    pub fn fingerprint(&mut self) {
        let offset = self.out.len() - self.start;
        self.attribute(attr::FINGERPRINT, &[0; 4]);
        let crc = fingerprint(&self.out[self.start..], offset);
        let at = self.start + offset + 4;
        self.out[at..at + 4].copy_from_slice(&crc.to_be_bytes());
    }

    fn set_length(&mut self) {
        let len = (self.out.len() - self.start - HEADER_LEN) as u16;
        self.out[self.start + 2..self.start + 4].copy_from_slice(&len.to_be_bytes());
    }
}

/// HMAC-SHA1 over the message up to the MESSAGE-INTEGRITY attribute at
/// `offset`, with the header length covering that attribute.
fn integrity(msg: &[u8], offset: usize, key: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, key);
    let mut ctx = hmac::Context::with_key(&key);
    let len = (offset + 24 - HEADER_LEN) as u16;
    ctx.update(&msg[..2]);
    ctx.update(&len.to_be_bytes());
    ctx.update(&msg[4..offset]);
    ctx.sign()
}

/// CRC-32 of the message up to the FINGERPRINT attribute at `offset`, with
/// the header length covering that attribute, XOR 0x5354554e.
fn fingerprint(msg: &[u8], offset: usize) -> u32 {
    let len = (offset + 8 - HEADER_LEN) as u16;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&msg[..2]);
    hasher.update(&len.to_be_bytes());
    hasher.update(&msg[4..offset]);
    hasher.finalize() ^ FINGERPRINT_XOR
}

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

    /// RFC 5769 §2.1: sample request.
    const SAMPLE_REQUEST: [u8; 108] = [
        0x00, 0x01, 0x00, 0x58, // Binding request, length 88
        0x21, 0x12, 0xa4, 0x42, // magic cookie
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf,
        0xae, // transaction id
        0x80, 0x22, 0x00, 0x10, // SOFTWARE, 16 bytes
        0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73, 0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e,
        0x74, // "STUN test client"
        0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff, // PRIORITY
        0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b,
        0x36, // ICE-CONTROLLED
        0x00, 0x06, 0x00, 0x09, // USERNAME, 9 bytes
        0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20,
        0x20, // "evtj:h6vY" + pad
        0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY
        0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2,
        0x49, 0xc1, 0xb5, 0x71, 0xa2, // HMAC-SHA1
        0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf, // FINGERPRINT
    ];

    /// RFC 5769 §2.2: sample IPv4 response (192.0.2.1:32853, SOFTWARE "test vector").
    const SAMPLE_IPV4_RESPONSE: [u8; 80] = [
        0x01, 0x01, 0x00, 0x3c, // Binding success, length 60
        0x21, 0x12, 0xa4, 0x42, // magic cookie
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf,
        0xae, // transaction id
        0x80, 0x22, 0x00, 0x0b, // SOFTWARE, 11 bytes
        0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63, 0x74, 0x6f, 0x72, 0x20, // + pad
        0x00, 0x20, 0x00, 0x08, // XOR-MAPPED-ADDRESS
        0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43, // IPv4, port, address
        0x00, 0x08, 0x00, 0x14, // MESSAGE-INTEGRITY
        0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9, 0x2a, 0xf9, 0xba,
        0x53, 0xf0, 0x6b, 0xe7, 0xd7, // HMAC-SHA1
        0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96, // FINGERPRINT
    ];

    #[test]
    fn reads_the_rfc5769_sample_request() {
        let msg = StunMessage::new_checked(&SAMPLE_REQUEST).unwrap();
        assert_eq!(msg.message_type(), message_type::BINDING_REQUEST);
        assert_eq!(msg.username(), Some("evtj:h6vY"));
        assert!(!msg.has_use_candidate());
        assert!(msg.fingerprint_ok());
        assert!(msg.integrity_ok(PASSWORD));
        assert!(!msg.integrity_ok(b"wrong password"));
        let kinds: Vec<u16> = msg.attributes().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            [
                attr::SOFTWARE,
                attr::PRIORITY,
                attr::ICE_CONTROLLED,
                attr::USERNAME,
                attr::MESSAGE_INTEGRITY,
                attr::FINGERPRINT
            ]
        );
    }

    #[test]
    fn a_flipped_bit_fails_integrity_and_fingerprint() {
        let mut bad = SAMPLE_REQUEST;
        bad[30] ^= 0x01; // inside SOFTWARE
        let msg = StunMessage::new_checked(&bad).unwrap();
        assert!(!msg.integrity_ok(PASSWORD));
        assert!(!msg.fingerprint_ok());
    }

    #[test]
    fn reads_the_rfc5769_ipv4_response() {
        let msg = StunMessage::new_checked(&SAMPLE_IPV4_RESPONSE).unwrap();
        assert_eq!(msg.message_type(), message_type::BINDING_SUCCESS);
        assert_eq!(
            msg.xor_mapped_address(),
            Some("192.0.2.1:32853".parse().unwrap())
        );
        assert!(msg.integrity_ok(PASSWORD));
        assert!(msg.fingerprint_ok());
    }

    #[test]
    fn writes_the_rfc5769_ipv4_response() {
        let id = StunMessage::new_checked(&SAMPLE_IPV4_RESPONSE)
            .unwrap()
            .transaction_id();
        let mut out = Vec::new();
        let mut w = StunWriter::new(&mut out, message_type::BINDING_SUCCESS, &id);
        w.attribute(attr::SOFTWARE, b"test vector");
        w.xor_mapped_address("192.0.2.1:32853".parse().unwrap());
        w.message_integrity(PASSWORD);
        w.fingerprint();
        assert_eq!(out.len(), SAMPLE_IPV4_RESPONSE.len());
        // Identical but for SOFTWARE's padding byte (the RFC pads with a
        // space, we pad with zero), which MAC and CRC then cover.
        assert_eq!(out[..35], SAMPLE_IPV4_RESPONSE[..35]);
        assert_eq!(out[35], 0);
        assert_eq!(out[36..52], SAMPLE_IPV4_RESPONSE[36..52]);
        out[35] = 0x20;
        let mut with_space = Vec::new();
        let mut w = StunWriter::new(&mut with_space, message_type::BINDING_SUCCESS, &id);
        w.attribute(attr::SOFTWARE, b"test vector");
        with_space[35] = 0x20;
        let mut w = StunWriter {
            out: &mut with_space,
            start: 0,
        };
        w.xor_mapped_address("192.0.2.1:32853".parse().unwrap());
        w.message_integrity(PASSWORD);
        w.fingerprint();
        assert_eq!(with_space, SAMPLE_IPV4_RESPONSE);
    }

    #[test]
    fn round_trips_an_ipv6_mapped_address() {
        let mut out = Vec::new();
        let id = [7u8; 12];
        let addr: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
        let mut w = StunWriter::new(&mut out, message_type::BINDING_SUCCESS, &id);
        w.xor_mapped_address(addr).message_integrity(b"pw");
        w.fingerprint();
        let msg = StunMessage::new_checked(&out).unwrap();
        assert_eq!(msg.transaction_id(), id);
        assert_eq!(msg.xor_mapped_address(), Some(addr));
        assert!(msg.integrity_ok(b"pw"));
        assert!(msg.fingerprint_ok());
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(
            StunMessage::new_checked(&[0; 4]).unwrap_err(),
            StunError::Truncated
        );
        let mut no_cookie = SAMPLE_REQUEST;
        no_cookie[4] = 0;
        assert_eq!(
            StunMessage::new_checked(&no_cookie).unwrap_err(),
            StunError::NotStun
        );
        let mut overrun = SAMPLE_REQUEST;
        overrun[22] = 0xff; // SOFTWARE length runs past the end
        assert_eq!(
            StunMessage::new_checked(&overrun).unwrap_err(),
            StunError::Malformed
        );
        let mut too_long = SAMPLE_REQUEST;
        too_long[3] = 0x5c;
        assert_eq!(
            StunMessage::new_checked(&too_long).unwrap_err(),
            StunError::Truncated
        );
        // Every prefix of a valid message is rejected without a panic.
        for n in 0..SAMPLE_REQUEST.len() {
            let _ = StunMessage::new_checked(&SAMPLE_REQUEST[..n]);
        }
    }
}
