//! Virtual-clock tests of the recorder (`recorder.rs`): seeded reordering,
//! jitter and loss, lip-sync by sender reports, segments, hostile input.

use super::*;
use crate::codec::testing::vp8_frames;
use crate::recording::testing::{Rng, rtp};

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;

fn inputs() -> Vec<TrackInput> {
    vec![
        TrackInput {
            formats: vec![(VIDEO_PT, Format::Vp8)],
            publisher: 0,
            video: true,
            layer_ranks: Vec::new(),
        },
        TrackInput {
            formats: vec![(AUDIO_PT, Format::Opus)],
            publisher: 0,
            video: false,
            layer_ranks: Vec::new(),
        },
    ]
}

/// One publisher's packets, each with its capture time in ms: VP8 at
/// 30 fps (real libvpx frames, a keyframe every 10) split into packets
/// of 400 bytes, Opus every 20 ms; video RTP starts at 1_000_000,
/// audio at 5_000 (independent random offsets, as RFC 3550 has them).
fn media(seconds: u64) -> Vec<(u64, usize, Vec<u8>)> {
    let frames = vp8_frames(90, 320, 240).expect("libavcodec with libvpx");
    let mut out = Vec::new();
    let mut seq = 100u16;
    for n in 0..seconds * 30 {
        let (frame, _) = &frames[(n % 90) as usize];
        let at = n * 100 / 3;
        let chunks: Vec<&[u8]> = frame.chunks(400).collect();
        for (i, c) in chunks.iter().enumerate() {
            let mut payload = vec![if i == 0 { 0x10 } else { 0 }];
            payload.extend_from_slice(c);
            let ts = 1_000_000 + (n * 3000) as u32;
            out.push((
                at,
                0,
                rtp(VIDEO_PT, seq, ts, 1, i + 1 == chunks.len(), &payload),
            ));
            seq = seq.wrapping_add(1);
        }
    }
    for n in 0..seconds * 50 {
        let ts = 5_000 + (n * 960) as u32;
        out.push((
            n * 20,
            1,
            rtp(AUDIO_PT, n as u16, ts, 2, false, &[0xfc, n as u8]),
        ));
    }
    out.sort_by_key(|(at, ..)| *at);
    out
}

/// Sender reports of both streams at capture time `ms` (NTP 1000 s + ms).
fn reports(r: &mut Recorder, now: Instant, ms: u64) {
    let ntp = |ms: u64| ((1000.0 + ms as f64 / 1000.0) * 4_294_967_296.0) as u64;
    for (track, ssrc, rtp, rate) in [(0, 1, 1_000_000u32, 90u64), (1, 2, 5_000, 48)] {
        r.handle_sender_report(
            track,
            now,
            SenderInfo {
                ssrc,
                ntp: ntp(ms),
                rtp_timestamp: rtp + (ms * rate) as u32,
                packet_count: 0,
                octet_count: 0,
            },
        );
    }
}

struct Run {
    actions: Vec<Action>,
    keyframe_requests: usize,
}

/// Delivers `media` through a path that delays each packet by 5 to 45
/// ms (reordering them) and loses `loss` percent, each lost packet
/// repaired (NACK) 60 ms later unless `permanent`; polls every 10 ms.
fn deliver(seconds: u64, segment: Option<Duration>, loss: u64, permanent: bool) -> (Run, Recorder) {
    let t0 = Instant::now();
    let mut rng = Rng(42);
    let mut arrivals: Vec<(u64, usize, Vec<u8>)> = Vec::new();
    for (at, track, p) in media(seconds) {
        let delay = 5 + rng.next() % 40;
        if rng.next() % 100 < loss {
            if !permanent {
                arrivals.push((at + delay + 60, track, p));
            }
            continue;
        }
        arrivals.push((at + delay, track, p));
    }
    arrivals.sort_by_key(|(at, ..)| *at);
    let mut r = Recorder::new(inputs(), 1, segment, t0);
    let mut run = Run {
        actions: Vec::new(),
        keyframe_requests: 0,
    };
    let mut next = arrivals.into_iter().peekable();
    let mut polled = Vec::new();
    for tick in 0..(seconds * 1000 + 2000) / 10 {
        let ms = tick * 10;
        let now = t0 + Duration::from_millis(ms);
        if ms % 1000 == 0 {
            reports(&mut r, now, ms);
        }
        while let Some((at, track, p)) = next.next_if(|(at, ..)| *at <= ms) {
            r.handle_rtp(track, t0 + Duration::from_millis(at), None, &p);
        }
        r.poll(now, &mut polled);
        for a in polled.drain(..) {
            match a {
                Action::RequestKeyframe(_) => run.keyframe_requests += 1,
                a => run.actions.push(a),
            }
        }
    }
    r.finish(t0 + Duration::from_secs(seconds + 2), &mut run.actions);
    (run, r)
}

