//! The hot path without sockets: SRTP protect/unprotect (both profiles),
//! the per-subscriber RTP header rewrite, and one publisher packet fanned
//! out through a media worker's engine to 1, 10, 100 and 1000 subscribers
//! (unprotect once, rewrite and protect per subscriber, queue the
//! datagrams); a burst of 5 packets read in one batch (one GSO transmit per
//! subscriber); and the hand-off of a packet to a second worker.
//! Throughput is declared in forwarded packets.
//!
//! Run: `cargo bench --bench forwarding`. Report the machine with the numbers.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rtc_srtp::protection_profile::ProtectionProfile;
use switchboard::engine::fixture::{self, rtp_packet};
use switchboard::srtp::SrtpSession;
use switchboard::wire::rtp::{self, Rewrite, RtpHeader};

fn srtp(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp_1200B");
    g.throughput(Throughput::Elements(1));
    for (name, profile) in [
        ("aead_aes_128_gcm", ProtectionProfile::AeadAes128Gcm),
        (
            "aes_cm_hmac_sha1_80",
            ProtectionProfile::Aes128CmHmacSha1_80,
        ),
    ] {
        let k = fixture::keys(profile, 7);
        let mut ours = SrtpSession::new(&k).expect("srtp");
        let mut theirs = fixture::peer(&k);
        let mut seq = 0u16;
        g.bench_function(format!("protect/{name}"), |b| {
            b.iter(|| {
                seq = seq.wrapping_add(1);
                black_box(ours.protect_rtp(&rtp_packet(seq, 1)).expect("protect"))
            })
        });
        let mut seq = 0u16;
        g.bench_function(format!("unprotect/{name}"), |b| {
            b.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    theirs
                        .protect_rtp(&rtp_packet(seq, 2))
                        .expect("protect")
                        .to_vec()
                },
                |p| black_box(ours.unprotect_rtp(&p).expect("unprotect")),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn rewrite(c: &mut Criterion) {
    let mut g = c.benchmark_group("rtp_rewrite");
    g.throughput(Throughput::Elements(1));
    let mut p = rtp_packet(1, 5);
    let layout = RtpHeader::new_checked(&p).expect("rtp").layout();
    let map = [0u8; 16];
    g.bench_function("ssrc_pt_seq_ts_in_place", |b| {
        b.iter(|| {
            rtp::rewrite_in_place(
                &mut p,
                layout,
                Rewrite {
                    ssrc: 9,
                    payload_type: 100,
                    extensions: &map,
                    transport_cc: None,
                },
            );
            rtp::set_sequence_number(&mut p, 7);
            rtp::set_timestamp(&mut p, 11);
            black_box(&p);
        })
    });
    g.finish();
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_1200B_gcm");
    for n in [1usize, 10, 100, 1000] {
        let (mut engine, from, mut publisher) = fixture::fan_out(n);
        let mut seq = 0u16;
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("subscribers/{n}"), |b| {
            b.iter_batched(
                || {
                    seq = seq.wrapping_add(1);
                    publisher
                        .protect_rtp(&rtp_packet(seq, 0xabc))
                        .expect("protect")
                        .to_vec()
                },
                |mut p| {
                    engine.handle_datagram(Instant::now(), from, &mut p);
                    let mut sent = 0;
                    while let Some(t) = engine.poll_transmit() {
                        sent += t.bytes.len();
                    }
                    while engine.poll_event().is_some() {}
                    black_box(sent)
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// A video frame's burst of 5 packets, read in one batch, to 100
/// subscribers on this worker (one GSO transmit per subscriber); and one
/// packet handed to a second worker that owns the 100 subscribers.
fn burst_and_handoff(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch_1200B_gcm");
    let mut f = fixture::fan_out_across(1, 100);
    let mut seq = 0u16;
    g.throughput(Throughput::Elements(500));
    g.bench_function("burst_of_5/subscribers/100", |b| {
        b.iter_batched(
            || {
                (0..5)
                    .map(|_| {
                        seq = seq.wrapping_add(1);
                        f.publisher_srtp
                            .protect_rtp(&rtp_packet(seq, 0xabc))
                            .expect("protect")
                            .to_vec()
                    })
                    .collect::<Vec<_>>()
            },
            |burst| {
                let engine = &mut f.engines[0];
                for mut p in burst {
                    engine.handle_datagram(Instant::now(), f.publisher, &mut p);
                }
                let mut sent = 0;
                while let Some(t) = engine.poll_transmit() {
                    sent += t.count();
                }
                while engine.poll_event().is_some() {}
                black_box(sent)
            },
            BatchSize::SmallInput,
        )
    });
    // Subscriber i lives on worker i % 2: 200 subscribers, 100 on worker 1.
    let mut f = fixture::fan_out_across(2, 200);
    let mut seq = 0u16;
    g.throughput(Throughput::Elements(200));
    g.bench_function("handoff/subscribers/100+100", |b| {
        b.iter_batched(
            || {
                seq = seq.wrapping_add(1);
                f.publisher_srtp
                    .protect_rtp(&rtp_packet(seq, 0xabc))
                    .expect("protect")
                    .to_vec()
            },
            |mut p| {
                let (first, rest) = f.engines.split_at_mut(1);
                first[0].handle_datagram(Instant::now(), f.publisher, &mut p);
                while let Some((_, h)) = first[0].poll_handoff() {
                    rest[0].handle_handoff(&h);
                }
                let mut sent = 0;
                for engine in f.engines.iter_mut() {
                    while let Some(t) = engine.poll_transmit() {
                        sent += t.count();
                    }
                    while engine.poll_event().is_some() {}
                }
                black_box(sent)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, srtp, rewrite, fanout, burst_and_handoff);
criterion_main!(benches);
