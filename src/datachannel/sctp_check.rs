//! Checks of an SCTP packet before rtc-sctp reads it, each for input that
//! makes rtc-sctp panic or stall (the first found by the `sctp` fuzz
//! target); a packet that fails one is dropped and counted:
//! - every chunk lies inside the packet, and what rtc-sctp reads of it
//!   ([`super::sctp_read`]) ends where its Length field says: rtc-sctp
//!   slices error causes by their own lengths, and steps to the next chunk
//!   by what it read, so a chunk that claims more (a SHUTDOWN ACK of 32
//!   bytes) made it read chunks nobody checked;
//! - DATA and FORWARD TSN stay within what a SACK can acknowledge
//!   ([`TsnWindow`]): rtc-sctp takes a TSN whatever its distance past the
//!   cumulative TSN, and its SACK builder counts gap-block offsets in 16
//!   bits without a check; it steps TSN by TSN up to a FORWARD TSN's new
//!   cumulative TSN, up to 2^31 steps on the thread. No sender that waits
//!   for acknowledgements goes that far.
//!
//! Where it sits: [`super::sctp::SctpTransport::handle_packet`], on the
//! DTLS threads.

use super::sctp_read::{self, DATA, FORWARD_TSN, INIT, INIT_ACK, SACK};

/// The common header: ports, verification tag, checksum.
const COMMON_HEADER: usize = 12;
/// A chunk's type, flags and length.
const CHUNK_HEADER: usize = 4;
/// Where the TSN lies in a DATA chunk, the new cumulative TSN in a FORWARD
/// TSN, the initial TSN in an INIT or INIT ACK, the cumulative TSN ack in
/// a SACK (RFC 9260 §3.3, RFC 3758 §3.2).
const DATA_TSN: usize = 4;
const FORWARD_TSN_CUMULATIVE: usize = 4;
const INIT_TSN: usize = 16;
const SACK_CUMULATIVE_TSN: usize = 4;
/// How far past the cumulative TSN ack a DATA chunk or a FORWARD TSN is
/// taken: a SACK names the chunks it holds beyond it by 16-bit offsets
/// (RFC 9260 §3.3.4), and rtc-sctp's SACK builder overflows on a run that
/// reaches the last one.
pub const MAX_TSN_AHEAD: u32 = u16::MAX as u32 - 1;
/// Serial number arithmetic's half (RFC 1982): rtc-sctp takes a TSN up to
/// this far ahead of its cumulative TSN as new, further as old.
const HALF: u32 = 1 << 31;

