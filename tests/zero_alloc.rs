//! The steady-state forwarding path allocates nothing, counted by a global
//! allocator on this thread: one publisher packet fanned out to 100
//! subscribers on one worker (GCM unprotect in place, rewrite, GCM protect
//! in place into the worker's arena, queue), and bursts of packets fanned
//! out across two workers (grouped into GSO transmits, handed over in a
//! pooled hand-off).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use switchboard::engine::fixture::{self, PUBLISHER_SSRC};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = COUNTING.try_with(|on| {
        if on.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn forwarding_to_100_subscribers_allocates_nothing() {
    let (mut engine, from, mut publisher) = fixture::fan_out(100);
    let packets: Vec<Vec<u8>> = (1..=1500u16)
        .map(|seq| {
            publisher
                .protect_rtp(&fixture::rtp_packet(seq, PUBLISHER_SSRC))
                .expect("protect")
                .to_vec()
        })
        .collect();
    let forward = |engine: &mut switchboard::engine::Engine, packet: &[u8]| {
        let mut buf = packet.to_vec();
        COUNTING.with(|on| on.set(true));
        engine.handle_datagram(Instant::now(), from, &mut buf);
        let mut sent = 0;
        while let Some(t) = engine.poll_transmit() {
            sent += 1;
            drop(t);
        }
        while engine.poll_event().is_some() {}
        COUNTING.with(|on| on.set(false));
        sent
    };
    // Warm up: queues, arena and per-stream state reach their steady size.
    for p in &packets[..500] {
        assert_eq!(forward(&mut engine, p), 100);
    }
    COUNT.with(|c| c.set(0));
    for p in &packets[500..] {
        assert_eq!(forward(&mut engine, p), 100);
    }
    let allocations = COUNT.with(|c| c.get());
    assert_eq!(
        allocations, 0,
        "heap allocations while forwarding 1000 packets to 100 subscribers"
    );
}

#[test]
fn forwarding_bursts_across_two_workers_allocates_nothing() {
    let mut f = fixture::fan_out_across(2, 100);
    let bursts: Vec<Vec<Vec<u8>>> = (0..600u16)
        .map(|b| {
            (0..5u16)
                .map(|i| {
                    f.publisher_srtp
                        .protect_rtp(&fixture::rtp_packet(b * 5 + i + 1, PUBLISHER_SSRC))
                        .expect("protect")
                        .to_vec()
                })
                .collect()
        })
        .collect();
    let mut buf = vec![0u8; 2048];
    let mut forward = |f: &mut fixture::Fixture, burst: &[Vec<u8>]| {
        COUNTING.with(|on| on.set(true));
        for p in burst {
            buf[..p.len()].copy_from_slice(p);
            f.engines[0].handle_datagram(Instant::now(), f.publisher, &mut buf[..p.len()]);
        }
        while let Some((to, handoff)) = f.engines[0].poll_handoff() {
            f.engines[to.0].handle_handoff(&handoff);
        }
        let mut sent = 0;
        for engine in &mut f.engines {
            while let Some(t) = engine.poll_transmit() {
                sent += t.count();
            }
            while engine.poll_event().is_some() {}
        }
        COUNTING.with(|on| on.set(false));
        sent
    };
    for burst in &bursts[..100] {
        assert_eq!(forward(&mut f, burst), 500);
    }
    COUNT.with(|c| c.set(0));
    for burst in &bursts[100..] {
        assert_eq!(forward(&mut f, burst), 500);
    }
    let allocations = COUNT.with(|c| c.get());
    assert_eq!(
        allocations, 0,
        "heap allocations while forwarding 500 bursts of 5 packets to 100 subscribers on 2 workers"
    );
}
