//! A recording's media logic (`recording::recorder`: jitter buffers,
//! depacketisers for every format, the timeline, files and segments) fed
//! what a hostile publisher controls: each record is an RTP packet of one
//! of three tracks, or a sender report, at a time the record advances. The
//! first byte picks the video track's format. Nothing may panic or loop,
//! and what the recorder holds stays bounded.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use switchboard::recording::depacketize::Format;
use switchboard::recording::recorder::{Recorder, TrackInput};
use switchboard::simulcast::Layer;
use switchboard::wire::rtcp::SenderInfo;
use switchboard_fuzz::records;

const VIDEO: [Format; 5] = [
    Format::Vp8,
    Format::Vp9,
    Format::Av1,
    Format::H264,
    Format::H265,
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let video = VIDEO[usize::from(first) % VIDEO.len()];
    let tracks = vec![
        TrackInput {
            formats: vec![(96, video)],
            publisher: 0,
            video: true,
            layer_ranks: vec![1, 0],
        },
        TrackInput {
            formats: vec![(111, Format::Opus)],
            publisher: 0,
            video: false,
            layer_ranks: Vec::new(),
        },
        TrackInput {
            formats: vec![(97, Format::Vp8)],
            publisher: 1,
            video: true,
            layer_ranks: Vec::new(),
        },
    ];
    let t0 = Instant::now();
    let segment = (first & 0x80 != 0).then(|| Duration::from_secs(5));
    let mut recorder = Recorder::new(tracks, 2, segment, t0);
    let mut now = t0;
    let mut actions = Vec::new();
    for record in records(rest) {
        now += Duration::from_millis(u64::from(record.tag >> 3) * 10);
        let track = usize::from(record.tag & 0x03);
        if record.tag & 0x04 != 0 {
            let b = |i: usize| record.bytes.get(i).copied().unwrap_or(0);
            let word = |i: usize| u32::from_be_bytes([b(i), b(i + 1), b(i + 2), b(i + 3)]);
            let info = SenderInfo {
                ssrc: word(0),
                ntp: (u64::from(word(4)) << 32) | u64::from(word(8)),
                rtp_timestamp: word(12),
                packet_count: 0,
                octet_count: 0,
            };
            recorder.handle_sender_report(track, now, info);
        } else {
            let layer = record.bytes.first().map(|b| Layer(b & 0x01));
            recorder.handle_rtp(track, now, layer, record.bytes);
        }
        recorder.poll(now, &mut actions);
        actions.clear();
    }
    recorder.finish(now, &mut actions);
});
