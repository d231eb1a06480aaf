//! A check of an SCTP packet's chunks before rtc-sctp reads them. rtc-sctp
//! slices each error cause of an ABORT or ERROR chunk by its declared
//! length without holding it against the chunk, so a cause that runs past
//! its chunk panics the reading thread (found by the `sctp` fuzz target).
//! Packets whose chunks, or such causes, do not lie inside them are
//! dropped here, before the association sees them.
//!
//! Where it sits: [`super::sctp::SctpTransport::handle_packet`], on the
//! DTLS threads.

/// The common header: ports, verification tag, checksum.
const COMMON_HEADER: usize = 12;
/// A chunk's type, flags and length.
const CHUNK_HEADER: usize = 4;
/// An error cause's code and length.
const CAUSE_HEADER: usize = 4;
/// Chunk types that carry error causes (RFC 9260 §3.3.7, §3.3.10).
const ABORT: u8 = 6;
const ERROR: u8 = 9;

/// Whether every chunk of `packet` lies inside it, and every error cause
/// of its ABORT and ERROR chunks inside its chunk (walked as rtc-sctp
/// walks them: by their unpadded lengths).
pub fn chunks_fit(packet: &[u8]) -> bool {
    let Some(mut rest) = packet.get(COMMON_HEADER..) else {
        return false;
    };
    while !rest.is_empty() {
        let Some(header) = rest.get(..CHUNK_HEADER) else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let Some(chunk) = rest.get(..len).filter(|_| len >= CHUNK_HEADER) else {
            return false;
        };
        if matches!(header[0], ABORT | ERROR) && !causes_fit(&chunk[CHUNK_HEADER..]) {
            return false;
        }
        // Chunks are padded to 4 bytes; the last one's padding may be absent.
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    true
}

fn causes_fit(mut causes: &[u8]) -> bool {
    while causes.len() >= CAUSE_HEADER {
        let len = usize::from(u16::from_be_bytes([causes[2], causes[3]]));
        if len < CAUSE_HEADER || len > causes.len() {
            return false;
        }
        causes = &causes[len..];
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(chunks: &[&[u8]]) -> Vec<u8> {
        let mut p = vec![0x13, 0x88, 0x13, 0x88, 1, 2, 3, 4, 0, 0, 0, 0];
        for c in chunks {
            p.extend_from_slice(c);
            p.resize(p.len().next_multiple_of(4), 0);
        }
        p
    }

    #[test]
    fn chunks_and_causes_must_lie_inside() {
        // SACK-like chunk, then an ABORT with "User Initiated Abort" and a
        // 3-byte reason (cause length 7, chunk padded).
        let sack: &[u8] = &[3, 0, 0, 16, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0];
        let abort: &[u8] = &[6, 0, 0, 11, 0, 12, 0, 7, b'b', b'y', b'e'];
        assert!(chunks_fit(&packet(&[sack, abort])));
        assert!(
            chunks_fit(&packet(&[&[6, 0, 0, 4]])),
            "an ABORT without causes"
        );
        // The fuzzer's find: a cause longer than its chunk.
        assert!(!chunks_fit(&packet(&[&[6, 0, 0, 8, 0, 13, 0, 32]])));
        assert!(
            !chunks_fit(&packet(&[&[9, 0, 0, 8, 0, 1, 0, 2]])),
            "length < 4"
        );
        // Chunks that run past the packet, or claim less than a header.
        assert!(!chunks_fit(&packet(&[&[0, 3, 0, 64, 0, 0, 0, 0]])));
        assert!(!chunks_fit(&packet(&[&[0, 3, 0, 2]])));
        assert!(!chunks_fit(&[0; 8]), "shorter than the common header");
    }
}
