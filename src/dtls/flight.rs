//! Our last handshake flight, sent again when the peer repeats the flight it
//! answered (RFC 6347 §4.2.4): a peer repeats its flight because ours was
//! lost. Sits between the worker's DTLS records and the DTLS endpoint
//! (rtc-dtls), on the handshake threads.
//!
//! The endpoint does not answer a repeat: one that reaches it while it waits
//! for the peer's next flight even stops its retransmission timer, and the
//! handshake stalls for good. Chromium repeats its ClientHello 50 ms after
//! sending it, well before our 1 s timer, so one lost ServerHello flight
//! left a browser without media. [`LastFlight`] keeps repeats from the
//! endpoint and answers them itself.

use super::client_hello::handshake_fragments;

/// Copies of one flight sent on the peer's repeats, at most (the
/// endpoint's own timer retransmits besides).
const MAX_RESENDS: u8 = 8;
/// Handshake fragments remembered (a handshake has fewer).
const MAX_FRAGMENTS: usize = 64;

/// One handshake fragment: message_seq, fragment offset and length.
type FragmentId = (u16, usize, usize);

/// The flight we sent last, and the peer's fragments it answered.
///
/// Call contract: every datagram from the peer goes through
/// [`repeat`](Self::repeat) first; one that is not a repeat is
/// [`fed`](Self::fed) to the endpoint; every flight the endpoint sends is
/// recorded with [`sent`](Self::sent).
#[derive(Default)]
pub(super) struct LastFlight {
    datagrams: Vec<Vec<u8>>,
    /// The peer's fragments fed to the endpoint, in order.
    fed: Vec<FragmentId>,
    /// How many of `fed` came before our last flight (it answered them).
    answered: usize,
    resends_left: u8,
}

impl LastFlight {
    /// For a datagram that only repeats handshake fragments our last
    /// flight answered: the copies of that flight to send again (none
    /// unless the datagram starts the peer's last answered message, or
    /// once the resends ran out). The datagram must not reach the endpoint.
    /// None for anything else (new fragments, other records).
    pub(super) fn repeat(&mut self, datagram: &[u8]) -> Option<Vec<Vec<u8>>> {
        let answered = &self.fed[..self.answered];
        let last = answered.iter().map(|f| f.0).max()?;
        let mut fragments = handshake_fragments(datagram).peekable();
        fragments.peek()?;
        let mut starts_last = false;
        for f in fragments {
            if !covered(answered, f.seq, f.offset, f.offset + f.bytes.len()) {
                return None;
            }
            starts_last |= f.seq == last && f.offset == 0;
        }
        if !starts_last || self.resends_left == 0 {
            return Some(Vec::new());
        }
        self.resends_left -= 1;
        Some(self.datagrams.clone())
    }

    /// The endpoint takes `datagram` (its fragments are what a later repeat
    /// is matched against).
    pub(super) fn fed(&mut self, datagram: &[u8]) {
        for f in handshake_fragments(datagram) {
            let id = (f.seq, f.offset, f.bytes.len());
            if self.fed.len() < MAX_FRAGMENTS && !self.fed.contains(&id) {
                self.fed.push(id);
            }
        }
    }

    /// The endpoint sent `flight`: an answer to what it was fed so far (or
    /// the same flight again, from its timer).
    pub(super) fn sent(&mut self, flight: Vec<Vec<u8>>) {
        if self.answered != self.fed.len() {
            self.answered = self.fed.len();
            self.resends_left = MAX_RESENDS;
        }
        self.datagrams = flight;
    }
}

/// Whether bytes `start..end` of message `seq` were all in fragments of
/// `fed`: a peer may cut its repeat differently (NSS lowers its MTU after
/// two retransmissions).
fn covered(fed: &[FragmentId], seq: u16, start: usize, end: usize) -> bool {
    let mut ranges: Vec<(usize, usize)> = fed
        .iter()
        .filter(|f| f.0 == seq)
        .map(|f| (f.1, f.1 + f.2))
        .collect();
    ranges.sort_unstable();
    let mut reached = start;
    for (a, b) in ranges {
        if a > reached {
            break;
        }
        reached = reached.max(b);
    }
    reached >= end && (start < end || has_fragment_at(fed, seq, start))
}

