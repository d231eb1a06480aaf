//! Security properties, each tested on its own (beside the abuse tests):
//!
//! - session ids are 128 random bits (32 hex characters, no two alike, every
//!   bit position about as often 1 as 0);
//! - a STUN check with the right ufrag but a wrong MESSAGE-INTEGRITY binds
//!   nothing: no answer, no binding, no consent; RTP from that address then
//!   reaches no session;
//! - a packet from an address no check bound never reaches a session;
//! - a publisher's malformed RTP and RTCP inside SRTP is dropped and
//!   counted (an absurd extension length or CSRC count in the clear header
//!   fails authentication; a padding count past the payload, RTCP report
//!   counts and lengths past the packet are read without harm), nothing is
//!   forwarded, and the session's next valid packet still is;
//! - an app's secret never opens another app's sessions;
//! - malformed datagrams at a high rate from 200 addresses are dropped and
//!   counted while a real publisher's media keeps reaching its subscriber.
//!
//! (A DTLS certificate that matches no fingerprint is refused:
//! tests/str0m_transport.rs.)

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use switchboard::config::{AppConfig, Config};
use switchboard::engine::Engine;
use switchboard::engine::counters::{Counters, DropReason};
use switchboard::engine::fixture::{self, PUBLISHER_SSRC};
use switchboard::engine::ice_directory::IceDirectory;
use switchboard::engine::messages::EngineEvent;
use switchboard::ids::{SessionKey, WorkerId};
use switchboard::server::Server;

#[test]
fn session_ids_carry_128_random_bits() {
    let server = common::server(1);
    let api = common::Api::new(&server);
    let ids: Vec<String> = (0..400).map(|_| api.new_session()).collect();
    let mut ones = [0u32; 128];
    for id in &ids {
        assert_eq!(id.len(), 32, "{id}");
        let bits = u128::from_str_radix(id, 16).expect("hex");
        for (i, one) in ones.iter_mut().enumerate() {
            *one += ((bits >> i) & 1) as u32;
        }
    }
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len());
    // 400 draws per bit: 200 ± 10 (sd); 6 sd either way never happens by chance.
    for (i, n) in ones.iter().enumerate() {
        assert!((140..=260).contains(n), "bit {i} set in {n} of 400 ids");
    }
}

const UFRAG: &str = "srvufrag";
const PWD: &str = "server-ice-password-0123456789";

/// An engine with one session known to ICE (our ufrag, its password, the
/// client's ufrag "cli"), not bound to any address yet.
fn engine_with_ice_session() -> (Engine, Arc<Counters>) {
    let directory = Arc::new(IceDirectory::default());
    directory.insert(UFRAG, SessionKey(1), PWD);
    directory.set_remote_ufrag(UFRAG, "cli");
    let counters = Arc::new(Counters::default());
    let engine = Engine::new(WorkerId(0), 1, directory, counters.clone(), Instant::now());
    (engine, counters)
}

fn check(pwd: &str, txid: u8) -> Vec<u8> {
    let mut out = Vec::new();
    switchboard::ice::write_binding_request(
        &mut out,
        &[txid; 12],
        &format!("{UFRAG}:cli"),
        pwd,
        true,
    );
    out
}

#[test]
fn a_check_with_a_wrong_message_integrity_binds_nothing_and_refreshes_no_consent() {
    let (mut engine, counters) = engine_with_ice_session();
    let attacker: SocketAddr = "127.0.0.1:5555".parse().unwrap();
    let now = Instant::now();
    engine.handle_datagram(now, attacker, &mut check("not-the-password-at-all", 1));
    assert_eq!(counters.drops(DropReason::BadIntegrity), 1);
    assert!(engine.poll_transmit().is_none(), "no answer");
    while let Some(event) = engine.poll_event() {
        assert!(
            !matches!(event, EngineEvent::Bound { .. }),
            "a forged check bound or refreshed consent: {event:?}"
        );
    }
    // Nothing is bound: RTP from there reaches no session.
    let mut rtp = fixture::rtp_packet(1, PUBLISHER_SSRC);
    engine.handle_datagram(now, attacker, &mut rtp);
    assert_eq!(counters.drops(DropReason::UnboundAddress), 1);
    assert!(engine.poll_transmit().is_none());
    // The right password does bind (the test's check is otherwise valid).
    engine.handle_datagram(now, attacker, &mut check(PWD, 2));
    assert!(engine.poll_transmit().is_some(), "answered");
    assert!(
        std::iter::from_fn(|| engine.poll_event()).any(|e| matches!(e, EngineEvent::Bound { .. }))
    );
}

