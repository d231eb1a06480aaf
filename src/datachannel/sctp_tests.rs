//! Two associations (DTLS client and server) over a virtual link with
//! seeded loss, reordering and duplication, on a virtual clock.

use std::time::Duration;

use super::*;

/// A seeded generator (xorshift64*), so that every run loses the same packets.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn percent(&mut self) -> u64 {
        self.next() % 100
    }
}

/// Both ends, the packets in flight and what each end reported.
struct Pair {
    now: Instant,
    ends: [SctpTransport; 2],
    events: [Vec<SctpEvent>; 2],
    /// (arrival, to end, packet).
    in_flight: Vec<(Instant, usize, Bytes)>,
    rng: Rng,
    loss: u64,
    delivered: usize,
    dropped: usize,
    /// Drops the next packet this end sends.
    drop_next_from: Option<usize>,
}

impl Pair {
    fn new(loss: u64, seed: u64) -> Self {
        let now = Instant::now();
        let mut pair = Pair {
            now,
            ends: [
                SctpTransport::new(DtlsRole::Client, Some(MAX_MESSAGE_SIZE)),
                SctpTransport::new(DtlsRole::Server, None),
            ],
            events: [Vec::new(), Vec::new()],
            in_flight: Vec::new(),
            rng: Rng(seed | 1),
            loss,
            delivered: 0,
            dropped: 0,
            drop_next_from: None,
        };
        pair.ends[0].start(now);
        pair.collect();
        pair
    }

    /// Moves what both ends sent onto the link (lost, delayed 5–15 ms so
    /// that some overtake others, now and then twice) and their events out.
    fn collect(&mut self) {
        for from in 0..2 {
            while let Some(packet) = self.ends[from].poll_transmit() {
                if self.drop_next_from == Some(from) {
                    self.drop_next_from = None;
                    self.dropped += 1;
                    continue;
                }
                if self.rng.percent() < self.loss {
                    self.dropped += 1;
                    continue;
                }
                let copies = if self.rng.percent() < 2 { 2 } else { 1 };
                for _ in 0..copies {
                    let delay = Duration::from_micros(5_000 + self.rng.next() % 10_000);
                    self.in_flight
                        .push((self.now + delay, 1 - from, packet.clone()));
                }
            }
            while let Some(event) = self.ends[from].poll_event() {
                self.events[from].push(event);
            }
        }
    }

    /// Runs the clock until `done` holds, or `limit` of virtual time passed.
    fn run_until(&mut self, limit: Duration, done: impl Fn(&Pair) -> bool) -> bool {
        let end = self.now + limit;
        while !done(self) {
            let next = self
                .in_flight
                .iter()
                .map(|p| p.0)
                .chain(self.ends.iter().filter_map(|e| e.poll_timeout()))
                .min();
            let Some(next) = next.filter(|&t| t <= end) else {
                return false;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let (due, later): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|p| p.0 <= now);
            self.in_flight = later;
            for (_, to, packet) in due {
                self.delivered += 1;
                self.ends[to].handle_packet(now, &packet);
            }
            for end in &mut self.ends {
                if end.poll_timeout().is_some_and(|t| t <= now) {
                    end.handle_timeout(now);
                }
            }
            self.collect();
        }
        true
    }

    /// Both ends with their association up, over a clean link.
    fn connected(seed: u64) -> Self {
        let mut pair = Pair::new(0, seed);
        assert!(pair.run_until(Duration::from_secs(5), |p| {
            p.ends.iter().all(|e| e.is_connected())
        }));
        pair
    }

