//! SCTP packets (RFC 9260) and DCEP messages (RFC 8832) as the data
//! channel layer reads them out of DTLS. Our client transport and our
//! server transport first set up an association and a channel; then each
//! record is a packet to the server: chunks behind the association's real
//! common header (ports, verification tag) with the CRC32c made right, so
//! that the fuzzer's chunks reach the association, or (tag bit 0) raw bytes.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard::datachannel::dcep::{Dcep, Open};
use switchboard::datachannel::policy::DeliveryPolicy;
use switchboard::datachannel::sctp::SctpTransport;
use switchboard::dtls::DtlsRole;
use switchboard_fuzz::records;

/// Delivers what each side sends to the other; returns the last packet
/// the client sent.
fn pump(client: &mut SctpTransport, server: &mut SctpTransport, now: Instant) -> Option<Vec<u8>> {
    let mut last = None;
    for _ in 0..32 {
        let mut moved = false;
        while let Some(p) = client.poll_transmit() {
            server.handle_packet(now, &p);
            last = Some(p.to_vec());
            moved = true;
        }
        while let Some(p) = server.poll_transmit() {
            client.handle_packet(now, &p);
            moved = true;
        }
        if !moved {
            break;
        }
    }
    while client.poll_event().is_some() {}
    last
}

fuzz_target!(|data: &[u8]| {
    let _ = Dcep::parse(data);
    let mut now = Instant::now();
    let mut client = SctpTransport::new(DtlsRole::Client, None);
    let mut server = SctpTransport::new(DtlsRole::Server, None);
    client.start(now);
    let mut header = pump(&mut client, &mut server, now).expect("the client sends its INIT");
    let open = Open {
        policy: DeliveryPolicy::default(),
        priority: 256,
        label: "chat".into(),
        protocol: String::new(),
    };
    if client
        .open_channel(now, 1, DeliveryPolicy::default(), Some(open))
        .is_ok()
    {
        let _ = client.send(now, 1, true, b"hello");
        header = pump(&mut client, &mut server, now).unwrap_or(header);
    }
    header.truncate(12);
    assert!(server.is_connected(), "our two ends connect");
    for r in records(data) {
        let packet = if r.tag & 1 == 0 {
            r.bytes.to_vec()
        } else {
            let mut p = header.clone();
            p.extend_from_slice(r.bytes);
            p[8..12].fill(0);
            let crc = crc32c::crc32c(&p);
            p[8..12].copy_from_slice(&crc.to_le_bytes());
            p
        };
        server.handle_packet(now, &packet);
        while server.poll_transmit().is_some() {}
        while server.poll_event().is_some() {}
        let _ = server.buffered_amount(1);
        if r.tag & 2 != 0 {
            now += Duration::from_millis(u64::from(r.tag) * 10);
            server.handle_timeout(now);
        }
        if r.tag & 4 != 0 {
            let _ = server.send(now, 1, false, r.bytes);
        }
    }
});
