//! ICE-lite (RFC 8445 §2.5): the server sends no checks (except for
//! third-party sessions, `control::peer_checks`); it answers the
//! client's Binding requests on the media port and learns from them which
//! 5-tuple belongs to which session.
//!
//! Where it sits: a media worker hands a STUN datagram to
//! [`BindingRequest::read`], looks the session up by the local ufrag, checks
//! MESSAGE-INTEGRITY with that session's password and writes the response.

use std::net::SocketAddr;

use crate::ids::random_bytes;
use crate::wire::stun::{StunError, StunMessage, StunWriter, attr, message_type};

/// A session's ICE username fragment and password (RFC 8839 §5.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceCredentials {
    /// ice-ufrag: 8 characters.
    pub ufrag: String,
    /// ice-pwd: 24 characters (at least 22 required).
    pub pwd: String,
}

impl IceCredentials {
    /// Fresh random credentials from the ice-char alphabet.
    pub fn random() -> Self {
        IceCredentials {
            ufrag: ice_chars(&random_bytes::<8>()),
            pwd: ice_chars(&random_bytes::<24>()),
        }
    }
}

fn ice_chars(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect()
}

/// Why a STUN datagram is not a usable Binding request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IceError {
    /// Not a well-formed STUN message.
    #[error(transparent)]
    Stun(#[from] StunError),
    /// A STUN message other than a Binding request (responses, indications).
    #[error("not a binding request")]
    NotBindingRequest,
    /// USERNAME is missing or not `local:remote`.
    #[error("missing or malformed USERNAME")]
    BadUsername,
    /// FINGERPRINT is present but wrong.
    #[error("bad FINGERPRINT")]
    BadFingerprint,
    /// MESSAGE-INTEGRITY is missing or does not match the session's password.
    #[error("bad MESSAGE-INTEGRITY")]
    BadIntegrity,
}

/// A STUN message of type `wanted` (a Binding request or success
/// response) with a valid FINGERPRINT; `NotBindingRequest` for any other
/// type, so that the caller can try the other reading.
fn binding_message(datagram: &[u8], wanted: u16) -> Result<StunMessage<'_>, IceError> {
    let message = StunMessage::new_checked(datagram)?;
    if message.message_type() != wanted {
        return Err(IceError::NotBindingRequest);
    }
    if !message.fingerprint_ok() {
        return Err(IceError::BadFingerprint);
    }
    Ok(message)
}

/// A Binding request from the client, checked for form; its integrity still
/// has to be checked with the password of the session its ufrag names.
#[derive(Debug, Clone, Copy)]
pub struct BindingRequest<'a> {
    message: StunMessage<'a>,
    /// Our ufrag: the part of USERNAME before the colon.
    pub local_ufrag: &'a str,
    /// The client's ufrag.
    pub remote_ufrag: &'a str,
    /// USE-CANDIDATE: the controlling agent nominated this pair.
    pub use_candidate: bool,
}

impl<'a> BindingRequest<'a> {
    /// Reads a Binding request and its USERNAME.
    pub fn read(datagram: &'a [u8]) -> Result<Self, IceError> {
        let message = binding_message(datagram, message_type::BINDING_REQUEST)?;
        let (local_ufrag, remote_ufrag) = message
            .username()
            .and_then(|u| u.split_once(':'))
            .ok_or(IceError::BadUsername)?;
        Ok(BindingRequest {
            message,
            local_ufrag,
            remote_ufrag,
            use_candidate: message.has_use_candidate(),
        })
    }

    /// Its transaction id.
    pub fn transaction_id(&self) -> [u8; 12] {
        self.message.transaction_id()
    }

    /// Checks MESSAGE-INTEGRITY against our password for this ufrag.
    pub fn verify(&self, local_pwd: &str) -> Result<(), IceError> {
        if self.message.integrity_ok(local_pwd.as_bytes()) {
            Ok(())
        } else {
            Err(IceError::BadIntegrity)
        }
    }

    /// Appends the Binding success response for a request from `from`.
    pub fn write_success(&self, from: SocketAddr, local_pwd: &str, out: &mut Vec<u8>) {
        let id = self.message.transaction_id();
        let mut w = StunWriter::new(out, message_type::BINDING_SUCCESS, &id);
        w.xor_mapped_address(from)
            .message_integrity(local_pwd.as_bytes());
        w.fingerprint();
    }
}

/// A Binding success response (to a check we sent), checked for form; its
/// integrity is checked with the password of the peer we sent it to.
#[derive(Debug, Clone, Copy)]
pub struct BindingResponse<'a> {
    message: StunMessage<'a>,
}

impl<'a> BindingResponse<'a> {
    /// Reads a Binding success response.
    pub fn read(datagram: &'a [u8]) -> Result<Self, IceError> {
        let message = binding_message(datagram, message_type::BINDING_SUCCESS)?;
        Ok(BindingResponse { message })
    }

