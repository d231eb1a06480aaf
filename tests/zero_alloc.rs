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

/// Forwards `warm_up` then `measured` bursts of `burst` packets from the
/// publisher on worker 0 to `subscribers` spread over `workers` (hand-offs
/// delivered, every datagram drained, each burst checked to reach every
/// subscriber); returns the heap allocations of the measured bursts.
fn allocations_in_steady_state(
    workers: usize,
    subscribers: usize,
    burst: u16,
    warm_up: u16,
    measured: u16,
) -> u64 {
    let mut f = fixture::fan_out_across(workers, subscribers);
    let bursts: Vec<Vec<Vec<u8>>> = (0..warm_up + measured)
        .map(|b| {
            (0..burst)
                .map(|i| {
                    f.publisher_srtp
                        .protect_rtp(&fixture::rtp_packet(b * burst + i + 1, PUBLISHER_SSRC))
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
    let expected = usize::from(burst) * subscribers;
    // Warm up: queues, arena, pools and per-stream state reach their size.
    for b in &bursts[..usize::from(warm_up)] {
        assert_eq!(forward(&mut f, b), expected);
    }
    COUNT.with(|c| c.set(0));
    for b in &bursts[usize::from(warm_up)..] {
        assert_eq!(forward(&mut f, b), expected);
    }
    COUNT.with(|c| c.get())
}

#[test]
fn forwarding_to_100_subscribers_allocates_nothing() {
    assert_eq!(
        allocations_in_steady_state(1, 100, 1, 500, 1000),
        0,
        "heap allocations while forwarding 1000 packets to 100 subscribers"
    );
}

#[test]
fn forwarding_bursts_across_two_workers_allocates_nothing() {
    assert_eq!(
        allocations_in_steady_state(2, 100, 5, 100, 500),
        0,
        "heap allocations while forwarding 500 bursts of 5 packets to 100 subscribers on 2 workers"
    );
}
