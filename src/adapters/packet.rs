//! The adapters' wire message: each binary WebSocket message is one
//! protobuf `Packet { uint32 sequenceNumber = 1; uint32 timestamp = 2;
//! bytes payload = 5; }` (calls-api.md, "WebSocket adapters"), encoded and
//! decoded by prost.
//!
//! Where it sits: egress tasks write one per PCM frame or JPEG picture;
//! the ingest task reads the `payload` of each message it receives.

use prost::Message;

/// The largest ingest message read (its payload at most [`MAX_PAYLOAD`]
/// plus the header fields); a larger one closes the adapter.
pub const MAX_MESSAGE: usize = MAX_PAYLOAD + 64;
/// The largest `payload` an ingest message may carry (calls-api.md: 32 KB).
pub const MAX_PAYLOAD: usize = 32 * 1024;

/// One adapter message.
#[derive(Clone, PartialEq, Message)]
pub struct Packet {
    /// Egress: counts messages from 0 (PCM: frames).
    #[prost(uint32, tag = "1")]
    pub sequence_number: u32,
    /// Egress PCM: the frame's first sample in 48 kHz units; JPEG: the
    /// picture's time in 90 kHz units.
    #[prost(uint32, tag = "2")]
    pub timestamp: u32,
    /// PCM s16le 48 kHz stereo interleaved, or one JPEG picture.
    #[prost(bytes = "vec", tag = "5")]
    pub payload: Vec<u8>,
}

impl Packet {
    /// The message's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Reads a message; `None` unless it is a well-formed `Packet`.
    pub fn from_bytes(bytes: &[u8]) -> Option<Packet> {
        Packet::decode(bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_field_numbers() {
        let p = Packet {
            sequence_number: 1,
            timestamp: 960,
            payload: vec![7, 8],
        };
        // field 1 varint 1; field 2 varint 960; field 5 bytes [7, 8].
        assert_eq!(p.to_bytes(), [0x08, 1, 0x10, 0xc0, 0x07, 0x2a, 2, 7, 8]);
        assert_eq!(Packet::from_bytes(&p.to_bytes()), Some(p));
    }

    #[test]
    fn garbage_is_refused_not_a_panic() {
        assert_eq!(Packet::from_bytes(&[0xff, 0xff, 0xff]), None);
        assert_eq!(Packet::from_bytes(&[0x2a, 200]), None); // length past the end
    }
}
