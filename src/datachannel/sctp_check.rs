//! Checks of an SCTP packet's chunks before rtc-sctp reads them, each for
//! an input that made rtc-sctp panic (found by the `sctp` fuzz target):
//! - rtc-sctp slices each error cause of an ABORT or ERROR chunk by its
//!   declared length without holding it against the chunk: packets whose
//!   chunks, or such causes, do not lie inside them are dropped.
//! - rtc-sctp steps to the next chunk by the length of what it read, not
//!   by the chunk's Length field: a chunk that claims more (a SHUTDOWN ACK
//!   of 32 bytes) made it read the rest as chunks nobody checked. Where the
//!   RFC fixes what a chunk holds, the two must agree (to the padding).
//! - rtc-sctp takes a DATA chunk whatever its distance past the cumulative
//!   TSN, and its SACK builder counts gap-block offsets in 16 bits without a
//!   check: a packet with a DATA chunk further ahead than a SACK can reach
//!   ([`TsnWindow`]) is dropped. No sender that waits for acknowledgements
//!   has that many chunks in flight.
//!
//! Chunks with parameters (INIT, HEARTBEAT, RE-CONFIG) are not walked here:
//! a panic on one is caught by [`super::sctp::SctpTransport`], which closes
//! that association only.
//!
//! Where it sits: [`super::sctp::SctpTransport::handle_packet`], on the
//! DTLS threads.

/// The common header: ports, verification tag, checksum.
const COMMON_HEADER: usize = 12;
/// A chunk's type, flags and length.
const CHUNK_HEADER: usize = 4;
/// An error cause's code and length.
const CAUSE_HEADER: usize = 4;
/// Chunk types (RFC 9260 §3.2).
const DATA: u8 = 0;
const INIT: u8 = 1;
const INIT_ACK: u8 = 2;
const SACK: u8 = 3;
const SHUTDOWN: u8 = 7;
const SHUTDOWN_ACK: u8 = 8;
const COOKIE_ACK: u8 = 11;
const SHUTDOWN_COMPLETE: u8 = 14;
/// Chunk types that carry error causes (RFC 9260 §3.3.7, §3.3.10).
const ABORT: u8 = 6;
const ERROR: u8 = 9;
/// Where the TSN lies in a DATA chunk, the initial TSN in an INIT or INIT
/// ACK, the cumulative TSN ack in a SACK (RFC 9260 §3.3).
const DATA_TSN: usize = 4;
const INIT_TSN: usize = 16;
const SACK_CUMULATIVE_TSN: usize = 4;
/// How far past the cumulative TSN ack a DATA chunk is taken: a SACK names
/// the chunks it holds beyond it by 16-bit offsets (RFC 9260 §3.3.4), and
/// rtc-sctp's SACK builder overflows on a run that reaches the last one.
pub const MAX_TSN_AHEAD: u32 = u16::MAX as u32 - 1;

/// Whether every chunk of `packet` lies inside it, every error cause of
/// its ABORT and ERROR chunks inside its chunk (walked as rtc-sctp walks
/// them: by their unpadded lengths), and what rtc-sctp reads of each chunk
/// ends where its Length field says.
pub fn chunks_fit(packet: &[u8]) -> bool {
    each_chunk(packet, |kind, chunk| {
        let value = &chunk[CHUNK_HEADER..];
        let read = match kind {
            ABORT | ERROR => causes_length(value),
            SACK => Some(sack_length(value)),
            SHUTDOWN => Some(4),
            SHUTDOWN_ACK | COOKIE_ACK | SHUTDOWN_COMPLETE => Some(0),
            _ => Some(value.len()),
        };
        read.is_some_and(|n| n.next_multiple_of(4) == value.len().next_multiple_of(4))
    })
}

/// Calls `check` with each chunk's type and bytes (its header included)
/// until it answers false; false too when a chunk does not lie inside the
/// packet.
fn each_chunk(packet: &[u8], mut check: impl FnMut(u8, &[u8]) -> bool) -> bool {
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
        if !check(header[0], chunk) {
            return false;
        }
        // Chunks are padded to 4 bytes; the last one's padding may be absent.
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    true
}

/// The length of the error causes at the start of `causes`, walked as
/// rtc-sctp walks them; None if one runs past the chunk.
fn causes_length(causes: &[u8]) -> Option<usize> {
    let mut read = 0;
    while causes.len() - read >= CAUSE_HEADER {
        let len = usize::from(u16::from_be_bytes([causes[read + 2], causes[read + 3]]));
        if len < CAUSE_HEADER || len > causes.len() - read {
            return None;
        }
        read += len;
    }
    Some(read)
}

/// The length a SACK's value has by its counts of gap-ack blocks and
/// duplicate TSNs (RFC 9260 §3.3.4); a shorter one is rtc-sctp's to refuse.
fn sack_length(value: &[u8]) -> usize {
    match value.get(8..12) {
        Some(counts) => {
            let blocks = usize::from(u16::from_be_bytes([counts[0], counts[1]]));
            let duplicates = usize::from(u16::from_be_bytes([counts[2], counts[3]]));
            12 + 4 * (blocks + duplicates)
        }
        None => value.len(),
    }
}

/// The TSN at `at` in `chunk`, if the chunk holds one there.
fn tsn_at(chunk: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(chunk.get(at..at + 4)?.try_into().ok()?))
}

/// The peer's TSNs the association can still acknowledge: up to
/// [`MAX_TSN_AHEAD`] past the cumulative TSN ack it last sent (before its
/// first SACK, the peer's initial TSN less one). Kept from the packets
/// themselves: the INIT or INIT ACK the peer sent, the SACKs we send. The
/// association's own cumulative TSN is never behind it, so a chunk this
/// window admits is never further ahead than it says.
#[derive(Debug, Default)]
pub struct TsnWindow {
    cumulative: Option<u32>,
}

