//! RTP packets (RFC 3550) as the forwarder touches them: a checked view for
//! reading the fixed header and the RFC 8285 one-byte header extensions, and
//! in-place rewrites of the fields an SFU changes per subscriber (payload
//! type, SSRC, extension ids).
//!
//! Where it sits: after SRTP unprotect on the publisher's worker, and again
//! before SRTP protect for each subscriber.

use rtp_types::RtpPacket;

/// Fixed header offsets (RFC 3550 §5.1).
mod field {
    use std::ops::Range;
    pub const SEQUENCE: Range<usize> = 2..4;
    pub const TIMESTAMP: Range<usize> = 4..8;
    pub const SSRC: Range<usize> = 8..12;
}

/// The profile of one-byte header extensions (RFC 8285 §4.2).
const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// Why bytes are not an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed RTP packet")]
pub struct RtpError;

/// A checked view of one plaintext RTP packet.
#[derive(Debug, Clone, Copy)]
pub struct RtpHeader<'a> {
    buf: &'a [u8],
    layout: RtpLayout,
}

/// Where the variable parts of a checked packet lie; it borrows nothing, so a
/// rewrite can use it while it mutates the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpLayout {
    /// Offset, length and profile of the header extension payload.
    extension: Option<(usize, usize, u16)>,
    /// Where the payload starts.
    pub payload_offset: usize,
}

impl<'a> RtpHeader<'a> {
    /// Checks version, CSRC count, extension and padding against the length.
    pub fn new_checked(buf: &'a [u8]) -> Result<Self, RtpError> {
        let packet = RtpPacket::parse(buf).map_err(|_| RtpError)?;
        let extension = packet.extension().map(|(profile, data)| {
            let offset = data.as_ptr() as usize - buf.as_ptr() as usize;
            (offset, data.len(), profile)
        });
        let payload_offset = packet.payload_offset();
        Ok(RtpHeader {
            buf,
            layout: RtpLayout {
                extension,
                payload_offset,
            },
        })
    }

    /// Offsets of the extension block and payload.
    pub fn layout(&self) -> RtpLayout {
        self.layout
    }

    /// The payload type (7 bits).
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7f
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    /// The sequence number.
    pub fn sequence_number(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes(self.buf[field::TIMESTAMP].try_into().unwrap_or_default())
    }

    /// The synchronisation source.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes(self.buf[field::SSRC].try_into().unwrap_or_default())
    }

    /// Where the payload starts.
    pub fn payload_offset(&self) -> usize {
        self.layout.payload_offset
    }

    /// The value of one-byte header extension `id`, if present.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        let (offset, len, profile) = self.layout.extension?;
        if profile != ONE_BYTE_PROFILE || id == 0 {
            return None;
        }
        one_byte_elements(&self.buf[offset..offset + len])
            .find(|(eid, _, _)| *eid == id)
            .map(|(_, at, n)| &self.buf[offset + at..offset + at + n])
    }
}

/// The length of an RTP header (fixed part, CSRCs, extension) without
/// looking at padding: for SRTP packets, whose last bytes are the tag.
pub fn header_len(packet: &[u8]) -> Option<usize> {
    let first = *packet.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let mut len = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = packet.get(len + 2..len + 4)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    (len <= packet.len()).then_some(len)
}

/// Iterates one-byte extension elements: (id, value offset, value length).
fn one_byte_elements(data: &[u8]) -> impl Iterator<Item = (u8, usize, usize)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < data.len() {
            let b = data[at];
            if b == 0 {
                at += 1; // padding
                continue;
            }
            let id = b >> 4;
            if id == 15 {
                return None; // reserved: stop parsing (RFC 8285 §4.2)
            }
            let len = usize::from(b & 0x0f) + 1;
            let start = at + 1;
            if start + len > data.len() {
                return None;
            }
            at = start + len;
            return Some((id, start, len));
        }
        None
    })
}