/// The writes of each file: (track, pts, keyframe) per file.
fn files(actions: &[Action]) -> Vec<Vec<(usize, i64, bool)>> {
    let mut out: Vec<Vec<(usize, i64, bool)>> = Vec::new();
    for a in actions {
        match a {
            Action::Open { .. } => out.push(Vec::new()),
            Action::Write {
                track,
                pts_ms,
                keyframe,
                ..
            } => out
                .last_mut()
                .expect("a file is open before a write")
                .push((*track, *pts_ms, *keyframe)),
            Action::RequestKeyframe(_) => {}
        }
    }
    out
}

#[test]
fn reordered_and_repaired_packets_make_one_file_in_sync_from_a_keyframe() {
    let (run, r) = deliver(6, None, 5, false);
    let Some(Action::Open { specs, .. }) = run.actions.first() else {
        panic!("the file opens first");
    };
    assert_eq!((specs[0].width, specs[0].height), (320, 240));
    assert_eq!(specs[1].format, Format::Opus);
    let files = files(&run.actions);
    assert_eq!(files.len(), 1);
    let video: Vec<_> = files[0].iter().filter(|w| w.0 == 0).collect();
    let audio: Vec<_> = files[0].iter().filter(|w| w.0 == 1).collect();
    assert!(video[0].2, "the file starts at a keyframe");
    // Every frame from the first keyframe (the first frame) on: none
    // lost, the repairs came in time.
    assert_eq!(video.len(), 180);
    assert_eq!(r.dropped().losses.lost, 0, "{:?}", r.dropped());
    assert!(video.windows(2).all(|w| w[1].1 > w[0].1) && audio.windows(2).all(|w| w[1].1 > w[0].1));
    // Lip-sync: a video frame and the audio packet captured at the same
    // instant (every 100 ms: frames every 33.3 ms, packets every 20 ms)
    // are written at the same time, although their RTP clocks started
    // apart and their packets arrived 5 to 45 ms late, unevenly.
    let on_boundary: Vec<_> = video.iter().filter(|v| v.1 % 100 == 0).collect();
    let synced = on_boundary
        .iter()
        .filter(|v| audio.iter().any(|a| (a.1 - v.1).abs() <= 1))
        .count();
    assert!(
        on_boundary.len() >= 50 && synced == on_boundary.len(),
        "{synced} of {} in sync",
        on_boundary.len()
    );
    // Audio starts with the video (not before the keyframe).
    assert!(audio[0].1 >= 0 && audio[0].1 <= 20, "{:?}", audio[0]);
}

#[test]
fn segments_start_at_keyframes_and_follow_each_other_without_a_gap() {
    let (run, _) = deliver(12, Some(Duration::from_secs(5)), 0, false);
    let files = files(&run.actions);
    assert_eq!(files.len(), 3, "12 s in files of 5 s");
    let mut total = 0;
    for (n, f) in files.iter().enumerate() {
        let video: Vec<_> = f.iter().filter(|w| w.0 == 0).collect();
        let audio: Vec<_> = f.iter().filter(|w| w.0 == 1).collect();
        assert!(
            video[0].2 && video[0].1 == 0,
            "file {n} starts with a keyframe at 0: {:?}",
            video[0]
        );
        let end = video.last().unwrap().1 + 33;
        if n < 2 {
            // Rotated at the first keyframe after 5 s (keyframes every 333 ms).
            assert!((5_000..5_400).contains(&end), "file {n} lasts {end} ms");
        }
        assert!(
            audio.first().unwrap().1 <= 20,
            "file {n}'s audio starts with it"
        );
        total += end;
    }
    assert!(
        (11_500..=12_100).contains(&total),
        "files hold {total} ms of 12 s"
    );
    assert!(
        run.keyframe_requests >= 2,
        "a keyframe asked for at each segment's end"
    );
}