/// Whether every chunk of `packet` lies inside it, and what rtc-sctp reads
/// of each ends where its Length field says (to the padding): error causes
/// inside their chunk, no chunk hidden inside another.
pub fn chunks_fit(packet: &[u8]) -> bool {
    each_chunk(packet, |kind, chunk| {
        let value = &chunk[CHUNK_HEADER..];
        sctp_read::value_read(kind, value)
            .is_some_and(|read| read.next_multiple_of(4) == value.len().next_multiple_of(4))
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
        let len = sctp_read::length_field(header);
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

/// The TSN at `at` in `chunk`, if the chunk holds one there.
fn tsn_at(chunk: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(chunk.get(at..at + 4)?.try_into().ok()?))
}

/// The peer's TSNs the association can still acknowledge: up to
/// [`MAX_TSN_AHEAD`] past the cumulative TSN ack it last sent (before its
/// first SACK, the peer's initial TSN less one). Kept from the packets
/// themselves: the INIT or INIT ACK the peer sent, the SACKs we send.
///
/// Why that bounds rtc-sctp: its own cumulative TSN is never behind this
/// one, and never more than [`MAX_TSN_AHEAD`] ahead of it, since only DATA
/// and FORWARD TSN move it and both are held to the window. A TSN admitted
/// ahead is then within [`MAX_TSN_AHEAD`] of rtc-sctp's; one admitted
/// behind is far enough behind that rtc-sctp too takes it for old.
#[derive(Debug, Default)]
pub struct TsnWindow {
    cumulative: Option<u32>,
}

impl TsnWindow {
    /// Whether every DATA chunk's TSN and FORWARD TSN's new cumulative TSN
    /// in `packet` (whose chunks fit) lies within the window, or behind it.
    pub fn admits(&self, packet: &[u8]) -> bool {
        let Some(cumulative) = self.cumulative else {
            return true; // no association: nothing takes DATA yet
        };
        let within = |tsn: u32| {
            let ahead = tsn.wrapping_sub(cumulative);
            ahead <= MAX_TSN_AHEAD || ahead > HALF + MAX_TSN_AHEAD + 1
        };
        each_chunk(packet, |kind, chunk| match kind {
            DATA => tsn_at(chunk, DATA_TSN).is_none_or(within),
            FORWARD_TSN => tsn_at(chunk, FORWARD_TSN_CUMULATIVE).is_none_or(within),
            _ => true,
        })
    }

    /// A packet from the peer, admitted: before the association is up,
    /// its INIT (the newest stands, as the association it makes does) or
    /// its first INIT ACK (the one rtc-sctp answers) names the TSN its DATA
    /// starts from.
    pub fn received(&mut self, packet: &[u8], connected: bool) {
        if connected {
            return;
        }
        each_chunk(packet, |kind, chunk| {
            let takes = kind == INIT || (kind == INIT_ACK && self.cumulative.is_none());
            if takes && let Some(initial) = tsn_at(chunk, INIT_TSN) {
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
    use crate::datachannel::sctp_read::{ERROR, HEARTBEAT, SHUTDOWN, SHUTDOWN_ACK};

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
        // A Heartbeat Info shorter than its HEARTBEAT, with a DATA chunk
        // in the rest.
        let mut heartbeat = vec![HEARTBEAT, 0, 0, 32, 0, 1, 0, 8, 1, 2, 3, 4];
        heartbeat.extend(data(7));
        heartbeat.resize(32, 0);
        assert!(!chunks_fit(&packet(&[&heartbeat])));
        heartbeat[7] = 28;
        assert!(
            chunks_fit(&packet(&[&heartbeat])),
            "all of it Heartbeat Info"
        );
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

    fn forward_tsn(cumulative: u32) -> Vec<u8> {
        let mut chunk = vec![FORWARD_TSN, 0, 0, 8];
        chunk.extend_from_slice(&cumulative.to_be_bytes());
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
        assert!(!window.admits(&packet(&[&forward_tsn(last + 1)])));
        assert!(window.admits(&packet(&[&forward_tsn(last)])));
        // Behind: a duplicate is the association's to drop, unless it is so
        // far behind that the association could take it for new.
        assert!(window.admits(&packet(&[&data(0xffff_0000)])));
        let far_behind = 0xffff_ffef_u32.wrapping_add(HALF + MAX_TSN_AHEAD + 1);
        assert!(!window.admits(&packet(&[&data(far_behind)])));
        assert!(window.admits(&packet(&[&data(far_behind + 1)])));
        // Once connected, an INIT does not move the window; our SACKs do.
        window.received(&packet(&[&init(INIT, 5)]), true);
        assert!(!window.admits(&packet(&[&data(last + 1)])));
        window.sent(&packet(&[&sack(100)]));
        assert!(window.admits(&packet(&[&data(last + 1)])));
        assert!(window.admits(&packet(&[&data(100 + MAX_TSN_AHEAD)])));
        assert!(!window.admits(&packet(&[&data(101 + MAX_TSN_AHEAD)])));
    }

    #[test]
    fn the_window_starts_where_the_association_does() {
        // As server: the newest INIT before connecting stands.
        let mut window = TsnWindow::default();
        window.received(&packet(&[&init(INIT, 1000)]), false);
        window.received(&packet(&[&init(INIT, 9000)]), false);
        assert!(window.admits(&packet(&[&data(9000 + MAX_TSN_AHEAD - 1)])));
        assert!(!window.admits(&packet(&[&data(1000 + 2 * MAX_TSN_AHEAD)])));
        // As client: the first INIT ACK, the one answered with a COOKIE ECHO.
        let mut window = TsnWindow::default();
        window.received(&packet(&[&init(INIT_ACK, 1000)]), false);
        window.received(&packet(&[&init(INIT_ACK, 900_000)]), false);
        assert!(window.admits(&packet(&[&data(1000 + MAX_TSN_AHEAD - 1)])));
        assert!(!window.admits(&packet(&[&data(900_000)])));
    }
}
