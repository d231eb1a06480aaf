//! STUN and ICE Binding requests (RFC 8489, RFC 8445), the first thing a
//! datagram from an unknown address meets. Two shapes of input: raw bytes
//! for the reader, and attributes that our writer wraps with a valid
//! MESSAGE-INTEGRITY and FINGERPRINT, so that what lies behind those checks
//! (USERNAME, USE-CANDIDATE, the response) is reached too.
#![no_main]

use std::net::SocketAddr;

use libfuzzer_sys::fuzz_target;
use switchboard::ice::BindingRequest;
use switchboard::wire::stun::{StunMessage, StunWriter, attr, message_type};
use switchboard::wire::{PacketKind, classify};
use switchboard_fuzz::records;

const PWD: &str = "fuzzfuzzfuzzfuzzfuzzfuzz";

fn read(datagram: &[u8]) {
    if let Ok(m) = StunMessage::new_checked(datagram) {
        let _ = (m.message_type(), m.transaction_id(), m.as_bytes().len());
        for a in m.attributes() {
            assert!(a.offset + 4 + a.value.len() <= datagram.len());
        }
        let _ = (m.username(), m.has_use_candidate(), m.fingerprint_ok());
        let _ = (m.integrity_ok(PWD.as_bytes()), m.xor_mapped_address());
    }
    let Ok(request) = BindingRequest::read(datagram) else {
        return;
    };
    let from = SocketAddr::from(([192, 0, 2, 1], 5000));
    if request.verify(PWD).is_ok() {
        let mut out = Vec::new();
        request.write_success(from, PWD, &mut out);
        let response = StunMessage::new_checked(&out).expect("our response reads back");
        assert!(response.fingerprint_ok() && response.integrity_ok(PWD.as_bytes()));
        assert_eq!(response.xor_mapped_address(), Some(from));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let _ = classify(rest) == PacketKind::Stun;
        read(rest);
        return;
    }
    // Attributes from the records (type from the tag and the first byte),
    // wrapped by our writer.
    let mut out = Vec::new();
    let mut w = StunWriter::new(&mut out, message_type::BINDING_REQUEST, &[7; 12]);
    let mut written = 20;
    for r in records(rest) {
        let (kind, value) = match r.bytes.split_first() {
            Some((&low, value)) => (u16::from_be_bytes([r.tag, low]), value),
            None => (u16::from(r.tag), r.bytes),
        };
        // The writer appends the two it owns itself; the length field is 16 bits.
        written += 4 + value.len().next_multiple_of(4);
        if kind != attr::MESSAGE_INTEGRITY && kind != attr::FINGERPRINT && written < 60_000 {
            w.attribute(kind, value);
        }
    }
    w.message_integrity(PWD.as_bytes());
    w.fingerprint();
    let message = StunMessage::new_checked(&out).expect("our writer's message reads back");
    assert!(message.fingerprint_ok(), "our FINGERPRINT checks");
    assert!(
        message.integrity_ok(PWD.as_bytes()),
        "our MESSAGE-INTEGRITY checks"
    );
    read(&out);
});
