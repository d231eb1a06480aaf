//! DTLS records into the handshake (RFC 6347, RFC 5764), on the handshake
//! threads' transport. Two shapes of input: records straight into a server
//! transport waiting for its ClientHello; and a handshake between our
//! client and our server transports in which the records corrupt the
//! flights on their way (XOR at an offset), so that every later state of
//! the handshake meets bad input too.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard::dtls::{DtlsIdentity, DtlsRole, DtlsTransport};
use switchboard_fuzz::{Record, records};

static IDENTITIES: OnceLock<(Arc<DtlsIdentity>, Arc<DtlsIdentity>)> = OnceLock::new();

fn identities() -> (Arc<DtlsIdentity>, Arc<DtlsIdentity>) {
    IDENTITIES
        .get_or_init(|| {
            let make = || Arc::new(DtlsIdentity::generate().expect("certificate"));
            (make(), make())
        })
        .clone()
}

/// Applies a record to a datagram: XOR its bytes in at the offset its
/// tag names (tag 0 leaves the datagram alone; 255 truncates it there).
fn corrupt(datagram: &mut Vec<u8>, record: &Record<'_>) {
    let at = usize::from(record.tag >> 1).min(datagram.len());
    if record.tag == 255 {
        datagram.truncate(at);
    } else if record.tag != 0 {
        for (d, x) in datagram[at..].iter_mut().zip(record.bytes) {
            *d ^= x;
        }
    }
}

fn into_server(data: &[u8]) {
    let (server_id, client_id) = identities();
    let mut server = DtlsTransport::new(
        server_id,
        vec![client_id.fingerprint.clone()],
        DtlsRole::Server,
    );
    let mut now = Instant::now();
    for r in records(data) {
        now += Duration::from_millis(u64::from(r.tag));
        if server.handle_datagram(now, r.bytes).is_err() {
            return;
        }
        while server.poll_transmit().is_some() {}
        if server.poll_timeout().is_some_and(|t| t <= now) && server.handle_timeout(now).is_err() {
            return;
        }
    }
}

fn corrupted_handshake(data: &[u8]) {
    let (server_id, client_id) = identities();
    let mut server = DtlsTransport::new(
        server_id.clone(),
        vec![client_id.fingerprint.clone()],
        DtlsRole::Server,
    );
    let mut client = DtlsTransport::new(
        client_id,
        vec![server_id.fingerprint.clone()],
        DtlsRole::Client,
    );
    let mut now = Instant::now();
    if client.start(now).is_err() {
        return;
    }
    let mut corruptions = records(data);
    for _ in 0..16 {
        let mut to_server: Vec<Vec<u8>> = Vec::new();
        while let Some(d) = client.poll_transmit() {
            to_server.push(d.to_vec());
        }
        for mut d in to_server {
            if let Some(r) = corruptions.next() {
                corrupt(&mut d, &r);
            }
            if server.handle_datagram(now, &d).is_err() {
                return;
            }
        }
        let mut to_client: Vec<Vec<u8>> = Vec::new();
        while let Some(d) = server.poll_transmit() {
            to_client.push(d.to_vec());
        }
        for mut d in to_client {
            if let Some(r) = corruptions.next() {
                corrupt(&mut d, &r);
            }
            if client.handle_datagram(now, &d).is_err() {
                return;
            }
        }
        if server.is_connected() && client.is_connected() {
            let _ = client.send_application_data(now, b"after the handshake");
            while let Some(d) = client.poll_transmit() {
                let _ = server.handle_datagram(now, &d);
            }
            while server.poll_application_data().is_some() {}
            return;
        }
        now += Duration::from_secs(1);
        let _ = (server.handle_timeout(now), client.handle_timeout(now));
    }
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&mode, rest)) if mode & 1 == 0 => into_server(rest),
        Some((_, rest)) => corrupted_handshake(rest),
        None => {}
    }
});