    /// Its transaction id: that of our check.
    pub fn transaction_id(&self) -> [u8; 12] {
        self.message.transaction_id()
    }

    /// Whether MESSAGE-INTEGRITY matches the peer's password.
    pub fn verify(&self, remote_pwd: &str) -> bool {
        self.message.integrity_ok(remote_pwd.as_bytes())
    }
}

/// Appends a Binding request as a controlling agent would send it: the
/// server's checks for third-party sessions (`control::peer_checks`), and
/// tests and the load generator.
pub fn write_binding_request(
    out: &mut Vec<u8>,
    transaction_id: &[u8; 12],
    username: &str,
    remote_pwd: &str,
    use_candidate: bool,
) {
    let role = (attr::ICE_CONTROLLING, use_candidate);
    write_request(out, transaction_id, username, remote_pwd, role);
}

/// Appends a Binding request as the controlled agent (an ICE-lite server
/// toward its client): the check of a new address before a session's media
/// moves there (`control::path_probe`), and consent checks on its path
/// (`control::consent`).
pub fn write_controlled_check(
    out: &mut Vec<u8>,
    transaction_id: &[u8; 12],
    username: &str,
    remote_pwd: &str,
) {
    write_request(
        out,
        transaction_id,
        username,
        remote_pwd,
        (attr::ICE_CONTROLLED, false),
    );
}

/// A Binding request with the role attribute and USE-CANDIDATE of `role`.
fn write_request(
    out: &mut Vec<u8>,
    transaction_id: &[u8; 12],
    username: &str,
    remote_pwd: &str,
    role: (u16, bool),
) {
    let mut w = StunWriter::new(out, message_type::BINDING_REQUEST, transaction_id);
    w.attribute(attr::USERNAME, username.as_bytes());
    w.attribute(attr::PRIORITY, &0x6e00_01ffu32.to_be_bytes());
    w.attribute(role.0, &[1, 2, 3, 4, 5, 6, 7, 8]);
    if role.1 {
        w.attribute(attr::USE_CANDIDATE, &[]);
    }
    w.message_integrity(remote_pwd.as_bytes());
    w.fingerprint();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_a_check_with_the_mapped_address() {
        let server = IceCredentials::random();
        assert_eq!(server.ufrag.len(), 8);
        assert_eq!(server.pwd.len(), 24);
        let mut req = Vec::new();
        let username = format!("{}:client", server.ufrag);
        write_binding_request(&mut req, &[9; 12], &username, &server.pwd, true);

        let check = BindingRequest::read(&req).unwrap();
        assert_eq!(check.local_ufrag, server.ufrag);
        assert_eq!(check.remote_ufrag, "client");
        assert!(check.use_candidate);
        check.verify(&server.pwd).unwrap();
        assert_eq!(
            check.verify("not the password").unwrap_err(),
            IceError::BadIntegrity
        );

        let from: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let mut resp = Vec::new();
        check.write_success(from, &server.pwd, &mut resp);
        let msg = StunMessage::new_checked(&resp).unwrap();
        assert_eq!(msg.message_type(), message_type::BINDING_SUCCESS);
        assert_eq!(msg.transaction_id(), [9; 12]);
        assert_eq!(msg.xor_mapped_address(), Some(from));
        assert!(msg.integrity_ok(server.pwd.as_bytes()));
        assert!(msg.fingerprint_ok());
    }

    #[test]
    fn reads_the_response_to_our_check_and_verifies_it_with_the_peer_password() {
        let peer = IceCredentials::random();
        let mut req = Vec::new();
        write_binding_request(
            &mut req,
            &[7; 12],
            &format!("{}:us", peer.ufrag),
            &peer.pwd,
            true,
        );
        let check = BindingRequest::read(&req).unwrap();
        let mut resp = Vec::new();
        check.write_success("10.0.0.1:40000".parse().unwrap(), &peer.pwd, &mut resp);

        let r = BindingResponse::read(&resp).unwrap();
        assert_eq!(r.transaction_id(), [7; 12]);
        assert!(r.verify(&peer.pwd));
        assert!(!r.verify("not the password"));
        assert_eq!(
            BindingResponse::read(&req).unwrap_err(),
            IceError::NotBindingRequest,
            "a request is not a response"
        );
        let mut bad = resp.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            BindingResponse::read(&bad).unwrap_err(),
            IceError::BadFingerprint
        );
    }

    #[test]
    fn rejects_requests_without_a_usable_username() {
        let mut req = Vec::new();
        write_binding_request(&mut req, &[1; 12], "nocolon", "pw", false);
        assert_eq!(
            BindingRequest::read(&req).unwrap_err(),
            IceError::BadUsername
        );
        let mut resp = Vec::new();
        let mut w = StunWriter::new(&mut resp, message_type::BINDING_SUCCESS, &[1; 12]);
        w.fingerprint();
        assert_eq!(
            BindingRequest::read(&resp).unwrap_err(),
            IceError::NotBindingRequest
        );
    }
}