impl TsnWindow {
    /// Whether no DATA chunk of `packet` (one that fits) lies further
    /// ahead than the association can acknowledge. Chunks at or before
    /// the cumulative TSN (duplicates) are the association's to drop.
    pub fn admits(&self, packet: &[u8]) -> bool {
        let Some(cumulative) = self.cumulative else {
            return true; // no association: nothing takes DATA yet
        };
        each_chunk(packet, |kind, chunk| {
            kind != DATA
                || tsn_at(chunk, DATA_TSN).is_none_or(|tsn| {
                    let ahead = tsn.wrapping_sub(cumulative);
                    ahead <= MAX_TSN_AHEAD || ahead > 1 << 31
                })
        })
    }

    /// A packet from the peer, admitted: before the association is up,
    /// its INIT or INIT ACK names the TSN its DATA starts from.
    pub fn received(&mut self, packet: &[u8], connected: bool) {
        if connected {
            return;
        }
        each_chunk(packet, |kind, chunk| {
            if matches!(kind, INIT | INIT_ACK)
                && let Some(initial) = tsn_at(chunk, INIT_TSN)
            {
                self.cumulative = Some(initial.wrapping_sub(1));
            }
            true
        });
    }

    /// A packet we send: its SACK's cumulative TSN ack moves the window.
    pub fn sent(&mut self, packet: &[u8]) {
        each_chunk(packet, |kind, chunk| {
            if kind == SACK
                && let Some(cumulative) = tsn_at(chunk, SACK_CUMULATIVE_TSN)
            {
                self.cumulative = Some(cumulative);
            }
            true
        });
    }
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

    #[test]
    fn what_is_read_of_a_chunk_ends_where_its_length_says() {
        // The fuzzer's find: a SHUTDOWN ACK of 32 bytes, read as 4, so that
        // rtc-sctp read the ERROR chunk inside it.
        let mut shutdown_ack = vec![SHUTDOWN_ACK, 0, 0, 32, ERROR, 0, 0, 20, 0, 0x7a, 0x8e, 0];
        shutdown_ack.resize(32, 0);
        assert!(!chunks_fit(&packet(&[&shutdown_ack])));
        assert!(chunks_fit(&packet(&[&[SHUTDOWN_ACK, 0, 0, 4]])));
        assert!(chunks_fit(&packet(&[&[SHUTDOWN, 0, 0, 8, 0, 0, 0, 9]])));
        assert!(!chunks_fit(&packet(&[&[
            SHUTDOWN, 0, 0, 12, 0, 0, 0, 9, 9, 0, 0, 4
        ]])));
        // A SACK with one gap-ack block, and one whose Length claims more.
        let sack: &[u8] = &[3, 0, 0, 20, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 3];
        assert!(chunks_fit(&packet(&[sack])));
        let mut long = sack.to_vec();
        long[3] = 28;
        long.extend_from_slice(&[ERROR, 0, 0, 4, 0, 0, 0, 0]);
        assert!(!chunks_fit(&packet(&[&long])));
        // Error causes that leave a part of their chunk unread.
        assert!(!chunks_fit(&packet(&[&[
            ERROR, 0, 0, 16, 0, 1, 0, 4, 9, 0, 0, 4, 0, 0, 0, 0
        ]])));
    }

    fn data(tsn: u32) -> Vec<u8> {
        let mut chunk = vec![DATA, 3, 0, 17];
        chunk.extend_from_slice(&tsn.to_be_bytes());
        chunk.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 51, b'x']);
        chunk
    }

    fn init(kind: u8, initial_tsn: u32) -> Vec<u8> {
        let mut chunk = vec![kind, 0, 0, 20, 0, 0, 0, 7, 0, 1, 0, 0, 0, 10, 0, 10];
        chunk.extend_from_slice(&initial_tsn.to_be_bytes());
        chunk
    }

    fn sack(cumulative: u32) -> Vec<u8> {
        let mut chunk = vec![SACK, 0, 0, 16];
        chunk.extend_from_slice(&cumulative.to_be_bytes());
        chunk.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        chunk
    }

    #[test]
    fn data_further_ahead_than_a_sack_reaches_is_not_admitted() {
        let mut window = TsnWindow::default();
        assert!(
            window.admits(&packet(&[&data(12345)])),
            "no association yet"
        );
        // The peer starts at TSN 0xffff_fff0: the window runs across the wrap.
        window.received(&packet(&[&init(INIT, 0xffff_fff0)]), false);
        let last = 0xffff_ffef_u32.wrapping_add(MAX_TSN_AHEAD);
        assert!(window.admits(&packet(&[&data(0xffff_fff0), &data(last)])));
        assert!(!window.admits(&packet(&[&data(0xffff_fff0), &data(last + 1)])));
        assert!(!window.admits(&packet(&[&data(0x7fff_0000)])));
        assert!(
            window.admits(&packet(&[&data(0xffff_0000)])),
            "a duplicate is the association's to drop"
        );
        // Once connected, an INIT does not move the window; our SACKs do.
        window.received(&packet(&[&init(INIT_ACK, 5)]), true);
        assert!(!window.admits(&packet(&[&data(last + 1)])));
        window.sent(&packet(&[&sack(100)]));
        assert!(window.admits(&packet(&[&data(last + 1)])));
        assert!(window.admits(&packet(&[&data(100 + MAX_TSN_AHEAD)])));
        assert!(!window.admits(&packet(&[&data(101 + MAX_TSN_AHEAD)])));
    }
}