    fn messages(&self, end: usize, id: u16) -> Vec<(MessageKind, Vec<u8>)> {
        self.events[end]
            .iter()
            .filter_map(|e| match e {
                SctpEvent::Message { id: i, kind, bytes } if *i == id => {
                    Some((*kind, bytes.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

/// Sets the CRC32c of an SCTP packet we wrote (RFC 9260 Appendix A).
fn with_checksum(packet: &mut [u8]) {
    packet[8..12].fill(0);
    let crc = crc32c::crc32c(packet);
    packet[8..12].copy_from_slice(&crc.to_le_bytes());
}

/// Message `n` of a test: sizes from 0 to 64 KiB, strings and binary.
fn message(n: usize) -> (bool, Vec<u8>) {
    let sizes = [0, 1, 17, 1200, 1201, 5000, 65_536];
    let size = sizes[n % sizes.len()];
    let is_string = n.is_multiple_of(2);
    let byte = if is_string {
        b'a' + (n % 26) as u8
    } else {
        n as u8
    };
    (is_string, vec![byte; size])
}

fn kind_of(is_string: bool, len: usize) -> MessageKind {
    MessageKind::of(MessageKind::ppid(is_string, len)).expect("a message kind")
}

#[test]
fn an_in_band_channel_carries_every_message_in_order_under_loss() {
    let mut pair = Pair::new(5, 7);
    assert!(
        pair.run_until(Duration::from_secs(10), |p| p
            .ends
            .iter()
            .all(|e| e.is_connected())),
        "connects through 5 % loss"
    );
    // Client streams are even (RFC 8832 §6).
    let open = Open {
        policy: DeliveryPolicy::default(),
        priority: 256,
        label: "chat".into(),
        protocol: String::new(),
    };
    let now = pair.now;
    pair.ends[0]
        .open_channel(now, 2, DeliveryPolicy::default(), Some(open.clone()))
        .expect("opens");
    for n in 0..60 {
        let (is_string, bytes) = message(n);
        pair.ends[0].send(now, 2, is_string, &bytes).expect("sends");
    }
    pair.collect();
    assert!(pair.run_until(Duration::from_secs(60), |p| p.messages(1, 2).len() == 60));
    assert!(pair.events[1].contains(&SctpEvent::ChannelOpened { id: 2, open }));
    assert!(pair.events[0].contains(&SctpEvent::ChannelAcked { id: 2 }));
    let expected: Vec<_> = (0..60)
        .map(|n| {
            let (is_string, bytes) = message(n);
            (kind_of(is_string, bytes.len()), bytes)
        })
        .collect();
    assert_eq!(
        pair.messages(1, 2),
        expected,
        "every message once, in order"
    );
    assert!(
        pair.dropped > 10,
        "{} packets lost on the way",
        pair.dropped
    );

    // The server answers on the same channel.
    let now = pair.now;
    for n in 0..30 {
        let (is_string, bytes) = message(n + 3);
        pair.ends[1]
            .send(now, 2, is_string, &bytes)
            .expect("sends back");
    }
    pair.collect();
    assert!(pair.run_until(Duration::from_secs(60), |p| p.messages(0, 2).len() == 30));
    let back: Vec<_> = pair.messages(0, 2).into_iter().map(|(_, b)| b).collect();
    let expected: Vec<_> = (0..30).map(|n| message(n + 3).1).collect();
    assert_eq!(back, expected);
}

#[test]
fn a_negotiated_unordered_channel_delivers_every_message_once() {
    let mut pair = Pair::new(5, 11);
    assert!(pair.run_until(Duration::from_secs(10), |p| {
        p.ends.iter().all(|e| e.is_connected())
    }));
    let unordered = DeliveryPolicy {
        ordered: false,
        reliability: Reliability::Reliable,
    };
    let now = pair.now;
    for end in &mut pair.ends {
        end.open_channel(now, 0, unordered, None)
            .expect("opens by id");
    }
    for n in 0..80u32 {
        pair.ends[0]
            .send(now, 0, false, &n.to_be_bytes())
            .expect("sends");
    }
    pair.collect();
    assert!(pair.run_until(Duration::from_secs(60), |p| p.messages(1, 0).len() >= 80));
    let mut got: Vec<u32> = pair
        .messages(1, 0)
        .iter()
        .map(|(_, b)| u32::from_be_bytes(b[..4].try_into().expect("4 bytes")))
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..80).collect::<Vec<_>>(), "each once, any order");
    assert!(pair.dropped > 0 && pair.delivered > 80);
}

#[test]
fn limits_and_garbage() {
    let mut pair = Pair::new(0, 3);
    // Nothing before the association is up.
    let now = pair.now;
    assert_eq!(
        pair.ends[0].send(now, 0, true, b"early"),
        Err(SctpError::NotConnected)
    );
    assert!(pair.run_until(Duration::from_secs(5), |p| {
        p.ends.iter().all(|e| e.is_connected())
    }));
    // The server's peer named no max-message-size: 64 KiB (RFC 8841).
    let now = pair.now;
    pair.ends[1]
        .open_channel(now, 1, DeliveryPolicy::default(), None)
        .expect("opens");
    assert!(matches!(
        pair.ends[1].send(now, 1, false, &vec![0; DEFAULT_REMOTE_MAX_MESSAGE_SIZE + 1]),
        Err(SctpError::TooLarge { .. })
    ));
    // Garbage and truncated packets change nothing and never panic.
    let mut garbage = Rng(99);
    for n in 0..200 {
        let bytes: Vec<u8> = (0..n).map(|_| garbage.next() as u8).collect();
        pair.ends[1].handle_packet(now, &bytes);
    }
    pair.collect();
    assert!(pair.ends.iter().all(|e| e.is_connected()));
    pair.ends[0]
        .open_channel(now, 1, DeliveryPolicy::default(), None)
        .expect("opens");
    pair.ends[1]
        .send(now, 1, true, b"still here")
        .expect("sends");
    pair.collect();
    assert!(pair.run_until(Duration::from_secs(5), |p| !p.messages(0, 1).is_empty()));
    assert_eq!(pair.messages(0, 1)[0].1, b"still here");
}

#[test]
fn a_lost_init_ack_is_answered_again() {
    // The client's INIT is in flight; the server's first answer is lost,
    // so the client repeats its INIT to a server that already made an
    // association for the first.
    let mut pair = Pair::new(0, 5);
    pair.drop_next_from = Some(1);
    assert!(pair.run_until(Duration::from_secs(30), |p| {
        p.ends.iter().all(|e| e.is_connected())
    }));
    assert_eq!(pair.dropped, 1);
}

#[test]
fn closing_a_channel_leaves_the_association_and_other_channels() {
    let mut pair = Pair::connected(13);
    let now = pair.now;
    for end in &mut pair.ends {
        for id in [3, 5] {
            end.open_channel(now, id, DeliveryPolicy::default(), None)
                .expect("opens");
        }
    }
    pair.ends[0].close_channel(now, 3);
    pair.collect();
    assert!(pair.run_until(Duration::from_secs(5), |p| {
        p.events[1].contains(&SctpEvent::ChannelClosed { id: 3 })
    }));
    assert!(pair.ends.iter().all(|e| e.is_connected()));
    assert!(
        !pair
            .events
            .iter()
            .flatten()
            .any(|e| *e == SctpEvent::Closed)
    );
    let now = pair.now;
    pair.ends[1]
        .send(now, 5, true, b"on the other channel")
        .expect("sends");
    pair.collect();
    assert!(pair.run_until(Duration::from_secs(5), |p| !p.messages(0, 5).is_empty()));
}

/// Found by the `sctp` fuzz target: an ABORT whose error cause claims
/// more bytes than its chunk holds made rtc-sctp slice past it and panic
/// (on a DTLS thread, with every session it serves). Now it is dropped and
/// counted before the association reads it, and the association lives on.
#[test]
fn an_abort_whose_cause_runs_past_its_chunk_is_dropped() {
    let mut pair = Pair::connected(5);
    let now = pair.now;
    pair.ends[0]
        .open_channel(now, 1, DeliveryPolicy::default(), None)
        .expect("opens");
    pair.ends[0].send(now, 1, true, b"hi").expect("sends");
    // The client's common header (ports, the server's verification tag).
    let sent = pair.ends[0].poll_transmit().expect("a packet");
    let mut packet = sent[..12].to_vec();
    packet.extend_from_slice(&[6, 0, 0, 8, 0, 13, 0, 32]);
    with_checksum(&mut packet);
    pair.ends[1].handle_packet(now, &packet);
    pair.collect();
    assert!(pair.events[1].contains(&SctpEvent::PacketDropped));
    assert!(!pair.events[1].contains(&SctpEvent::Closed));
    assert!(pair.ends[1].is_connected(), "the association lives on");
}

/// Found by the `sctp` fuzz target: DATA chunks 65,535 and 65,536 TSNs
/// past the cumulative TSN made rtc-sctp's SACK builder overflow its 16-bit
/// gap-block offsets (a panic where overflow is checked, a false SACK where
/// not). A packet with DATA further ahead than a SACK reaches is now dropped
/// and counted; the association and its channel live on.
#[test]
fn data_further_ahead_than_a_sack_reaches_is_dropped() {
    let mut pair = Pair::connected(7);
    let now = pair.now;
    for end in &mut pair.ends {
        end.open_channel(now, 1, DeliveryPolicy::default(), None)
            .expect("opens");
    }
    pair.ends[0].send(now, 1, true, b"hi").expect("sends");
    let sent = pair.ends[0].poll_transmit().expect("a packet");
    pair.ends[1].handle_packet(now, &sent);
    assert!(pair.run_until(Duration::from_secs(5), |p| !p.messages(1, 1).is_empty()));
    // The chunk "hi" went in: DATA (RFC 9260 §3.3.1) right after the
    // common header, its TSN at bytes 4..8.
    assert_eq!(sent[12], 0, "a DATA chunk");
    let tsn = u32::from_be_bytes(sent[16..20].try_into().unwrap());
    let mut packet = sent[..12].to_vec();
    for ahead in [65_535_u32, 65_536] {
        // Unordered, whole, stream 1, PPID 51 (a string), one byte.
        packet.extend_from_slice(&[0, 7, 0, 17]);
        packet.extend_from_slice(&tsn.wrapping_add(ahead).to_be_bytes());
        packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 51, b'x', 0, 0, 0]);
    }
    with_checksum(&mut packet);
    let now = pair.now;
    pair.ends[1].handle_packet(now, &packet);
    pair.ends[1].handle_timeout(now + Duration::from_secs(1));
    pair.collect();
    assert!(pair.events[1].contains(&SctpEvent::PacketDropped));
    assert!(!pair.events[1].contains(&SctpEvent::Closed));
    assert!(pair.ends[1].is_connected(), "the association lives on");
    let now = pair.now;
    pair.ends[0].send(now, 1, true, b"again").expect("sends");
    pair.collect();
    assert!(pair.run_until(Duration::from_secs(5), |p| p.messages(1, 1).len() == 2));
}
