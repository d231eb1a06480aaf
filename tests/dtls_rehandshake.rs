//! DTLS, sans-IO: a client that starts a second handshake on a connected
//! transport (Chromium replaces its DTLS transport when the bundle's tagged
//! m-line is stopped) gets a new association with new SRTP keys, while a
//! retransmitted ClientHello of the first handshake changes nothing and a
//! second handshake that fails (a certificate matching no fingerprint, as
//! an attacker's would) leaves the association and its keys in place.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::dtls_pair::{Pair, handshake, pair};
use switchboard::dtls::{DtlsIdentity, DtlsRole, DtlsTransport};
use switchboard::srtp::SrtpKeys;

#[test]
fn a_second_handshake_replaces_the_keys_and_a_repeated_hello_does_not() {
    let Pair {
        server_id,
        client_id,
        mut server,
        mut client,
    } = pair();
    let mut now = Instant::now();
    let mut first_hello = None;
    let (s1, c1) = handshake(&mut server, &mut client, &mut now, |d| {
        first_hello.get_or_insert_with(|| d.to_vec());
    });
    let (s1, c1) = (s1.expect("server keys"), c1.expect("client keys"));
    assert_eq!(s1.remote, c1.local);

    // The first ClientHello again (a retransmission): no new association.
    let hello = first_hello.expect("a ClientHello was sent");
    assert!(
        server
            .handle_datagram(now, &hello)
            .expect("ignored")
            .is_none()
    );

    // A new client transport with the same certificate: a new handshake.
    let client_id_again = client_id.clone();
    let mut again = DtlsTransport::new(
        client_id,
        vec![server_id.fingerprint.clone()],
        DtlsRole::Client,
    );
    let (s2, c2) = handshake(&mut server, &mut again, &mut now, |_| {});
    let (s2, c2) = (s2.expect("new server keys"), c2.expect("new client keys"));
    assert_eq!(s2.remote, c2.local);
    assert_eq!(s2.local, c2.remote);
    assert_ne!(s2.remote, s1.remote, "new keys, not the old ones");

    // Another certificate: its handshake is refused, nothing else changes.
    let stranger = Arc::new(DtlsIdentity::generate().unwrap());
    let mut impostor = DtlsTransport::new(
        stranger,
        vec![server_id.fingerprint.clone()],
        DtlsRole::Client,
    );
    let (s3, _) = handshake_tolerant(&mut server, &mut impostor, &mut now);
    assert!(
        s3.is_none(),
        "no keys for a certificate matching no fingerprint"
    );

    // And the rightful client can still start over afterwards.
    now += Duration::from_secs(2);
    let mut third = DtlsTransport::new(
        client_id_again,
        vec![server_id.fingerprint.clone()],
        DtlsRole::Client,
    );
    let (s4, c4) = handshake(&mut server, &mut third, &mut now, |_| {});
    assert_eq!(
        s4.expect("server keys").remote,
        c4.expect("client keys").local
    );
}

/// Like [`handshake`], for a client the server is expected to refuse:
/// client-side errors end it.
fn handshake_tolerant(
    server: &mut DtlsTransport,
    client: &mut DtlsTransport,
    now: &mut Instant,
) -> (Option<SrtpKeys>, bool) {
    client.start(*now).expect("client starts");
    for _ in 0..50 {
        while let Some(d) = client.poll_transmit() {
            if let Some(k) = server
                .handle_datagram(*now, &d)
                .expect("never an error once connected")
            {
                return (Some(k), false);
            }
        }
        while let Some(d) = server.poll_transmit() {
            if client.handle_datagram(*now, &d).is_err() {
                return (None, true);
            }
        }
        *now += Duration::from_millis(100);
        let _ = client.handle_timeout(*now);
        let _ = server.handle_timeout(*now);
    }
    (None, false)
}
