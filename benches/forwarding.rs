//! The hot path without sockets: SRTP protect/unprotect (both profiles),
//! the per-subscriber RTP header rewrite, and one publisher packet fanned
//! out through a media worker's engine to 1, 10, 100 and 1000 subscribers
//! (unprotect once, rewrite and protect per subscriber, queue the
//! datagrams). Throughput is declared in forwarded packets.
//!
//! Run: `cargo bench --bench forwarding`. Report the machine with the numbers.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rtc_srtp::protection_profile::ProtectionProfile;
use switchboard::dtls::SrtpKeys;
use switchboard::engine::Engine;
use switchboard::engine::counters::Counters;
use switchboard::engine::directory::IceDirectory;
use switchboard::engine::messages::WorkerCommand;
use switchboard::fanout::{FanoutTable, TrackFanout};
use switchboard::ids::{Mid, SessionKey, TrackKey, WorkerId};
use switchboard::session::{InboundRoute, Outlet, SessionMedia};
use switchboard::srtp::SrtpSession;
use switchboard::wire::rtp::{self, Rewrite, RtpHeader};

const PAYLOAD: usize = 1200 - 12 - 16;

fn keys(profile: ProtectionProfile, seed: u8) -> SrtpKeys {
    let (k, s) = (profile.key_len(), profile.salt_len());
    SrtpKeys {
        profile,
        local: (vec![seed; k], vec![seed ^ 1; s]),
        remote: (vec![seed ^ 2; k], vec![seed ^ 3; s]),
    }
}

/// The other side of a session: our keys swapped.
fn peer(keys: &SrtpKeys) -> SrtpSession {
    let swapped = SrtpKeys {
        profile: keys.profile,
        local: keys.remote.clone(),
        remote: keys.local.clone(),
    };
    SrtpSession::new(&swapped).expect("srtp")
}

fn rtp_packet(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 96];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(0xab, PAYLOAD));
    p
}

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
        let k = keys(profile, 7);
        let mut ours = SrtpSession::new(&k).expect("srtp");
        let mut theirs = peer(&k);
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
                },
            );
            rtp::set_sequence_number(&mut p, 7);
            rtp::set_timestamp(&mut p, 11);
            black_box(&p);
        })
    });
    g.finish();
}

/// An engine with one publisher and `n` subscribers of its track, all on this worker.
fn engine(n: usize) -> (Engine, SocketAddr, SrtpSession) {
    let now = Instant::now();
    let mut engine = Engine::new(
        WorkerId(0),
        1,
        Arc::new(IceDirectory::default()),
        Arc::new(Counters::default()),
        now,
    );
    let fanout = Arc::new(TrackFanout::new(TrackKey(1)));
    let publisher: SocketAddr = "127.0.0.1:10000".parse().expect("addr");
    let k = keys(ProtectionProfile::AeadAes128Gcm, 1);
    engine.handle_command(WorkerCommand::Attach {
        key: SessionKey(0),
        addr: publisher,
    });
    engine.handle_command(WorkerCommand::Keys {
        key: SessionKey(0),
        keys: k.clone(),
    });
    let media = SessionMedia {
        mid_extension: None,
        rtcp_ssrc: 1,
        inbound: vec![InboundRoute {
            mid: Mid("0".into()),
            ssrcs: vec![0xabc],
            payload_types: vec![96],
            clock_rate: 90000,
            fanout: fanout.clone(),
        }],
        outlets: Vec::new(),
    };
    engine.handle_command(WorkerCommand::Media {
        key: SessionKey(0),
        media: Arc::new(media),
    });
    let mut subscribers = Vec::new();
    for i in 1..=n {
        let key = SessionKey(i as u32);
        let addr = SocketAddr::from(([127, 0, 0, 1], 20000 + i as u16));
        engine.handle_command(WorkerCommand::Attach { key, addr });
        engine.handle_command(WorkerCommand::Keys {
            key,
            keys: keys(ProtectionProfile::AeadAes128Gcm, i as u8),
        });
        let media = SessionMedia {
            mid_extension: None,
            rtcp_ssrc: 1,
            inbound: Vec::new(),
            outlets: vec![Outlet {
                track: TrackKey(1),
                ssrc: 0x1000 + i as u32,
                payload_types: vec![(96, 96)],
                extensions: [0; 16],
            }],
        };
        engine.handle_command(WorkerCommand::Media {
            key,
            media: Arc::new(media),
        });
        subscribers.push(key);
    }
    fanout.store(FanoutTable {
        per_worker: vec![subscribers],
    });
    (engine, publisher, peer(&k))
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout_1200B_gcm");
    for n in [1usize, 10, 100, 1000] {
        let (mut engine, from, mut publisher) = engine(n);
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

criterion_group!(benches, srtp, rewrite, fanout);
criterion_main!(benches);
