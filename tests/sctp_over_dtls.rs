//! SCTP over DTLS (RFC 8261), sans-IO: two data channel associations
//! carried in the application data of two real DTLS associations (rtc-dtls,
//! the server's and a client's), on a virtual clock. The DTLS client starts
//! the SCTP association (RFC 8832 §6), opens a channel in band, and
//! messages cross both ways inside DTLS records.

mod common;

use std::time::{Duration, Instant};

use common::dtls_pair::{Pair, handshake, pair};
use switchboard::datachannel::dcep::{MessageKind, Open};
use switchboard::datachannel::policy::DeliveryPolicy;
use switchboard::datachannel::sctp::{SctpEvent, SctpTransport};
use switchboard::dtls::{DtlsRole, DtlsTransport, MAX_RECEIVED_RECORDS};

/// One side: its DTLS association and the SCTP association inside it.
struct Side {
    dtls: DtlsTransport,
    sctp: SctpTransport,
    events: Vec<SctpEvent>,
}

/// Moves SCTP packets into DTLS records and records to the other side,
/// where DTLS opens them and SCTP takes them; runs SCTP's timers. Until
/// `done` holds, or 200 rounds of 10 ms.
fn exchange(sides: &mut [Side; 2], now: &mut Instant, done: impl Fn(&[Side; 2]) -> bool) -> bool {
    for _ in 0..200 {
        for from in 0..2 {
            let to = 1 - from;
            while let Some(packet) = sides[from].sctp.poll_transmit() {
                sides[from]
                    .dtls
                    .send_application_data(*now, &packet)
                    .expect("DTLS is connected");
            }
            while let Some(record) = sides[from].dtls.poll_transmit() {
                sides[to]
                    .dtls
                    .handle_datagram(*now, &record)
                    .expect("a record of the association");
            }
            while let Some(data) = sides[to].dtls.poll_application_data() {
                sides[to].sctp.handle_packet(*now, &data);
            }
        }
        for side in sides.iter_mut() {
            while let Some(event) = side.sctp.poll_event() {
                side.events.push(event);
            }
        }
        if done(sides) {
            return true;
        }
        *now += Duration::from_millis(10);
        for side in sides.iter_mut() {
            if side.sctp.poll_timeout().is_some_and(|t| t <= *now) {
                side.sctp.handle_timeout(*now);
            }
        }
    }
    false
}

#[test]
fn data_channel_messages_cross_inside_dtls_records() {
    let Pair {
        mut server,
        mut client,
        ..
    } = pair();
    let mut now = Instant::now();
    // Nothing goes before the handshake.
    assert!(client.send_application_data(now, b"early").is_err());
    let (s, c) = handshake(&mut server, &mut client, &mut now, |_| {});
    assert!(s.is_some() && c.is_some(), "DTLS connects");

    // Application data nobody reads is kept up to a bound, not without end.
    for _ in 0..MAX_RECEIVED_RECORDS + 100 {
        client.send_application_data(now, b"unread").expect("sends");
        while let Some(record) = client.poll_transmit() {
            server.handle_datagram(now, &record).expect("a record");
        }
    }
    let mut kept = 0;
    while server.poll_application_data().is_some() {
        kept += 1;
    }
    assert_eq!(kept, MAX_RECEIVED_RECORDS);

    let mut sides = [
        Side {
            dtls: server,
            sctp: SctpTransport::new(DtlsRole::Server, None),
            events: Vec::new(),
        },
        Side {
            dtls: client,
            sctp: SctpTransport::new(DtlsRole::Client, None),
            events: Vec::new(),
        },
    ];
    sides[1].sctp.start(now);
    assert!(
        exchange(&mut sides, &mut now, |s| s
            .iter()
            .all(|side| side.sctp.is_connected())),
        "SCTP comes up inside DTLS"
    );

    // The client (even ids) opens "chat" in band and sends; the server
    // answers on the same channel.
    let open = Open {
        policy: DeliveryPolicy::default(),
        priority: 256,
        label: "chat".into(),
        protocol: String::new(),
    };
    sides[1]
        .sctp
        .open_channel(now, 0, DeliveryPolicy::default(), Some(open.clone()))
        .expect("opens");
    sides[1]
        .sctp
        .send(now, 0, true, "hello through DTLS".as_bytes())
        .expect("sends");
    sides[1]
        .sctp
        .send(now, 0, false, &vec![7; 20_000])
        .expect("sends a message of many records");
    assert!(exchange(&mut sides, &mut now, |s| s[0]
        .events
        .iter()
        .filter(|e| matches!(e, SctpEvent::Message { .. }))
        .count()
        == 2));
    assert!(
        sides[0]
            .events
            .contains(&SctpEvent::ChannelOpened { id: 0, open })
    );
    assert!(sides[0].events.contains(&SctpEvent::Message {
        id: 0,
        kind: MessageKind::String { empty: false },
        bytes: b"hello through DTLS".to_vec(),
    }));
    assert!(sides[0].events.contains(&SctpEvent::Message {
        id: 0,
        kind: MessageKind::Binary { empty: false },
        bytes: vec![7; 20_000],
    }));

    sides[0]
        .sctp
        .send(now, 0, true, b"")
        .expect("an empty reply");
    assert!(exchange(&mut sides, &mut now, |s| s[1].events.contains(
        &SctpEvent::Message {
            id: 0,
            kind: MessageKind::String { empty: true },
            bytes: Vec::new(),
        }
    )));
    assert!(sides[1].events.contains(&SctpEvent::ChannelAcked { id: 0 }));
}
