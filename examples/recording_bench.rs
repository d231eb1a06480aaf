//! Recordings per core: one recording of 1.5 Mbit/s VP8 video (640x480,
//! 30 fps, real libvpx frames) and Opus audio (50 packets a second), run
//! through everything a recording costs after the media worker's copy: the
//! tap's queue, the jitter buffers and depacketisers, the timeline, and
//! libavformat writing the WebM file. Time is virtual (the recorder is
//! sans-IO), so it runs as fast as the CPU allows; CPU time is measured
//! with getrusage and reported per media second and per packet.
//!
//! ```text
//! cargo run --release --example recording_bench -- [media seconds, default 120]
//! ```
//!
//! The worker's own cost of feeding a recording (the copy into the tap) is
//! `fanout_count ... tap` (instructions per packet).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg::codec::{self, Id};
use ffmpeg::util::format::Pixel;
use ffmpeg::util::frame::Video as VideoFrame;
use ffmpeg_next as ffmpeg;
use switchboard::fanout::tap::{Tap, Tapped};
use switchboard::recording::depacketize::Format;
use switchboard::recording::mux::{Container, SegmentFile};
use switchboard::recording::recorder::{Action, Recorder, TrackInput};

const VIDEO_PT: u8 = 96;
const AUDIO_PT: u8 = 111;
const MAX_PAYLOAD: usize = 1_150;

/// 60 frames of noise at 1.5 Mbit/s, one keyframe.
fn vp8_frames() -> Vec<Vec<u8>> {
    let _ = ffmpeg::init();
    ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    let codec = ffmpeg::encoder::find(Id::VP8).expect("libavcodec with libvpx");
    let mut ctx = codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .expect("encoder");
    ctx.set_width(640);
    ctx.set_height(480);
    ctx.set_format(Pixel::YUV420P);
    ctx.set_time_base((1, 30));
    ctx.set_gop(60);
    ctx.set_bit_rate(1_500_000);
    let mut enc = ctx.open().expect("open");
    let mut out = Vec::new();
    for i in 0..60 {
        let mut f = VideoFrame::new(Pixel::YUV420P, 640, 480);
        // Noise: a picture the encoder needs its whole rate for.
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ i as u64;
        for b in f.data_mut(0).iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.set_pts(Some(i as i64));
        enc.send_frame(&f).expect("frame");
        let mut p = ffmpeg::Packet::empty();
        while enc.receive_packet(&mut p).is_ok() {
            out.push(p.data().expect("data").to_vec());
        }
    }
    enc.send_eof().expect("eof");
    let mut p = ffmpeg::Packet::empty();
    while enc.receive_packet(&mut p).is_ok() {
        out.push(p.data().expect("data").to_vec());
    }
    out
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(120);
    let frames = vp8_frames();
    let dir = std::env::temp_dir().join(format!("recording-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let t0 = Instant::now();
    let tracks = vec![
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
    ];
    let mut recorder = Recorder::new(tracks, 1, None, t0);
    let taps = [Arc::new(Tap::new(384)), Arc::new(Tap::new(128))];
    let mut file: Option<SegmentFile> = None;
    let mut actions = Vec::new();
    let (mut vseq, mut aseq) = (0u16, 0u16);
    let (mut packets, mut bytes) = (0u64, 0u64);
    let start_cpu = cpu_time();
    let ticks = seconds * 100;
    for tick in 0..ticks {
        let now = t0 + Duration::from_millis(tick * 10);
        // Video: a frame every 33.3 ms; audio: a packet every 20 ms.
        let ms = tick * 10;
        if ms * 3 / 100 != (ms + 10) * 3 / 100 || tick == 0 {
            let n = ms * 3 / 100;
            let frame = &frames[(n % frames.len() as u64) as usize];
            let chunks: Vec<&[u8]> = frame.chunks(MAX_PAYLOAD).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let mut payload = vec![if i == 0 { 0x10 } else { 0x00 }];
                payload.extend_from_slice(chunk);
                let p = rtp(
                    VIDEO_PT,
                    vseq,
                    (n * 3000) as u32,
                    1,
                    i + 1 == chunks.len(),
                    &payload,
                );
                vseq = vseq.wrapping_add(1);
                bytes += p.len() as u64;
                packets += 1;
                taps[0].offer_rtp(now, None, &p);
            }
        }
        if tick % 2 == 0 {
            let payload = [0xfc; 100];
            let p = rtp(AUDIO_PT, aseq, u32::from(aseq) * 960, 2, false, &payload);
            aseq = aseq.wrapping_add(1);
            bytes += p.len() as u64;
            packets += 1;
            taps[1].offer_rtp(now, None, &p);
        }
        for (i, tap) in taps.iter().enumerate() {
            tap.drain(|t| {
                if let Tapped::Rtp { at, layer, packet } = t {
                    recorder.handle_rtp(i, at, layer, &packet);
                    tap.recycle(packet);
                }
            });
        }
        recorder.poll(now, &mut actions);
        for action in actions.drain(..) {
            match action {
                Action::Open { specs, .. } => {
                    if let Some(f) = file.take() {
                        f.finish().expect("finish");
                    }
                    file = Some(
                        SegmentFile::create(&dir.join("bench.webm"), Container::Webm, &specs)
                            .expect("create"),
                    );
                }
                Action::Write {
                    track,
                    pts_ms,
                    keyframe,
                    data,
                } => {
                    if let Some(f) = file.as_mut() {
                        f.write(track, pts_ms, keyframe, &data).expect("write");
                    }
                }
                Action::RequestKeyframe(_) => {}
            }
        }
        if tick % 100 == 0
            && let Some(f) = file.as_mut()
        {
            f.flush().expect("flush");
        }
    }
    recorder.finish(t0 + Duration::from_secs(seconds), &mut actions);
    if let Some(f) = file.take() {
        f.finish().expect("finish");
    }
    let cpu = cpu_time() - start_cpu;
    let size = std::fs::metadata(dir.join("bench.webm")).map_or(0, |m| m.len());
    let _ = std::fs::remove_dir_all(&dir);
    let per_second = cpu.as_secs_f64() / seconds as f64;
    println!(
        "{seconds} s of media ({:.2} Mbit/s, {packets} packets) recorded in {:.3} s of CPU: \
         {:.2} ms of CPU per media second, {:.2} µs per packet, {:.0} recordings per core; file {} KiB; dropped {:?}",
        bytes as f64 * 8.0 / seconds as f64 / 1e6,
        cpu.as_secs_f64(),
        per_second * 1e3,
        cpu.as_secs_f64() * 1e6 / packets as f64,
        1.0 / per_second,
        size / 1024,
        recorder.dropped(),
    );
}
