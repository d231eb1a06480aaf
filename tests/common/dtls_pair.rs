//! Two sans-IO DTLS transports in memory: datagrams passed between them by
//! hand, on a virtual clock.

use std::sync::Arc;
use std::time::Instant;

use switchboard::dtls::{DtlsIdentity, DtlsRole, DtlsTransport};
use switchboard::srtp::SrtpKeys;

/// A server and a client transport that accept each other's certificate,
/// with their identities (for further transports).
pub struct Pair {
    pub server_id: Arc<DtlsIdentity>,
    pub client_id: Arc<DtlsIdentity>,
    pub server: DtlsTransport,
    pub client: DtlsTransport,
}

pub fn pair() -> Pair {
    let server_id = Arc::new(DtlsIdentity::generate().unwrap());
    let client_id = Arc::new(DtlsIdentity::generate().unwrap());
    Pair {
        server: DtlsTransport::new(
            server_id.clone(),
            vec![client_id.fingerprint.clone()],
            DtlsRole::Server,
        ),
        client: DtlsTransport::new(
            client_id.clone(),
            vec![server_id.fingerprint.clone()],
            DtlsRole::Client,
        ),
        server_id,
        client_id,
    }
}

/// Passes datagrams between the two until both completed, without ever
/// running a retransmission timer (nothing is lost); returns the keys each
/// side exported. `tap` sees every datagram the client sends.
pub fn handshake(
    server: &mut DtlsTransport,
    client: &mut DtlsTransport,
    now: &mut Instant,
    mut tap: impl FnMut(&[u8]),
) -> (Option<SrtpKeys>, Option<SrtpKeys>) {
    let (mut server_keys, mut client_keys) = (None, None);
    client.start(*now).expect("client starts");
    for _ in 0..50 {
        let mut moved = false;
        while let Some(d) = client.poll_transmit() {
            tap(&d);
            moved = true;
            if let Some(k) = server.handle_datagram(*now, &d).expect("server takes it") {
                server_keys = Some(k);
            }
        }
        while let Some(d) = server.poll_transmit() {
            moved = true;
            if let Some(k) = client.handle_datagram(*now, &d).expect("client takes it") {
                client_keys = Some(k);
            }
        }
        if server_keys.is_some() && client_keys.is_some() {
            break;
        }
        if !moved {
            // Nothing lost, nothing left to send: a stall that only a
            // retransmission timer would end is a failure here.
            break;
        }
    }
    (server_keys, client_keys)
}