/// Sends the publisher's valid packet `seq` (its keys) from `from`; the
/// datagrams the engine sends on.
fn send_valid(
    engine: &mut Engine,
    srtp: &mut switchboard::srtp::SrtpSession,
    from: SocketAddr,
    seq: u16,
) -> usize {
    let mut packet = srtp
        .protect_rtp(&fixture::rtp_packet(seq, PUBLISHER_SSRC))
        .expect("protect")
        .to_vec();
    engine.handle_datagram(Instant::now(), from, &mut packet);
    std::iter::from_fn(|| engine.poll_transmit())
        .map(|t| t.count())
        .sum()
}

#[test]
fn a_packet_from_an_unbound_address_never_reaches_a_session() {
    let (mut engine, publisher, mut srtp) = fixture::fan_out(3);
    let stranger: SocketAddr = "127.0.0.1:6666".parse().unwrap();
    // Protected with the publisher's own keys, but from another address
    // that no check bound.
    assert_eq!(
        send_valid(&mut engine, &mut srtp, stranger, 1),
        0,
        "nothing forwarded"
    );
    assert_eq!(engine.counters().drops(DropReason::UnboundAddress), 1);
    // The same from the bound address is forwarded to the 3 subscribers.
    assert_eq!(send_valid(&mut engine, &mut srtp, publisher, 2), 3);
}

#[test]
fn malformed_rtp_and_rtcp_inside_valid_srtp_are_dropped_and_counted() {
    let (mut engine, publisher, mut srtp) = fixture::fan_out(2);
    let now = Instant::now();
    let valid = fixture::rtp_packet(1, PUBLISHER_SSRC);
    // The header is authenticated: an absurd extension length or CSRC count
    // written into a valid SRTP packet fails authentication.
    for (at, value) in [(14usize, [0xff, 0xff]), (0, [0x9f, 96])] {
        let mut packet = srtp.protect_rtp(&valid).expect("protect").to_vec();
        packet[at..at + 2].copy_from_slice(&value);
        engine.handle_datagram(now, publisher, &mut packet);
    }
    assert_eq!(engine.counters().drops(DropReason::SrtpFailure), 2);
    // Inside the encrypted payload: a padding count past the payload.
    let mut padding = valid[..40].to_vec();
    padding[0] |= 0x20;
    *padding.last_mut().unwrap() = 0xff;
    let mut packet = srtp.protect_rtp(&padding).expect("protect").to_vec();
    engine.handle_datagram(now, publisher, &mut packet);
    assert_eq!(engine.counters().drops(DropReason::Malformed), 1);
    assert!(engine.poll_transmit().is_none(), "nothing forwarded");
    // RTCP: a receiver report claiming 31 blocks in a 2-word packet, and a
    // sender report whose length runs past the datagram: read without harm,
    // nothing sent on.
    for plain in [
        vec![0x9f, 201, 0, 1, 0, 0, 0, 1],
        vec![0x81, 200, 0xff, 0xff, 0, 0, 0, 1],
    ] {
        let mut packet = srtp.protect_rtcp(&plain).expect("protect").to_vec();
        engine.handle_datagram(now, publisher, &mut packet);
    }
    assert!(
        engine.poll_transmit().is_none(),
        "nothing from malformed RTCP"
    );
    // The session is unharmed: its next valid packet reaches both subscribers.
    assert_eq!(send_valid(&mut engine, &mut srtp, publisher, 2), 2);
}

