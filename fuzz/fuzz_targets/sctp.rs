//! SCTP packets (RFC 9260) and DCEP messages (RFC 8832) as the data
//! channel layer reads them out of DTLS. Our client transport and our
//! server transport first set up an association and a channel; then each
//! record is a packet to the server: chunks behind the association's real
//! common header (ports, verification tag) with the CRC32c made right, so
//! that the fuzzer's chunks reach the association, or (tag bit 0) raw bytes.
//!
//! A panic inside rtc-sctp while it reads a packet or runs its timers is
//! caught by the transport, which closes that one association (the
//! contract of `SctpTransport::handle_packet`); here it must leave the
//! transport closed. Any other panic, and any that escapes the transport,
//! is a crash.
#![no_main]

use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard::datachannel::dcep::{Dcep, Open};
use switchboard::datachannel::policy::DeliveryPolicy;
use switchboard::datachannel::sctp::{SctpEvent, SctpTransport};
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

/// Set when rtc-sctp panicked (and the transport was to catch it).
static LIBRARY_PANICKED: AtomicBool = AtomicBool::new(false);

/// Where a panic means one of the transport's own checks let a packet
/// through (`sctp_check`): rtc-sctp's packet reader and its SACK builder.
const CHECKED: [&str; 2] = ["/src/packet.rs", "/src/queue/payload_queue.rs"];

/// libFuzzer's panic hook aborts on every panic; this one lets a panic
/// raised with rtc-sctp on the stack unwind (to the transport's guard, or
/// past it to libFuzzer, which then aborts), unless it is in a place the
/// transport's checks are there to keep safe. The first is told once.
fn contain_library_panics() {
    static HOOK: Once = Once::new();
    static TOLD: AtomicBool = AtomicBool::new(false);
    HOOK.call_once(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let trace = std::backtrace::Backtrace::force_capture().to_string();
            let mut library = trace
                .lines()
                .filter(|l| l.contains("/rtc-sctp-"))
                .peekable();
            let in_library = library.peek().is_some();
            if !in_library || library.any(|l| CHECKED.iter().any(|c| l.contains(c))) {
                abort(info);
            }
            LIBRARY_PANICKED.store(true, Ordering::Relaxed);
            if !TOLD.swap(true, Ordering::Relaxed) {
                eprintln!("sctp: rtc-sctp panicked, to be contained: {info}");
            }
        }));
    });
}

/// Drains the server's output; a contained library panic must have
/// closed the association.
fn drain(server: &mut SctpTransport) {
    while server.poll_transmit().is_some() {}
    let mut closed = false;
    while let Some(event) = server.poll_event() {
        closed |= event == SctpEvent::Closed;
    }
    if LIBRARY_PANICKED.swap(false, Ordering::Relaxed) {
        assert!(
            closed && !server.is_connected(),
            "a library panic closes the association"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    contain_library_panics();
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
        drain(&mut server);
        let _ = server.buffered_amount(1);
        if r.tag & 2 != 0 {
            now += Duration::from_millis(u64::from(r.tag) * 10);
            server.handle_timeout(now);
            drain(&mut server);
        }
        if r.tag & 4 != 0 {
            let _ = server.send(now, 1, false, r.bytes);
        }
    }
});