/// The per-subscriber rewrite of a forwarded packet's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite<'a> {
    /// The SSRC the subscriber knows the stream by.
    pub ssrc: u32,
    /// The payload type in the subscriber's session.
    pub payload_type: u8,
    /// One-byte extension ids, publisher's → subscriber's (0: blank it).
    pub extensions: &'a [u8; 16],
    /// The subscriber's transport-wide sequence number extension id and
    /// the number to write in it (the publisher's number is replaced).
    pub transport_cc: Option<(u8, u16)>,
}

/// Rewrites SSRC and payload type in place, and the ids of one-byte header
/// extensions: those the subscriber negotiated get its id, the others
/// become padding (RFC 8285 §4.2: zero bytes, which receivers skip); the
/// transport-wide sequence number becomes ours. The packet keeps its
/// length. `layout` must come from the view of `packet`. Returns whether
/// the transport-wide number was written (the packet carried one).
pub fn rewrite_in_place(packet: &mut [u8], layout: RtpLayout, rewrite: Rewrite<'_>) -> bool {
    let mut stamped = false;
    packet[1] = (packet[1] & 0x80) | (rewrite.payload_type & 0x7f);
    packet[field::SSRC].copy_from_slice(&rewrite.ssrc.to_be_bytes());
    if let Some((offset, len, profile)) = layout.extension {
        if profile == ONE_BYTE_PROFILE {
            let block = &mut packet[offset..offset + len];
            let mut at = 0;
            while at < block.len() {
                let b = block[at];
                if b == 0 {
                    at += 1;
                    continue;
                }
                let id = b >> 4;
                let end = (at + 2 + usize::from(b & 0x0f)).min(block.len());
                if id == 15 {
                    // Reserved: nothing after it is read; blank the rest.
                    block[at..].fill(0);
                    break;
                }
                match rewrite.extensions[usize::from(id)] {
                    0 => block[at..end].fill(0),
                    to => {
                        block[at] = (to << 4) | (b & 0x0f);
                        if let Some((tcc, seq)) = rewrite.transport_cc
                            && tcc == to
                            && end - at == 3
                        {
                            block[at + 1..end].copy_from_slice(&seq.to_be_bytes());
                            stamped = true;
                        }
                    }
                }
                at = end;
            }
        } else {
            // Two-byte or unknown profile: turn the block into an unknown
            // profile that receivers ignore.
            packet[offset - 4..offset - 2].copy_from_slice(&0u16.to_be_bytes());
        }
    }
    stamped
}

/// Writes a sequence number in place.
pub fn set_sequence_number(packet: &mut [u8], seq: u16) {
    packet[field::SEQUENCE].copy_from_slice(&seq.to_be_bytes());
}