#[test]
fn one_apps_secret_never_opens_another_apps_sessions() {
    let mut config = Config::loopback(1);
    config.apps = vec![
        AppConfig {
            id: "app-a".into(),
            secret: "secret-a".into(),
        },
        AppConfig {
            id: "app-b".into(),
            secret: "secret-b".into(),
        },
    ];
    let server = Server::start(config).expect("server");
    let api = common::Api::new(&server);
    let base = |app: &str| format!("http://{}/v1/apps/{app}", server.http_addr);
    let (status, body) = api.call_with(
        "POST",
        &format!("{}/sessions/new", base("app-a")),
        Some("secret-a"),
        None,
    );
    assert_eq!(status, 201, "{body}");
    let session = body["sessionId"].as_str().expect("id").to_owned();
    // B's secret on A's app, A's secret on B's app: 401.
    for (app, secret) in [("app-a", "secret-b"), ("app-b", "secret-a")] {
        let (status, body) = api.call_with(
            "POST",
            &format!("{}/sessions/new", base(app)),
            Some(secret),
            None,
        );
        assert_eq!(status, 401, "{app} with {secret}: {body}");
    }
    let (status, _) = api.call_with(
        "GET",
        &format!("{}/sessions/{session}", base("app-a")),
        Some("secret-b"),
        None,
    );
    assert_eq!(status, 401);
    // A's session is not B's, even with B's own secret.
    let (status, body) = api.call_with(
        "GET",
        &format!("{}/sessions/{session}", base("app-b")),
        Some("secret-b"),
        None,
    );
    assert!(status == 404 || status == 410, "{status} {body}");
    let (status, _) = api.call_with(
        "GET",
        &format!("{}/sessions/{session}", base("app-a")),
        Some("secret-a"),
        None,
    );
    assert_eq!(status, 200);
}

/// Malformed datagrams of every shape the classifier knows (STUN, DTLS,
/// RTP, RTCP, unknown), from 200 loopback addresses as fast as one thread
/// sends them, for 3 s, while a str0m publisher sends audio frames to a
/// str0m subscriber through the same media port.
#[test]
fn a_malformed_flood_from_many_addresses_is_counted_and_media_keeps_flowing() {
    use common::{Api, AudioPair, audio_pair, drive, received, send_opus};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::Duration;

    let server = Server::start(Config::loopback(2)).expect("server");
    let api = Api::new(&server);
    let AudioPair {
        publisher: mut a,
        mid,
        subscriber: mut c,
        sub_mid,
        ..
    } = audio_pair(&api);
    let drops = || -> u64 {
        let workers = server.control.workers();
        workers
            .iter()
            .map(|w| {
                DropReason::ALL
                    .iter()
                    .map(|r| w.counters.drops(*r))
                    .sum::<u64>()
            })
            .sum()
    };
    let drops_before = drops();

    let sent = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let target = server.media_addr;
    let flood = {
        let (sent, stop) = (sent.clone(), stop.clone());
        std::thread::spawn(move || {
            let sockets: Vec<std::net::UdpSocket> = (2..202u8)
                .map(|i| {
                    std::net::UdpSocket::bind(SocketAddr::from(([127, 0, 1, i], 0))).expect("bind")
                })
                .collect();
            // A STUN header whose length runs past the datagram, a DTLS
            // record that is no handshake, RTP and RTCP from no session, a
            // byte outside every range.
            let shapes: [&[u8]; 5] = [
                &[
                    0, 1, 0xff, 0xfc, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                ],
                &[23, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0xff, 0xff, 1, 2, 3],
                &[
                    0x9f, 96, 0, 1, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xff,
                ],
                &[0x81, 201, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef],
                &[0x40, 1, 2, 3],
            ];
            let until = Instant::now() + Duration::from_secs(3);
            let mut n = 0usize;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                let socket = &sockets[n % sockets.len()];
                if socket.send_to(shapes[n % shapes.len()], target).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
        })
    };

    let frames = 200u64;
    send_opus(&mut a, mid, b"hostile", frames, &mut [&mut c]);
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    drive(&mut [&mut a, &mut c], Duration::from_millis(300), |_| false);

    let sent = sent.load(Ordering::Relaxed);
    let counted = drops() - drops_before;
    let got = received(&c, sub_mid, b"hostile");
    eprintln!(
        "{sent} malformed datagrams sent, {counted} counted as drops; {got} of {frames} frames"
    );
    assert!(sent >= 50_000, "the flood ran: {sent}");
    // Loopback loses nothing but what the server's socket buffer cannot
    // hold; what the server read, it counted.
    assert!(counted >= sent / 2, "{counted} of {sent} counted");
    assert!(counted <= sent, "{counted} counted, {sent} sent");
    assert!(
        got as u64 >= frames * 95 / 100,
        "media kept flowing: {got} of {frames}"
    );
}