/// Whether `fed` holds an (empty) fragment of `seq` at `offset`.
fn has_fragment_at(fed: &[FragmentId], seq: u16, offset: usize) -> bool {
    fed.iter().any(|f| f.0 == seq && f.1 == offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An epoch-0 handshake record holding one fragment of message `seq`
    /// (annotated): record header, handshake header, fragment.
    fn record(kind: u8, seq: u16, offset: usize, fragment: &[u8], total: usize) -> Vec<u8> {
        let mut d = vec![22, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0]; // handshake, DTLS 1.2, epoch 0, record seq 0
        d.extend_from_slice(&((fragment.len() + 12) as u16).to_be_bytes());
        let be24 = |n: usize| [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        d.push(kind);
        d.extend_from_slice(&be24(total));
        d.extend_from_slice(&seq.to_be_bytes());
        d.extend_from_slice(&be24(offset));
        d.extend_from_slice(&be24(fragment.len()));
        d.extend_from_slice(fragment);
        d
    }

    /// A ClientHello (message_seq 1, after the cookie exchange) in two
    /// fragments, as Chromium sends it.
    fn hello(part: usize) -> Vec<u8> {
        let body = [7u8; 30];
        match part {
            0 => record(1, 1, 0, &body[..20], 30),
            _ => record(1, 1, 20, &body[20..], 30),
        }
    }

    #[test]
    fn answers_a_repeated_flight_with_ours_once_per_repeat() {
        let mut last = LastFlight::default();
        let server_hello = vec![vec![22, 1], vec![22, 2]];
        // Nothing was answered yet: nothing is a repeat.
        let cookieless = record(1, 0, 0, &[1; 10], 10);
        assert_eq!(last.repeat(&cookieless), None);
        last.fed(&cookieless);
        last.sent(vec![vec![22, 0]]); // HelloVerifyRequest
        last.fed(&hello(0));
        last.fed(&hello(1));
        last.sent(server_hello.clone());

        // The peer repeats both fragments: our flight goes again once.
        assert_eq!(last.repeat(&hello(0)), Some(server_hello.clone()));
        assert_eq!(last.repeat(&hello(1)), Some(Vec::new()));
        // An older message (the ClientHello before the cookie) is a repeat
        // too, answered by nothing.
        assert_eq!(last.repeat(&cookieless), Some(Vec::new()));

        // The endpoint's timer sent new copies: those go on the next repeat.
        let copies = vec![vec![22, 3]];
        last.sent(copies.clone());
        assert_eq!(last.repeat(&hello(0)), Some(copies.clone()));

        // At most MAX_RESENDS copies per flight.
        let resent = (0..20)
            .filter(|_| last.repeat(&hello(0)).is_some_and(|c| !c.is_empty()))
            .count();
        assert_eq!(resent, usize::from(MAX_RESENDS) - 2);
    }

    #[test]
    fn the_next_flight_and_other_records_reach_the_endpoint() {
        let mut last = LastFlight::default();
        last.fed(&hello(0));
        last.fed(&hello(1));
        last.sent(vec![vec![22, 1]]);
        // The client's next flight (Certificate, message_seq 2) is new,
        // even in a datagram that starts with a repeated message.
        assert_eq!(last.repeat(&record(11, 2, 0, &[1; 8], 8)), None);
        let mut both = hello(0);
        both.extend_from_slice(&record(11, 2, 0, &[1; 8], 8));
        assert_eq!(last.repeat(&both), None);
        // Records that are not epoch-0 handshakes (ChangeCipherSpec,
        // encrypted Finished, application data) are not repeats.
        assert_eq!(
            last.repeat(&[20, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1]),
            None
        );
        assert_eq!(last.repeat(&[]), None);
        // Truncated records never panic.
        for n in 0..hello(0).len() {
            let _ = last.repeat(&hello(0)[..n]);
        }
    }

    /// rtc-dtls sends its HelloVerifyRequest again on the first fragment of
    /// the ClientHello that carries the cookie: the second fragment is still
    /// new, and reaches the endpoint.
    #[test]
    fn a_flight_sent_on_part_of_a_message_leaves_its_rest_new() {
        let mut last = LastFlight::default();
        last.fed(&record(1, 0, 0, &[1; 10], 10));
        last.sent(vec![vec![22, 0]]); // HelloVerifyRequest
        last.fed(&hello(0));
        last.sent(vec![vec![22, 0]]); // the same again
        assert_eq!(last.repeat(&hello(1)), None);
        last.fed(&hello(1));
        last.sent(vec![vec![22, 1]]); // ServerHello … ServerHelloDone
        assert_eq!(last.repeat(&hello(0)), Some(vec![vec![22, 1]]));
        assert_eq!(last.repeat(&hello(1)), Some(Vec::new()));
    }

    /// A repeat cut into other fragments than the original is still a
    /// repeat; a fragment reaching past what was fed is not.
    #[test]
    fn a_repeat_cut_differently_is_a_repeat() {
        let mut last = LastFlight::default();
        let body = [7u8; 30];
        last.fed(&record(1, 1, 0, &body[..20], 30));
        last.fed(&record(1, 1, 20, &body[20..], 30));
        last.sent(vec![vec![22, 1]]);
        assert_eq!(
            last.repeat(&record(1, 1, 0, &body[..12], 30)),
            Some(vec![vec![22, 1]])
        );
        assert_eq!(
            last.repeat(&record(1, 1, 12, &body[12..], 30)),
            Some(Vec::new())
        );
        // Message 2 was never fed: new.
        assert_eq!(last.repeat(&record(1, 2, 0, &body[..5], 5)), None);
    }

    #[test]
    fn a_new_flight_answers_the_messages_fed_since_the_last() {
        let mut last = LastFlight::default();
        last.fed(&record(1, 0, 0, &[1; 10], 10));
        last.sent(vec![vec![22, 0]]); // HelloVerifyRequest
        assert_eq!(
            last.repeat(&record(1, 0, 0, &[1; 10], 10)),
            Some(vec![vec![22, 0]])
        );
        // The ClientHello with the cookie is new; once answered, it is the
        // flight whose repeats bring our answer again.
        assert_eq!(last.repeat(&hello(0)), None);
        last.fed(&hello(0));
        last.fed(&hello(1));
        last.sent(vec![vec![22, 1]]);
        assert_eq!(last.repeat(&hello(0)), Some(vec![vec![22, 1]]));
        assert_eq!(
            last.repeat(&record(1, 0, 0, &[1; 10], 10)),
            Some(Vec::new())
        );
    }
}