/// Writes a timestamp in place.
pub fn set_timestamp(packet: &mut [u8], timestamp: u32) {
    packet[field::TIMESTAMP].copy_from_slice(&timestamp.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// VP8 packet with a one-byte extension block holding mid "0" (id 4)
    /// and abs-send-time (id 2), then a 3-byte payload.
    fn sample() -> Vec<u8> {
        vec![
            0x90, 0xe0, // V=2, X=1; M=1, PT=96
            0x12, 0x34, // sequence 0x1234
            0x00, 0x00, 0x10, 0x00, // timestamp 4096
            0xde, 0xad, 0xbe, 0xef, // SSRC
            0xbe, 0xde, 0x00, 0x02, // one-byte profile, 2 words
            0x40, b'0', // id 4, len 1: mid "0"
            0x22, 0x01, 0x02, 0x03, // id 2, len 3: abs-send-time
            0x00, 0x00, // padding
            0xaa, 0xbb, 0xcc, // payload
        ]
    }

    #[test]
    fn reads_fixed_header_and_extensions() {
        let p = sample();
        let h = RtpHeader::new_checked(&p).unwrap();
        assert_eq!(h.payload_type(), 96);
        assert!(h.marker());
        assert_eq!(h.sequence_number(), 0x1234);
        assert_eq!(h.timestamp(), 4096);
        assert_eq!(h.ssrc(), 0xdeadbeef);
        assert_eq!(h.extension(4), Some(&b"0"[..]));
        assert_eq!(h.extension(2), Some(&[1u8, 2, 3][..]));
        assert_eq!(h.extension(3), None);
        assert_eq!(&p[h.payload_offset()..], &[0xaa, 0xbb, 0xcc]);
    }

    #[test]
    fn rewrites_in_place_and_keeps_the_payload() {
        let mut p = sample();
        let layout = RtpHeader::new_checked(&p).unwrap().layout();
        let mut map = [0u8; 16];
        map[2] = 3; // abs-send-time kept, as id 3; mid (id 4) blanked
        rewrite_in_place(
            &mut p,
            layout,
            Rewrite {
                ssrc: 0x01020304,
                payload_type: 100,
                extensions: &map,
                transport_cc: None,
            },
        );
        set_sequence_number(&mut p, 7);
        let h = RtpHeader::new_checked(&p).unwrap();
        assert_eq!(h.payload_type(), 100);
        assert!(h.marker());
        assert_eq!(h.ssrc(), 0x01020304);
        assert_eq!(h.sequence_number(), 7);
        assert_eq!(h.extension(4), None);
        assert_eq!(h.extension(2), None);
        assert_eq!(h.extension(3), Some(&[1u8, 2, 3][..]));
        assert_eq!(&p[h.payload_offset()..], &[0xaa, 0xbb, 0xcc]);
        assert_eq!(p.len(), sample().len());
    }

    #[test]
    fn the_transport_wide_number_becomes_ours() {
        // abs-send-time's slot (id 2, 3 bytes) is not it; a 2-byte
        // transport-cc element (id 5) is added in the padding.
        let mut p = sample();
        p[22..24].copy_from_slice(&[0x51, 0x00]);
        p.splice(24..24, [0x07, 0x00, 0x00, 0x00]);
        p[15] = 3; // three words now
        let layout = RtpHeader::new_checked(&p).unwrap().layout();
        let mut map = [0u8; 16];
        map[5] = 9;
        map[2] = 3;
        let rewrite = Rewrite {
            ssrc: 1,
            payload_type: 100,
            extensions: &map,
            transport_cc: Some((9, 0xabcd)),
        };
        assert!(rewrite_in_place(&mut p, layout, rewrite));
        let h = RtpHeader::new_checked(&p).unwrap();
        assert_eq!(h.extension(9), Some(&[0xab, 0xcd][..]));
        assert_eq!(h.extension(3), Some(&[1u8, 2, 3][..]));
        // Not negotiated by the subscriber: blanked, nothing written.
        let mut q = sample();
        let layout = RtpHeader::new_checked(&q).unwrap().layout();
        let none = Rewrite {
            transport_cc: Some((9, 1)),
            ..rewrite
        };
        assert!(!rewrite_in_place(&mut q, layout, none));
    }

    #[test]
    fn header_length_ignores_padding() {
        let p = sample();
        assert_eq!(header_len(&p), Some(24));
        let mut padded = p.clone();
        padded[0] |= 0x20; // P bit, with a last byte that is no padding count
        assert_eq!(header_len(&padded), Some(24));
        assert_eq!(header_len(&p[..20]), None);
        assert_eq!(header_len(&[0x40; 12]), None);
    }

    #[test]
    fn rejects_truncated_packets_without_panicking() {
        let p = sample();
        for n in 0..p.len() - 3 {
            let _ = RtpHeader::new_checked(&p[..n]);
        }
        assert!(RtpHeader::new_checked(&p[..11]).is_err());
        assert!(RtpHeader::new_checked(&p[..20]).is_err()); // extension overruns
    }
}