#[test]
fn packets_lost_for_good_skip_to_the_next_keyframe_and_ask_for_one() {
    let (run, r) = deliver(6, None, 3, true);
    let files = files(&run.actions);
    let video: Vec<_> = files[0].iter().filter(|w| w.0 == 0).collect();
    assert!(video[0].2);
    assert!(r.dropped().losses.lost > 0, "{:?}", r.dropped());
    assert!(run.keyframe_requests > 1, "the losses asked for keyframes");
    // After a skip the next frame written is a keyframe.
    let stamps: Vec<i64> = video.iter().map(|v| v.1).collect();
    for w in video.windows(2) {
        if w[1].1 - w[0].1 > 40 {
            assert!(w[1].2, "a gap ends at a keyframe: {:?} in {stamps:?}", w[1]);
        }
    }
}

#[test]
fn hostile_packets_never_panic_and_hold_bounded_frames() {
    let t0 = Instant::now();
    let mut r = Recorder::new(inputs(), 1, None, t0);
    let mut rng = Rng(7);
    let mut actions = Vec::new();
    for i in 0..50_000u64 {
        let len = (rng.next() % 300) as usize;
        let mut p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if let Some(b) = p.get_mut(1) {
            // Mostly the negotiated payload types, the rest anything.
            *b = [VIDEO_PT, AUDIO_PT, *b][(rng.next() % 3) as usize];
        }
        if let Some(b) = p.first_mut() {
            *b = 0x80 | (*b & 0x3f);
        }
        let now = t0 + Duration::from_millis(i / 10);
        r.handle_rtp(
            (rng.next() % 3) as usize,
            now,
            Some(Layer((rng.next() % 5) as u8)),
            &p,
        );
        if i % 100 == 0 {
            r.poll(now, &mut actions);
            assert!(r.waiting.frames.len() <= MAX_WAITING_FRAMES);
            assert!(r.waiting.bytes <= MAX_WAITING_BYTES);
            assert!(r.placed.len() <= MAX_WAITING_FRAMES * 2);
        }
    }
    // Random bytes are never a VP8 keyframe that decodes: no file.
    assert!(!actions.iter().any(|a| matches!(a, Action::Open { .. })));
}

#[test]
fn frames_held_before_a_file_starts_are_bounded_in_bytes() {
    // Large frames that look like VP8 keyframes but decode as nothing:
    // no file ever starts, and what waits stays under the bound.
    let t0 = Instant::now();
    let mut r = Recorder::new(inputs(), 1, None, t0);
    let mut actions = Vec::new();
    let mut seq = 0u16;
    for n in 0..100u32 {
        for i in 0..200 {
            let mut payload = if i == 0 {
                vec![0x10, 0x00, 0, 0, 0x9d, 0x01, 0x2a]
            } else {
                vec![0x00]
            };
            payload.resize(1_200, n as u8);
            let p = rtp(VIDEO_PT, seq, n * 3000, 1, i == 199, &payload);
            seq = seq.wrapping_add(1);
            r.handle_rtp(0, t0, None, &p);
        }
        r.poll(t0 + Duration::from_millis(u64::from(n)), &mut actions);
        assert!(r.waiting.bytes <= MAX_WAITING_BYTES, "{}", r.waiting.bytes);
    }
    assert!(r.dropped().before_keyframe > 0);
    assert!(!actions.iter().any(|a| matches!(a, Action::Open { .. })));
}
