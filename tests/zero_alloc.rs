//! The steady-state forwarding path allocates nothing: one publisher packet
//! fanned out to 100 subscribers on one worker (GCM unprotect in place,
//! rewrite, GCM protect in place into the worker's arena, queue) performs
//! zero heap allocations, counted by a global allocator on this thread.

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
