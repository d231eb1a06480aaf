//! Ready-made engines for benches and tests of the forwarding path: one
//! publisher and `n` subscribers of its track on one worker or spread over
//! several, with SRTP keys and routes installed through the engines' own
//! commands. Not used by the server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::engine::session_media::{InboundRoute, Outlet, SessionMedia};
use crate::fanout::{FanoutTable, TrackFanout};
use crate::ids::{Mid, SessionKey, TrackKey, WorkerId};
use crate::srtp::SrtpSession;

use super::Engine;
use super::counters::Counters;
use super::ice_directory::IceDirectory;
use super::messages::WorkerCommand;

pub use crate::srtp::fixture::{PAYLOAD, PUBLISHER_TWCC, keys, peer, rtp_packet};

use rtc_srtp::protection_profile::ProtectionProfile;

use crate::srtp::SrtpKeys;

/// The subscribers' one.
pub const SUBSCRIBER_TWCC: u8 = 5;

/// The publisher's SSRC in [`fan_out`].
pub const PUBLISHER_SSRC: u32 = 0xabc;

/// One subscriber of a [`Fixture`].
pub struct Subscriber {
    /// Its address.
    pub addr: SocketAddr,
    /// The worker that owns it.
    pub worker: usize,
    /// The SSRC the server sends it the track on.
    pub ssrc: u32,
    /// Its client side of SRTP.
    pub srtp: SrtpSession,
}

/// Engines of several workers: one publisher on worker 0, subscribers of
/// its track spread over the workers.
pub struct Fixture {
    /// One engine per worker.
    pub engines: Vec<Engine>,
    /// The publisher's address.
    pub publisher: SocketAddr,
    /// The publisher's client side of SRTP.
    pub publisher_srtp: SrtpSession,
    /// The subscribers.
    pub subscribers: Vec<Subscriber>,
    /// The track's fan-out (which subscribers each worker serves).
    pub fanout: Arc<TrackFanout>,
}

/// An engine with one publisher (at the returned address, whose client
/// side is the returned SRTP session) and `n` subscribers of its track,
/// all AEAD_AES_128_GCM, all on this worker.
pub fn fan_out(n: usize) -> (Engine, SocketAddr, SrtpSession) {
    let f = fan_out_across(1, n);
    let engine = f.engines.into_iter().next().expect("one engine");
    (engine, f.publisher, f.publisher_srtp)
}

/// Like [`fan_out`], with `workers` engines; subscriber `i` lives on
/// worker `i % workers`, the publisher on worker 0.
pub fn fan_out_across(workers: usize, n: usize) -> Fixture {
    fan_out_with(workers, n, vec![PUBLISHER_SSRC])
}

/// Like [`fan_out`], for a publisher whose SDP declares no SSRC: its
/// SSRCs are learned from the packets (by payload type).
pub fn fan_out_learning(n: usize) -> Fixture {
    fan_out_with(1, n, Vec::new())
}

fn fan_out_with(workers: usize, n: usize, declared: Vec<u32>) -> Fixture {
    let now = Instant::now();
    let directory = Arc::new(IceDirectory::default());
    let mut engines: Vec<Engine> = (0..workers)
        .map(|w| {
            Engine::new(
                WorkerId(w),
                workers,
                directory.clone(),
                Arc::new(Counters::default()),
                now,
            )
        })
        .collect();
    let fanout = Arc::new(TrackFanout::new(TrackKey(1)));
    let publisher: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 10000));
    let k = keys(ProtectionProfile::AeadAes128Gcm, 1);
    let media = SessionMedia {
        mid_extension: None,
        twcc_extension: Some(PUBLISHER_TWCC),
        rid_extensions: (None, None),
        rtcp_ssrc: 1,
        inbound: vec![InboundRoute {
            mid: Mid("0".into()),
            ssrcs: declared,
            payload_types: vec![96],
            clock_rate: 90000,
            fanout: fanout.clone(),
            // Its gaps are tracked (and NACKed) as a browser's would be.
            nack: true,
            rtx: Vec::new(),
            rids: Vec::new(),
            formats: Vec::new(),
        }],
        outlets: Vec::new(),
    };
    attach(&mut engines[0], SessionKey(0), publisher, k.clone(), media);
    let mut per_worker = vec![Vec::new(); workers];
    let mut subscribers = Vec::new();
    for i in 1..=n {
        let key = SessionKey(i as u32);
        let worker = i % workers;
        let addr = SocketAddr::from(([127, 0, 0, 1], 20000 + i as u16));
        let ssrc = 0x1000 + i as u32;
        let sub_keys = keys(ProtectionProfile::AeadAes128Gcm, i as u8);
        let media = SessionMedia {
            mid_extension: None,
            // Subscribers number what they get and send feedback, so their
            // bandwidth estimate runs.
            twcc_extension: Some(SUBSCRIBER_TWCC),
            rid_extensions: (None, None),
            rtcp_ssrc: 1,
            inbound: Vec::new(),
            outlets: vec![Outlet {
                track: TrackKey(1),
                video: true,
                ssrc,
                payload_types: vec![(96, 96)],
                extensions: std::array::from_fn(|id| {
                    if id == usize::from(PUBLISHER_TWCC) {
                        SUBSCRIBER_TWCC
                    } else {
                        0
                    }
                }),
                // Subscribers NACK: the track's history is kept.
                nack: true,
                rtx: None,
                simulcast: None,
            }],
        };
        attach(&mut engines[worker], key, addr, sub_keys.clone(), media);
        per_worker[worker].push(key);
        subscribers.push(Subscriber {
            addr,
            worker,
            ssrc,
            srtp: peer(&sub_keys),
        });
    }
    fanout.store(FanoutTable { per_worker });
    Fixture {
        engines,
        publisher,
        publisher_srtp: peer(&k),
        subscribers,
        fanout,
    }
}

/// Installs a session on an engine through its commands.
fn attach(
    engine: &mut Engine,
    key: SessionKey,
    addr: SocketAddr,
    keys: SrtpKeys,
    media: SessionMedia,
) {
    engine.handle_command(WorkerCommand::Attach { key, addr });
    engine.handle_command(WorkerCommand::Keys { key, keys });
    engine.handle_command(WorkerCommand::Media {
        key,
        media: Arc::new(media),
    });
}
