//! Zero-copy views over the packets that reach the media port: STUN, RTP and
//! RTCP. A view is checked once (`new_checked`); after that its accessors
//! cannot panic. Writers are separate from readers.
//!
//! Where it sits: the first thing a media worker does with a datagram is
//! [`classify`] it (RFC 7983 demultiplexing by first byte), then hand it to
//! the matching view.

pub mod rtcp;
pub mod rtp;
pub mod stun;

/// What a datagram on the media port is, by its first byte (RFC 7983).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// First byte 0..=3: STUN.
    Stun,
    /// First byte 20..=63: DTLS.
    Dtls,
    /// First byte 128..=191 and a payload type outside 64..=95: RTP.
    Rtp,
    /// First byte 128..=191 and a packet type 192..=223: RTCP (RFC 5761).
    Rtcp,
    /// Anything else: dropped.
    Unknown,
}

/// Classifies a datagram by its first bytes (RFC 7983, RFC 5761 §4).
pub fn classify(datagram: &[u8]) -> PacketKind {
    match datagram.first() {
        Some(0..=3) => PacketKind::Stun,
        Some(20..=63) => PacketKind::Dtls,
        Some(128..=191) => match datagram.get(1) {
            Some(192..=223) => PacketKind::Rtcp,
            Some(_) => PacketKind::Rtp,
            None => PacketKind::Unknown,
        },
        _ => PacketKind::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demultiplexes_by_first_byte() {
        assert_eq!(classify(&[0x00, 0x01]), PacketKind::Stun);
        assert_eq!(classify(&[22, 0xfe, 0xfd]), PacketKind::Dtls);
        // V=2, PT=96 (VP8): RTP.
        assert_eq!(classify(&[0x80, 96]), PacketKind::Rtp);
        // V=2, marker set, PT=111: RTP.
        assert_eq!(classify(&[0x80, 0x80 | 111]), PacketKind::Rtp);
        // V=2, PT=200 (SR): RTCP.
        assert_eq!(classify(&[0x80, 200]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x81, 206]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x40]), PacketKind::Unknown);
        assert_eq!(classify(&[]), PacketKind::Unknown);
        assert_eq!(classify(&[0x80]), PacketKind::Unknown);
    }
}
