//! Memory per session and per video subscription, counted in live heap
//! bytes by a global allocator on this thread (deterministic: sizes, not
//! time). Budgets: an idle session at most 4 KiB; a video subscription at
//! most 16 KiB (the subscriber's session state on its worker with its SRTP
//! contexts and outlet, plus the subscription in the control registry;
//! the retransmission history is shared per track and not counted here).
//!
//! Each figure is printed; the note of a change that moves them quotes it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use serde_json::json;
use switchboard::calls::types::{NewSessionRequest, TrackObject, TracksNewRequest};
use switchboard::config::Config;
use switchboard::engine::fixture::{self, PUBLISHER_SSRC};
use switchboard::ids::AppId;
use switchboard::server::Server;

struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn add(bytes: i64) {
    let _ = LIVE.try_with(|l| l.set(l.get() + bytes));
}

fn live() -> i64 {
    LIVE.with(Cell::get)
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// bookkeeping only counts sizes on the calling thread.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 5_000;
const IDLE_BUDGET: i64 = 4 * 1024;
const SUBSCRIPTION_BUDGET: i64 = 16 * 1024;

/// Control-plane bytes of one idle session (sessions/new without an
/// offer: registry entry, ids, ICE credentials and their directory entry),
/// and of one pull of a video track into a session (its transceiver,
/// subscription and what the sync keeps), on a real server in-process.
fn control_bytes() -> (i64, i64) {
    let server = Server::start(Config::loopback(1)).expect("server");
    let app = AppId(server.app().0.to_owned());
    let control = &server.control;
    let now = Instant::now();
    let new = || {
        control
            .new_session(&app, None, NewSessionRequest::default(), now)
            .expect("sessions/new")
            .0
    };
    let publisher = new();
    let push: TracksNewRequest = serde_json::from_value(json!({"tracks": [
        {"location": "local", "trackName": "cam", "kind": "video"}
    ]}))
    .expect("request");
    control
        .tracks_new(&app, &publisher, push, now)
        .expect("push");
    // Warm up the maps to their size for N, so growth is not counted twice.
    let warm: Vec<String> = (0..N).map(|_| new()).collect();
    drop(warm);

    let before = live();
    let sessions: Vec<String> = (0..N).map(|_| new()).collect();
    let idle = (live() - before) / N as i64;

    let before = live();
    for s in &sessions {
        let pull = TracksNewRequest {
            session_description: None,
            tracks: vec![TrackObject {
                location: Some("remote".into()),
                session_id: Some(publisher.clone()),
                track_name: Some("cam".into()),
                ..TrackObject::default()
            }],
            auto_discover: false,
        };
        let r = control.tracks_new(&app, s, pull, now).expect("pull");
        assert!(r.tracks[0].error_code.is_none(), "{:?}", r.tracks[0]);
        // The offer goes back to the client: not kept.
        drop(r);
    }
    let pull = (live() - before) / N as i64;
    (idle, pull)
}

/// Worker bytes per connected subscriber of one video track: its session
/// (SRTP contexts, stats, 5-tuple) and its outlet, after media flowed.
fn worker_bytes() -> i64 {
    let measure = |n: usize| {
        let before = live();
        let mut f = fixture::fan_out_across(1, n);
        let mut buf = vec![0u8; 2048];
        for seq in 1..=50u16 {
            let p = f
                .publisher_srtp
                .protect_rtp(&fixture::rtp_packet(seq, PUBLISHER_SSRC))
                .expect("protect");
            buf[..p.len()].copy_from_slice(&p);
            f.engines[0].handle_datagram(Instant::now(), f.publisher, &mut buf[..p.len()]);
            let mut sent = 0;
            while let Some(t) = f.engines[0].poll_transmit() {
                sent += t.count();
            }
            while f.engines[0].poll_event().is_some() {}
            assert_eq!(sent, n, "packet {seq} reached every subscriber");
        }
        // The subscribers' own (client) SRTP sessions are not the server's.
        f.subscribers.clear();
        f.subscribers.shrink_to_fit();
        let bytes = live() - before;
        drop(f);
        bytes
    };
    let small = measure(10);
    let large = measure(10 + 1000);
    (large - small) / 1000
}

#[test]
fn an_idle_session_and_a_video_subscription_stay_within_budget() {
    let (idle, pull) = control_bytes();
    let worker = worker_bytes();
    let subscription = pull + worker;
    println!("idle session (control): {idle} bytes");
    println!("video subscription: {subscription} bytes (control pull {pull} + worker {worker})");
    assert!(
        idle <= IDLE_BUDGET,
        "an idle session holds {idle} bytes (budget {IDLE_BUDGET})"
    );
    assert!(
        subscription <= SUBSCRIPTION_BUDGET,
        "a video subscription holds {subscription} bytes (budget {SUBSCRIPTION_BUDGET})"
    );
}
